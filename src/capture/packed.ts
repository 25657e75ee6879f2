/**
 * Packed events: how statement mode writes many rows into one PgQ event, and how they are
 * read back. Pure functions; the SQL that writes them is in statement-sql.ts.
 *
 * A packed event's `ev_type` is the operation followed by {@link PACKED_SUFFIX}
 * (`INSERT packed`); its `ev_data` is a header line, then one line per row:
 *
 *     {"old":null,"new":[["id","n"],["name","t"]]}
 *     1041 (7,"a name")
 *     1042 (8,)
 *
 * Each line is the row's own event id (a `nextval` of the queue's event sequence, as a
 * one-row event would have taken), a space, and a record in PostgreSQL's composite text
 * output (`ROW(…)::text`): the old image's fields, then the new image's. The header names
 * those fields in order, each with its kind: `b` bool, `n` int2 or int4 (a JSON number),
 * `t` any other type (its text output). With `"mask":true` (an UPDATE under `old: key`) the
 * record starts with one more field, a string of `0`/`1` with one character per old field:
 * the old image holds the fields marked `1` (the identity and the changed columns). The
 * event's own `ev_id` is its first row's id.
 */
import { PgshovelError } from "../errors.js";
import type { Row, Value } from "../stream/types.js";

/** What follows the operation in a packed event's `ev_type`. */
export const PACKED_SUFFIX = " packed";

/** How many rows one packed event holds at most (rows are grouped by `id / PACK_ROWS`). */
export const PACK_ROWS = 1000;

/** A field's JSON kind: bool, number (int2, int4), text. */
export type FieldKind = "b" | "n" | "t";

/** A field of the packed record: column name and kind. */
export type Field = [name: string, kind: FieldKind];

/** The header line of a packed event. */
export interface PackedHeader {
  old: Field[] | null;
  new: Field[] | null;
  /** The record starts with a presence mask for the old fields (UPDATE under `old: key`). */
  mask?: boolean;
}

function malformed(what: string, at: number): never {
  throw new PgshovelError("INTERNAL", `packed event: ${what} at offset ${at}`);
}

/**
 * Reads one composite text record starting at `at` (its `(`): the fields as strings, SQL
 * NULL as null, and the offset just past its `)`. The inverse of PostgreSQL's record_out:
 * an unquoted empty field is NULL; a quoted field doubles `"` and `\`, or escapes either with `\`.
 */
export function parseRecord(text: string, at: number): { fields: (string | null)[]; end: number } {
  if (text.charCodeAt(at) !== 40 /* ( */) malformed("expected (", at);
  const fields: (string | null)[] = [];
  let i = at + 1;
  for (;;) {
    let value: string | null = null;
    if (text.charCodeAt(i) === 34 /* " */) {
      let out = "";
      let start = ++i;
      for (;;) {
        const c = text.charCodeAt(i);
        if (Number.isNaN(c)) malformed("unterminated quoted field", i);
        if (c === 92 /* \ */) {
          out += text.slice(start, i) + text.charAt(i + 1);
          i += 2;
          start = i;
        } else if (c === 34) {
          if (text.charCodeAt(i + 1) === 34) {
            out += text.slice(start, i + 1);
            i += 2;
            start = i;
          } else {
            out += text.slice(start, i);
            i++;
            break;
          }
        } else i++;
      }
      value = out;
    } else {
      const start = i;
      for (;;) {
        const c = text.charCodeAt(i);
        if (c === 44 /* , */ || c === 41 /* ) */) break;
        if (Number.isNaN(c)) malformed("unterminated record", i);
        i++;
      }
      // record_out quotes every empty string and every value with a delimiter in it, so an
      // unquoted field is copied as it is, and an empty one is NULL.
      value = i === start ? null : text.slice(start, i);
    }
    fields.push(value);
    const c = text.charCodeAt(i);
    if (c === 44) {
      i++;
      continue;
    }
    if (c === 41) return { fields, end: i + 1 };
    malformed("expected , or )", i);
  }
}

function toValue(text: string | null, kind: FieldKind, at: number): Value {
  if (text === null) return null;
  if (kind === "t") return text;
  if (kind === "n") return Number(text);
  if (text === "t") return true;
  if (text === "f") return false;
  return malformed(`bool field ${JSON.stringify(text)}`, at);
}

/** A packed event's header, read once for all its rows. */
export interface PackedLayout {
  old: Field[] | null;
  new: Field[] | null;
  mask: boolean;
  /** `"name":` of each old field, then of each new field. */
  keys: { old: string[]; new: string[] };
}

/** One row of a packed event, its fields not yet converted. */
export interface PackedRecord {
  id: bigint;
  /** The record's fields as text (mask first, then old, then new). */
  fields: (string | null)[];
  /** Where the row's line starts in ev_data (for error messages). */
  at: number;
}

/**
 * Calls `take` with the name, kind and text of each field of one side of a row, in order,
 * skipping the old fields its mask leaves out. Returns false when the side is absent.
 */
function eachField(
  layout: PackedLayout,
  record: PackedRecord,
  side: "old" | "new",
  take: (index: number, kind: FieldKind, text: string | null) => void,
): boolean {
  const fields = layout[side];
  if (!fields) return false;
  const mask = side === "old" && layout.mask ? record.fields[0]! : null;
  const base = (layout.mask ? 1 : 0) + (side === "new" ? (layout.old?.length ?? 0) : 0);
  for (let f = 0; f < fields.length; f++) {
    if (mask !== null && mask.charCodeAt(f) !== 49 /* 1 */) continue;
    take(f, fields[f]![1], record.fields[base + f]!);
  }
  return true;
}

function image(layout: PackedLayout, record: PackedRecord, side: "old" | "new"): Row | null {
  const row: Row = {};
  const names = layout[side];
  const present = eachField(layout, record, side, (f, kind, text) => {
    row[names![f]![0]] = toValue(text, kind, record.at);
  });
  return present ? row : null;
}

function imageJson(layout: PackedLayout, record: PackedRecord, side: "old" | "new"): string {
  const keys = layout.keys[side];
  let out = "{";
  const present = eachField(layout, record, side, (f, kind, text) => {
    if (out.length > 1) out += ",";
    out += keys[f]!;
    out += JSON.stringify(toValue(text, kind, record.at));
  });
  return present ? `${out}}` : "null";
}

/** A row's old and new images. */
export function recordRows(
  layout: PackedLayout,
  record: PackedRecord,
): { old: Row | null; new: Row | null } {
  return { old: image(layout, record, "old"), new: image(layout, record, "new") };
}

/**
 * A row's images as the two members of a JSON object, `"old":…,"new":…`, in the stream's value
 * mapping: what encoding {@link recordRows}' result gives, without building the rows.
 */
export function recordRowsJson(layout: PackedLayout, record: PackedRecord): string {
  return `"old":${imageJson(layout, record, "old")},"new":${imageJson(layout, record, "new")}`;
}

/** Reads a packed event's `ev_data`: its layout and its rows' records, in id order. */
export function unpackRecords(data: string): { layout: PackedLayout; records: PackedRecord[] } {
  const newline = data.indexOf("\n");
  const header = JSON.parse(newline < 0 ? data : data.slice(0, newline)) as PackedHeader;
  const quote = (fields: Field[] | null) =>
    (fields ?? []).map(([name]) => `${JSON.stringify(name)}:`);
  const layout: PackedLayout = {
    old: header.old,
    new: header.new,
    mask: header.mask === true,
    keys: { old: quote(header.old), new: quote(header.new) },
  };
  const width = (layout.mask ? 1 : 0) + (header.old?.length ?? 0) + (header.new?.length ?? 0);
  const records: PackedRecord[] = [];
  let i = newline < 0 ? data.length : newline + 1;
  while (i < data.length) {
    const space = data.indexOf(" ", i);
    if (space < 0) malformed("expected an event id", i);
    const id = BigInt(data.slice(i, space));
    const { fields, end } = parseRecord(data, space + 1);
    if (fields.length !== width) malformed(`record of ${fields.length} fields, not ${width}`, i);
    records.push({ id, fields, at: i });
    if (end < data.length && data.charCodeAt(end) !== 10) malformed("expected a new line", end);
    i = end + 1;
  }
  // Rows are grouped into events by id; within an event their order is the aggregate's.
  records.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { layout, records };
}

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

/** One row of a packed event. */
export interface PackedRow {
  id: bigint;
  old: Row | null;
  new: Row | null;
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

function image(
  fields: Field[],
  values: (string | null)[],
  offset: number,
  mask: string | null,
  at: number,
): Row {
  const row: Row = {};
  for (let f = 0; f < fields.length; f++) {
    if (mask !== null && mask.charCodeAt(f) !== 49 /* 1 */) continue;
    const [name, kind] = fields[f]!;
    row[name] = toValue(values[offset + f]!, kind, at);
  }
  return row;
}

/** The rows of a packed event's `ev_data`, in id order. */
export function unpackRows(data: string): PackedRow[] {
  const newline = data.indexOf("\n");
  const header = JSON.parse(newline < 0 ? data : data.slice(0, newline)) as PackedHeader;
  const oldFields = header.old ?? [];
  const newFields = header.new ?? [];
  const mask = header.mask === true;
  const width = (mask ? 1 : 0) + oldFields.length + newFields.length;
  const rows: PackedRow[] = [];
  let i = newline < 0 ? data.length : newline + 1;
  while (i < data.length) {
    const space = data.indexOf(" ", i);
    if (space < 0) malformed("expected an event id", i);
    const id = BigInt(data.slice(i, space));
    const { fields, end } = parseRecord(data, space + 1);
    if (fields.length !== width) malformed(`record of ${fields.length} fields, not ${width}`, i);
    const presence = mask ? fields[0]! : null;
    const base = mask ? 1 : 0;
    rows.push({
      id,
      old: header.old ? image(oldFields, fields, base, presence, i) : null,
      new: header.new ? image(newFields, fields, base + oldFields.length, null, i) : null,
    });
    if (end < data.length && data.charCodeAt(end) !== 10) malformed("expected a new line", end);
    i = end + 1;
  }
  // Rows are grouped into events by id; within an event their order is the aggregate's.
  rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return rows;
}

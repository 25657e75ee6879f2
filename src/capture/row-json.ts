import { ident, literal } from "../config/names.js";
import type { CatalogColumn } from "./catalog.js";

// Types whose JSON rendering is exact: emitted natively; everything else as PostgreSQL's text output.
const NATIVE_JSON_TYPES = new Set([16 /* bool */, 21 /* int2 */, 23 /* int4 */]);
// concat_ws takes at most 100 arguments.
const COLUMNS_PER_CALL = 50;

/**
 * Which row a generated expression reads: `OLD`/`NEW` in a row trigger, the
 * aliases of the transition tables in a statement trigger.
 */
export type RowRef = string;

/**
 * A JSON object of the given columns of one row, as text, in the table's column order.
 * Concatenated rather than built by json_build_object, which looks up every argument's type
 * output function on each call: about four times the cost per row. The members are the
 * same JSON values (numbers and booleans as PostgreSQL prints them, strings escaped by
 * to_json), written without spaces.
 */
export function rowExpression(row: RowRef, columns: CatalogColumn[]): string {
  const members = columns.map((column, i) => member(row, column, i === 0 ? "{" : ","));
  return `(${members.join(" OPERATOR(pg_catalog.||) ")} OPERATOR(pg_catalog.||) '}')`;
}

/** How a column's value is written: a JSON boolean (`b`), a JSON number (`n`) or its text output (`t`). */
export function fieldKind(column: CatalogColumn): "b" | "n" | "t" {
  if (!NATIVE_JSON_TYPES.has(column.typeOid)) return "t";
  return column.typeOid === 16 ? "b" : "n";
}

/** The JSON text of a column's value: `null` for SQL NULL. */
function jsonValue(row: RowRef, column: CatalogColumn): string {
  const ref = `${row}.${ident(column.name)}`;
  const json = NATIVE_JSON_TYPES.has(column.typeOid)
    ? `${ref}::pg_catalog.text`
    : `pg_catalog.to_json(${ref}::pg_catalog.text)::pg_catalog.text`;
  return `COALESCE(${json}, 'null')`;
}

/** The binary image of some columns of a row, for `*=` / `*<>` comparisons that need no casts. */
export function imageExpression(row: RowRef, columns: CatalogColumn[]): string {
  return `(ROW(${columns.map((c) => `${row}.${ident(c.name)}`).join(", ")}))::pg_catalog.record`;
}

/** One `"name":value` member of a JSON object built as text, after `separator`. */
function member(row: RowRef, column: CatalogColumn, separator = ""): string {
  const key = literal(`${separator}${JSON.stringify(column.name)}:`);
  return `${key} OPERATOR(pg_catalog.||) ${jsonValue(row, column)}`;
}

/**
 * The narrow before-image of `old: key`: the identity columns, then (for an UPDATE) each other
 * column whose binary image changed, in the table's order. Built as text because
 * json_build_object cannot leave a member out; concat_ws skips the NULL of an unchanged column.
 */
export function keyImageExpression(
  oldRow: RowRef,
  newRow: RowRef | undefined,
  columns: CatalogColumn[],
  identity: string[],
): string {
  const parts = columns.map((column) => {
    if (identity.includes(column.name) || newRow === undefined) {
      return identity.includes(column.name) ? member(oldRow, column) : undefined;
    }
    const changed = `${imageExpression(oldRow, [column])} OPERATOR(pg_catalog.*<>) ${imageExpression(newRow, [column])}`;
    return `CASE WHEN ${changed} THEN ${member(oldRow, column)} END`;
  });
  const present = parts.filter((p): p is string => p !== undefined);
  // concat_ws takes at most 100 arguments: chunks, each NULL when empty so no comma doubles.
  const chunks: string[] = [];
  for (let i = 0; i < present.length; i += COLUMNS_PER_CALL) {
    const chunk = present.slice(i, i + COLUMNS_PER_CALL).join(", ");
    chunks.push(`NULLIF(pg_catalog.concat_ws(',', ${chunk}), '')`);
  }
  return `('{' OPERATOR(pg_catalog.||) pg_catalog.concat_ws(',', ${chunks.join(", ")}) OPERATOR(pg_catalog.||) '}')`;
}

/** The identity of a row as text, compared across transition tables and read-back events. */
export function identityText(row: RowRef, identity: CatalogColumn[]): string {
  return `pg_catalog.json_build_array(${identity.map((c) => `${row}.${ident(c.name)}::pg_catalog.text`).join(", ")})::pg_catalog.text`;
}

/**
 * The `ev_data` of an event, `{"old" : <row or null>,"new":<row or null>}`, from the two row
 * expressions (null: the member is JSON null). The relay copies an event whose text starts
 * with `{"old" : ` into a JSON stream as it is (src/relay/pgq-event.ts) and parses any other,
 * so that opening is kept byte for byte.
 */
export function eventDataExpression(oldRow: string | null, newRow: string | null): string {
  const parts = [
    oldRow === null ? `'{"old" : null,"new":'` : `'{"old" : '`,
    ...(oldRow === null ? [] : [oldRow, `',"new":'`]),
    ...(newRow === null ? [`'null}'`] : [newRow, "'}'"]),
  ];
  return parts.join(" OPERATOR(pg_catalog.||) ");
}

/**
 * One column of every built-in type (and an enum, a domain and a composite, which the
 * tests create as mood, positive and pair), each with a demanding value: what the capture
 * and the replica are both proven lossless on.
 */

import type { TestDatabase } from "../../support/postgres.js";

/** column name, type, a demanding value (SQL literal) */
export const ALL_TYPES_COLUMNS: [string, string, string][] = [
  ["c_int2", "int2", "-32768"],
  ["c_int4", "int4", "2147483647"],
  ["c_int8", "int8", "9223372036854775807"],
  ["c_int8_neg", "int8", "-9223372036854775808"],
  ["c_numeric", "numeric", "'-123456789012345678901234567890123456789012.000000000000000000001'"],
  ["c_numeric_nan", "numeric", "'NaN'"],
  ["c_numeric_scale", "numeric(20,6)", "'1.500000'"],
  ["c_float4", "float4", "'3.4028235e38'"],
  ["c_float4_nan", "float4", "'NaN'"],
  ["c_float8", "float8", "'0.1'"],
  ["c_float8_tiny", "float8", "'4.9e-324'"],
  ["c_float8_nan", "float8", "'NaN'"],
  ["c_float8_inf", "float8", "'-Infinity'"],
  ["c_float8_negzero", "float8", "'-0'"],
  ["c_bool", "bool", "false"],
  [
    "c_text",
    "text",
    "E'e\\u0301 \\U0001F469\\u200D\\U0001F469\\u200D\\U0001F467 \"q\" \\\\ \\n\\t\\r end'",
  ],
  ["c_varchar", "varchar(10)", "'trailing  '"],
  ["c_char", "char(4)", "'ab'"],
  ["c_name", "name", "'a name'"],
  ["c_qchar", '"char"', "'x'"],
  ["c_bytea", "bytea", "'\\x00ff0a5c27'::bytea"],
  ["c_date", "date", "'2024-02-29'"],
  ["c_date_inf", "date", "'-infinity'"],
  ["c_time", "time", "'23:59:59.999999'"],
  ["c_timetz", "timetz", "'12:00:00.000001+05:30'"],
  ["c_timestamp", "timestamp", "'1999-12-31 23:59:59.000001'"],
  ["c_timestamptz", "timestamptz", "'2024-06-30 23:59:59.123456+02'"],
  ["c_timestamptz_bc", "timestamptz", "'0044-03-15 12:00:00.5+00 BC'"],
  ["c_interval", "interval", "'1 year 2 mons -3 days 04:05:06.789012'"],
  ["c_uuid", "uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"],
  ["c_json", "json", `'{"b": 1, "a": [1, 2.50, null, 12345678901234567890],  "c": "\\u00e9"}'`],
  ["c_json_null", "json", "'null'"],
  ["c_jsonb", "jsonb", `'{"n": 1.000000000000000000001, "s": "x\\"y", "z": null}'`],
  ["c_jsonb_null", "jsonb", "'null'"],
  ["c_int_array", "int4[]", "'{1,NULL,-3}'"],
  ["c_text_array", "text[]", `'{"a b",NULL,"c,d","\\"q\\"","NULL",""}'`],
  ["c_2d_array", "int8[]", "'{{1,2},{3,9223372036854775807}}'"],
  ["c_float_array", "float8[]", "'{NaN,Infinity,-0,1e-308}'"],
  ["c_inet", "inet", "'2001:db8::1/64'"],
  ["c_cidr", "cidr", "'10.0.0.0/8'"],
  ["c_macaddr", "macaddr", "'08:00:2b:01:02:03'"],
  ["c_money", "money", "'-12.34'"],
  ["c_bit", "bit(4)", "B'1010'"],
  ["c_varbit", "varbit", "B'101'"],
  ["c_point", "point", "'(1.5,-2.25)'"],
  ["c_box", "box", "'((0,0),(1,1))'"],
  ["c_int8range", "int8range", "'[1,10)'"],
  ["c_tstzrange", "tstzrange", "'[2024-01-01 00:00:00.000001+00,infinity)'"],
  ["c_tsvector", "tsvector", "'a fat:2 cat'"],
  ["c_xml", "xml", "'<a x=\"1\">é</a>'"],
  ["c_oid", "oid", "4294967295"],
  ["c_mood", "mood", "'happy'"],
  ["c_domain", "positive", "42"],
  ["c_composite", "pair", "ROW(1, 'x,y')"],
];

/** The types ALL_TYPES_COLUMNS uses beyond the built-in ones, created before the table. */
export const ALL_TYPES_SETUP = [
  "CREATE TYPE mood AS ENUM ('sad', 'happy')",
  "CREATE DOMAIN positive AS int CHECK (VALUE > 0)",
  "CREATE TYPE pair AS (a int, b text)",
];

/** Every row of the all-types table `everything` as text, column by column (NULL stays null). */
export async function allTypesRowsAsText(db: TestDatabase): Promise<(string | null)[][]> {
  const rows = await db.query<{ v: (string | null)[] }>(
    `SELECT ARRAY[id::text, ${ALL_TYPES_COLUMNS.map(([n]) => `${n}::text`).join(", ")}] AS v
       FROM everything ORDER BY id`,
  );
  return rows.map((row) => row.v);
}

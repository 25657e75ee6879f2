/**
 * Values are lossless through a replica (invariant 4): a row of every built-in type
 * arrives equal through the bootstrap copy, through the stream's INSERT and UPDATE, and
 * a JSON null stays distinct from SQL NULL.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { bootstrapFromQueue } from "../../src/replication/queue-replica.js";
import { DEFAULT_RUN_LIMITS } from "../../src/replication/runs.js";
import type { TestDatabase } from "../support/postgres.js";
import { catchUp, replicaFixture, totals } from "./replication-support.js";

/** column name, type, a demanding value (SQL literal) */
const COLUMNS: [string, string, string][] = [
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

const TYPES = [
  "CREATE TYPE mood AS ENUM ('sad', 'happy')",
  "CREATE DOMAIN positive AS int CHECK (VALUE > 0)",
  "CREATE TYPE pair AS (a int, b text)",
];

/** Every row as text, column by column (NULL stays null). */
async function rowsAsText(db: TestDatabase): Promise<(string | null)[][]> {
  const rows = await db.query<{ v: (string | null)[] }>(
    `SELECT ARRAY[id::text, ${COLUMNS.map(([n]) => `${n}::text`).join(", ")}] AS v
       FROM everything ORDER BY id`,
  );
  return rows.map((row) => row.v);
}

describe("replica: values are lossless", () => {
  test("every built-in type, through the copy and through the stream", async () => {
    const values = COLUMNS.map(([, , v]) => v).join(", ");
    const fixture = await replicaFixture({
      tables: ["everything"],
      prepare: async (db) => {
        for (const statement of TYPES) await db.query(statement);
        await db.query(
          `CREATE TABLE everything (id int8 PRIMARY KEY, ${COLUMNS.map(([n, t]) => `${n} ${t}`).join(", ")})`,
        );
        await db.query(`INSERT INTO everything VALUES (1, ${values})`);
        await db.query("INSERT INTO everything (id) VALUES (2)");
      },
      prepareTarget: async (db) => {
        for (const statement of TYPES) await db.query(statement);
      },
    });
    try {
      const bootstrap = await bootstrapFromQueue({ ...fixture.replica, createTables: true });
      assert.deepEqual(bootstrap.created, [{ schema: "public", name: "everything" }]);
      // the writer renders time zones in its own session's zone: the replica must not care
      const writer = await fixture.source.connect();
      try {
        await writer.query("SET TimeZone = 'Asia/Kathmandu'");
        await writer.query(`INSERT INTO everything VALUES (9007199254740993, ${values})`);
        await writer.query("INSERT INTO everything (id) VALUES (4)");
        await writer.query(
          "UPDATE everything SET c_int4 = c_int4 - 1, c_text = c_text || '!' WHERE id = 1",
        );
        await writer.query(
          `UPDATE everything SET (${COLUMNS.map(([n]) => n).join(", ")}) = (SELECT ${COLUMNS.map(([n]) => n).join(", ")} FROM everything WHERE id = 1) WHERE id = 2`,
        );
      } finally {
        await writer.end();
      }
      // inserts through COPY (the update goes over arrays): both paths carry every type
      const results = await catchUp(fixture, {
        limits: { ...DEFAULT_RUN_LIMITS, copyInsertsFrom: 1 },
      });
      assert.equal(totals(results).applied, 4, "two inserts and two updates");
      const [source, target] = await Promise.all([
        rowsAsText(fixture.source),
        rowsAsText(fixture.target),
      ]);
      assert.equal(target.length, 4);
      for (const [i, row] of source.entries()) {
        for (const [j, value] of row.entries()) {
          const column = j === 0 ? "id" : COLUMNS[j - 1]![0];
          assert.equal(target[i]![j], value, `row ${row[0]} column ${column}`);
        }
      }
      const nulls = await fixture.target.query<{
        id: string;
        sql_null: boolean;
        text: string | null;
      }>(
        "SELECT id::text, c_json_null IS NULL AS sql_null, c_json_null::text AS text FROM everything ORDER BY id",
      );
      assert.deepEqual(
        nulls.map((r) => [r.id, r.sql_null, r.text]),
        [
          ["1", false, "null"],
          ["2", false, "null"],
          ["4", true, null],
          ["9007199254740993", false, "null"],
        ],
      );
      const [exact] = await fixture.target.query<{ ok: boolean }>(
        `SELECT c_int8 = 9223372036854775807 AND c_numeric = '-123456789012345678901234567890123456789012.000000000000000000001'::numeric
                AND c_timestamptz = '2024-06-30 23:59:59.123456+02' AND c_bytea = '\\x00ff0a5c27'::bytea AS ok
           FROM everything WHERE id = 9007199254740993`,
      );
      assert.equal(exact!.ok, true);
    } finally {
      await fixture.close();
    }
  });
});

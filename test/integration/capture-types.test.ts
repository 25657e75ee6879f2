/**
 * Values are lossless (invariant 4): one row of every built-in type, captured, then each value
 * of the event fed back through `$1::<type>` equals the original.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createSet, initializeCluster } from "../../src/cluster/admin.js";
import { dbNames } from "../../src/config/names.js";
import { createTestDatabase } from "../support/postgres.js";
import { clusterFixture, readEvents, registerConsumer, setConfig } from "./helpers/admin.js";

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

describe("capture: values are lossless", () => {
  test("one row of every built-in type, and one of NULLs, read back through $1::<type>", async () => {
    const f = await clusterFixture();
    const db = await createTestDatabase("cap_types");
    try {
      await db.query("CREATE TYPE mood AS ENUM ('sad', 'happy')");
      await db.query("CREATE DOMAIN positive AS int CHECK (VALUE > 0)");
      await db.query("CREATE TYPE pair AS (a int, b text)");
      await db.query(
        `CREATE TABLE everything (id int PRIMARY KEY, ${COLUMNS.map(([n, t]) => `${n} ${t}`).join(", ")})`,
      );
      await initializeCluster(f.ctx);
      await createSet(f.ctx, "s1", setConfig(db.dsn, ["everything"]));
      const queue = dbNames.queue(f.cluster, "s1");
      await registerConsumer(db, queue);
      // the writer renders time zones in its own session's zone: the reader must not care
      const writer = await db.connect();
      try {
        await writer.query("SET TimeZone = 'Asia/Kathmandu'");
        await writer.query(
          `INSERT INTO everything VALUES (1, ${COLUMNS.map(([, , v]) => v).join(", ")})`,
        );
        await writer.query("INSERT INTO everything (id) VALUES (2)");
      } finally {
        await writer.end();
      }
      const events = await readEvents(db, queue);
      assert.equal(events.length, 2);
      const reader = await db.connect();
      try {
        for (const [i, event] of events.entries()) {
          const id = i + 1;
          const row = event.data.new!;
          // past 50 columns the row is built as jsonb, which orders keys its own way
          assert.deepEqual(Object.keys(row).sort(), ["id", ...COLUMNS.map(([n]) => n)].sort());
          for (const [name, type] of COLUMNS) {
            const value = row[name];
            if (id === 2) {
              assert.equal(value, null, `${name} is SQL NULL`);
              continue;
            }
            assert.notEqual(value, null, `${name} is not NULL`);
            const param = typeof value === "string" ? value : JSON.stringify(value);
            const { rows } = await reader.query<{ same: boolean; original: string; back: string }>(
              `SELECT ($1::${type})::text IS NOT DISTINCT FROM c::text AS same,
                      c::text AS original, ($1::${type})::text AS back
                 FROM (SELECT ${name} AS c FROM everything WHERE id = $2) t`,
              [param, id],
            );
            assert.ok(
              rows[0]?.same,
              `${name} ${type}: ${rows[0]?.original} came back as ${rows[0]?.back}`,
            );
          }
        }
      } finally {
        await reader.end();
      }
      const row = events[0]!.data.new!;
      // a JSON null is a string "null", distinct from an SQL NULL; int8 is a string, exact
      assert.equal(row.c_json_null, "null");
      assert.equal(row.c_jsonb_null, "null");
      assert.equal(row.c_int8, "9223372036854775807");
      assert.equal(row.c_float8_negzero, "-0");
      assert.equal(row.c_int2, -32768);
      assert.equal(row.c_bool, false);
    } finally {
      await f.close();
      await db.drop();
    }
  });

  test("a table wider than one json_build_object call (120 columns)", async () => {
    const f = await clusterFixture();
    const db = await createTestDatabase("cap_wide");
    try {
      const names = Array.from({ length: 120 }, (_, i) => `c${i}`);
      await db.query(
        `CREATE TABLE wide (id int8 PRIMARY KEY, ${names.map((n) => `${n} int8`).join(", ")})`,
      );
      await initializeCluster(f.ctx);
      await createSet(f.ctx, "s1", setConfig(db.dsn, ["wide"]));
      const queue = dbNames.queue(f.cluster, "s1");
      await registerConsumer(db, queue);
      await db.query(
        `INSERT INTO wide VALUES (1, ${names.map((_, i) => `${9007199254740993n + BigInt(i)}`).join(", ")})`,
      );
      await db.query("UPDATE wide SET c119 = NULL");
      const events = await readEvents(db, queue);
      assert.deepEqual(
        events.map((e) => e.type),
        ["INSERT", "UPDATE"],
      );
      const inserted = events[0]!.data.new!;
      assert.equal(Object.keys(inserted).length, 121);
      for (const [i, name] of names.entries()) {
        assert.equal(inserted[name], String(9007199254740993n + BigInt(i)));
      }
      assert.equal(events[1]!.data.new!.c119, null);
      assert.equal(events[1]!.data.old!.c119, "9007199254741112");
    } finally {
      await f.close();
      await db.drop();
    }
  });
});

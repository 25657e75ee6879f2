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
import { ALL_TYPES_COLUMNS } from "./helpers/all-types.js";

const COLUMNS = ALL_TYPES_COLUMNS;

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

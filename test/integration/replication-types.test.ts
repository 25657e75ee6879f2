/**
 * Values are lossless through a replica (invariant 4): a row of every built-in type
 * arrives equal through the bootstrap copy, through the stream's INSERT and UPDATE, and
 * a JSON null stays distinct from SQL NULL.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { bootstrapFromQueue } from "../../src/replication/queue-replica.js";
import { DEFAULT_RUN_LIMITS } from "../../src/replication/runs.js";
import { ALL_TYPES_COLUMNS, ALL_TYPES_SETUP, allTypesRowsAsText } from "./helpers/all-types.js";
import { catchUp, replicaFixture, totals } from "./replication-support.js";

const COLUMNS = ALL_TYPES_COLUMNS;

describe("replica: values are lossless", () => {
  test("every built-in type, through the copy and through the stream", async () => {
    const values = COLUMNS.map(([, , v]) => v).join(", ");
    const fixture = await replicaFixture({
      tables: ["everything"],
      prepare: async (db) => {
        for (const statement of ALL_TYPES_SETUP) await db.query(statement);
        await db.query(
          `CREATE TABLE everything (id int8 PRIMARY KEY, ${COLUMNS.map(([n, t]) => `${n} ${t}`).join(", ")})`,
        );
        await db.query(`INSERT INTO everything VALUES (1, ${values})`);
        await db.query("INSERT INTO everything (id) VALUES (2)");
      },
      prepareTarget: async (db) => {
        for (const statement of ALL_TYPES_SETUP) await db.query(statement);
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
        allTypesRowsAsText(fixture.source),
        allTypesRowsAsText(fixture.target),
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

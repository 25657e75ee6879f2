/**
 * Every capture path yields the same stream: one mixed workload (single-row and bulk
 * statements, key changes and swaps, unchanged rows, a column-filtered table, every type,
 * TRUNCATE) run through row mode and statement mode, with `old: full` and `old: key`; the
 * events, compared one by one, are equal.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { resolveTables } from "../../src/capture/catalog.js";
import { installTableCapture } from "../../src/capture/install.js";
import { nativeCaptureAvailable } from "../../src/capture/native.js";
import type { CaptureMode } from "../../src/capture/sql.js";
import { createSet, initializeCluster } from "../../src/cluster/admin.js";
import { dbNames } from "../../src/config/names.js";
import type { SetConfigInput } from "../../src/config/set-config.js";
import { toMutations } from "../../src/relay/pgq-event.js";
import { ROWS_JSON } from "../../src/stream/types.js";
import { createTestDatabase } from "../support/postgres.js";
import { clusterFixture, readEvents, registerConsumer, setConfig } from "./helpers/admin.js";
import { ALL_TYPES_SETUP, ALL_TYPES_COLUMNS as COLUMNS } from "./helpers/all-types.js";

const SETUP = [
  ...ALL_TYPES_SETUP,
  "CREATE TABLE items (id int8 PRIMARY KEY DEFERRABLE, name text, qty int4)",
  "CREATE TABLE filtered (id int PRIMARY KEY, a text, b text, secret text)",
  `CREATE TABLE everything (id int PRIMARY KEY, ${COLUMNS.map(([n, t]) => `${n} ${t}`).join(", ")})`,
];

/**
 * One committed unit of work: its statements, and whether its events' order is fixed (single
 * rows only) or only the order between statements (bulk: compared as sorted within the unit).
 */
type Step = { sql: string[]; ordered: boolean };
const one = (sql: string, ordered = false): Step => ({ sql: [sql], ordered });

const WORKLOAD: Step[] = [
  one("INSERT INTO items SELECT g, 'n' || g, g FROM generate_series(1, 3000) g"),
  one("INSERT INTO items VALUES (3001, 'single', 1)", true),
  one("UPDATE items SET qty = qty + 1 WHERE id % 2 = 0"),
  one("UPDATE items SET qty = qty WHERE id <= 100"), // unchanged rows: no events
  one("UPDATE items SET name = 'one' WHERE id = 7", true),
  one("UPDATE items SET id = id + 100000 WHERE id <= 300"), // key changes
  // a swap among keys 301..400 and plain changes to 401..600, in one statement
  one(
    "UPDATE items SET id = CASE WHEN id <= 400 THEN 701 - id ELSE id END, name = name || '!' WHERE id BETWEEN 301 AND 600",
  ),
  {
    sql: [
      "INSERT INTO items VALUES (5000, 'a', 1)",
      "UPDATE items SET qty = 2 WHERE id = 5000",
      "UPDATE items SET id = 5001 WHERE id = 5000",
      "DELETE FROM items WHERE id = 5001",
      "INSERT INTO items VALUES (5000, 'b', 3)",
    ],
    ordered: true,
  },
  one("DELETE FROM items WHERE id % 3 = 0"),
  one("DELETE FROM items WHERE id = 3001", true),
  one("INSERT INTO filtered SELECT g, 'a' || g, 'b' || g, 's' FROM generate_series(1, 10) g"),
  one("UPDATE filtered SET secret = 'not captured'"),
  one("UPDATE filtered SET a = 'A' || id, secret = 's2' WHERE id <= 5"),
  {
    sql: [
      `INSERT INTO everything VALUES (1, ${COLUMNS.map(([, , v]) => v).join(", ")})`,
      "INSERT INTO everything (id) VALUES (2)",
    ],
    ordered: true,
  },
  one("UPDATE everything SET c_int4 = 7"),
  one("UPDATE everything SET id = id + 10, c_text = 'moved'"),
  one("DELETE FROM everything"),
  one("TRUNCATE filtered", true),
  // an upsert: inserted rows go to the INSERT trigger, updated ones to the UPDATE trigger
  one("INSERT INTO filtered VALUES (1, 'a', 'b', 's'), (2, 'a', 'b', 's')"),
  one(
    "INSERT INTO filtered VALUES (2, 'A2', 'B2', 's'), (3, 'a3', 'b3', 's') ON CONFLICT (id) DO UPDATE SET a = EXCLUDED.a, b = EXCLUDED.b",
  ),
  // two UPDATEs of one table in one query share its transition tables
  one(
    "WITH a AS (UPDATE items SET qty = 0 WHERE id = 602 RETURNING 1) UPDATE items SET qty = 1 WHERE id IN (604, 605)",
  ),
];

/** The events of each step, without what differs between runs (txids, times, versions). */
async function streamOf(
  mode: CaptureMode,
  old: "full" | "key",
  native = false,
): Promise<unknown[][]> {
  const f = await clusterFixture();
  const db = await createTestDatabase("cap_paths");
  try {
    for (const sql of SETUP) await db.query(sql);
    await initializeCluster(f.ctx);
    const tables: SetConfigInput["tables"] = [
      { name: "items", schema: "public", old },
      { name: "filtered", schema: "public", columns: ["a", "b"], old },
      { name: "everything", schema: "public", old },
    ];
    await createSet(f.ctx, "s1", setConfig(db.dsn, tables));
    const client = await db.connect();
    try {
      if (native) {
        await client.query("BEGIN");
        const { available, failed } = await nativeCaptureAvailable(client);
        await client.query("COMMIT");
        assert.ok(available, `the pgshovel_capture extension (make services builds it): ${failed}`);
      }
      for (const table of await resolveTables(client, tables)) {
        await installTableCapture(client, {
          cluster: f.cluster,
          set: "s1",
          table,
          configVersion: 0,
          mode,
          native,
        });
      }
      const kinds = await client.query<{ n: string }>(
        "SELECT count(*)::text AS n FROM pg_trigger WHERE NOT tgisinternal AND (tgtype & 1) = 0 AND tgname LIKE 'pgs%'",
      );
      // statement mode: _i, _u, _d and _t on each of 3 tables; row mode: _t only
      assert.equal(kinds.rows[0]!.n, mode === "statement" ? "12" : "3");
      // the C function's statement triggers replace the row trigger of changed keys
      const onC = await client.query<{ n: string }>(
        "SELECT count(*)::text AS n FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid WHERE p.proname = 'capture_statement'",
      );
      const rowTriggers = await client.query<{ n: string }>(
        "SELECT count(*)::text AS n FROM pg_trigger WHERE NOT tgisinternal AND (tgtype & 1) = 1 AND tgname LIKE 'pgs%'",
      );
      assert.deepEqual([onC.rows[0]!.n, rowTriggers.rows[0]!.n], native ? ["9", "0"] : ["0", "3"]);
      const queue = dbNames.queue(f.cluster, "s1");
      await registerConsumer(db, queue);
      const units: unknown[][] = [];
      for (const step of WORKLOAD) {
        await client.query("BEGIN");
        for (const sql of step.sql) await client.query(sql);
        await client.query("COMMIT");
        const events = (await readEvents(db, queue)).map((e) => ({
          type: e.type,
          schema: e.schema,
          table: e.table,
          identity: e.identity,
          data: e.data,
        }));
        const key = (e: unknown) => JSON.stringify(e);
        units.push(step.ordered ? events : events.sort((a, b) => key(a).localeCompare(key(b))));
      }
      // every row event is one the relay copies into a JSON stream without parsing it
      const prefix = await client.query<{ p: string }>(
        "SELECT queue_data_pfx AS p FROM pgq.queue WHERE queue_name = $1",
        [queue],
      );
      const raw = await client.query<{ ev_type: string; ev_data: string }>(
        `SELECT ev_type, ev_data FROM ${prefix.rows[0]!.p} WHERE ev_type <> 'TRUNCATE'`,
      );
      const identities = new Map<string, string[]>();
      // statement mode packs a statement's rows into few events; row mode writes one per row
      const packed = raw.rows.filter((row) => row.ev_type.endsWith(" packed"));
      if (mode === "statement") assert.ok(packed.length > 0 && raw.rows.length < 1000);
      else assert.ok(packed.length === 0 && raw.rows.length > 3000);
      for (const row of raw.rows) {
        if (row.ev_type.endsWith(" packed")) continue;
        const event = {
          ...row,
          ev_id: "1",
          ev_time: "2026-01-01 00:00:00+00",
          ev_txid: "1",
          ev_extra1: "public",
          ev_extra2: "t",
          ev_extra4: '["id"]',
        };
        assert.notEqual(toMutations(event, identities)[0]![ROWS_JSON], undefined, row.ev_data);
      }
      return units;
    } finally {
      await client.end();
    }
  } finally {
    await f.close();
    await db.drop();
  }
}

describe("capture: every path yields the same stream", () => {
  for (const old of ["full", "key"] as const) {
    test(`row mode, statement mode in PL/pgSQL and in C, old: ${old}`, async () => {
      const row = await streamOf("row", old);
      for (const [path, stream] of [
        ["PL/pgSQL", await streamOf("statement", old)],
        ["C", await streamOf("statement", old, true)],
      ] as const) {
        assert.equal(stream.length, WORKLOAD.length);
        for (const [i, events] of row.entries()) {
          assert.deepEqual(
            stream[i],
            events,
            `${path}, step ${i + 1}: ${WORKLOAD[i]!.sql.join("; ")}`,
          );
        }
      }
      const counts = row.map((events) => events.length);
      // the workload does what it says: unchanged and unmonitored updates yield nothing
      assert.deepEqual(
        [counts[0], counts[3], counts[5], counts[6], counts[11]],
        [3000, 0, 300, 300, 0],
      );
      // and the upsert and the two-UPDATE query at the end write what they change
      assert.deepEqual(counts.slice(-3), [2, 2, 3]);
    });
  }
});

/**
 * Set-based capture of multi-row statements: the statement triggers' events pair the old and
 * new rows of an UPDATE that changes many keys at once, and the queue's tables rotating under
 * a bulk load lose and repeat no event.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createSet, initializeCluster, updateSet } from "../../src/cluster/admin.js";
import { readSet } from "../../src/cluster/records.js";
import { DEFAULT_CONSUMER } from "../../src/config/names.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";
import {
  type CapturedEvent,
  type ClusterFixture,
  clusterFixture,
  readEvents,
  registerConsumer,
  setConfig,
  withCaptureSet,
} from "./helpers/admin.js";

/** The two ways statement mode captures: the C function (the stack has it) and the generated PL/pgSQL. */
const PATHS = ["C", "PL/pgSQL"] as const;
type Path = (typeof PATHS)[number];

/** {@link withCaptureSet} with every table in statement mode, as a user asks for it. */
function withSet(
  prefix: string,
  setup: string[],
  tables: Parameters<typeof setConfig>[1],
  body: (db: TestDatabase, queue: string, f: ClusterFixture) => Promise<void>,
  path: Path = "C",
): Promise<void> {
  const statementTables = tables.map((t) =>
    typeof t === "string"
      ? { name: t, schema: "public", capture: "statement" as const }
      : { capture: "statement" as const, ...t },
  );
  return withCaptureSet(prefix, setup, statementTables, body, { plpgsql: path === "PL/pgSQL" });
}

/** A table's triggers: name, whether a row trigger, and the function it runs. */
async function triggersOf(db: TestDatabase, table: string) {
  return db.query<{ name: string; row: boolean; fn: string }>(
    `SELECT tgname AS name, (tgtype & 1) = 1 AS row, p.proname AS fn
       FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
      WHERE tgrelid = $1::regclass AND NOT tgisinternal ORDER BY 1`,
    [table],
  );
}

const row = (e: CapturedEvent, side: "old" | "new") => e.data[side] as Record<string, unknown>;

describe("capture: set-based statements", () => {
  for (const path of PATHS) {
    const how =
      path === "C"
        ? "three statement triggers on the C function"
        : "statement triggers, with a row trigger for key changes";
    test(`capture: statement on a plain table (${path}) installs ${how}`, async () => {
      await withSet(
        "cap_stmt_kind",
        ["CREATE TABLE t (id int PRIMARY KEY, v text)"],
        ["t"],
        async (db, queue, f) => {
          const base = `pgs_${f.cluster}_s1`;
          const own = `capture_s1_${(await db.query<{ oid: number }>("SELECT 't'::regclass::oid AS oid"))[0]!.oid}`;
          const dml = path === "C" ? "capture_statement" : own;
          assert.deepEqual(await triggersOf(db, "t"), [
            ...(path === "C" ? [] : [{ name: base, row: true, fn: own }]),
            { name: `${base}_d`, row: false, fn: dml },
            { name: `${base}_i`, row: false, fn: dml },
            { name: `${base}_t`, row: false, fn: own },
            { name: `${base}_u`, row: false, fn: dml },
          ]);
          // The queue's event tables compress packed events with lz4 where the server has it.
          const compression = await db.query<{ table: string; method: string; lz4: boolean }>(
            `SELECT c.relname AS table, a.attcompression::text AS method,
                  (SELECT 'lz4' = ANY (enumvals) FROM pg_settings WHERE name = 'default_toast_compression') AS lz4
             FROM pgq.queue q
             JOIN pg_class c ON c.relname ~ ('^' || split_part(q.queue_data_pfx, '.', 2) || '_[0-9]+$')
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'ev_data'
            WHERE q.queue_name = $1 ORDER BY 1`,
            [queue],
          );
          assert.equal(compression.length, 3);
          for (const row of compression) assert.equal(row.method, row.lz4 ? "l" : "", row.table);
        },
        path,
      );
    });
  }

  test("a table too wide for a packed UPDATE record stays in row mode, and its changes are captured", async () => {
    const columns = Array.from({ length: 840 }, (_, i) => `c${i} int`).join(", ");
    await withSet(
      "cap_stmt_wide",
      [`CREATE TABLE wide (id int PRIMARY KEY, ${columns})`],
      ["wide"],
      async (db, queue) => {
        const triggers = await db.query<{ name: string; row: boolean }>(
          `SELECT tgname AS name, (tgtype & 1) = 1 AS row FROM pg_trigger
            WHERE tgrelid = 'wide'::regclass AND NOT tgisinternal ORDER BY 1`,
        );
        assert.deepEqual(
          triggers.map((t) => t.row),
          [true, false],
          "a row trigger and the TRUNCATE trigger only",
        );
        await registerConsumer(db, queue);
        await db.query("INSERT INTO wide (id, c839) SELECT g, g FROM generate_series(1, 3) g");
        await db.query("UPDATE wide SET c0 = 1");
        const events = await readEvents(db, queue);
        assert.deepEqual(
          events.map((e) => e.type),
          ["INSERT", "INSERT", "INSERT", "UPDATE", "UPDATE", "UPDATE"],
        );
        assert.equal(row(events[3]!, "new").c0, 1);
      },
    );
  });

  test("without the option a table gets statement triggers on the C function; capture: row switches it to row triggers", async () => {
    const f = await clusterFixture();
    const db = await createTestDatabase("cap_stmt_default");
    try {
      await db.query("CREATE TABLE t (id int PRIMARY KEY, v text)");
      await initializeCluster(f.ctx);
      const base = `pgs_${f.cluster}_s1`;
      const names = async () => (await triggersOf(db, "t")).map((t) => [t.name, t.fn]);
      await createSet(f.ctx, "s1", setConfig(db.dsn, ["t"]));
      const own = (await triggersOf(db, "t")).find((t) => t.name === `${base}_t`)!.fn;
      assert.deepEqual(await names(), [
        [`${base}_d`, "capture_statement"],
        [`${base}_i`, "capture_statement"],
        [`${base}_t`, own],
        [`${base}_u`, "capture_statement"],
      ]);
      const stored = await readSet(f.ctx, "s1");
      assert.equal(stored?.config.tables[0]?.capture, undefined);
      await updateSet(
        f.ctx,
        "s1",
        setConfig(db.dsn, [{ name: "t", schema: "public", capture: "row" }]),
      );
      assert.deepEqual(await names(), [
        [base, own],
        [`${base}_t`, own],
      ]);
      assert.equal((await readSet(f.ctx, "s1"))?.config.tables[0]?.capture, "row");
      // and back: the C function's triggers replace the row trigger
      await updateSet(f.ctx, "s1", setConfig(db.dsn, ["t"]));
      assert.equal((await names()).filter(([, fn]) => fn === "capture_statement").length, 3);
      assert.equal((await triggersOf(db, "t")).length, 4);
    } finally {
      await f.close();
      await db.drop();
    }
  });

  for (const path of PATHS) {
    test(`a key changed only in a way its nondeterministic collation ignores is still a key change (${path})`, async () => {
      await withSet(
        "cap_stmt_collation",
        [
          "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
          "CREATE TABLE t (id text COLLATE ci PRIMARY KEY, v int)",
          "INSERT INTO t VALUES ('a', 1), ('b', 1)",
        ],
        ["t"],
        async (db, queue) => {
          await readEvents(db, queue);
          await db.query("UPDATE t SET id = upper(id), v = v + 1");
          const events = await readEvents(db, queue);
          assert.deepEqual(
            events.map((e) => [e.type, row(e, "old").id, row(e, "new").id, row(e, "new").v]).sort(),
            [
              ["UPDATE", "a", "A", 2],
              ["UPDATE", "b", "B", 2],
            ],
          );
        },
        path,
      );
    });
  }

  for (const path of PATHS) {
    test(`an UPDATE that changes many keys at once (a swap among them) pairs every old row with its new row (${path})`, async () => {
      await withSet(
        "cap_stmt_keys",
        [
          "CREATE TABLE t (id int PRIMARY KEY DEFERRABLE, tag text NOT NULL, v int)",
          "INSERT INTO t SELECT i, 'row' || i, 0 FROM generate_series(1, 2000) i",
        ],
        ["t"],
        async (db, queue) => {
          await readEvents(db, queue); // the INSERT's events
          // Rows 1..1000 swap keys with each other (id → 1001 - id); rows 1001..2000 keep their
          // key and change v; in the same statement. A pairing by key alone would be wrong.
          await db.query(
            "UPDATE t SET id = CASE WHEN id <= 1000 THEN 1001 - id ELSE id END, v = v + 1",
          );
          const events = await readEvents(db, queue);
          assert.equal(events.length, 2000);
          const byTag = new Map<string, CapturedEvent>();
          for (const e of events) {
            assert.equal(e.type, "UPDATE");
            const tag = row(e, "new").tag as string;
            assert.equal(row(e, "old").tag, tag, "old and new images of one row");
            assert.ok(!byTag.has(tag), `one event for ${tag}`);
            byTag.set(tag, e);
          }
          for (let i = 1; i <= 2000; i++) {
            const e = byTag.get(`row${i}`)!;
            assert.deepEqual(row(e, "old"), { id: i, tag: `row${i}`, v: 0 });
            assert.deepEqual(row(e, "new"), { id: i <= 1000 ? 1001 - i : i, tag: `row${i}`, v: 1 });
          }
          // The next statement, with no key change, is paired by key again.
          await db.query("UPDATE t SET v = 5 WHERE id <= 3");
          const next = await readEvents(db, queue);
          assert.deepEqual(next.map((e) => [row(e, "old").id, row(e, "new").v]).sort(), [
            [1, 5],
            [2, 5],
            [3, 5],
          ]);
        },
        path,
      );
    });
  }

  for (const path of PATHS) {
    test(`one session's single-row UPDATEs, then a bulk one, then single-row ones again: all captured (${path})`, async () => {
      // The function's plans are made once per session: the first statement's must suit the
      // bulk one (a nested loop planned for one row would take minutes on 50 000).
      await withSet(
        "cap_stmt_plans",
        [
          "CREATE TABLE t (id int PRIMARY KEY, v int)",
          "INSERT INTO t SELECT g, 0 FROM generate_series(1, 50000) g",
        ],
        ["t"],
        async (db, queue) => {
          const client = await db.connect();
          try {
            for (let i = 1; i <= 3; i++)
              await client.query("UPDATE t SET v = 1 WHERE id = $1", [i]);
            await client.query("UPDATE t SET v = v + 1");
            for (let i = 1; i <= 3; i++)
              await client.query("UPDATE t SET v = 9 WHERE id = $1", [i]);
          } finally {
            await client.end();
          }
          const events = await readEvents(db, queue);
          assert.equal(events.length, 3 + 50000 + 3);
          assert.deepEqual(row(events.at(-1)!, "new"), { id: 3, v: 9 });
        },
        path,
      );
    });
  }

  test("the C function keeps a trigger's columns for the session, rebuilt when the table changes; monitored columns stay in place", async () => {
    const NOTE = 'a, "b"\n\t\\ \u0001 é';
    await withSet(
      "cap_stmt_cache",
      ["CREATE TABLE t (id int PRIMARY KEY, v int, note text)"],
      ["t"],
      async (db, queue) => {
        const prefix = (
          await db.query<{ p: string }>(
            "SELECT queue_data_pfx AS p FROM pgq.queue WHERE queue_name = $1",
            [queue],
          )
        )[0]!.p;
        const client = await db.connect();
        try {
          await client.query("INSERT INTO t VALUES (1, 10, $1)", [NOTE]);
          // Another session changes the table; this session's next statement sees it.
          await db.query("ALTER TABLE t ADD COLUMN extra int DEFAULT 5");
          await client.query("INSERT INTO t VALUES (2, 20, 'c')");
          await db.query("ALTER TABLE t DROP COLUMN extra");
          await client.query("UPDATE t SET note = 'd' WHERE id = 2");
          // A monitored column cannot be dropped or retyped under the function that reads it.
          await assert.rejects(db.query("ALTER TABLE t DROP COLUMN note"), /depend on it/);
          await assert.rejects(
            db.query("ALTER TABLE t ALTER COLUMN v TYPE text"),
            /cannot alter type of a column used by a view or rule/,
          );
          // Renamed, it is gone from the function's view: writes fail, saying what to do.
          await db.query("ALTER TABLE t RENAME COLUMN note TO memo");
          await assert.rejects(
            client.query("INSERT INTO t VALUES (3, 30, 'x')"),
            (error: Error) => {
              assert.match(error.message, /column "note" of "t" is gone/);
              return true;
            },
          );
        } finally {
          await client.end();
        }
        // Single-row statements: one-row events, byte for byte what row mode writes.
        const events = await db.query<{ type: string; data: string }>(
          `SELECT ev_type AS type, ev_data AS data FROM ${prefix} ORDER BY ev_id`,
        );
        const note = JSON.stringify(NOTE);
        assert.deepEqual(events, [
          { type: "INSERT", data: `{"old" : null,"new":{"id":1,"v":10,"note":${note}}}` },
          { type: "INSERT", data: '{"old" : null,"new":{"id":2,"v":20,"note":"c"}}' },
          {
            type: "UPDATE",
            data: '{"old" : {"id":2,"v":20,"note":"c"},"new":{"id":2,"v":20,"note":"d"}}',
          },
        ]);
        assert.deepEqual(
          (await db.query<{ id: number }>("SELECT id FROM t ORDER BY id")).map((r) => r.id),
          [1, 2],
        );
      },
    );
  });

  for (const path of PATHS) {
    test(`the queue's tables rotating under bulk statements: every event is delivered once (${path})`, async () => {
      await withSet(
        "cap_stmt_rotate",
        ["CREATE TABLE t (id int PRIMARY KEY, v int)"],
        ["t"],
        async (db, queue) => {
          await db.query("SELECT pgq.set_queue_config($1, 'rotation_period', '0')", [queue]);
          // The default consumer never reads here: it would hold every rotation back.
          await db.query("SELECT pgq.unregister_consumer($1, $2)", [queue, DEFAULT_CONSUMER]);
          const statements = 24;
          const perStatement = 2000;
          const seen = new Map<string, number>();
          const consume = async () => {
            for (const e of await readEvents(db, queue)) {
              const key = `${e.type}:${(e.data.new ?? e.data.old)!.id}`;
              seen.set(key, (seen.get(key) ?? 0) + 1);
            }
          };
          const tables = new Set<number>();
          let rotations = 0;
          let writing = true;
          // Two writers: bulk INSERTs, then bulk DELETEs of half the rows, each in its own transaction.
          const writer = async (lane: number) => {
            for (let s = lane; s < statements; s += 2) {
              const from = s * perStatement + 1;
              await db.query("INSERT INTO t SELECT i, i FROM generate_series($1::int, $2::int) i", [
                from,
                from + perStatement - 1,
              ]);
              await db.query("DELETE FROM t WHERE id BETWEEN $1 AND $2 AND id % 2 = 0", [
                from,
                from + perStatement - 1,
              ]);
            }
          };
          const writers = Promise.all([writer(0), writer(1)]).finally(() => {
            writing = false;
          });
          // Rotate as PgQ's maintenance does (step 1, then step 2 in its own transaction) while
          // consuming, so each rotation can go ahead once the consumer has left the old table.
          while (writing || rotations < 4) {
            await consume();
            const before = await db.query<{ cur: number }>(
              "SELECT queue_cur_table AS cur FROM pgq.queue WHERE queue_name = $1",
              [queue],
            );
            await db.query("SELECT pgq.maint_rotate_tables_step1($1)", [queue]);
            await db.query("SELECT pgq.maint_rotate_tables_step2()");
            const after = await db.query<{ cur: number }>(
              "SELECT queue_cur_table AS cur FROM pgq.queue WHERE queue_name = $1",
              [queue],
            );
            tables.add(after[0]!.cur);
            if (after[0]!.cur !== before[0]!.cur) rotations += 1;
            if (!writing && rotations < 4) {
              await db.query("INSERT INTO t VALUES ($1, 0)", [1_000_000 + rotations]);
              await db.query("DELETE FROM t WHERE id = $1", [1_000_000 + rotations]);
            }
          }
          await writers;
          await waitFor(
            async () => {
              await consume();
              return seen.size >= statements * perStatement * 1.5;
            },
            { description: "every event read" },
          );
          assert.ok(rotations >= 4, `rotated ${rotations} times`);
          assert.equal(tables.size, 3, "every event table was current at some point");
          for (let s = 0; s < statements; s++) {
            for (let i = s * perStatement + 1; i <= (s + 1) * perStatement; i++) {
              assert.equal(seen.get(`INSERT:${i}`), 1, `INSERT ${i} once`);
              if (i % 2 === 0) assert.equal(seen.get(`DELETE:${i}`), 1, `DELETE ${i} once`);
              else assert.equal(seen.get(`DELETE:${i}`), undefined);
            }
          }
        },
        path,
      );
    });
  }
});

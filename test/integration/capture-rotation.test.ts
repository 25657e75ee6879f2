/**
 * A writing transaction keeps the event table it first read for the rest of its events
 * (src/capture/spec.ts, queueTableBlock). PgQ's rules make that safe: consumers read the
 * previous table for every batch a transaction open across a rotation can land in, and no
 * further rotation happens while it runs. Proved here by rotating the tables under an open
 * transaction, in both capture modes, statement mode by the generated PL/pgSQL and by the C
 * function.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DEFAULT_CONSUMER } from "../../src/config/names.js";
import type { TestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";
import { readEvents, withCaptureSet } from "./helpers/admin.js";

async function currentTable(db: TestDatabase, queue: string): Promise<number> {
  const [row] = await db.query<{ cur: number }>(
    "SELECT queue_cur_table AS cur FROM pgq.queue WHERE queue_name = $1",
    [queue],
  );
  return row!.cur;
}

async function rotate(db: TestDatabase, queue: string): Promise<void> {
  await db.query("SELECT pgq.maint_rotate_tables_step1($1)", [queue]);
  await db.query("SELECT pgq.maint_rotate_tables_step2()");
}

describe("capture: a transaction open across a rotation of the queue's tables", () => {
  for (const [capture, path, opening] of [
    ["row", "PL/pgSQL", "rows"],
    ["statement", "PL/pgSQL", "rows"],
    ["statement", "PL/pgSQL", "nothing"],
    ["statement", "C", "rows"],
    ["statement", "C", "nothing"],
  ] as const) {
    const opens =
      opening === "rows"
        ? "its events before and after"
        : "opened by a statement that writes no row, its events after";
    test(`capture: ${capture} (${path}): ${opens} the rotation arrive once each`, async () => {
      await withCaptureSet(
        `cap_rotate_${capture}`,
        ["CREATE TABLE t (id int PRIMARY KEY, v int)"],
        [{ name: "t", schema: "public", capture }],
        async (db, queue) => {
          await db.query("SELECT pgq.set_queue_config($1, 'rotation_period', '0')", [queue]);
          // The default consumer never reads here: it would hold every rotation back.
          await db.query("SELECT pgq.unregister_consumer($1, $2)", [queue, DEFAULT_CONSUMER]);
          const seen = new Map<string, number>();
          const consume = async () => {
            for (const e of await readEvents(db, queue)) {
              const key = `${e.type}:${(e.data.new ?? e.data.old)!.id}`;
              seen.set(key, (seen.get(key) ?? 0) + 1);
            }
          };
          const writer = await db.connect();
          let after: number;
          try {
            await writer.query("BEGIN");
            if (opening === "rows") {
              await writer.query("INSERT INTO t SELECT g, 0 FROM generate_series(1, 500) g");
              await writer.query("INSERT INTO t VALUES (501, 0)");
            } else {
              // The statement trigger runs (over empty transition tables) before the
              // transaction has an id: the table it reads must still be one consumers read.
              await writer.query("UPDATE t SET v = v WHERE false");
              await writer.query(
                "INSERT INTO t SELECT g, 0 FROM generate_series(1, 501) g WHERE false",
              );
            }
            const before = await currentTable(db, queue);
            // PgQ rotates once the consumer's last tick is past every transaction older than
            // the last rotation, on the whole server: other tests' transactions may hold it
            // back for a while.
            ({ cur: after } = await waitFor(
              async () => {
                await consume();
                await rotate(db, queue);
                const cur = await currentTable(db, queue);
                return cur !== before ? { cur } : undefined;
              },
              { description: "the tables rotating under the open transaction" },
            ));
            // More events of the same transaction, written to the table it first read.
            let pinned = after;
            if (opening === "nothing") {
              await writer.query("INSERT INTO t SELECT g, 0 FROM generate_series(1, 500) g");
              await writer.query("INSERT INTO t VALUES (501, 0)");
              // the table its first event read, as the writer keeps it
              const [queueRow] = await db.query<{ id: number }>(
                "SELECT queue_id AS id FROM pgq.queue WHERE queue_name = $1",
                [queue],
              );
              const setting = await writer.query<{ table: string }>(
                "SELECT current_setting($1) AS table",
                [`pgshovel.queue_table_${queueRow!.id}`],
              );
              pinned = Number(setting.rows[0]!.table);
            }
            await writer.query("INSERT INTO t SELECT g, 0 FROM generate_series(502, 1000) g");
            await writer.query("UPDATE t SET v = 1 WHERE id <= 300");
            await writer.query("UPDATE t SET v = 2 WHERE id = 1000");
            // No second rotation while it runs: the consumer cannot pass its start.
            if (path === "C" && opening === "nothing") {
              // The C function reads the table at the transaction's first event, once it has
              // its id (as insert_event_raw reads it per event): a statement that wrote no row
              // gave it none, so PgQ (or pgqd) may rotate once more after that read, past the
              // table its events are in, which consumers still read while it is open. Never
              // twice, however often tried.
              const [{ tables }] = (await db.query<{ tables: number }>(
                "SELECT queue_ntables AS tables FROM pgq.queue WHERE queue_name = $1",
                [queue],
              )) as [{ tables: number }];
              for (let attempt = 0; attempt < 3; attempt++) {
                await consume();
                await rotate(db, queue);
              }
              const now = await currentTable(db, queue);
              assert.ok((now - pinned + tables) % tables <= 1, `rotated from ${pinned} to ${now}`);
              after = now;
            } else {
              await consume();
              await rotate(db, queue);
            }
            assert.equal(await currentTable(db, queue), after, "no rotation while it is open");
            await writer.query("COMMIT");
          } finally {
            await writer.end();
          }
          await consume();
          for (let id = 1; id <= 1000; id++) {
            assert.equal(seen.get(`INSERT:${id}`), 1, `INSERT ${id} once`);
            const updated = id <= 300 || id === 1000;
            assert.equal(seen.get(`UPDATE:${id}`), updated ? 1 : undefined, `UPDATE ${id}`);
          }
          // The rotation goes ahead once the transaction is done and read.
          await waitFor(
            async () => {
              await consume();
              await rotate(db, queue);
              return (await currentTable(db, queue)) !== after;
            },
            { description: "the tables rotating again afterwards" },
          );
        },
        { plpgsql: path === "PL/pgSQL" },
      );
    });
  }
});

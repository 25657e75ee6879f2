/**
 * A running `pgshovel replicate` follows what happens to the set's tables: a primary key
 * changed, TRUNCATE, a rolled-back transaction, a table added while rows are written to it,
 * a table removed.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { updateSet } from "../../src/cluster/admin.js";
import { type RelayProcess, stopRelay, waitForLog } from "../support/fixtures.js";
import type { TestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";
import { type ReplicateFixture, replicateFixture, startReplicate } from "./replicate-support.js";
import { checksum } from "./replication-support.js";

const COLUMNS = ["id", "v"];

async function prepare(db: TestDatabase): Promise<void> {
  await db.query("CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)");
  await db.query("CREATE TABLE u (id int PRIMARY KEY, v text NOT NULL)");
}

describe("pgshovel replicate follows the set's tables", () => {
  let fixture: ReplicateFixture;
  let worker: RelayProcess;
  const setConfig = (tables: string[]) => ({
    database: { dsn: fixture.db.dsn },
    tables: tables.map((name) => ({ schema: "public", name })),
  });
  /** Waits until `table` holds the same rows on both sides. */
  const converged = (table: string) =>
    waitFor(
      async () => {
        const source = await checksum(fixture.db, table, COLUMNS, ["id"]);
        const target = await checksum(fixture.target, table, COLUMNS, ["id"]);
        return source.md5 === target.md5 && source.count === target.count;
      },
      {
        timeoutMs: 60_000,
        abandonWhen: () => (worker.ended() ? "the worker exited" : undefined),
        get description() {
          return `${table} equal on both sides (worker log: ${worker.stderr().slice(-2000)})`;
        },
      },
    );

  before(async () => {
    fixture = await replicateFixture({ prepare, tables: ["t"] });
    await fixture.db.query("INSERT INTO t SELECT g, 'before' FROM generate_series(1, 500) g");
    worker = startReplicate(fixture, ["--create-tables"]);
    await waitForLog(worker, "applying the stream", 60_000);
  });
  after(async () => {
    if (worker) await stopRelay(worker, 15_000);
    await fixture?.close();
  });

  test("changed primary keys, a rolled-back transaction, TRUNCATE", async () => {
    await fixture.db.query("UPDATE t SET id = id + 10000, v = 'moved' WHERE id <= 100");
    // A key freed and taken again in one transaction: the changes keep their order.
    await fixture.db.query(
      "BEGIN; UPDATE t SET id = 20001 WHERE id = 10001; UPDATE t SET id = 10001 WHERE id = 101; COMMIT",
    );
    const client = await fixture.db.connect();
    try {
      await client.query("BEGIN");
      await client.query("INSERT INTO t VALUES (-1, 'rolled back')");
      await client.query("DELETE FROM t WHERE id = 200");
      await client.query("ROLLBACK");
    } finally {
      await client.end();
    }
    await fixture.db.query("INSERT INTO t VALUES (-2, 'committed')");
    await converged("t");
    const absent = await fixture.target.query("SELECT 1 FROM t WHERE id = -1 OR v = 'rolled back'");
    assert.equal(absent.length, 0, "nothing of the rolled-back transaction");
    assert.equal((await fixture.target.query("SELECT 1 FROM t WHERE id = 200")).length, 1);

    await fixture.db.query("TRUNCATE t");
    await fixture.db.query(
      "INSERT INTO t SELECT g, 'after truncate' FROM generate_series(1, 20) g",
    );
    await converged("t");
    const [row] = await fixture.target.query<{ n: string }>("SELECT count(*)::text AS n FROM t");
    assert.equal(row!.n, "20");
  });

  test("a table added while rows are written to it is copied, then followed", async () => {
    await fixture.db.query("INSERT INTO u SELECT g, 'uncaptured' FROM generate_series(1, 300) g");
    // Writes go on while the set changes: some commit before the trigger does, some after.
    let writing = true;
    const writes = (async () => {
      for (let id = 301; writing || id < 400; id++) {
        await fixture.db.query("INSERT INTO u VALUES ($1, 'during')", [id]);
        await fixture.db.query("UPDATE u SET v = 'touched' WHERE id = $1", [id - 300]);
      }
    })();
    try {
      await updateSet(fixture.ctx, fixture.set, setConfig(["t", "u"]));
    } finally {
      writing = false;
      await writes;
    }
    await fixture.db.query("INSERT INTO t VALUES (1000, 't goes on')");
    await converged("u");
    await converged("t");
    await waitForLog(worker, '"table":"public.u"');
  });

  test("a table removed from the set is no longer applied", async () => {
    await updateSet(fixture.ctx, fixture.set, setConfig(["u"]));
    await waitForLog(worker, "tables left the set");
    const before = await checksum(fixture.target, "t", COLUMNS, ["id"]);
    await fixture.db.query("INSERT INTO t VALUES (2000, 'not replicated')");
    await fixture.db.query("INSERT INTO u VALUES (-5, 'replicated')");
    await converged("u");
    assert.deepEqual(await checksum(fixture.target, "t", COLUMNS, ["id"]), before);
    const [state] = await fixture.target.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM pgshovel_${fixture.cluster}.replica_tables WHERE table_name = 't'`,
    );
    assert.equal(state!.n, "0", "t's copy is forgotten: should it come back, it is copied again");
  });
});

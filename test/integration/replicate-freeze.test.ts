/**
 * No two writers for a replica when ZooKeeper freezes (SIGSTOP: its connections stay open,
 * nothing answers): a worker applying a steady write load says it stops at the silence bound
 * and commits nothing to the target once a session timeout has passed, for a freeze of three
 * session timeouts; after SIGCONT it leads again in a new session and the replica equals the source.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { silenceBoundMs } from "../../src/cluster/liveness.js";
import { setupSet, startPgshovel, stopRelay, waitForLog } from "../support/fixtures.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import { startPrivateZooKeeper } from "../support/private-services.js";
import { waitFor } from "../support/wait.js";
import { checksum } from "./replication-support.js";

/** The worker's `--zookeeper-timeout`; the private server grants it as the session timeout. */
const SESSION_MS = 4000;
const BOUND_MS = silenceBoundMs(SESSION_MS);
const FREEZE_MS = 3 * SESSION_MS;
const ROWS = 20;
const LEADING = "leading: this replica worker is the active one";

/** Inserts ROWS rows per transaction until stopped; `stop()` says how many committed. */
function writeLoad(db: TestDatabase) {
  let committed = 0;
  let stopping = false;
  const done = (async () => {
    while (!stopping) {
      await db.query("INSERT INTO t SELECT g, 'x' FROM generate_series($1::int, $2::int) g", [
        committed + 1,
        committed + ROWS,
      ]);
      committed += ROWS;
      // Paces the load; nothing waits on it.
      await delay(10);
    }
  })();
  return {
    async stop(): Promise<number> {
      stopping = true;
      await done;
      return committed;
    },
  };
}

/** The replica's stored position of set "s" (batch and when it was applied), as text. */
async function position(target: TestDatabase, cluster: string): Promise<string> {
  const rows = await target.query<{ batch_id: string; applied_at: string }>(
    `SELECT batch_id::text, applied_at::text FROM pgshovel_${cluster}.replica_position WHERE set_name = 's'`,
  );
  const row = rows[0];
  return row ? `${row.batch_id} at ${row.applied_at}` : "none";
}

async function count(db: TestDatabase): Promise<number> {
  const result = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM t");
  return Number(result[0]!.n);
}

describe("replicate: ZooKeeper frozen", () => {
  test("the worker commits nothing from the silence bound until the thaw, then catches up", async () => {
    const zk = await startPrivateZooKeeper();
    const target = await createTestDatabase("repl_frz", { pgq: false });
    const fixture = await setupSet({
      prefix: "repl_frz_src",
      prepare: async (db) => {
        await db.query("CREATE TABLE t (id int PRIMARY KEY, v text)");
      },
      tables: ["t"],
      zkHosts: zk.hosts,
    });
    const worker = startPgshovel(
      fixture,
      ["replicate", "s", "--target", target.dsn, "--create-tables", "--fetch-size", "5"],
      { env: { PGSHOVEL_ZOOKEEPER_TIMEOUT: `${SESSION_MS / 1000}s` }, logLevel: "debug" },
    );
    const load = writeLoad(fixture.db);
    let stopped = false;
    try {
      await waitForLog(worker, LEADING, 60_000);
      await waitFor(async () => (await count(target)) >= 20 * ROWS, {
        timeoutMs: 60_000,
        description: "the replica applying the load",
      });

      await zk.freeze();
      const frozenAt = Date.now();
      // The worker stops committing at the silence bound after ZooKeeper's last answer, which
      // came before the freeze; a commit already under way may land a little later. What must
      // hold is that nothing lands once the session could have expired (a session timeout
      // after the freeze), when another worker could lead.
      await waitFor(() => Date.now() >= frozenAt + SESSION_MS, {
        description: "a session timeout to pass",
        intervalMs: 5,
      });
      const atBound = await position(target, fixture.cluster);
      let moved: string | undefined;
      await waitFor(
        async () => {
          const now = await position(target, fixture.cluster);
          if (now !== atBound) moved ??= `${now} ${Date.now() - frozenAt} ms into the freeze`;
          return Date.now() >= frozenAt + FREEZE_MS;
        },
        { description: "the freeze to last", intervalMs: 20, timeoutMs: FREEZE_MS + 10_000 },
      );
      assert.equal(
        moved,
        undefined,
        `the position moved from ${atBound} to ${moved} (bound ${BOUND_MS} ms, session ${SESSION_MS} ms); stderr: ${worker.stderr().slice(-2000)}`,
      );
      assert.match(worker.stderr(), /ZooKeeper has not answered for the silence bound/);

      await zk.thaw();
      await waitFor(() => worker.stderr().split(LEADING).length - 1 >= 2, {
        timeoutMs: 60_000,
        get description() {
          return `the worker leading again (its stderr: ${worker.stderr().slice(-2000)})`;
        },
      });
      const rows = await load.stop();
      stopped = true;
      await waitFor(async () => (await count(target)) === rows, {
        timeoutMs: 120_000,
        get description() {
          return `the replica catching up with ${rows} rows (stderr: ${worker.stderr().slice(-2000)})`;
        },
      });
      const columns = ["id", "v"];
      assert.deepEqual(
        await checksum(target, "t", columns, ["id"]),
        await checksum(fixture.db, "t", columns, ["id"]),
        "the replica equals the source",
      );
      assert.equal(worker.child.exitCode, null, "still running");
    } finally {
      if (!stopped) await load.stop().catch(() => 0);
      await zk.thaw();
      assert.equal((await stopRelay(worker, 20_000)).code, 0, worker.stderr().slice(-4000));
      await fixture.close();
      await target.drop();
      await zk.destroy();
    }
  });
});

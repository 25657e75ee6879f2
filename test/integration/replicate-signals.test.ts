/**
 * SIGTERM stops `pgshovel replicate` cleanly (exit 0, well within its 9 s deadline) at any
 * moment: at start, during a bootstrap copy (whose target transaction rolls back at once:
 * nothing of the table is left), and while batches are applied (no transaction half-applied).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import {
  type RelayProcess,
  type SetFixture,
  setupSet,
  startPgshovel,
  waitForLog,
} from "../support/fixtures.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import { freePort } from "../support/private-services.js";
import { waitFor, withTimeout } from "../support/wait.js";
import { appliedBatchIds } from "./replicate-support.js";
import { checksum } from "./replication-support.js";

/** Well under the worker's own 9 s deadline: a stop that needed the deadline fails. */
const STOP_BOUND_MS = 5_000;
/** Rows per inserting transaction of the load. */
const ROWS = 7;

interface Replica {
  source: SetFixture;
  target: TestDatabase;
  close(): Promise<void>;
}

async function replica(rows = 0): Promise<Replica> {
  const target = await createTestDatabase("repl_sig", { pgq: false });
  const source = await setupSet({
    prefix: "repl_sig_src",
    prepare: async (db) => {
      await db.query("CREATE TABLE t (id int PRIMARY KEY, v text)");
      if (rows > 0) {
        await db.query(
          "INSERT INTO t SELECT g, repeat('x', 40) FROM generate_series(1, $1::int) g",
          [rows],
        );
        await db.query("ANALYZE t");
      }
    },
    tables: ["t"],
  });
  return {
    source,
    target,
    close: async () => {
      await source.close();
      await target.drop();
    },
  };
}

function start(r: Replica, args: string[] = []): RelayProcess {
  return startPgshovel(
    r.source,
    ["replicate", "s", "--target", r.target.dsn, "--create-tables", ...args],
    { logLevel: "debug" },
  );
}

/** Sends SIGTERM and waits (a bound) for the exit; asserts exit 0 without the deadline. */
async function terminate(worker: RelayProcess): Promise<void> {
  worker.child.kill("SIGTERM");
  const exit = await withTimeout(worker.exited, STOP_BOUND_MS, "replicate to exit on SIGTERM");
  assert.deepEqual(exit, { code: 0, signal: null }, worker.stderr().slice(-3000));
  assert.doesNotMatch(worker.stderr(), /did not stop within/);
}

/** The command line of a process as ps shows it (the title pgshovel sets first thing). */
function titleOf(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0] ?? "";
}

async function count(db: TestDatabase, table = "t"): Promise<number> {
  const rows = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`);
  return Number(rows[0]!.n);
}

describe("replicate: SIGTERM", () => {
  test("as soon as the program's first line has run: exit 0", async () => {
    const r = await replica();
    try {
      const worker = start(r);
      // A signal before the program's first line (while the launcher or Node starts) ends
      // any program by the signal; pgshovel catches them first, then sets its title.
      const title = "pgshovel replicate s";
      await waitFor(() => titleOf(worker.pid).startsWith(title), {
        intervalMs: 1,
        abandonWhen: () => (worker.ended() ? "replicate exited" : undefined),
        description: `the process title "${title}"`,
      });
      await terminate(worker);
    } finally {
      await r.close();
    }
  });

  test("while ZooKeeper is unreachable: exit 0 at once", async () => {
    const r = await replica();
    try {
      const closed = `127.0.0.1:${await freePort()}`;
      const worker = startPgshovel({ ...r.source, zkHosts: closed }, [
        "replicate",
        "s",
        "--target",
        r.target.dsn,
        "--zookeeper-timeout",
        "60s",
      ]);
      await waitForLog(worker, "connecting to ZooKeeper");
      await terminate(worker);
    } finally {
      await r.close();
    }
  });

  test("mid-copy: exit 0 at once, the copy rolled back", async () => {
    const r = await replica(1_500_000);
    try {
      const worker = start(r);
      // The moment: the copy's COPY is running on the target.
      await waitFor(
        async () => {
          const copying = await r.target.query<{ n: string }>(
            `SELECT count(*)::text AS n FROM pg_stat_activity
              WHERE datname = current_database() AND application_name LIKE 'pgshovel-replica-copy%'
                AND state = 'active' AND query LIKE 'COPY%FROM STDIN%'`,
          );
          return Number(copying[0]!.n) > 0;
        },
        {
          timeoutMs: 120_000,
          intervalMs: 20,
          abandonWhen: () => (worker.ended() ? "replicate exited" : undefined),
          description: "the bootstrap copy running",
        },
      );
      await terminate(worker);
      assert.doesNotMatch(worker.stderr(), /"msg":"table copied"/);
      // The server rolls the copy back once it sees the connection closed.
      await waitFor(
        async () => {
          const left = await r.target.query<{ n: string }>(
            `SELECT count(*)::text AS n FROM pg_stat_activity
              WHERE datname = current_database() AND application_name LIKE 'pgshovel-replica%'`,
          );
          return Number(left[0]!.n) === 0;
        },
        { timeoutMs: 60_000, description: "the worker's target sessions gone" },
      );
      assert.equal(await count(r.target), 0, "nothing of the copy is left");
      assert.equal(
        await count(r.target, `pgshovel_${r.source.cluster}.replica_tables`),
        0,
        "the table is not recorded as copied",
      );
    } finally {
      await r.close();
    }
  });

  test("while applying: exit 0 at once, no transaction half-applied; a restart catches up", async () => {
    const r = await replica();
    let stopping = false;
    let committed = 0;
    const load = (async () => {
      while (!stopping) {
        await r.source.db.query(
          "INSERT INTO t SELECT g, 'y' FROM generate_series($1::int, $2::int) g",
          [committed + 1, committed + ROWS],
        );
        committed += ROWS;
        await delay(2);
      }
    })();
    try {
      const port = await freePort();
      const worker = start(r, ["--fetch-size", "3", "--metrics-listen", `127.0.0.1:${port}`]);
      await waitForLog(worker, "leading: this replica worker is the active one", 60_000);
      await waitFor(() => appliedBatchIds(worker.stderr()).length >= 5, {
        timeoutMs: 60_000,
        description: "batches applied",
      });
      // The operations of a relay, for a replica: metrics the shipped alert rule reads, /health.
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.match(metrics, /^pgshovel_apply_lag_seconds\{[^}]*replica="[^"]+"[^}]*\} /m);
      assert.match(metrics, /^pgshovel_apply_batches_total\{[^}]*result="applied"[^}]*\} [1-9]/m);
      assert.match(metrics, /^pgshovel_apply_leader\{[^}]*\} 1$/m);
      const health = await fetch(`http://127.0.0.1:${port}/health`);
      assert.equal(health.status, 200, await health.text());
      await terminate(worker);
      assert.equal((await count(r.target)) % ROWS, 0, "whole transactions only");
      stopping = true;
      await load;
      const again = start(r, ["--until-caught-up"]);
      const exit = await withTimeout(again.exited, 120_000, "the restarted worker to catch up");
      assert.equal(exit.code, 0, again.stderr().slice(-3000));
      const columns = ["id", "v"];
      assert.deepEqual(
        await checksum(r.target, "t", columns, ["id"]),
        await checksum(r.source.db, "t", columns, ["id"]),
      );
    } finally {
      stopping = true;
      await load.catch(() => {});
      await r.close();
    }
  });
});

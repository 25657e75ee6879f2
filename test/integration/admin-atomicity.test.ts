/**
 * Configuration is atomic (invariant 5): a crash or a lost ZooKeeper between prepare and commit
 * is resolved by `recover`, and two concurrent updates of one set cannot both win.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  createSet,
  initializeCluster,
  listSets,
  recoverCluster,
  updateSet,
} from "../../src/cluster/admin.js";
import type { RecoveryReport } from "../../src/cluster/two-phase.js";
import { ZooKeeper } from "../../src/cluster/zookeeper.js";
import { zkPaths } from "../../src/config/names.js";
import { isPgshovelError } from "../../src/errors.js";
import { createTestDatabase } from "../support/postgres.js";
import { startPrivateZooKeeper } from "../support/private-services.js";
import { waitFor } from "../support/wait.js";
import { connectZk } from "../support/zookeeper.js";
import {
  assertNothingLeft,
  clusterFixture,
  defaultTriggers,
  leftovers,
  setConfig,
} from "./helpers/admin.js";

/** Runs `recover` until no change is in progress any more (a dead owner's session expired). */
async function recoverUntilSettled(
  ctx: Parameters<typeof recoverCluster>[0],
): Promise<RecoveryReport> {
  const total: RecoveryReport = { committed: [], rolledBack: [], inProgress: [], failed: [] };
  await waitFor(
    async () => {
      const report = await recoverCluster(ctx);
      total.committed.push(...report.committed);
      total.rolledBack.push(...report.rolledBack);
      total.failed.push(...report.failed);
      return report.inProgress.length === 0 && report.failed.length === 0;
    },
    { description: "recover to find no change in progress", timeoutMs: 40_000, intervalMs: 250 },
  );
  return total;
}

async function preparedGids(
  db: { query: (sql: string, p?: unknown[]) => Promise<unknown[]> },
  cluster: string,
) {
  const rows = (await db.query("SELECT gid FROM pg_prepared_xacts WHERE gid LIKE $1", [
    `pgshovel:${cluster}:%`,
  ])) as { gid: string }[];
  return rows.map((r) => r.gid).sort();
}

describe("administration: atomicity", () => {
  test("ZooKeeper stopped between prepare and commit: clear failure, recover rolls back", async () => {
    const server = await startPrivateZooKeeper();
    const db = await createTestDatabase("atom_zkstop");
    const f = await clusterFixture({
      hosts: server.hosts,
      timeoutMs: 3_000,
      sessionTimeoutMs: 4_000,
    });
    try {
      await db.query("CREATE TABLE accounts (id int PRIMARY KEY, owner text)");
      await initializeCluster(f.ctx);
      let gids: string[] = [];
      const ctx = {
        ...f.ctx,
        hooks: {
          afterPrepare: async (prepared: string[]) => {
            gids = prepared;
            assert.deepEqual(await preparedGids(db, f.cluster), [...prepared].sort());
            await server.stop();
          },
        },
      };
      await assert.rejects(createSet(ctx, "s1", setConfig(db.dsn, ["accounts"])), (error) => {
        assert.ok(isPgshovelError(error, "ZOOKEEPER_UNAVAILABLE"));
        assert.match(error.message, new RegExp(`lost ZooKeeper \\(${server.hosts}\\)`));
        assert.match(error.message, /prepared transactions are kept/);
        assert.match(error.hint ?? "", /pgshovel cluster recover/);
        return true;
      });
      assert.equal(gids.length, 1);
      assert.match(gids[0] ?? "", new RegExp(`^pgshovel:${f.cluster}:s1:create:`));
      // the outcome is unknown while ZooKeeper is away: the prepared transaction waits
      assert.deepEqual(await preparedGids(db, f.cluster), gids);
      f.ctx.zk.close();

      await server.start();
      const zk = await ZooKeeper.connect({ hosts: server.hosts, timeoutMs: 10_000 });
      // A fresh checking session: the fixture's may have expired while ZooKeeper was down.
      const check = await connectZk({ hosts: server.hosts });
      try {
        const ctx2 = { ...f.ctx, zk };
        const report = await recoverUntilSettled(ctx2);
        assert.deepEqual(report.rolledBack, gids);
        assert.deepEqual(report.committed, []);
        await assertNothingLeft(db, check, f.cluster, "s1");
        // consistent: the set can be created now
        await createSet(ctx2, "s1", setConfig(db.dsn, ["accounts"]));
        assert.deepEqual(
          (await leftovers(db, check, f.cluster, "s1")).triggers,
          defaultTriggers(f.cluster, "s1", "accounts"),
        );
      } finally {
        zk.close();
        check.close();
      }
    } finally {
      await f.close();
      await db.drop();
      await server.destroy();
    }
  });

  for (const outcome of ["aborted", "committed"] as const) {
    test(`process killed between prepare and commit (ZooKeeper ${outcome}): recover resolves it`, async () => {
      const db = await createTestDatabase("atom_kill");
      const f = await clusterFixture();
      try {
        await db.query("CREATE TABLE accounts (id int PRIMARY KEY, owner text)");
        await initializeCluster(f.ctx);
        const script = fileURLToPath(new URL("./helpers/crash-after-prepare.js", import.meta.url));
        const child = spawn(process.execPath, [
          script,
          f.hosts,
          f.cluster,
          "s1",
          db.dsn,
          "accounts",
        ]);
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (c: Buffer) => {
          stdout += c.toString();
        });
        child.stderr.on("data", (c: Buffer) => {
          stderr += c.toString();
        });
        const [code, signal] = await new Promise<[number | null, string | null]>((resolve) =>
          child.once("close", (c, s) => resolve([c, s])),
        );
        assert.equal(signal, "SIGKILL", `exit ${code}: ${stderr}`);
        const gids = stdout
          .trim()
          .replace(/^prepared /, "")
          .split(" ");
        assert.deepEqual(await preparedGids(db, f.cluster), gids);
        const records = await f.zk.children(zkPaths.transactions(f.cluster));
        assert.equal(records.length, 1);
        const recordPath = zkPaths.transaction(f.cluster, records[0]!);
        if (outcome === "committed") {
          // as if the multi-op had been applied just before the crash
          const record = JSON.parse((await f.zk.getString(recordPath)) ?? "null");
          await f.zk.set(recordPath, JSON.stringify({ ...record, state: "committed" }));
          await f.zk.create(
            zkPaths.set(f.cluster, "s1"),
            JSON.stringify({
              database: { dsn: db.dsn, node: "x" },
              tables: [
                { schema: "public", name: "accounts", primary_keys: ["id"], columns: ["id"] },
              ],
              operation: "create",
            }),
          );
        }
        // the dead process's session still owns the change until it expires
        const report = await recoverUntilSettled(f.ctx);
        assert.deepEqual(await preparedGids(db, f.cluster), []);
        assert.deepEqual(await f.zk.children(zkPaths.transactions(f.cluster)), []);
        if (outcome === "aborted") {
          assert.deepEqual(report.rolledBack, gids);
          await assertNothingLeft(db, f.zk, f.cluster, "s1");
        } else {
          assert.deepEqual(report.committed, gids);
          const left = await leftovers(db, f.zk, f.cluster, "s1");
          assert.equal(left.queue, true);
          assert.deepEqual(left.triggers, defaultTriggers(f.cluster, "s1", "accounts"));
        }
      } finally {
        await f.close();
        await db.drop();
      }
    });
  }

  test("two concurrent updates of one set: exactly one wins, the other fails with CONFLICT", async () => {
    const db = await createTestDatabase("atom_race");
    const f = await clusterFixture();
    const other = await ZooKeeper.connect({ hosts: f.hosts, timeoutMs: 10_000 });
    try {
      await db.query("CREATE TABLE a (id int PRIMARY KEY, x text, y text)");
      await db.query("CREATE TABLE b (id int PRIMARY KEY, x text)");
      await initializeCluster(f.ctx);
      await createSet(f.ctx, "s1", setConfig(db.dsn, ["a"]));
      const winnerConfig = setConfig(db.dsn, [{ name: "a", schema: "public", columns: ["x"] }]);
      const loserConfig = setConfig(db.dsn, ["a", "b"]);
      let loser: Promise<unknown> | undefined;
      // The loser starts once the winner prepared, and so reads version 0 before the winner commits.
      const winner = updateSet(
        {
          ...f.ctx,
          hooks: {
            afterPrepare: async () => {
              loser = updateSet({ ...f.ctx, zk: other }, "s1", loserConfig);
              loser.catch(() => {});
              await waitFor(
                async () =>
                  (
                    await db.query(
                      "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    )
                  ).length > 0 || (await settled(loser!)),
                { description: "the second update to wait for the first one's locks" },
              );
            },
          },
        },
        "s1",
        winnerConfig,
      );
      const won = await winner;
      assert.equal(won.version, 1);
      await assert.rejects(loser!, (error) => {
        assert.ok(isPgshovelError(error, "CONFLICT"), String(error));
        assert.match(error.message, /set s1 .*changed concurrently/);
        return true;
      });
      const sets = await listSets(f.ctx);
      assert.deepEqual(sets, [{ name: "s1", database: db.dsn, tables: ["public.a"], version: 1 }]);
      const left = await leftovers(db, f.zk, f.cluster, "s1");
      assert.deepEqual(left.triggers, defaultTriggers(f.cluster, "s1", "a"));
      assert.deepEqual(left.prepared, []);
      assert.deepEqual(left.transactionRecords, []);
      // the trigger is the winner's: only a.x is monitored (the columns end its arguments)
      const [trigger] = await db.query<{ def: string }>(
        "SELECT pg_get_triggerdef(oid) AS def FROM pg_trigger WHERE tgname = $1",
        [`pgs_${f.cluster}_s1_u`],
      );
      assert.match(trigger?.def ?? "", /AFTER UPDATE ON public\.a .*, 'id', 'x'\)$/);

      // free-running: both start together, still exactly one wins
      const results = await Promise.allSettled([
        updateSet(f.ctx, "s1", setConfig(db.dsn, ["a"])),
        updateSet({ ...f.ctx, zk: other }, "s1", setConfig(db.dsn, ["b"])),
      ]);
      const fulfilled = results.filter((r) => r.status === "fulfilled");
      const rejected = results.filter((r) => r.status === "rejected");
      assert.equal(fulfilled.length, 1, JSON.stringify(results));
      assert.ok(isPgshovelError(rejected[0]?.reason, "CONFLICT"), String(rejected[0]?.reason));
      const expected = results[0]?.status === "fulfilled" ? "a" : "b";
      const after = await leftovers(db, f.zk, f.cluster, "s1");
      assert.deepEqual(after.triggers, defaultTriggers(f.cluster, "s1", expected));
      assert.deepEqual(after.prepared, []);
      assert.deepEqual((await listSets(f.ctx))[0]?.tables, [`public.${expected}`]);
    } finally {
      other.close();
      await f.close();
      await db.drop();
    }
  });
});

async function settled(promise: Promise<unknown>): Promise<boolean> {
  const marker = Symbol();
  const value = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    Promise.resolve(marker),
  ]);
  return value !== marker;
}

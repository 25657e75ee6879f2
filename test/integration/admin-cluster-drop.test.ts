/**
 * Removing what still holds data: `cluster drop` (all or nothing over every set's database,
 * refused while relays run) and `set update` moving a set whose old queue still holds events.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  createSet,
  dropCluster,
  initializeCluster,
  listSets,
  updateSet,
} from "../../src/cluster/admin.js";
import { dbNames, zkPaths } from "../../src/config/names.js";
import { isPgshovelError } from "../../src/errors.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import { freePort } from "../support/private-services.js";
import {
  assertNothingLeft,
  type ClusterFixture,
  clusterFixture,
  defaultTriggers,
  leftovers,
  readEvents,
  registerConsumer,
  runCli,
  setConfig,
} from "./helpers/admin.js";
import { startCli, stopCli } from "./helpers/cli-process.js";

/** Whether DB holds the cluster's `pgshovel_<cluster>` schema. */
async function hasSchema(db: TestDatabase, cluster: string): Promise<boolean> {
  const rows = await db.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [
    dbNames.schema(cluster),
  ]);
  return rows.length > 0;
}

describe("administration: cluster drop, and moving a set with events pending", () => {
  let dir: string;
  let f: ClusterFixture;
  let one: TestDatabase;
  let two: TestDatabase;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "pgshovel-drop-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A fresh initialized cluster and two databases, each with tables a and b. */
  async function setUp(): Promise<void> {
    f = await clusterFixture();
    one = await createTestDatabase("drop_one");
    two = await createTestDatabase("drop_two");
    for (const db of [one, two]) {
      await db.query("CREATE TABLE a (id int PRIMARY KEY, v text)");
      await db.query("CREATE TABLE b (id int PRIMARY KEY, v text)");
    }
    await initializeCluster(f.ctx);
  }
  async function tearDown(): Promise<void> {
    await f.close();
    await one.drop();
    await two.drop();
  }

  test("cluster drop removes every set's triggers and queue, each database's schema and the znodes", async () => {
    await setUp();
    try {
      await createSet(f.ctx, "s1", setConfig(one.dsn, ["a"]));
      await createSet(f.ctx, "s2", setConfig(one.dsn, ["b"]));
      await createSet(f.ctx, "s3", setConfig(two.dsn, ["a", "b"]));
      assert.ok((await hasSchema(one, f.cluster)) && (await hasSchema(two, f.cluster)));

      const report = await dropCluster(f.ctx);
      assert.deepEqual(report, { sets: ["s1", "s2", "s3"], databases: 2, relays: [] });
      for (const [db, set] of [
        [one, "s1"],
        [one, "s2"],
        [two, "s3"],
      ] as const) {
        const left = await leftovers(db, f.zk, f.cluster, set);
        assert.deepEqual(
          [left.triggers, left.queue, left.functions, left.prepared],
          [[], false, [], []],
        );
      }
      assert.equal(await hasSchema(one, f.cluster), false);
      assert.equal(await hasSchema(two, f.cluster), false);
      assert.equal(await f.zk.exists(zkPaths.cluster(f.cluster)), null, "no znode is left");
      // The tables and their data are the application's: untouched.
      assert.deepEqual(await one.query("SELECT count(*)::int AS n FROM a"), [{ n: 0 }]);
      // The name is free again.
      await initializeCluster(f.ctx);
      assert.deepEqual(await listSets(f.ctx), []);
    } finally {
      await tearDown();
    }
  });

  test("cluster drop with a set's database unreachable changes nothing", async () => {
    await setUp();
    try {
      await createSet(f.ctx, "s1", setConfig(one.dsn, ["a"]));
      await createSet(f.ctx, "s2", setConfig(two.dsn, ["a"]));
      // Point s2 at a closed port, as if its database server were down.
      const path = zkPaths.set(f.cluster, "s2");
      const stored = JSON.parse((await f.zk.getString(path)) ?? "null");
      stored.database.dsn = `postgresql://postgres@127.0.0.1:${await freePort()}/gone`;
      stored.database.node = "00000000-0000-4000-8000-000000000000";
      await f.zk.set(path, JSON.stringify(stored));

      await assert.rejects(dropCluster(f.ctx), (error: unknown) =>
        isPgshovelError(error, "DATABASE_UNAVAILABLE"),
      );
      const left = await leftovers(one, f.zk, f.cluster, "s1");
      assert.equal(left.setZnode, true);
      assert.equal(left.queue, true);
      assert.deepEqual(left.triggers, defaultTriggers(f.cluster, "s1", "a"));
      assert.deepEqual(left.prepared, []);
      assert.deepEqual(left.transactionRecords, []);
      assert.ok(await hasSchema(one, f.cluster));
      assert.deepEqual(
        (await listSets(f.ctx)).map((s) => s.name),
        ["s1", "s2"],
      );
    } finally {
      await tearDown();
    }
  });

  test("cluster drop refuses while a relay runs; with --force it drops and the relay stops", async () => {
    await setUp();
    const env = { PGSHOVEL_ZOOKEEPER_HOSTS: f.hosts, PGSHOVEL_CLUSTER: f.cluster };
    await createSet(f.ctx, "s1", setConfig(one.dsn, ["a"]));
    const relay = startCli(["relay", "s1", "--sink", `file:${join(dir, "s1.jsonl")}`], env);
    try {
      await relay.waitForStderr(/leading: this relay is the active one/);

      const refused = await runCli(["cluster", "drop"], { env });
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(
        refused.stderr,
        new RegExp(
          `cluster "${f.cluster}" has 1 relay\\(s\\) running \\(s1/pgshovel\\); nothing was changed`,
        ),
      );
      assert.match(refused.stderr, /hint: stop the relays first, or use --force/);
      assert.equal((await leftovers(one, f.zk, f.cluster, "s1")).queue, true);

      const forced = await runCli(["cluster", "drop", "--force"], { env });
      assert.equal(forced.code, 0, forced.stderr);
      assert.equal(forced.stdout, `dropped cluster ${f.cluster}: 1 set(s) in 1 database(s)\n`);
      assert.match(
        forced.stderr,
        /warning: 1 running relay\(s\) lost their set and stop: s1\/pgshovel/,
      );
      assert.deepEqual(await relay.exited, { code: 0, signal: null }, relay.stderr());
      await assertNothingLeft(one, f.zk, f.cluster, "s1");
      assert.equal(await hasSchema(one, f.cluster), false);
      assert.equal(await f.zk.exists(zkPaths.cluster(f.cluster)), null);
    } finally {
      await stopCli(relay);
      await tearDown();
    }
  });

  test("set update moving a set refuses while events are pending, saying how many; --force moves it", async () => {
    await setUp();
    try {
      await createSet(f.ctx, "s1", setConfig(one.dsn, ["a"]));
      const queue = dbNames.queue(f.cluster, "s1");
      await registerConsumer(one, queue, "audit");
      await one.query("INSERT INTO a VALUES (1, 'x'), (2, 'y')");
      await one.query("INSERT INTO a VALUES (3, 'z')");
      // audit has read them; the default consumer (no relay ran) has not.
      assert.equal((await readEvents(one, queue, "audit")).length, 3);
      await one.query("INSERT INTO a VALUES (4, 'not ticked yet')");

      await assert.rejects(updateSet(f.ctx, "s1", setConfig(two.dsn, ["a"])), (error: unknown) => {
        assert.ok(isPgshovelError(error, "IN_USE"), String(error));
        assert.match(
          error.message,
          /^set s1 would move to another database, dropping its queue in .* with 4 event\(s\) not yet relayed \(consumer audit: 1, consumer pgshovel: 4\); nothing was changed$/,
        );
        assert.match(error.hint ?? "", /--force moves it and drops those events/);
        return true;
      });
      const stayed = await leftovers(one, f.zk, f.cluster, "s1");
      assert.deepEqual(
        [stayed.queue, stayed.triggers, stayed.prepared],
        [true, defaultTriggers(f.cluster, "s1", "a"), []],
      );
      assert.equal((await leftovers(two, f.zk, f.cluster, "s1")).queue, false);
      assert.equal((await listSets(f.ctx))[0]?.version, 0);

      const file = join(dir, "moved.json");
      await writeFile(file, JSON.stringify(setConfig(two.dsn, ["a"])));
      const moved = await runCli(["set", "update", "s1", file, "--force"], {
        env: { PGSHOVEL_ZOOKEEPER_HOSTS: f.hosts, PGSHOVEL_CLUSTER: f.cluster },
      });
      assert.equal(moved.code, 0, moved.stderr);
      assert.equal(moved.stdout, "updated set s1 to version 1\n");
      assert.match(
        moved.stderr,
        /warning: the set moved; 4 event\(s\) not yet relayed were dropped with its old queue/,
      );
      assert.equal((await leftovers(one, f.zk, f.cluster, "s1")).queue, false);
      assert.equal((await leftovers(two, f.zk, f.cluster, "s1")).queue, true);
    } finally {
      await tearDown();
    }
  });
});

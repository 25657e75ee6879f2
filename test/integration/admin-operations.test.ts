/**
 * The normal path of every administrative operation, through the library API, against the real
 * PostgreSQL + PgQ and ZooKeeper.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  createSet,
  dropSet,
  initializeCluster,
  inspectSet,
  listSets,
  recoverCluster,
  updateSet,
  upgradeCluster,
} from "../../src/cluster/admin.js";
import { dbNames, zkPaths } from "../../src/config/names.js";
import { isPgshovelError } from "../../src/errors.js";
import { SOFTWARE_VERSION } from "../../src/version.js";
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
  setConfig,
} from "./helpers/admin.js";

async function withCluster(
  prefix: string,
  body: (f: ClusterFixture, db: TestDatabase) => Promise<void>,
): Promise<void> {
  const fixture = await clusterFixture();
  const db = await createTestDatabase(prefix);
  try {
    await initializeCluster(fixture.ctx);
    await db.query("CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric)");
    await db.query("CREATE TABLE orders (id bigint PRIMARY KEY, account int, total numeric)");
    await body(fixture, db);
  } finally {
    await fixture.close();
    await db.drop();
  }
}

describe("administration: normal paths (library API)", () => {
  test("cluster initialize creates the record, sets and transactions nodes; twice is ALREADY_EXISTS", async () => {
    const f = await clusterFixture();
    try {
      const record = await initializeCluster(f.ctx);
      assert.equal(record.version, SOFTWARE_VERSION);
      const stored = JSON.parse((await f.zk.getString(zkPaths.cluster(f.cluster))) ?? "null");
      assert.equal(stored.version, SOFTWARE_VERSION);
      assert.ok(await f.zk.exists(zkPaths.sets(f.cluster)));
      assert.ok(await f.zk.exists(zkPaths.transactions(f.cluster)));
      await assert.rejects(initializeCluster(f.ctx), (error: unknown) => {
        assert.ok(isPgshovelError(error, "ALREADY_EXISTS"));
        assert.match(error.message, new RegExp(`cluster "${f.cluster}" is already initialized`));
        return true;
      });
      // the failed second attempt changed nothing
      const again = JSON.parse((await f.zk.getString(zkPaths.cluster(f.cluster))) ?? "null");
      assert.deepEqual(again, stored);
    } finally {
      await f.close();
    }
  });

  test("set create installs queue, triggers and znode; list and inspect show it", async () => {
    await withCluster("adm_create", async (f, db) => {
      const stored = await createSet(
        f.ctx,
        "s1",
        setConfig(db.dsn, ["accounts", { name: "orders", schema: "public", columns: ["total"] }]),
      );
      assert.deepEqual(stored.tables, [
        {
          schema: "public",
          name: "accounts",
          primary_keys: ["id"],
          columns: ["id", "owner", "balance"],
        },
        { schema: "public", name: "orders", primary_keys: ["id"], columns: ["id", "total"] },
      ]);
      const [node] = await db.query<{ id: string }>(
        `SELECT id::text FROM ${dbNames.schema(f.cluster)}.node`,
      );
      assert.equal(stored.database.node, node?.id);
      const left = await leftovers(db, f.zk, f.cluster, "s1");
      assert.equal(left.setZnode, true);
      assert.equal(left.queue, true);
      assert.deepEqual(left.triggers, defaultTriggers(f.cluster, "s1", "accounts", "orders"));
      assert.deepEqual(left.prepared, []);
      assert.deepEqual(left.transactionRecords, []);

      const list = await listSets(f.ctx);
      assert.deepEqual(list, [
        {
          name: "s1",
          database: db.dsn,
          tables: ["public.accounts", "public.orders"],
          version: 0,
        },
      ]);
      const inspected = await inspectSet(f.ctx, "s1");
      assert.equal(inspected.version, 0);
      assert.deepEqual(inspected.config.tables, stored.tables);
    });
  });

  test("set update adds a table, removes a table and changes columns; events follow", async () => {
    await withCluster("adm_update", async (f, db) => {
      await createSet(f.ctx, "s1", setConfig(db.dsn, ["accounts"]));
      const queue = dbNames.queue(f.cluster, "s1");
      // add orders
      const v1 = await updateSet(f.ctx, "s1", setConfig(db.dsn, ["accounts", "orders"]));
      assert.equal(v1.version, 1);
      assert.deepEqual(
        (await leftovers(db, f.zk, f.cluster, "s1")).triggers,
        defaultTriggers(f.cluster, "s1", "accounts", "orders"),
      );
      // remove accounts, monitor only orders.total
      const v2 = await updateSet(
        f.ctx,
        "s1",
        setConfig(db.dsn, [{ name: "orders", schema: "public", columns: ["total"] }]),
      );
      assert.equal(v2.version, 2);
      assert.deepEqual(v2.config.tables, [
        { schema: "public", name: "orders", primary_keys: ["id"], columns: ["id", "total"] },
      ]);
      assert.deepEqual(
        (await leftovers(db, f.zk, f.cluster, "s1")).triggers,
        defaultTriggers(f.cluster, "s1", "orders"),
      );
      await registerConsumer(db, queue);
      await db.query("INSERT INTO accounts VALUES (1, 'ann', 10)");
      await db.query("INSERT INTO orders VALUES (7, 1, 99.5)");
      await db.query("UPDATE orders SET account = 2 WHERE id = 7"); // unmonitored: no event
      const events = await readEvents(db, queue);
      assert.deepEqual(
        events.map((e) => [e.type, e.table, e.configVersion, e.data]),
        [["INSERT", "orders", "2", { old: null, new: { id: "7", total: "99.5" } }]],
      );
      assert.equal((await inspectSet(f.ctx, "s1")).version, 2);
    });
  });

  test("set update to another database moves the set and cleans the old one", async () => {
    await withCluster("adm_move", async (f, db) => {
      const other = await createTestDatabase("adm_move_to");
      try {
        await other.query("CREATE TABLE accounts (id int PRIMARY KEY, owner text)");
        await createSet(f.ctx, "s1", setConfig(db.dsn, ["accounts"]));
        const moved = await updateSet(f.ctx, "s1", setConfig(other.dsn, ["accounts"]));
        assert.equal(moved.version, 1);
        assert.equal(moved.config.database.dsn, other.dsn);
        const [otherNode] = await other.query<{ id: string }>(
          `SELECT id::text FROM ${dbNames.schema(f.cluster)}.node`,
        );
        assert.equal(moved.config.database.node, otherNode?.id);
        // the old database is clean, the new one captures
        const old = await leftovers(db, f.zk, f.cluster, "s1");
        assert.deepEqual([old.queue, old.triggers, old.functions], [false, [], []]);
        const now = await leftovers(other, f.zk, f.cluster, "s1");
        assert.equal(now.queue, true);
        assert.deepEqual(now.triggers, defaultTriggers(f.cluster, "s1", "accounts"));
        assert.deepEqual(now.prepared, []);
        assert.equal((await listSets(f.ctx))[0]?.database, other.dsn);
      } finally {
        await other.drop();
      }
    });
  });

  test("a DSN reaching the same database through another host form is the same node: no move", async () => {
    await withCluster("adm_samedb", async (f, db) => {
      const created = await createSet(f.ctx, "s1", setConfig(db.dsn, ["accounts"]));
      const alias = db.dsn.replace("@127.0.0.1:", "@localhost:");
      assert.notEqual(alias, db.dsn);
      const queue = dbNames.queue(f.cluster, "s1");
      await registerConsumer(db, queue);
      await db.query("INSERT INTO accounts VALUES (1, 'before', 1)");
      const updated = await updateSet(f.ctx, "s1", setConfig(alias, ["accounts"]));
      assert.equal(updated.config.database.node, created.database.node);
      assert.equal(updated.config.database.dsn, alias);
      // not moved: the queue (and its consumer's pending events) survived the update
      const left = await leftovers(db, f.zk, f.cluster, "s1");
      assert.equal(left.queue, true);
      assert.deepEqual(left.triggers, defaultTriggers(f.cluster, "s1", "accounts"));
      await db.query("INSERT INTO accounts VALUES (2, 'after', 2)");
      const events = await readEvents(db, queue);
      assert.deepEqual(
        events.map((e) => [e.data.new?.owner, e.configVersion]),
        [
          ["before", "0"],
          ["after", "1"],
        ],
      );
    });
  });

  test("set drop removes triggers, queue and znode", async () => {
    await withCluster("adm_drop", async (f, db) => {
      await createSet(f.ctx, "s1", setConfig(db.dsn, ["accounts", "orders"]));
      assert.deepEqual(await dropSet(f.ctx, "s1"), {});
      await assertNothingLeft(db, f.zk, f.cluster, "s1");
      assert.deepEqual(await listSets(f.ctx), []);
    });
  });

  test("set drop --force with an unreachable database removes the znode and says what was left", async () => {
    await withCluster("adm_dropf", async (f, db) => {
      await createSet(f.ctx, "s1", setConfig(db.dsn, ["accounts"]));
      // point the stored set at a closed port, as if its database had gone away
      const path = zkPaths.set(f.cluster, "s1");
      const stored = JSON.parse((await f.zk.getString(path)) ?? "null");
      const port = await freePort();
      stored.database.dsn = `postgresql://app:s3cret@127.0.0.1:${port}/gone`;
      await f.zk.set(path, JSON.stringify(stored));
      await assert.rejects(dropSet(f.ctx, "s1"), (error: unknown) => {
        assert.ok(isPgshovelError(error, "DATABASE_UNAVAILABLE"));
        assert.doesNotMatch(error.message, /s3cret/);
        return true;
      });
      assert.ok(await f.zk.exists(path), "without --force the znode stays");
      const result = await dropSet(f.ctx, "s1", { force: true });
      assert.equal(await f.zk.exists(path), null);
      assert.match(result.leftBehind ?? "", /queue and triggers of set s1/);
      assert.match(result.leftBehind ?? "", /public\.accounts/);
      assert.match(result.leftBehind ?? "", new RegExp(`127\\.0\\.0\\.1:${port}/gone`));
      assert.doesNotMatch(result.leftBehind ?? "", /s3cret/);
      assert.deepEqual(await f.zk.children(zkPaths.transactions(f.cluster)), []);
    });
  });

  test("cluster upgrade from an older version records the new one and reinstalls every set", async () => {
    await withCluster("adm_upgrade", async (f, db) => {
      await createSet(f.ctx, "s1", setConfig(db.dsn, ["accounts"]));
      const schema = dbNames.schema(f.cluster);
      await db.query(`UPDATE ${schema}.node SET version = '0.0.1'`);
      // a capture trigger lost meanwhile comes back with the reinstall
      await db.query(`DROP TRIGGER pgs_${f.cluster}_s1_i ON accounts`);
      const path = zkPaths.cluster(f.cluster);
      const record = JSON.parse((await f.zk.getString(path)) ?? "null");
      await f.zk.set(path, JSON.stringify({ ...record, version: "0.0.1" }));
      await assert.rejects(createSet(f.ctx, "s2", setConfig(db.dsn, ["orders"])), (error) => {
        assert.ok(isPgshovelError(error, "VERSION_MISMATCH"));
        assert.match(error.message, /is at version 0\.0\.1 but this pgshovel is/);
        assert.match(error.hint ?? "", /pgshovel cluster upgrade/);
        return true;
      });
      assert.deepEqual(await upgradeCluster(f.ctx), { from: "0.0.1", to: SOFTWARE_VERSION });
      const after = JSON.parse((await f.zk.getString(path)) ?? "null");
      assert.equal(after.version, SOFTWARE_VERSION);
      assert.equal(after.created_at, record.created_at);
      const [node] = await db.query<{ version: string }>(`SELECT version FROM ${schema}.node`);
      assert.equal(node?.version, SOFTWARE_VERSION);
      assert.deepEqual(
        (await leftovers(db, f.zk, f.cluster, "s1")).triggers,
        defaultTriggers(f.cluster, "s1", "accounts"),
      );
      await createSet(f.ctx, "s2", setConfig(db.dsn, ["orders"]));
    });
  });

  test("cluster upgrade refuses a downgrade without force, performs it with force", async () => {
    await withCluster("adm_downgrade", async (f) => {
      const path = zkPaths.cluster(f.cluster);
      const record = JSON.parse((await f.zk.getString(path)) ?? "null");
      await f.zk.set(path, JSON.stringify({ ...record, version: "99.0.0" }));
      await assert.rejects(upgradeCluster(f.ctx), (error) => {
        assert.ok(isPgshovelError(error, "VERSION_MISMATCH"));
        assert.match(error.message, /99\.0\.0, newer than this pgshovel/);
        return true;
      });
      assert.equal(JSON.parse((await f.zk.getString(path)) ?? "null").version, "99.0.0");
      await upgradeCluster(f.ctx, { force: true });
      assert.equal(JSON.parse((await f.zk.getString(path)) ?? "null").version, SOFTWARE_VERSION);
    });
  });

  test("cluster recover on a clean cluster reports nothing; on a missing cluster NOT_FOUND", async () => {
    await withCluster("adm_recover", async (f) => {
      assert.deepEqual(await recoverCluster(f.ctx), {
        committed: [],
        rolledBack: [],
        inProgress: [],
        failed: [],
      });
      await assert.rejects(
        recoverCluster({ ...f.ctx, cluster: `${f.cluster}x` }),
        (error) => isPgshovelError(error, "NOT_FOUND") && /is not initialized/.test(error.message),
      );
    });
  });
});

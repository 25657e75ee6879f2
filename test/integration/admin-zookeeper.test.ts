/**
 * The admin commands and the relay when ZooKeeper is frozen, unreachable or missing its
 * chroot, through bin/pgshovel: each fails in bounded time with a message that names the cause
 * (no stack trace), and what a failed commit left behind is resolved by `cluster recover`.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { zkPaths } from "../../src/config/names.js";
import { stackEnv, uniqueName } from "../support/env.js";
import { createTestDatabase } from "../support/postgres.js";
import { freePort, startPrivateZooKeeper } from "../support/private-services.js";
import { waitFor } from "../support/wait.js";
import { connectZk } from "../support/zookeeper.js";
import { clusterName, runCli } from "./helpers/admin.js";
import { startCli } from "./helpers/cli-process.js";

/** A stack trace line, which a handled failure never prints. */
const STACK_LINE = /^\s+at .+\(.+:\d+:\d+\)$/m;

describe("administration: ZooKeeper frozen, unreachable or chrooted", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "pgshovel-zk-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("set create with ZooKeeper frozen after PREPARE exits 1 in bounded time; after SIGCONT cluster recover resolves it", async () => {
    const server = await startPrivateZooKeeper();
    const db = await createTestDatabase("zk_frozen_create");
    const cluster = clusterName();
    const env = {
      PGSHOVEL_ZOOKEEPER_HOSTS: server.hosts,
      PGSHOVEL_CLUSTER: cluster,
      PGSHOVEL_ZOOKEEPER_TIMEOUT: "3s",
    };
    const locker = await db.connect();
    try {
      await db.query("CREATE TABLE accounts (id int PRIMARY KEY, owner text)");
      assert.equal((await runCli(["cluster", "initialize"], { env })).code, 0);
      // The command's prepare waits for this lock while it is held: ZooKeeper is frozen
      // then, so its first request after PREPARE is the commit point's multi-op.
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE");
      const config = JSON.stringify({ database: { dsn: db.dsn }, tables: [{ name: "accounts" }] });
      const create = runCli(["set", "create", "s1", "-"], {
        env,
        stdin: config,
        timeoutMs: 120_000,
      });
      await waitFor(
        async () =>
          (
            await db.query(
              "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
          ).length > 0,
        { description: "set create to wait for the table lock" },
      );
      await server.freeze();
      const frozenAt = Date.now();
      await locker.query("COMMIT");
      const result = await create;
      const elapsed = Date.now() - frozenAt;
      assert.equal(result.code, 1, result.stderr);
      assert.match(
        result.stderr,
        new RegExp(
          `pgshovel: error: lost ZooKeeper \\(${server.hosts}\\) while committing a change; its outcome is unknown, so the prepared transactions are kept`,
        ),
      );
      assert.match(
        result.stderr,
        /hint: once ZooKeeper is reachable run `pgshovel cluster recover`/,
      );
      assert.doesNotMatch(result.stderr, STACK_LINE);
      // The commit point gives up within the timeout, learning the outcome within another one.
      assert.ok(elapsed < 2 * 3000 + 3000, `exited ${elapsed} ms after the freeze`);
      const prepared = await db.query<{ gid: string }>(
        "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE $1",
        [`pgshovel:${cluster}:%`],
      );
      assert.equal(prepared.length, 1, "the prepared transaction waits for recovery");

      await server.thaw();
      // The exited command's session still owns the change until the server expires it.
      // The multi-op may still sit unread in the frozen server's socket buffer: thawed, the
      // server can apply it before it expires the session. Either outcome is correct, as long
      // as the database follows ZooKeeper.
      let rolledBack = 0;
      let committed = 0;
      await waitFor(
        async () => {
          const recover = await runCli(["cluster", "recover"], { env });
          assert.equal(recover.code, 0, recover.stderr);
          const counts = /committed (\d+), rolled back (\d+), in progress (\d+)/.exec(
            recover.stdout,
          );
          committed += Number(counts?.[1] ?? 0);
          rolledBack += Number(counts?.[2] ?? 0);
          return counts?.[3] === "0";
        },
        {
          description: "cluster recover to find no change in progress",
          timeoutMs: 60_000,
          intervalMs: 500,
        },
      );
      assert.equal(committed + rolledBack, 1, "the change is resolved once");
      assert.deepEqual(
        await db.query("SELECT gid FROM pg_prepared_xacts WHERE gid LIKE $1", [
          `pgshovel:${cluster}:%`,
        ]),
        [],
      );
      const check = await connectZk({ hosts: server.hosts });
      try {
        assert.deepEqual(await check.children(zkPaths.transactions(cluster)), []);
        const znode = await check.exists(zkPaths.set(cluster, "s1"));
        const triggers = await db.query(
          "SELECT tgname FROM pg_trigger WHERE tgrelid = 'accounts'::regclass AND NOT tgisinternal",
        );
        if (committed === 1) {
          assert.notEqual(znode, null, "committed: the set's znode exists");
          assert.ok(triggers.length > 0, "committed: the capture triggers exist");
        } else {
          assert.equal(znode, null, "rolled back: no znode");
          assert.deepEqual(triggers, [], "rolled back: no trigger");
        }
      } finally {
        check.close();
      }
    } finally {
      await locker.end().catch(() => {});
      await db.drop();
      await server.destroy();
    }
  });

  test("a refused connection is reported at once, naming the host, while the command keeps trying", async () => {
    const port = await freePort();
    const cli = startCli(["set", "list"], {
      PGSHOVEL_ZOOKEEPER_HOSTS: `127.0.0.1:${port}`,
      PGSHOVEL_ZOOKEEPER_TIMEOUT: "60s",
    });
    try {
      await cli.waitForStderr(/ZooKeeper at 127\.0\.0\.1:\d+ refused the connection/, 20_000);
      assert.match(cli.stderr(), new RegExp(`WARN.*ZooKeeper at 127\\.0\\.0\\.1:${port} refused`));
      assert.equal(cli.child.exitCode, null, "still trying: the timeout is 60 s");
    } finally {
      cli.child.kill("SIGKILL");
      await cli.exited;
    }
  });

  test("a relay that cannot reach ZooKeeper at start exits 1 after --zookeeper-timeout, not --max-zookeeper-pause", async () => {
    const port = await freePort();
    const result = await runCli(
      [
        "relay",
        "s1",
        "--sink",
        `file:${join(dir, "unreachable.jsonl")}`,
        "--zookeeper-timeout",
        "1500ms",
        "--max-zookeeper-pause",
        "60s",
      ],
      { env: { PGSHOVEL_ZOOKEEPER_HOSTS: `127.0.0.1:${port}` }, timeoutMs: 30_000 },
    );
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(`ZooKeeper at 127\\.0\\.0\\.1:${port} refused the connection`),
    );
    assert.match(
      result.stderr,
      new RegExp(`could not connect to ZooKeeper at 127\\.0\\.0\\.1:${port} within 1500 ms`),
    );
    assert.doesNotMatch(result.stderr, STACK_LINE);
    assert.ok(result.elapsedMs < 1500 + 5000, `took ${result.elapsedMs} ms`);
  });

  test("a chroot: other commands say to run cluster initialize, which creates it", async () => {
    const chroot = `/${uniqueName("pgs_chroot")}`;
    const hosts = `${stackEnv().zookeeperHosts}${chroot}`;
    const cluster = clusterName();
    const env = { PGSHOVEL_ZOOKEEPER_HOSTS: hosts, PGSHOVEL_CLUSTER: cluster };
    const zk = await connectZk();
    try {
      const list = await runCli(["set", "list"], { env });
      assert.equal(list.code, 1, list.stderr);
      assert.match(list.stderr, new RegExp(`the ZooKeeper chroot ${chroot} does not exist`));
      assert.ok(
        list.stderr.includes(
          `hint: run \`pgshovel --zookeeper-hosts ${hosts} --cluster ${cluster} cluster initialize\``,
        ),
        list.stderr,
      );
      assert.equal(await zk.exists(chroot), null, "reading creates nothing");

      const init = await runCli(["cluster", "initialize"], { env });
      assert.equal(init.code, 0, init.stderr);
      assert.ok(
        await zk.exists(`${chroot}${zkPaths.cluster(cluster)}`),
        "the cluster is inside the chroot",
      );
      assert.ok(await zk.exists(`${chroot}${zkPaths.sets(cluster)}`));
      assert.equal(await zk.exists(zkPaths.cluster(cluster)), null, "and not at the root");

      const listed = await runCli(["set", "list"], { env });
      assert.equal(listed.code, 0, listed.stderr);
      assert.equal(listed.stdout, "NAME  DATABASE  TABLES  VERSION\n");
      // A second cluster in the same chroot needs no chroot creation.
      const other = await runCli(["cluster", "initialize"], {
        env: { ...env, PGSHOVEL_CLUSTER: clusterName() },
      });
      assert.equal(other.code, 0, other.stderr);
    } finally {
      await zk.removeRecursive(chroot).catch(() => {});
      zk.close();
    }
  });
});

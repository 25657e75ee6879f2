/**
 * Leader election against the real ZooKeeper: a candidate whose node is removed
 * stands again with exactly one new node, and a leader whose node is removed
 * steps down before it leads again.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ZooKeeper } from "../../src/cluster/zookeeper.js";
import { DEFAULT_CONSUMER, zkPaths } from "../../src/config/names.js";
import { Leadership } from "../../src/coordination/leadership.js";
import { silentLogger } from "../../src/log.js";
import { stackEnv, uniqueName } from "../support/env.js";
import { setupSet, startRelay, stopRelay, waitForLog } from "../support/fixtures.js";
import { waitFor } from "../support/wait.js";
import { readStreamFile, tempDirFor, waitForMutations } from "./relay-support.js";

const dir = tempDirFor("pgshovel-leadership-");

const oneTable = async (db: { query(sql: string): Promise<unknown> }) => {
  await db.query("CREATE TABLE t (id int PRIMARY KEY, v text)");
};

const connect = () =>
  ZooKeeper.connect({
    hosts: stackEnv().zookeeperHosts,
    timeoutMs: 10_000,
    operationTimeoutMs: 10_000,
  });

/** How often `text` occurs in `haystack`. */
const occurrences = (haystack: string, text: string) => haystack.split(text).length - 1;

describe("leadership", () => {
  test("a standby whose node was removed stands again with one node and leads when the leader steps down", async () => {
    const [zkA, zkB, admin] = await Promise.all([connect(), connect(), connect()]);
    const path = `/${uniqueName("lead").slice(0, 16)}/election`;
    const leaderA = new Leadership({ zk: zkA, path, logger: silentLogger, role: "test" });
    const leaderB = new Leadership({ zk: zkB, path, logger: silentLogger, role: "test" });
    const signal = AbortSignal.timeout(60_000);
    try {
      await leaderA.acquire(signal, { who: "a" });
      assert.ok(leaderA.isLeading);
      const [nodeA] = await admin.children(path);
      const standing = leaderB.acquire(signal, { who: "b" });
      const nodeB = await waitFor(
        async () => (await admin.children(path)).find((child) => child !== nodeA),
        { description: "the standby's candidate node" },
      );
      await admin.remove(`${path}/${nodeB}`);
      await leaderA.release();
      await standing;
      assert.ok(leaderB.isLeading);
      const children = await admin.children(path);
      assert.equal(children.length, 1, `one candidate node, not ${children.join(", ")}`);
      assert.notEqual(children[0], nodeB, "a new node");

      // The leader watches its own node: removed, it steps down.
      await admin.remove(`${path}/${children[0]}`);
      await waitFor(() => !leaderB.isLeading, { description: "the leader stepping down" });
    } finally {
      await leaderA.release();
      await leaderB.release();
      await admin.removeRecursive(path.slice(0, path.lastIndexOf("/"))).catch(() => {});
      for (const zk of [zkA, zkB, admin]) zk.close();
    }
  });

  test("a running relay whose candidate node is removed stands again with exactly one node, leads and carries on", async () => {
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
    const path = join(dir(), "deposed.jsonl");
    const election = zkPaths.relayElection(fixture.cluster, fixture.set, DEFAULT_CONSUMER);
    const relay = startRelay(fixture, ["--sink", `file:${path}`]);
    try {
      await waitForLog(relay, "leading");
      await fixture.db.query("INSERT INTO t VALUES (1, 'before')");
      await waitForMutations(path, 1, undefined, 60_000, relay);
      const [first, ...others] = await fixture.ctx.zk.children(election);
      assert.deepEqual(others, []);
      await fixture.ctx.zk.remove(`${election}/${first}`);

      await waitFor(
        () => occurrences(relay.stderr(), "leading: this relay is the active one") >= 2,
        {
          get description() {
            return `the relay leading again (its stderr: ${relay.stderr().slice(-2000)})`;
          },
        },
      );
      await fixture.db.query("INSERT INTO t VALUES (2, 'after')");
      const batches = await waitForMutations(path, 2, undefined, 60_000, relay);
      assert.deepEqual(
        batches.flatMap((b) => b.mutations.map((m) => m.new!.v)),
        ["before", "after"],
      );
      // Counted after the relay published again: a relay that kept adding candidates
      // would have added many by now.
      const children = await fixture.ctx.zk.children(election);
      assert.equal(children.length, 1, `one candidate node, not ${children.join(", ")}`);
      assert.notEqual(children[0], first);
      assert.match(relay.stderr(), /stepping down/);
      assert.equal(relay.child.exitCode, null, "still running");
    } finally {
      assert.equal((await stopRelay(relay)).code, 0, relay.stderr());
      await fixture.close();
    }
  });

  test("two relays: the leader's node removed, the standby leads and the old leader stands by", async () => {
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
    const pathA = join(dir(), "a.jsonl");
    const pathB = join(dir(), "b.jsonl");
    const election = zkPaths.relayElection(fixture.cluster, fixture.set, DEFAULT_CONSUMER);
    const a = startRelay(fixture, ["--sink", `file:${pathA}`]);
    await waitForLog(a, "leading");
    const b = startRelay(fixture, ["--sink", `file:${pathB}`]);
    try {
      await waitForLog(b, "standing by");
      await fixture.db.query("INSERT INTO t VALUES (1, 'to a')");
      await waitForMutations(pathA, 1, undefined, 60_000, a);
      const [nodeA] = (await fixture.ctx.zk.children(election)).sort();
      await fixture.ctx.zk.remove(`${election}/${nodeA}`);

      await waitForLog(b, "leading", 30_000);
      await waitForLog(a, "standing by", 30_000);
      await fixture.db.query("INSERT INTO t VALUES (2, 'to b')");
      await waitForMutations(pathB, 1, (m) => m.new?.v === "to b", 60_000, b);
      assert.equal((await fixture.ctx.zk.children(election)).length, 2, "one candidate each");
      const toA = (await readStreamFile(pathA)).filter(
        (m) => m.body.kind === "mutation" && m.body.mutation.new?.v === "to b",
      );
      assert.deepEqual(toA, [], "the deposed relay published nothing more");
    } finally {
      assert.equal((await stopRelay(a)).code, 0, a.stderr());
      assert.equal((await stopRelay(b)).code, 0, b.stderr());
      await fixture.close();
    }
  });
});

/**
 * `pgshovel set consumers`: the queue's PgQ consumers with lag, last seen, pending events
 * and relays; unregistering a retired one, refusing the consumer of a running relay
 * unless forced; and `status` warning about a stale consumer that blocks rotation.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { DEFAULT_CONSUMER } from "../../src/config/names.js";
import type { ConsumerState } from "../../src/monitoring/pgq-info.js";
import type { ClusterStatus } from "../../src/monitoring/status.js";
import {
  type SetFixture,
  setupSet,
  startRelay,
  stopRelay,
  waitForLog,
} from "../support/fixtures.js";
import { waitFor } from "../support/wait.js";
import { runCli } from "./helpers/admin.js";
import { tempDirFor, waitForMutations } from "./relay-support.js";

const dir = tempDirFor("pgshovel-consumers-");

const oneTable = async (db: { query(sql: string): Promise<unknown> }) => {
  await db.query("CREATE TABLE t (id serial PRIMARY KEY, v text)");
};

const cli = (fixture: SetFixture, args: string[]) =>
  runCli(args, {
    env: { PGSHOVEL_ZOOKEEPER_HOSTS: fixture.zkHosts, PGSHOVEL_CLUSTER: fixture.cluster },
  });

async function consumers(fixture: SetFixture): Promise<(ConsumerState & { relays: number })[]> {
  const result = await cli(fixture, ["set", "consumers", "s", "--json"]);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout);
}

describe("set consumers", () => {
  test("lists, warns about a stale consumer blocking rotation, unregisters it; refuses a running relay's unless forced", async () => {
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
    const path = join(dir(), "s.jsonl");
    const relay = startRelay(fixture, ["--sink", `file:${path}`]);
    try {
      await waitForLog(relay, "leading");
      // A consumer someone used once and forgot; rotation due every second.
      await fixture.db.query("SELECT pgq.register_consumer($1, 'old')", [fixture.queue]);
      await fixture.db.query("SELECT pgq.set_queue_config($1, 'rotation_period', '1 second')", [
        fixture.queue,
      ]);
      const listed = await consumers(fixture);
      assert.deepEqual(
        listed.map((c) => [c.name, c.relays]),
        [
          ["old", 0],
          [DEFAULT_CONSUMER, 1],
        ],
      );
      const table = await cli(fixture, ["set", "consumers", "s"]);
      assert.match(table.stdout, /^CONSUMER +RELAYS +LAG +LAST SEEN +PENDING +ROTATION\n/);
      assert.match(table.stdout, /\nold +0 /);

      // Events flow and the tables rotate once; the next rotation waits for "old".
      let row = 0;
      const blocked = await waitFor(
        async () => {
          row++;
          await fixture.db.query("INSERT INTO t (v) VALUES ($1)", [`row ${row}`]);
          await waitForMutations(path, row, undefined, 30_000, relay);
          await fixture.db.query("SELECT pgq.maint_rotate_tables_step1($1)", [fixture.queue]);
          await fixture.db.query("SELECT pgq.maint_rotate_tables_step2()");
          const status = await cli(fixture, [
            "status",
            "s",
            "--json",
            "--stale-consumer-after",
            "1s",
          ]);
          const report = JSON.parse(status.stdout) as ClusterStatus;
          const set = report.sets[0]!;
          const byName = new Map(set.consumers.map((c) => [c.name, c]));
          return byName.get("old")?.blocksRotation && !byName.get(DEFAULT_CONSUMER)?.blocksRotation
            ? { status, set }
            : undefined;
        },
        { description: "consumer old blocking rotation", timeoutMs: 60_000, intervalMs: 500 },
      );
      assert.equal(blocked.status.code, 1);
      assert.equal(blocked.set.verdict, "WARN");
      const codes = blocked.set.findings.map((f) => f.code);
      assert.ok(codes.includes("CONSUMER_STALE"), codes.join());
      assert.ok(codes.includes("BLOCKS_ROTATION"), codes.join());
      assert.match(blocked.set.findings.find((f) => f.code === "CONSUMER_STALE")!.message, /old/);

      // The running relay's consumer is refused, a retired one is removed, an unknown one is not found.
      const refused = await cli(fixture, [
        "set",
        "consumers",
        "s",
        "--unregister",
        DEFAULT_CONSUMER,
      ]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /consumer pgshovel of set s is in use: 1 relay\(s\) run for it/);
      const removed = await cli(fixture, ["set", "consumers", "s", "--unregister", "old"]);
      assert.equal(removed.code, 0, removed.stderr);
      assert.equal(removed.stdout, `unregistered consumer old from queue ${fixture.queue}\n`);
      assert.deepEqual(
        (await consumers(fixture)).map((c) => c.name),
        [DEFAULT_CONSUMER],
      );
      const unknown = await cli(fixture, ["set", "consumers", "s", "--unregister", "old"]);
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /consumer old is not registered/);
      const after = JSON.parse(
        (await cli(fixture, ["status", "s", "--json", "--stale-consumer-after", "1s"])).stdout,
      ) as ClusterStatus;
      assert.ok(
        !after.sets[0]!.findings.some((f) => f.code === "CONSUMER_STALE"),
        JSON.stringify(after.sets[0]!.findings),
      );

      // Forced: unregistered under the running relay, which then fails.
      const forced = await cli(fixture, [
        "set",
        "consumers",
        "s",
        "--unregister",
        DEFAULT_CONSUMER,
        "--force",
      ]);
      assert.equal(forced.code, 0, forced.stderr);
      assert.deepEqual(await consumers(fixture), []);
      assert.equal((await relay.exited).code, 1, "the relay fails without its consumer");
    } finally {
      await stopRelay(relay, 15_000);
      await fixture.close();
    }
  });
});

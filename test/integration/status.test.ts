/**
 * `pgshovel status` against the real stack under a pgbench-like workload: the leader and
 * a standby, lag and pending events, FAIL with the reason once every relay is gone, OK
 * again when one restarts; and it disturbs nothing (no consumer, no candidate of its own).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, test } from "node:test";
import { DEFAULT_CONSUMER, kafkaNames, zkPaths } from "../../src/config/names.js";
import type { ClusterStatus, SetStatus } from "../../src/monitoring/status.js";
import { repoRoot, stackEnv } from "../support/env.js";
import {
  type RelayProcess,
  type SetFixture,
  setupPgbenchSet,
  setupSet,
  startRelay,
  stopRelay,
  waitForLog,
} from "../support/fixtures.js";
import { deleteTopic } from "../support/kafka.js";
import { waitFor } from "../support/wait.js";
import { runCli } from "./helpers/admin.js";
import { tempDirFor } from "./relay-support.js";

const dir = tempDirFor("pgshovel-status-");

/** Runs `pgshovel status s --json …` for the fixture; the report and the exit code. */
async function status(
  fixture: SetFixture,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<{ code: number | null; report: ClusterStatus; set: SetStatus }> {
  const result = await runCli(["status", fixture.set, "--json", ...args], {
    env: { PGSHOVEL_ZOOKEEPER_HOSTS: fixture.zkHosts, PGSHOVEL_CLUSTER: fixture.cluster, ...env },
  });
  assert.ok(result.stdout.startsWith("{"), `status printed JSON: ${result.stdout}${result.stderr}`);
  const report = JSON.parse(result.stdout) as ClusterStatus;
  return { code: result.code, report, set: report.sets[0]! };
}

/** A pgbench-like transaction loop until `stop()`: an account update and a history row. */
function workload(fixture: SetFixture): { stop(): Promise<number> } {
  let running = true;
  let count = 0;
  const done = (async () => {
    while (running) {
      const id = 1 + (count % 100_000);
      await fixture.db.query(
        `WITH u AS (UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = $1 RETURNING aid)
         INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) SELECT 1, 1, aid, 1, now() FROM u`,
        [id],
      );
      count++;
    }
    return count;
  })();
  return {
    stop: async () => {
      running = false;
      return done;
    },
  };
}

const relayArgs = (path: string) => ["--sink", `file:${path}`, "--zookeeper-timeout", "3s"];
const findings = (set: SetStatus) => set.findings.map((f) => f.code);

describe("pgshovel status", () => {
  test("leader and standby, lag and pending events, FAIL when the relays are gone, OK again after a restart", async () => {
    const fixture = await setupPgbenchSet();
    const load = workload(fixture);
    const relays: RelayProcess[] = [];
    try {
      const before = await status(fixture);
      assert.equal(before.code, 1, "no relay yet");
      assert.equal(before.set.verdict, "FAIL");
      assert.deepEqual(findings(before.set), ["NO_RELAY"]);
      assert.deepEqual(before.set.relays, []);

      const a = startRelay(fixture, relayArgs(join(dir(), "a.jsonl")));
      relays.push(a);
      await waitForLog(a, "leading");
      const b = startRelay(fixture, relayArgs(join(dir(), "b.jsonl")));
      relays.push(b);
      await waitForLog(b, "standing by");

      const first = await status(fixture, ["--expect-standby"]);
      assert.equal(first.code, 0, JSON.stringify(first.set.findings));
      assert.equal(first.report.verdict, "OK");
      const [relay] = first.set.relays;
      assert.equal(relay?.consumer, DEFAULT_CONSUMER);
      assert.equal(relay?.leader?.pid, a.pid);
      assert.equal(relay?.standbys.length, 1);
      assert.equal(relay?.standbys[0]?.pid, b.pid);
      assert.ok(relay?.leader?.host && relay.leader.startedAt && relay.leader.since);
      assert.match(relay?.leader?.publisher ?? "", /^[0-9a-f-]{36}$/);
      assert.deepEqual(first.set.tables.sort(), [
        "public.pgbench_accounts",
        "public.pgbench_branches",
        "public.pgbench_history",
        "public.pgbench_tellers",
      ]);
      assert.equal(first.set.sink.checked, false, "no brokers given: the topic is not read");
      const consumer = first.set.consumers.find((c) => c.name === DEFAULT_CONSUMER);
      assert.ok(consumer?.relayed);
      assert.ok(first.set.queue.info && first.set.queue.info.eventTables.count >= 2);

      // The figures move with the load: the consumer's position advances.
      await waitFor(
        async () => {
          const later = (await status(fixture)).set.consumers.find(
            (c) => c.name === DEFAULT_CONSUMER,
          );
          return later?.lastTick !== consumer?.lastTick && later?.lagSeconds !== null;
        },
        { description: "the consumer's last tick advancing", timeoutMs: 60_000 },
      );

      // The leader dies: the standby takes over; without a standby, --expect-standby warns.
      a.child.kill("SIGKILL");
      await a.exited;
      await waitForLog(b, "leading", 60_000);
      const takenOver = await waitFor(
        async () => {
          const s = await status(fixture, ["--expect-standby"]);
          return (
            s.set.relays[0]?.leader?.pid === b.pid && s.set.relays[0].standbys.length === 0 && s
          );
        },
        { description: "the standby leading alone", timeoutMs: 60_000 },
      );
      assert.equal(takenOver.code, 1);
      assert.equal(takenOver.set.verdict, "WARN");
      assert.deepEqual(findings(takenOver.set), ["STANDBY_MISSING"]);

      // Every relay gone (once ZooKeeper expires the session): FAIL, and it says why.
      b.child.kill("SIGKILL");
      await b.exited;
      const down = await waitFor(
        async () => {
          const s = await status(fixture);
          return s.set.relays.length === 0 && s;
        },
        { description: "the relays' candidates expiring", timeoutMs: 60_000 },
      );
      assert.equal(down.code, 1);
      assert.equal(down.report.verdict, "FAIL");
      assert.deepEqual(findings(down.set), ["NO_RELAY"]);
      assert.match(down.set.findings[0]!.message, /no relay is running/);
      const text = await runCli(["status"], {
        env: { PGSHOVEL_ZOOKEEPER_HOSTS: fixture.zkHosts, PGSHOVEL_CLUSTER: fixture.cluster },
      });
      assert.equal(text.code, 1);
      assert.match(text.stdout, /set s: FAIL/);
      assert.match(text.stdout, /relays +none running/);
      // Pending events pile up while nothing relays.
      await waitFor(
        async () => {
          const pending = (await status(fixture)).set.consumers[0]?.pendingEvents;
          return pending !== null && pending !== undefined && BigInt(pending) > 0n;
        },
        { description: "pending events while no relay runs" },
      );

      const c = startRelay(fixture, relayArgs(join(dir(), "c.jsonl")));
      relays.push(c);
      await waitForLog(c, "leading");
      const back = await waitFor(
        async () => {
          const s = await status(fixture);
          return s.code === 0 && s;
        },
        { description: "status OK again", timeoutMs: 60_000 },
      );
      assert.equal(back.set.relays[0]?.leader?.pid, c.pid);
      const human = await runCli(["status", "s"], {
        env: { PGSHOVEL_ZOOKEEPER_HOSTS: fixture.zkHosts, PGSHOVEL_CLUSTER: fixture.cluster },
      });
      assert.equal(human.code, 0, human.stdout + human.stderr);
      assert.match(human.stdout, new RegExp(`leader +\\S+ pid ${c.pid} publisher`));
      assert.match(human.stdout, /consumers +CONSUMER +RELAY +LAG/);

      // Read-only: one candidate (the relay's), one consumer (the relay's).
      const election = zkPaths.relayElection(fixture.cluster, fixture.set, DEFAULT_CONSUMER);
      assert.equal((await fixture.ctx.zk.children(election)).length, 1);
      assert.deepEqual(
        back.set.consumers.map((x) => x.name),
        [DEFAULT_CONSUMER],
      );
    } finally {
      await load.stop();
      for (const relay of relays) await stopRelay(relay, 15_000);
      await fixture.close();
    }
  });

  test("with brokers given, the topic's last committed batch, read without fencing the relay", async () => {
    const fixture = await setupPgbenchSet();
    const brokers = stackEnv().kafkaBrokers.join(",");
    const topic = kafkaNames.topic(fixture.cluster, fixture.set);
    const relay = startRelay(fixture, ["--kafka-brokers", brokers], "pgshovel-kafka-relay");
    try {
      const missing = await status(fixture, ["--kafka-brokers", brokers]);
      assert.ok(missing.set.sink.checked);
      await waitForLog(relay, "leading", 60_000);
      await fixture.db.query("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 10");
      const seen = await waitFor(
        async () => {
          // The brokers may come from the environment too.
          const s = await status(fixture, [], { PGSHOVEL_KAFKA_BROKERS: brokers });
          return s.set.sink.lastCommittedBatch !== null && s;
        },
        { description: "a committed batch in the topic", timeoutMs: 60_000 },
      );
      assert.equal(seen.code, 0, JSON.stringify(seen.set.findings));
      assert.equal(seen.set.sink.topic, topic);
      assert.equal(seen.set.sink.exists, true);
      const last = seen.set.sink.lastCommittedBatch!;
      assert.equal(last.node, seen.set.node);
      assert.equal(last.publisher, seen.set.relays[0]?.leader?.publisher);
      // The relay was not fenced: it goes on publishing.
      await fixture.db.query("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 10");
      await waitFor(
        async () => {
          const s = await status(fixture, ["--kafka-brokers", brokers]);
          const id = s.set.sink.lastCommittedBatch?.id;
          return id !== undefined && BigInt(id) > BigInt(last.id);
        },
        { description: "a later batch committed by the same relay", timeoutMs: 60_000 },
      );
      assert.doesNotMatch(relay.stderr(), /fenced/);
    } finally {
      await stopRelay(relay, 15_000);
      await deleteTopic(topic).catch(() => {});
      await fixture.close();
    }
  });

  test("--watch redraws every --interval until SIGINT, then exits 0", async () => {
    const fixture = await setupSet({
      prepare: async (db) => {
        await db.query("CREATE TABLE t (id int PRIMARY KEY)");
      },
      tables: ["t"],
    });
    const child = spawn(
      join(repoRoot, "bin", "pgshovel"),
      ["status", "--watch", "--json", "--interval", "100ms"],
      {
        env: {
          PATH: process.env.PATH,
          PGSHOVEL_ZOOKEEPER_HOSTS: fixture.zkHosts,
          PGSHOVEL_CLUSTER: fixture.cluster,
        },
      },
    );
    try {
      let stdout = "";
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString("utf8");
      });
      const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
      await waitFor(() => stdout.split("\n").length > 3, {
        description: "three rounds of --watch",
      });
      child.kill("SIGINT");
      assert.equal(await exited, 0);
      const rounds = stdout
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as ClusterStatus);
      assert.ok(rounds.length >= 3);
      // No relay runs: each round says FAIL, yet the watch itself ends well.
      assert.ok(rounds.every((r) => r.verdict === "FAIL" && r.sets[0]?.name === "s"));
    } finally {
      child.kill("SIGKILL");
      await fixture.close();
    }
  });
});

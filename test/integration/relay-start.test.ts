/**
 * A relay's start-up against real services: a Kafka cluster that comes up after the relay
 * (it retries opening its sink, up to --max-sink-wait), and SIGTERM or SIGINT at any moment
 * of its life (a clean exit 0, no candidate node left in ZooKeeper).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { DEFAULT_CONSUMER, zkPaths } from "../../src/config/names.js";
import { readStream } from "../../src/consumer/kafka.js";
import type { Message } from "../../src/stream/types.js";
import { uniqueName } from "../support/env.js";
import {
  type RelayExit,
  type RelayProcess,
  type SetFixture,
  setupSet,
  startRelay,
  stopRelay,
  waitForLog,
} from "../support/fixtures.js";
import { freePort, startPrivateKafka } from "../support/private-services.js";
import { waitFor, withTimeout } from "../support/wait.js";
import { assemble, readStreamFile, tempDirFor, waitForMutations } from "./relay-support.js";

const dir = tempDirFor("pgshovel-relay-start-");

const oneTable = async (db: { query(sql: string): Promise<unknown> }) => {
  await db.query("CREATE TABLE t (id int PRIMARY KEY, v text)");
};

/** Well under the relay's own 9 s deadline: a stop that needed the deadline fails. */
const STOP_BOUND_MS = 5_000;

const RETRY_LINE = "the sink did not open: retrying";

/** The relay's candidate nodes in ZooKeeper. */
function candidates(fixture: SetFixture): Promise<string[]> {
  return fixture.ctx.zk.children(
    zkPaths.relayElection(fixture.cluster, fixture.set, DEFAULT_CONSUMER),
  );
}

/** Sends `signal` and waits, at most STOP_BOUND_MS, for the relay to exit. */
async function stopWith(relay: RelayProcess, signal: NodeJS.Signals): Promise<RelayExit> {
  relay.child.kill(signal);
  return withTimeout(relay.exited, STOP_BOUND_MS, `the relay exiting after ${signal}`).catch(
    (error: Error) => {
      relay.child.kill("SIGKILL");
      throw new Error(`${error.message}; its stderr: ${relay.stderr()}`);
    },
  );
}

/** Everything a read_committed consumer sees in a topic now. */
async function readTopic(brokers: string[], topic: string): Promise<Message[]> {
  const messages: Message[] = [];
  for await (const message of readStream({ brokers, topic, codec: "protobuf", stopAtEnd: true }))
    messages.push(message);
  return messages;
}

describe("relay start-up: Kafka not up yet", { timeout: 240_000 }, () => {
  test("a relay started before its brokers retries opening the sink, then publishes once they are up", async (t) => {
    // Started once for its ports, then stopped: nothing listens on its port until start().
    const kafka = await startPrivateKafka();
    t.after(() => kafka.destroy());
    await kafka.stop();
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
    t.after(() => fixture.close());
    const topic = uniqueName("relay_start_late");
    await fixture.db.query("INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 5) g");
    const relay = startRelay(
      fixture,
      ["--kafka-brokers", kafka.brokers.join(","), "--topic", topic],
      "pgshovel-kafka-relay",
    );
    try {
      await waitForLog(relay, "leading: this relay is the active one");
      await waitFor(() => relay.stderr().split(RETRY_LINE).length - 1 >= 2, {
        get description() {
          return `two attempts to open the sink (relay stderr: ${relay.stderr().slice(-2000)})`;
        },
      });
      // Whole lines only: the last one may still be arriving.
      const retries = relay
        .stderr()
        .split("\n")
        .slice(0, -1)
        .filter((line) => line.includes(RETRY_LINE))
        .map((line) => JSON.parse(line) as { level: number; err: string; retryInMs: number });
      for (const retry of retries) {
        assert.equal(retry.level, 40, "logged at warn");
        assert.ok(retry.err.includes(kafka.brokers[0]!), `names the brokers: ${retry.err}`);
        assert.ok(retry.retryInMs > 0, "says how long it waits");
      }

      await kafka.start();
      const messages = await waitFor(
        async () => {
          const seen = await readTopic(kafka.brokers, topic);
          return seen.some((m) => m.body.kind === "commit") ? seen : undefined;
        },
        {
          timeoutMs: 120_000,
          intervalMs: 500,
          get description() {
            return `a committed batch in topic ${topic} (relay stderr: ${relay.stderr().slice(-2000)})`;
          },
        },
      );
      const { batches } = assemble(messages);
      assert.deepEqual(
        batches.flatMap((b) => b.mutations.map((m) => m.new!.id)),
        [1, 2, 3, 4, 5],
      );
      assert.equal(relay.child.exitCode, null, "the relay kept running");
    } finally {
      assert.equal((await stopRelay(relay)).code, 0, relay.stderr());
    }
  });

  test("past --max-sink-wait the relay exits 1, naming the brokers and what to check", async (t) => {
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
    t.after(() => fixture.close());
    const broker = `127.0.0.1:${await freePort()}`;
    const relay = startRelay(
      fixture,
      [
        "--kafka-brokers",
        broker,
        "--topic",
        uniqueName("relay_start_never"),
        "--max-sink-wait",
        "2s",
      ],
      "pgshovel-kafka-relay",
    );
    const exit = await withTimeout(relay.exited, 60_000, "the relay giving up").catch((error) => {
      relay.child.kill("SIGKILL");
      throw error;
    });
    await waitFor(relay.ended, { description: "the relay's stderr read to its end" });
    const stderr = relay.stderr();
    assert.deepEqual(exit, { code: 1, signal: null }, stderr);
    assert.match(stderr, new RegExp(RETRY_LINE));
    assert.match(
      stderr,
      /pgshovel-kafka-relay: error: the sink \(kafka topic [^)]+\) did not open within 2000 ms \(--max-sink-wait\)/,
    );
    assert.ok(stderr.includes(`opening the Kafka sink at brokers ${broker}`), stderr);
    assert.ok(
      stderr.includes(`hint: check that the Kafka brokers ${broker} are running and reachable`),
      stderr,
    );
    assert.deepEqual(await candidates(fixture), []);
  });
});

/** The command line of a process as ps shows it (the title pgshovel sets first thing). */
function titleOf(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0] ?? "";
}

describe("relay start-up: a stop signal at any moment", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    test(`${signal} as soon as the relay's first line has run: exit 0`, async (t) => {
      const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
      t.after(() => fixture.close());
      const relay = startRelay(fixture, ["--sink", `file:${join(dir(), uniqueName("first"))}`]);
      // The earliest moment any program can handle a signal is its own first instruction:
      // one sent before (while the launcher or Node itself starts) ends the process by the
      // signal, whatever the program. pgshovel's first line catches the signals, then sets
      // the process title: from then on it must stop cleanly, before loading anything else.
      const title = `pgshovel relay ${fixture.set}`;
      await waitFor(() => titleOf(relay.pid).startsWith(title), {
        intervalMs: 1,
        abandonWhen: () => (relay.ended() ? "the relay exited" : undefined),
        description: `the process title "${title}"`,
      });
      const exit = await stopWith(relay, signal);
      assert.deepEqual(exit, { code: 0, signal: null }, relay.stderr());
      assert.deepEqual(await candidates(fixture), []);
    });

    test(`${signal} while ZooKeeper is unreachable: exit 0 at once`, async (t) => {
      const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
      t.after(() => fixture.close());
      const closed = `127.0.0.1:${await freePort()}`;
      const relay = startRelay({ ...fixture, zkHosts: closed }, [
        "--sink",
        `file:${join(dir(), uniqueName("nozk"))}`,
        "--zookeeper-timeout",
        "60s",
      ]);
      await waitForLog(relay, "connecting to ZooKeeper");
      const exit = await stopWith(relay, signal);
      await waitFor(relay.ended, { description: "the relay's stderr read to its end" });
      assert.deepEqual(exit, { code: 0, signal: null }, relay.stderr());
      assert.match(relay.stderr(), /"msg":"stopping"/);
      assert.doesNotMatch(relay.stderr(), /error/);
    });

    test(`${signal} to a standby: exit 0, its candidate node gone, the leader's kept`, async (t) => {
      const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
      t.after(() => fixture.close());
      const leader = startRelay(fixture, ["--sink", `file:${join(dir(), uniqueName("lead"))}`]);
      try {
        await waitForLog(leader, "leading: this relay is the active one");
        const [leaderNode] = await candidates(fixture);
        const standby = startRelay(fixture, ["--sink", `file:${join(dir(), uniqueName("sb"))}`]);
        await waitForLog(standby, "standing by");
        assert.equal((await candidates(fixture)).length, 2);
        const exit = await stopWith(standby, signal);
        assert.deepEqual(exit, { code: 0, signal: null }, standby.stderr());
        assert.deepEqual(await candidates(fixture), [leaderNode]);
      } finally {
        assert.equal((await stopRelay(leader)).code, 0, leader.stderr());
      }
      assert.deepEqual(await candidates(fixture), []);
    });

    test(`${signal} while publishing: exit 0, a well-formed stream, no candidate node`, async (t) => {
      const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
      t.after(() => fixture.close());
      const path = join(dir(), uniqueName("pub"));
      const relay = startRelay(fixture, ["--sink", `file:${path}`]);
      await waitForLog(relay, "leading: this relay is the active one");
      // Transactions keep coming while the relay publishes the first ones.
      const load = (async () => {
        for (let i = 0; i < 10; i++) {
          const from = i * 20_000 + 1;
          await fixture.db.query(
            `INSERT INTO t SELECT g, 'row ' || g FROM generate_series(${from}, ${from + 19_999}) g`,
          );
        }
      })();
      let exit: RelayExit;
      try {
        await waitForMutations(path, 1, undefined, 60_000, relay);
        exit = await stopWith(relay, signal);
      } finally {
        await load;
      }
      assert.deepEqual(exit, { code: 0, signal: null }, relay.stderr());
      // Whatever batch was under way is rolled back in the file, never left half-written.
      assemble(await readStreamFile(path));
      assert.deepEqual(await candidates(fixture), []);
    });
  }
});

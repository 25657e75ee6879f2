import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, test } from "node:test";
import { kafkaNames } from "../../src/config/names.js";
import { readStream } from "../../src/consumer/kafka.js";
import { readLastCommittedBatch } from "../../src/kafka/last-commit.js";
import { KafkaSink } from "../../src/sinks/kafka/index.js";
import type { Message, Mutation } from "../../src/stream/types.js";
import { StreamValidator } from "../../src/stream/validator.js";
import { repoRoot, stackEnv, uniqueName } from "../support/env.js";
import {
  pgbench,
  type RelayProcess,
  type SetFixture,
  setupPgbenchSet,
  setupSet,
  startRelay,
  stopRelay,
  waitForLog,
} from "../support/fixtures.js";
import { startPrivateKafka } from "../support/private-services.js";
import { waitFor, withTimeout } from "../support/wait.js";
import type { CrashPoint } from "./kafka-crash-child.js";

/** Everything a read_committed consumer sees in a topic now. */
async function readTopic(
  brokers: string[],
  topic: string,
  codec: "json" | "protobuf" = "protobuf",
): Promise<Message[]> {
  const messages: Message[] = [];
  for await (const message of readStream({ brokers, topic, codec, stopAtEnd: true }))
    messages.push(message);
  return messages;
}

/**
 * Checks the exactly-once shape of a topic: every message validates, each batch
 * id is committed once, no mutation appears twice, each transaction sits in one batch.
 */
function exactlyOnce(messages: Message[]): Mutation[] {
  const validator = new StreamValidator();
  for (const message of messages) validator.accept(message);
  const commits = new Map<bigint, number>();
  const mutations: Mutation[] = [];
  const batchOfTransaction = new Map<bigint, bigint>();
  for (const message of messages) {
    if (message.body.kind === "commit")
      commits.set(message.batch.id, (commits.get(message.batch.id) ?? 0) + 1);
    if (message.body.kind === "rollback")
      assert.fail(`batch ${message.batch.id} rolled back in Kafka`);
    if (message.body.kind === "mutation") {
      mutations.push(message.body.mutation);
      const seen = batchOfTransaction.get(message.body.mutation.transaction);
      assert.ok(seen === undefined || seen === message.batch.id, "a transaction spans two batches");
      batchOfTransaction.set(message.body.mutation.transaction, message.batch.id);
    }
  }
  for (const [id, count] of commits) assert.equal(count, 1, `batch ${id} committed ${count} times`);
  const ids = mutations.map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, "a mutation appears twice");
  return mutations;
}

async function waitForTopicMutations(
  brokers: string[],
  topic: string,
  count: number,
  codec: "json" | "protobuf" = "protobuf",
  relay?: RelayProcess,
) {
  return waitFor(
    async () => {
      const messages = await readTopic(brokers, topic, codec);
      const n = messages.filter((m) => m.body.kind === "mutation").length;
      return n >= count ? messages : undefined;
    },
    {
      timeoutMs: 90_000,
      intervalMs: 500,
      get description() {
        return `${count} mutations in topic ${topic}${relay ? ` (relay stderr: ${relay.stderr()})` : ""}`;
      },
    },
  );
}

const oneTable = async (db: { query(sql: string): Promise<unknown> }) => {
  await db.query("CREATE TABLE t (id int PRIMARY KEY, v text)");
};

async function insertTransactions(
  fixture: SetFixture,
  from: number,
  transactions: number,
  rows: number,
): Promise<void> {
  for (let i = 0; i < transactions; i++) {
    const start = from + i * rows;
    await fixture.db.query(
      `INSERT INTO t SELECT g, 'row ' || g FROM generate_series(${start}, ${start + rows - 1}) g`,
    );
  }
}

function kafkaRelay(fixture: SetFixture, topic: string, brokers: string[], extra: string[] = []) {
  return startRelay(
    fixture,
    ["--kafka-brokers", brokers.join(","), "--topic", topic, ...extra],
    "pgshovel-kafka-relay",
  );
}

describe("Kafka relay", () => {
  const brokers = stackEnv().kafkaBrokers;

  test("a pgbench workload lands exactly once, transaction-exact, decodable with protobuf", async () => {
    const fixture = await setupPgbenchSet();
    const topic = uniqueName("kr_pgbench");
    const relay = kafkaRelay(fixture, topic, brokers);
    try {
      await pgbench(fixture.db, ["-n", "-c", "2", "-t", "200"]);
      // An UPDATE that leaves its row unchanged yields no event: pgbench's delta is sometimes 0.
      const [changed] = await fixture.db.query<{ count: string }>(
        "SELECT count(*) FROM pgbench_history WHERE delta <> 0",
      );
      const expected = 400 + 3 * Number(changed!.count);
      const messages = await waitForTopicMutations(brokers, topic, expected);
      const mutations = exactlyOnce(messages);
      assert.equal(mutations.length, expected);
      assert.equal(
        mutations.filter((m) => m.table === "pgbench_history" && m.operation === "INSERT").length,
        400,
      );
    } finally {
      assert.equal((await stopRelay(relay)).code, 0, relay.stderr());
      await fixture.close();
    }
  });

  test("the JSON codec into Kafka decodes too, and the default topic is <cluster>.<set>.mutations", async () => {
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
    const relay = startRelay(
      fixture,
      ["--kafka-brokers", brokers.join(","), "--codec", "json"],
      "pgshovel-kafka-relay",
    );
    const topic = `${fixture.cluster}.s.mutations`;
    try {
      await insertTransactions(fixture, 1, 2, 5);
      const mutations = exactlyOnce(await waitForTopicMutations(brokers, topic, 10, "json", relay));
      assert.deepEqual(
        mutations.map((m) => m.new!.id),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      );
    } finally {
      assert.equal((await stopRelay(relay)).code, 0, relay.stderr());
      await fixture.close();
    }
  });

  for (const crashAt of ["before-produce", "mid-batch", "after-commit"] as CrashPoint[]) {
    test(`killed ${crashAt}: a restarted relay delivers every batch exactly once`, async () => {
      const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
      const topic = uniqueName("kr_crash");
      try {
        await insertTransactions(fixture, 1, 3, 10);
        const child = spawn(
          process.execPath,
          [join(repoRoot, "dist", "test", "integration", "kafka-crash-child.js")],
          {
            env: {
              ...process.env,
              PGSHOVEL_TEST_CHILD: JSON.stringify({
                cluster: fixture.cluster,
                set: "s",
                zkHosts: fixture.zkHosts,
                brokers,
                topic,
                crashAt,
              }),
            },
            stdio: ["ignore", "ignore", "pipe"],
          },
        );
        let stderr = "";
        child.stderr!.on("data", (chunk: Buffer) => {
          stderr += chunk.toString("utf8");
        });
        const exit = await withTimeout(
          new Promise<NodeJS.Signals | null>((resolve) =>
            child.on("exit", (_code, signal) => resolve(signal)),
          ),
          60_000,
          `the child relay to kill itself ${crashAt}`,
        ).catch((error) => {
          child.kill("SIGKILL");
          throw new Error(`${error.message}; its stderr: ${stderr}`);
        });
        assert.equal(exit, "SIGKILL", `the child should have killed itself ${crashAt}: ${stderr}`);
        if (crashAt === "after-commit") {
          // The batch is in Kafka already, and PgQ still holds it open.
          const early = exactlyOnce(await readTopic(brokers, topic));
          assert.equal(early.length, 30);
        }
        await insertTransactions(fixture, 31, 2, 10);
        const relay = kafkaRelay(fixture, topic, brokers, ["--zookeeper-timeout", "4s"]);
        try {
          const mutations = exactlyOnce(await waitForTopicMutations(brokers, topic, 50));
          assert.deepEqual(
            mutations.map((m) => m.new!.id),
            Array.from({ length: 50 }, (_, i) => i + 1),
          );
          if (crashAt === "after-commit") await waitForLog(relay, "already holds this batch");
        } finally {
          assert.equal((await stopRelay(relay)).code, 0, relay.stderr());
        }
      } finally {
        await fixture.close();
      }
    });
  }

  test("a standby takes over when the active relay is killed, and carries on exactly once", async () => {
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
    const topic = uniqueName("kr_standby");
    const a = kafkaRelay(fixture, topic, brokers, ["--zookeeper-timeout", "4s"]);
    await waitForLog(a, "leading");
    const b = kafkaRelay(fixture, topic, brokers, ["--zookeeper-timeout", "4s"]);
    try {
      await waitForLog(b, "standing by");
      await insertTransactions(fixture, 1, 2, 10);
      await waitForTopicMutations(brokers, topic, 20);
      a.child.kill("SIGKILL");
      await a.exited;
      await insertTransactions(fixture, 21, 2, 10);
      await waitForLog(b, "leading", 30_000);
      const mutations = exactlyOnce(await waitForTopicMutations(brokers, topic, 40));
      assert.equal(mutations.length, 40);
    } finally {
      await stopRelay(a);
      assert.equal((await stopRelay(b)).code, 0, b.stderr());
      await fixture.close();
    }
  });

  test("a relay whose ZooKeeper session expired yields to the standby, then leads again with a new producer, exactly once", async () => {
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
    const topic = uniqueName("kr_expired");
    const a = kafkaRelay(fixture, topic, brokers, ["--zookeeper-timeout", "4s"]);
    await waitForLog(a, "leading");
    const b = kafkaRelay(fixture, topic, brokers, ["--zookeeper-timeout", "4s"]);
    const leading = (relay: RelayProcess) =>
      relay.stderr().split("leading: this relay is the active one").length - 1;
    try {
      await waitForLog(b, "standing by");
      await insertTransactions(fixture, 1, 2, 10);
      await waitForTopicMutations(brokers, topic, 20);
      // A frozen past its session timeout: B leads, and its producer fences A's.
      a.child.kill("SIGSTOP");
      await waitForLog(b, "leading", 60_000);
      await insertTransactions(fixture, 21, 2, 10);
      await waitForTopicMutations(brokers, topic, 40);
      // Thawed, A opens a new session and stands by behind B.
      a.child.kill("SIGCONT");
      await waitForLog(a, "new ZooKeeper session open", 60_000);
      await waitForLog(a, "standing by");
      // B stops: A leads again and publishes with a producer of its own again.
      assert.equal((await stopRelay(b)).code, 0, b.stderr());
      await waitFor(() => leading(a) >= 2, {
        timeoutMs: 30_000,
        description: `relay A leading again (its stderr: ${a.stderr().slice(-2000)})`,
      });
      await insertTransactions(fixture, 41, 2, 10);
      const mutations = exactlyOnce(await waitForTopicMutations(brokers, topic, 60, "protobuf", a));
      assert.equal(mutations.length, 60);
      assert.equal(a.child.exitCode, null, "A kept running");
    } finally {
      a.child.kill("SIGCONT");
      assert.equal((await stopRelay(a)).code, 0, a.stderr());
      await stopRelay(b);
      await fixture.close();
    }
  });

  test("reading the last committed batch while a relay publishes does not fence it", async () => {
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
    const topic = uniqueName("kr_status");
    const relay = kafkaRelay(fixture, topic, brokers);
    const lastBatch = async () =>
      (await readLastCommittedBatch({ brokers, topic, codec: "protobuf" }))?.batch.id;
    try {
      await waitForLog(relay, "leading");
      await insertTransactions(fixture, 1, 2, 10);
      await waitForTopicMutations(brokers, topic, 20);
      const before = await waitFor(lastBatch, { description: "a committed batch in the topic" });
      // Read it again and again while the relay goes on publishing.
      for (let round = 0; round < 5; round++) {
        await insertTransactions(fixture, 21 + round * 10, 1, 10);
        await lastBatch();
      }
      const mutations = exactlyOnce(
        await waitForTopicMutations(brokers, topic, 70, "protobuf", relay),
      );
      assert.equal(mutations.length, 70);
      await waitFor(
        async () => {
          const id = await lastBatch();
          return id !== undefined && id > before;
        },
        { description: "a later batch as the last committed one" },
      );
      assert.doesNotMatch(relay.stderr(), /fenced/i);
      assert.equal(relay.stderr().split("leading: this relay is the active one").length - 1, 1);
    } finally {
      assert.equal((await stopRelay(relay)).code, 0, relay.stderr());
      await fixture.close();
    }
  });

  test("a relay fenced by a newer producer stops, stands for election again and carries on exactly once", async () => {
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
    const topic = uniqueName("kr_fenced");
    const relay = kafkaRelay(fixture, topic, brokers);
    try {
      await waitForLog(relay, "leading");
      await insertTransactions(fixture, 1, 2, 10);
      await waitForTopicMutations(brokers, topic, 20);
      // A producer with the relay's transactional id (a zombie's successor) bumps the epoch.
      const intruder = new KafkaSink({
        brokers,
        topic,
        codec: "protobuf",
        transactionalId: kafkaNames.transactionalId(fixture.cluster, fixture.set, "pgshovel"),
      });
      await intruder.open();
      await intruder.close();
      await insertTransactions(fixture, 21, 2, 10);
      await waitForLog(relay, "fenced by a newer Kafka producer");
      await waitFor(
        () => relay.stderr().split("leading: this relay is the active one").length - 1 >= 2,
        {
          timeoutMs: 30_000,
          description: `the relay leading again (its stderr: ${relay.stderr().slice(-2000)})`,
        },
      );
      const mutations = exactlyOnce(
        await waitForTopicMutations(brokers, topic, 40, "protobuf", relay),
      );
      assert.equal(mutations.length, 40);
      assert.equal(relay.child.exitCode, null, "the relay kept running");
    } finally {
      assert.equal((await stopRelay(relay)).code, 0, relay.stderr());
      await fixture.close();
    }
  });

  test("a broker restart while running: the relay waits and retries, nothing lost or duplicated", async () => {
    const kafka = await startPrivateKafka();
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
    const topic = uniqueName("kr_restart");
    const relay = kafkaRelay(fixture, topic, kafka.brokers);
    try {
      await insertTransactions(fixture, 1, 2, 10);
      await waitForTopicMutations(kafka.brokers, topic, 20);
      await kafka.stop();
      await insertTransactions(fixture, 21, 2, 10);
      await waitForLog(relay, "recoverable failure");
      await kafka.start();
      await insertTransactions(fixture, 41, 2, 10);
      const mutations = exactlyOnce(await waitForTopicMutations(kafka.brokers, topic, 60));
      assert.equal(mutations.length, 60);
    } finally {
      assert.equal((await stopRelay(relay)).code, 0, relay.stderr());
      await fixture.close();
      await kafka.destroy();
    }
  });
});

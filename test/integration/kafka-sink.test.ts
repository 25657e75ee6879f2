import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { Admin } from "@platformatic/kafka";
import { readCommittedBatches, readStream } from "../../src/consumer/index.js";
import { isPgshovelError } from "../../src/errors.js";
import { PartitionReader } from "../../src/kafka/partition-reader.js";
import { withRetry } from "../../src/retry.js";
import { KafkaSink, type KafkaSinkOptions } from "../../src/sinks/kafka/kafka-sink.js";
import type { CodecName } from "../../src/stream/codec.js";
import type { Message } from "../../src/stream/types.js";
import { stackEnv, uniqueName } from "../support/env.js";
import { createTopic, iterate, NODE, Publisher } from "../support/kafka.js";
import { startPrivateKafka } from "../support/private-services.js";
import { waitFor, withTimeout } from "../support/wait.js";

const sinks: KafkaSink[] = [];

after(async () => {
  await Promise.all(sinks.map((sink) => sink.close()));
});

function openSink(topic: string, options: Partial<KafkaSinkOptions> = {}): KafkaSink {
  const sink = new KafkaSink({
    brokers: stackEnv().kafkaBrokers,
    topic,
    codec: "protobuf",
    transactionalId: `pgshovel.test.${topic}`,
    ...options,
  });
  sinks.push(sink);
  return sink;
}

async function readAll(
  topic: string,
  codec: CodecName = "protobuf",
  brokers = stackEnv().kafkaBrokers,
): Promise<Message[]> {
  const messages: Message[] = [];
  for await (const message of readStream({
    brokers,
    topic,
    codec,
    stopAtEnd: true,
  })) {
    messages.push(message);
  }
  return messages;
}

async function partitionCount(topic: string): Promise<number> {
  const admin = new Admin({
    clientId: uniqueName("admin"),
    bootstrapBrokers: stackEnv().kafkaBrokers,
  });
  try {
    const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
    return metadata.topics.get(topic)!.partitionsCount;
  } finally {
    await admin.close();
  }
}

describe("Kafka sink", { timeout: 180_000 }, () => {
  test("open creates the topic with one partition, and is repeatable", async () => {
    const topic = uniqueName("kafka_sink_create");
    const sink = openSink(topic);
    await sink.open();
    assert.equal(await partitionCount(topic), 1);
    assert.equal(sink.transactional, true);
    assert.equal(sink.description, `kafka topic ${topic}`);
    const again = openSink(topic);
    await again.open();
    assert.equal(await partitionCount(topic), 1);
  });

  test("a topic with three partitions is refused with a message naming it", async () => {
    const topic = uniqueName("kafka_sink_three");
    await createTopic(topic, 3);
    const sink = openSink(topic);
    await assert.rejects(sink.open(), (error: unknown) => {
      assert.ok(isPgshovelError(error, "INVALID_CONFIGURATION"), String(error));
      assert.match(error.message, new RegExp(`topic ${topic} has 3 partitions`));
      assert.ok(error.hint?.includes(`delete topic ${topic}`));
      return true;
    });
  });

  test("invalid options are refused with the option's path", () => {
    assert.throws(
      () => openSink("x", { brokers: ["no-port"], compression: "brotli" as "gzip" }),
      (error: unknown) =>
        isPgshovelError(error, "INVALID_ARGUMENT") &&
        error.message.includes("brokers.0") &&
        error.message.includes("compression"),
    );
  });

  for (const codec of ["json", "protobuf"] as const) {
    test(`a published batch reads back equal with the ${codec} codec`, async () => {
      const topic = uniqueName(`kafka_sink_${codec}`);
      const sink = openSink(topic, { codec });
      await sink.open();
      const publisher = new Publisher();
      const first = publisher.batch(1n, 9);
      await sink.publishBatch(first.ref, iterate(first.messages));
      first.commit();
      const second = publisher.batch(2n, 3, { end: "rollback" });
      await sink.publishBatch(second.ref, iterate(second.messages));
      second.commit();

      assert.deepEqual(await readAll(topic, codec), [...first.messages, ...second.messages]);

      // Key and headers, as documented in docs/kafka.md.
      const reader = new PartitionReader({ brokers: stackEnv().kafkaBrokers }, topic);
      try {
        const records = [];
        for await (const record of reader.read(0n, { until: (await reader.bounds()).stable }))
          records.push(record);
        assert.equal(records.length, first.messages.length + second.messages.length);
        assert.equal(records[0]!.key?.toString(), `${NODE}:1`);
        assert.equal(records[0]!.headers.get("pgshovel-kind")?.toString(), "begin");
        assert.equal(records[2]!.headers.get("pgshovel-kind")?.toString(), "mutation");
        assert.equal(records[2]!.headers.get("pgshovel-table")?.toString(), "table_1");
        assert.equal(records[2]!.headers.get("pgshovel-operation")?.toString(), "UPDATE");
        assert.equal(records[2]!.headers.get("pgshovel-schema")?.toString(), "public");
      } finally {
        await reader.close();
      }
    });
  }

  test("a batch whose messages fail midway is invisible; its retry is seen once", async () => {
    const topic = uniqueName("kafka_sink_abort");
    // No compression and incompressible rows: the aborted part spans several fetch responses.
    const sink = openSink(topic, { compression: "none" });
    await sink.open();
    const publisher = new Publisher();
    const batch = publisher.batch(1n, 20_000, { pad: 300 });

    await assert.rejects(
      sink.publishBatch(batch.ref, iterate(batch.messages, 15_000)),
      (error: unknown) => {
        assert.ok(isPgshovelError(error, "DATABASE_UNAVAILABLE"), String(error));
        assert.equal(error.retryable, true);
        assert.match(error.message, /publishing batch 1 of node .* to topic/);
        return true;
      },
    );
    assert.deepEqual(await readAll(topic), []);

    // The relay retries the whole batch with the same sequence numbers.
    await sink.publishBatch(batch.ref, iterate(batch.messages));
    batch.commit();
    const read = await readAll(topic);
    assert.equal(read.length, batch.messages.length);
    assert.deepEqual(read.at(-1), batch.messages.at(-1));
    const batches = [];
    for await (const b of readCommittedBatches({
      brokers: stackEnv().kafkaBrokers,
      topic,
      codec: "protobuf",
      stopAtEnd: true,
    })) {
      batches.push(b);
    }
    assert.equal(batches.length, 1);
    assert.equal(batches[0]!.mutations.length, 20_000);
  });

  test("readCommittedBatches with a group resumes after the last whole batch", async () => {
    const topic = uniqueName("kafka_sink_group");
    const sink = openSink(topic, { codec: "json" });
    await sink.open();
    const publisher = new Publisher();
    const publish = async (id: bigint) => {
      const b = publisher.batch(id, 3);
      await sink.publishBatch(b.ref, iterate(b.messages));
      b.commit();
    };
    const options = {
      brokers: stackEnv().kafkaBrokers,
      topic,
      codec: "json" as const,
      groupId: uniqueName("group"),
    };
    const ids = async (stopAtEnd: boolean, take?: number) => {
      const seen: bigint[] = [];
      for await (const b of readCommittedBatches({ ...options, stopAtEnd })) {
        seen.push(b.id);
        if (seen.length === take) break;
      }
      return seen;
    };
    for (const id of [1n, 2n, 3n]) await publish(id);
    assert.deepEqual(await ids(true), [1n, 2n, 3n]);
    await publish(4n);
    await publish(5n);
    // Following the topic; the consumer stops after one batch: 5 is re-read next time.
    assert.deepEqual(await ids(false, 2), [4n, 5n]);
    assert.deepEqual(await ids(true), [5n]);
  });

  test("lastCommittedBatch finds the last commit, skipping aborts and rollbacks", async () => {
    const topic = uniqueName("kafka_sink_tail");
    const sink = openSink(topic);
    await sink.open();
    assert.equal(await sink.lastCommittedBatch(), undefined);

    const publisher = new Publisher();
    for (const id of [1n, 2n, 3n]) {
      const b = publisher.batch(id, 5);
      await sink.publishBatch(b.ref, iterate(b.messages));
      b.commit();
    }
    // The commit markers of the last transaction land just after its commit returns.
    const last = await waitFor(
      async () => {
        const mark = await sink.lastCommittedBatch();
        return mark?.batch.id === 3n ? mark : undefined;
      },
      { description: "batch 3 as the last committed batch" },
    );
    assert.deepEqual(last.batch, { node: NODE, id: 3n });

    // Aborted (never committed in Kafka) and rolled back (committed, ending in a rollback):
    // the last commit then sits more than one scan window below the end.
    const failed = publisher.batch(4n, 3_000);
    await assert.rejects(sink.publishBatch(failed.ref, iterate(failed.messages, 2_500)));
    const rolledBack = publisher.batch(4n, 2_000, { end: "rollback" });
    await sink.publishBatch(rolledBack.ref, iterate(rolledBack.messages));
    rolledBack.commit();
    assert.deepEqual((await sink.lastCommittedBatch())?.batch, { node: NODE, id: 3n });

    const fresh = openSink(topic, { transactionalId: `pgshovel.test.${topic}.other` });
    await fresh.open();
    assert.deepEqual((await fresh.lastCommittedBatch())?.batch, { node: NODE, id: 3n });
  });

  test("a second sink with the same transactional id fences the first", async () => {
    const topic = uniqueName("kafka_sink_fence");
    const zombie = openSink(topic);
    await zombie.open();
    const publisher = new Publisher();
    const one = publisher.batch(1n, 2);
    await zombie.publishBatch(one.ref, iterate(one.messages));
    one.commit();

    const successor = openSink(topic);
    await successor.open();
    const two = publisher.batch(2n, 2);
    await assert.rejects(zombie.publishBatch(two.ref, iterate(two.messages)), (error: unknown) => {
      assert.ok(isPgshovelError(error, "FENCED"), String(error));
      assert.equal(error.retryable, false);
      return true;
    });
    // The zombie stays fenced and does not take the id back.
    await assert.rejects(zombie.publishBatch(two.ref, iterate(two.messages)), (error: unknown) =>
      isPgshovelError(error, "FENCED"),
    );
    const next = new Publisher();
    const twoAgain = next.batch(2n, 2);
    await successor.publishBatch(twoAgain.ref, iterate(twoAgain.messages));
    assert.deepEqual(await readAll(topic), [...one.messages, ...twoAgain.messages]);
  });

  // A private broker: restarting the shared one would disturb suites running alongside.
  test("publishing through a broker restart delivers every batch exactly once", async (t) => {
    const kafka = await startPrivateKafka();
    t.after(() => kafka.destroy());
    const topic = uniqueName("kafka_sink_restart");
    const sink = openSink(topic, { brokers: kafka.brokers });
    // A broker just started may still be loading its transaction coordinator
    // (COORDINATOR_LOAD_IN_PROGRESS, retryable): open as the relay does, with retries.
    await withRetry(() => sink.open(), { attempts: 30, initialDelayMs: 200, maxDelayMs: 1_000 });
    const publisher = new Publisher();
    let failures = 0;
    let restart: Promise<unknown> | undefined;
    let restartedAt: bigint | undefined;
    let id = 0n;

    // Publish until the restart is over and 20 more batches went through.
    while (restartedAt === undefined || id < restartedAt + 20n) {
      id++;
      const b = publisher.batch(id, 200);
      await withRetry(
        async (attempt) => {
          // What the relay does: after a failure, the commit may have landed.
          if (attempt > 1) {
            const last = await sink.lastCommittedBatch();
            if (last !== undefined && last.batch.id >= id) return;
          }
          await sink.publishBatch(b.ref, iterate(b.messages));
        },
        {
          attempts: 60,
          initialDelayMs: 100,
          maxDelayMs: 1_000,
          onRetry: (error) => {
            assert.ok(error.retryable);
            failures++;
          },
        },
      );
      b.commit();
      if (id === 10n) {
        restart = withTimeout(
          kafka.stop().then(() => kafka.start()),
          60_000,
          "restarting kafka",
        ).then(() => {
          restartedAt = id;
        });
      }
    }
    await restart;
    const total = id;

    const commits = new Map<bigint, number>();
    const begins = new Map<bigint, number>();
    for (const message of await readAll(topic, "protobuf", kafka.brokers)) {
      const count =
        message.body.kind === "commit"
          ? commits
          : message.body.kind === "begin"
            ? begins
            : undefined;
      count?.set(message.batch.id, (count.get(message.batch.id) ?? 0) + 1);
    }
    for (let batch = 1n; batch <= total; batch++) {
      assert.equal(commits.get(batch), 1, `commits of batch ${batch}`);
      assert.equal(begins.get(batch), 1, `begins of batch ${batch}`);
    }
    assert.equal(commits.size, Number(total));
    t.diagnostic(`${total} batches, ${failures} retried failure(s) during the restart`);
  });
});

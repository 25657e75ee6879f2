import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import {
  readCommittedBatches,
  readStream,
  readStreamPositioned,
} from "../../src/consumer/index.js";
import { isPgshovelError } from "../../src/errors.js";
import { readLastCommittedBatch } from "../../src/kafka/last-commit.js";
import { PartitionReader } from "../../src/kafka/partition-reader.js";
import { KafkaSink } from "../../src/sinks/kafka/kafka-sink.js";
import type { Message, PositionedMessage } from "../../src/stream/types.js";
import { repoRoot, stackEnv, uniqueName } from "../support/env.js";
import { deleteRecordsBefore, iterate, NODE, Publisher } from "../support/kafka.js";
import { waitFor, withTimeout } from "../support/wait.js";

const brokers = stackEnv().kafkaBrokers;
const sinks: KafkaSink[] = [];

after(async () => {
  await Promise.all(sinks.map((sink) => sink.close()));
});

/** An open sink on a new topic, and a function publishing batch after batch into it. */
async function topicWithSink(name: string) {
  const topic = uniqueName(name);
  const sink = new KafkaSink({
    brokers,
    topic,
    codec: "protobuf",
    transactionalId: `pgshovel.test.${topic}`,
  });
  sinks.push(sink);
  await sink.open();
  const publisher = new Publisher();
  const publish = async (id: bigint, mutations: number, end: "commit" | "rollback" = "commit") => {
    const batch = publisher.batch(id, mutations, { end });
    await sink.publishBatch(batch.ref, iterate(batch.messages));
    batch.commit();
    return batch.messages;
  };
  return { topic, sink, publisher, publish };
}

async function readPositioned(topic: string, from?: bigint): Promise<PositionedMessage[]> {
  const read: PositionedMessage[] = [];
  for await (const positioned of readStreamPositioned({
    brokers,
    topic,
    codec: "protobuf",
    stopAtEnd: true,
    ...(from === undefined ? {} : { from }),
  })) {
    read.push(positioned);
  }
  return read;
}

const messagesOf = (read: PositionedMessage[]) => read.map((p) => p.message);

describe("Kafka reader", { timeout: 180_000 }, () => {
  test("each message comes with the position after it; from resumes exactly there", async () => {
    const { topic, sink, publisher, publish } = await topicWithSink("kafka_read_positions");
    const one = await publish(1n, 3);
    const two = await publish(2n, 2, "rollback");
    // An aborted attempt leaves records (and an abort marker) that no position may show.
    const failed = publisher.batch(3n, 40);
    await assert.rejects(sink.publishBatch(failed.ref, iterate(failed.messages, 20)));
    const three = await publish(3n, 4);

    const all = await readPositioned(topic);
    assert.deepEqual(messagesOf(all), [...one, ...two, ...three]);
    for (let i = 1; i < all.length; i++) assert.ok(all[i]!.next > all[i - 1]!.next);

    const plain: Message[] = [];
    for await (const m of readStream({ brokers, topic, codec: "protobuf", stopAtEnd: true })) {
      plain.push(m);
    }
    assert.deepEqual(plain, messagesOf(all));

    // After any message, a reader given its position goes on with the one that followed.
    for (let k = 0; k < all.length; k++) {
      const rest = await readPositioned(topic, all[k]!.next);
      assert.deepEqual(rest, all.slice(k + 1), `resuming after message ${k}`);
    }
  });

  test("a position the topic no longer holds fails with POSITION_LOST, never skips", async () => {
    const { topic, publish } = await topicWithSink("kafka_read_lost");
    await publish(1n, 3);
    const second = await publish(2n, 3);
    const all = await readPositioned(topic);
    const secondAt = all.findIndex((p) => p.message.batch.id === 2n);
    const secondOffset = all[secondAt]!.next - 1n;
    assert.equal(await deleteRecordsBefore(topic, secondOffset), secondOffset);

    const lost = (error: unknown) => {
      assert.ok(isPgshovelError(error, "POSITION_LOST"), String(error));
      assert.equal(error.retryable, false);
      assert.ok(error.hint?.includes("snapshot"), error.hint);
      return true;
    };
    await assert.rejects(readPositioned(topic, 0n), (error: unknown) => {
      lost(error);
      assert.match((error as Error).message, new RegExp(`starts at offset ${secondOffset}`));
      return true;
    });
    await assert.rejects(readPositioned(topic, all[1]!.next), lost);
    const end = all.at(-1)!.next + 1n; // the commit marker sits after the last message
    await assert.rejects(readPositioned(topic, end + 1n), (error: unknown) => {
      lost(error);
      assert.match((error as Error).message, /past the end/);
      return true;
    });
    // What is still there reads as usual.
    assert.deepEqual(messagesOf(await readPositioned(topic, secondOffset)), second);
  });

  test("a follower that retention overtakes fails with POSITION_LOST", async () => {
    const { topic, publish } = await topicWithSink("kafka_read_overtaken");
    await publish(1n, 2);
    const controller = new AbortController();
    const seen: Message[] = [];
    const reading = (async () => {
      for await (const message of readStream({
        brokers,
        topic,
        codec: "protobuf",
        signal: controller.signal,
      })) {
        seen.push(message);
        if (message.body.kind !== "commit" || message.batch.id !== 1n) continue;
        // While the consumer works on batch 1, retention removes what follows it.
        await publish(2n, 2);
        const three = await publish(3n, 2);
        const tail = await readPositioned(topic);
        const threeAt = tail.length - three.length;
        await deleteRecordsBefore(topic, tail[threeAt]!.next - 1n);
      }
    })();
    try {
      await assert.rejects(withTimeout(reading, 60_000, "the follower to fail"), (error: unknown) =>
        isPgshovelError(error, "POSITION_LOST"),
      );
      assert.ok(
        seen.every((m) => m.batch.id === 1n),
        "nothing after the lost part was delivered",
      );
    } finally {
      controller.abort();
    }
  });

  test("aborting the signal ends the iteration without an error", async (t) => {
    const { topic, publish } = await topicWithSink("kafka_read_abort");
    const batch = await publish(1n, 3);

    await t.test("aborted by the consumer between two messages", async () => {
      const controller = new AbortController();
      const seen: Message[] = [];
      for await (const message of readStream({
        brokers,
        topic,
        codec: "protobuf",
        signal: controller.signal,
      })) {
        seen.push(message);
        if (message.body.kind === "mutation") controller.abort();
      }
      assert.deepEqual(seen, batch.slice(0, 2));
    });

    await t.test("a timeout signal while following an idle topic", async () => {
      const seen: Message[] = [];
      for await (const message of readStream({
        brokers,
        topic,
        codec: "protobuf",
        signal: AbortSignal.timeout(2_000),
      })) {
        seen.push(message);
      }
      assert.deepEqual(seen, batch.slice(0, seen.length));
    });

    await t.test("whole batches, aborted after the first", async () => {
      const controller = new AbortController();
      const ids: bigint[] = [];
      for await (const b of readCommittedBatches({
        brokers,
        topic,
        codec: "protobuf",
        signal: controller.signal,
      })) {
        ids.push(b.id);
        controller.abort();
      }
      assert.deepEqual(ids, [1n]);
    });

    await t.test("brokers that accept connections and never answer", async () => {
      const sockets = new Set<Socket>();
      const silent = createServer((socket) => {
        sockets.add(socket);
        socket.on("error", () => {});
      });
      await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
      const address = silent.address();
      assert.ok(address !== null && typeof address === "object");
      try {
        const controller = new AbortController();
        const seen: Message[] = [];
        const reading = (async () => {
          for await (const message of readStream({
            brokers: [`127.0.0.1:${address.port}`],
            topic,
            codec: "protobuf",
            signal: controller.signal,
          })) {
            seen.push(message);
          }
        })();
        await waitFor(() => sockets.size > 0, { description: "the reader to connect" });
        controller.abort();
        await withTimeout(reading, 10_000, "the reader to end after the abort");
        assert.deepEqual(seen, []);
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => silent.close(resolve));
      }
    });
  });

  test("the example of docs/kafka.md ends with exit code 0 when its signal aborts", async () => {
    const { topic, publish } = await topicWithSink("kafka_read_doc");
    await publish(1n, 2);
    const docs = await readFile(join(repoRoot, "docs", "kafka.md"), "utf8");
    const section = docs.slice(docs.indexOf("## Consuming from TypeScript"));
    const example = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(example !== undefined, "a ts block under 'Consuming from TypeScript'");
    const replacements: [string, string][] = [
      ['["kafka-1:9092"]', JSON.stringify(brokers)],
      ['"prod.orders.mutations"', JSON.stringify(topic)],
      ["AbortSignal.timeout(60_000)", "AbortSignal.timeout(3_000)"],
    ];
    let script = example;
    for (const [from, to] of replacements) {
      assert.ok(script.includes(from), `the example contains ${from}`);
      script = script.replace(from, to);
    }
    // Inside the package, so that `import … from "pgshovel"` resolves to the build.
    const dir = join(repoRoot, "dist", "test", "doc-examples");
    await mkdir(dir, { recursive: true });
    const file = join(dir, `${uniqueName("kafka_read")}.mjs`);
    await writeFile(file, script);
    try {
      const child = spawn(process.execPath, [file], { stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString("utf8");
      });
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString("utf8");
      });
      const code = await withTimeout(
        new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c))),
        60_000,
        "the example to end",
      ).catch((error: unknown) => {
        child.kill("SIGKILL");
        throw error;
      });
      assert.equal(code, 0, `exit code (stderr: ${stderr})`);
      assert.equal(
        stdout,
        "batch 1: begin\nbatch 1: mutation\nbatch 1: mutation\nbatch 1: commit\nstopped reading\n",
      );
    } finally {
      await rm(file, { force: true });
    }
  });

  test("readLastCommittedBatch reads without a producer: the publishing sink is not fenced", async () => {
    const { topic, sink, publisher, publish } = await topicWithSink("kafka_read_last");
    const options = { brokers, topic, codec: "protobuf" as const };
    assert.equal(await readLastCommittedBatch(options), undefined);

    await publish(1n, 3);
    const first = await waitFor(
      async () => {
        const last = await readLastCommittedBatch(options);
        return last?.batch.id === 1n ? last : undefined;
      },
      { description: "batch 1 as the last committed batch" },
    );
    assert.deepEqual(first.batch, { node: NODE, id: 1n });
    assert.equal(first.header.publisher, publisher.id);
    const reader = new PartitionReader({ brokers }, topic);
    try {
      const kinds: (string | undefined)[] = [];
      for await (const record of reader.read(first.offset, { until: first.offset + 1n })) {
        kinds.push(record.headers.get("pgshovel-kind")?.toString());
      }
      assert.deepEqual(kinds, ["commit"]);
    } finally {
      await reader.close();
    }

    // The sink publishes on with the same producer: nothing fenced it.
    await publish(2n, 3);
    await publish(3n, 2, "rollback");
    await waitFor(async () => (await readLastCommittedBatch(options))?.batch.id === 2n, {
      description: "batch 2 as the last committed batch, the rollback of 3 skipped",
    });
    await publish(4n, 1);
    await waitFor(async () => (await sink.lastCommittedBatch())?.batch.id === 4n, {
      description: "the sink itself reading batch 4 as its last",
    });

    await assert.rejects(
      readLastCommittedBatch({ ...options, topic: uniqueName("kafka_read_missing") }),
      (error: unknown) => isPgshovelError(error, "NOT_FOUND"),
    );
    await assert.rejects(
      readLastCommittedBatch({ ...options, brokers: [] }),
      (error: unknown) =>
        isPgshovelError(error, "INVALID_ARGUMENT") && error.message.includes("brokers"),
    );
  });
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { silentLogger } from "../../../src/log.js";
import { Publisher } from "../../../src/relay/publisher.js";
import type { Sink } from "../../../src/sinks/sink.js";
import type { BatchRef, Message } from "../../../src/stream/types.js";
import { StreamValidator } from "../../../src/stream/validator.js";

/** A plain sink that keeps what it takes; `refuse` makes it throw before taking anything. */
function recordingSink(): Sink & { received: Message[]; refuse: number; failAfter?: number } {
  const sink = {
    description: "memory",
    transactional: false,
    received: [] as Message[],
    refuse: 0,
    failAfter: undefined as number | undefined,
    async open() {},
    async close() {},
    async publishBatch(_batch: BatchRef, messages: AsyncIterable<Message>) {
      if (sink.refuse > 0) {
        sink.refuse--;
        throw new Error("refused before taking anything");
      }
      let taken = 0;
      for await (const message of messages) {
        sink.received.push(message);
        if (sink.failAfter !== undefined && ++taken >= sink.failAfter) {
          sink.failAfter = undefined;
          throw new Error("failed mid-batch");
        }
      }
    },
  };
  return sink;
}

const batch = (id: bigint): BatchRef => ({ node: "0f7e2a43-8a1b-4c9e-b5d2-7c3e1f9a6b24", id });

function begin(stamp: (b: Message["body"]) => Message): Message {
  const tick = {
    id: 1n,
    snapshot: { xmin: 1n, xmax: 1n, xip: [] },
    time: "2026-12-01T00:00:00.000000Z",
  };
  return stamp({ kind: "begin", begin: { start: tick, end: { ...tick, id: 2n } } });
}

async function* emptyBatch(stamp: (b: Message["body"]) => Message): AsyncGenerator<Message> {
  yield begin(stamp);
  yield stamp({ kind: "commit" });
}

function assertValid(messages: Message[]): void {
  const validator = new StreamValidator();
  for (const message of messages) validator.accept(message);
}

describe("Publisher", () => {
  test("a batch the sink refused before taking anything gets no rollback: the stream stays well formed", async () => {
    const sink = recordingSink();
    const publisher = new Publisher(sink, silentLogger);
    sink.refuse = 1;
    await assert.rejects(publisher.publish(batch(1n), emptyBatch), /refused/);
    await publisher.publish(batch(1n), emptyBatch);
    await publisher.publish(batch(2n), emptyBatch);
    assert.deepEqual(
      sink.received.map((m) => `${m.body.kind} ${m.batch.id} #${m.header.sequence}`),
      ["begin 1 #0", "commit 1 #1", "begin 2 #2", "commit 2 #3"],
    );
    assertValid(sink.received);
  });

  test("a batch that failed after its begin was taken is rolled back before it is sent again", async () => {
    const sink = recordingSink();
    const publisher = new Publisher(sink, silentLogger);
    sink.failAfter = 1;
    await assert.rejects(publisher.publish(batch(1n), emptyBatch), /mid-batch/);
    await publisher.publish(batch(1n), emptyBatch);
    assert.deepEqual(
      sink.received.map((m) => `${m.body.kind} ${m.batch.id}`),
      ["begin 1", "rollback 1", "begin 1", "commit 1"],
    );
    assertValid(sink.received);
  });
});

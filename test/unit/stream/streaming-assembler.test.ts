import assert from "node:assert/strict";
import { test } from "node:test";
import { setImmediate as nextTurn } from "node:timers/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { PgshovelError } from "../../../src/errors.js";
import {
  BatchAssembler,
  type BatchDecision,
  type BatchHandler,
  type Message,
  type Mutation,
  type OpenedBatch,
  StreamingAssembler,
} from "../../../src/stream/index.js";
import { OTHER_NODE, publisher } from "./builders.js";
import { NODE, PUBLISHER_A, PUBLISHER_B, SAMPLE_STREAM } from "./sample.js";

/** A handler that writes down what it hears, and applies committed batches to `applied`. */
class Recorder implements BatchHandler {
  readonly events: string[] = [];
  readonly applied: [bigint, bigint[]][] = [];
  readonly positions: (bigint | undefined)[] = [];
  #current = new Map<OpenedBatch, bigint[]>();

  constructor(private readonly decide: (batch: OpenedBatch) => BatchDecision = () => "apply") {}

  async begin(batch: OpenedBatch): Promise<BatchDecision> {
    const decision = this.decide(batch);
    this.events.push(`begin ${batch.id} ${decision}`);
    if (decision === "apply") this.#current.set(batch, []);
    return decision;
  }

  mutation(m: Mutation, batch: OpenedBatch): void {
    this.events.push(`mutation ${batch.id}:${m.id}`);
    this.#current.get(batch)!.push(m.id);
  }

  async commit(batch: OpenedBatch, position: bigint | undefined): Promise<void> {
    this.events.push(`commit ${batch.id}`);
    this.applied.push([batch.id, this.#current.get(batch)!]);
    this.positions.push(position);
    this.#current.delete(batch);
  }

  rollback(batch: OpenedBatch, reason: string): void {
    this.events.push(`rollback ${batch.id} ${reason}`);
    this.#current.delete(batch);
  }
}

async function feed(assembler: StreamingAssembler, messages: Message[]): Promise<void> {
  for (const message of messages) await assembler.push(message);
}

/** What the whole-batch assembler delivers for the same messages. */
function wholeBatches(messages: Message[], delivered?: [string, bigint][]): [bigint, bigint[]][] {
  const assembler = new BatchAssembler({ delivered });
  return messages
    .map((m) => assembler.push(m))
    .filter((b) => b !== undefined)
    .map((b) => [b.id, b.mutations.map((m) => m.id)]);
}

test("streaming: the sample stream, message by message, in order", async () => {
  const recorder = new Recorder();
  const assembler = new StreamingAssembler(recorder);
  await assembler.consume(SAMPLE_STREAM.map((message, i) => ({ message, next: BigInt(i + 1) })));
  assert.deepEqual(recorder.events, [
    "begin 7 apply",
    "mutation 7:101",
    "mutation 7:102",
    "mutation 7:103",
    "commit 7",
    "begin 8 apply",
    "mutation 8:104",
    "rollback 8 rollback",
    "begin 8 apply",
    "mutation 8:104",
    "commit 8",
  ]);
  assert.deepEqual(recorder.applied, wholeBatches(SAMPLE_STREAM));
  assert.deepEqual(recorder.positions, [5n, 11n], "the position after each commit message");
  assert.deepEqual(assembler.stats, {
    delivered: 2,
    duplicates: 0,
    skipped: 0,
    rolledBack: 1,
    abandoned: 0,
  });
  assert.equal(assembler.lastDelivered(NODE), 8n);
});

test("streaming: a duplicate is skipped at its begin, the handler never hears of it", async () => {
  const a = publisher(PUBLISHER_A);
  const b = publisher(PUBLISHER_B);
  const messages = [
    a.begin(5n),
    a.insert(5n, 1n),
    a.commit(5n),
    b.begin(5n),
    b.insert(5n, 1n),
    b.commit(5n),
    b.begin(6n),
    b.insert(6n, 2n),
    b.commit(6n),
  ];
  const recorder = new Recorder();
  const assembler = new StreamingAssembler(recorder);
  await feed(assembler, messages);
  assert.deepEqual(recorder.events, [
    "begin 5 apply",
    "mutation 5:1",
    "commit 5",
    "begin 6 apply",
    "mutation 6:2",
    "commit 6",
  ]);
  assert.deepEqual(recorder.applied, wholeBatches(messages));
  assert.equal(assembler.stats.duplicates, 1);

  // Progress restored from the consumer's store: nothing up to it reaches the handler.
  const restored = new Recorder();
  const again = new StreamingAssembler(restored, { delivered: [[NODE, 5n]] });
  await feed(again, messages);
  assert.deepEqual(restored.applied, [[6n, [2n]]]);
  assert.deepEqual(restored.applied, wholeBatches(messages, [[NODE, 5n]]));
});

test("streaming: a rollback discards the batch, which comes again whole", async () => {
  const a = publisher(PUBLISHER_A);
  const messages = [
    a.begin(1n),
    a.insert(1n, 1n),
    a.insert(1n, 2n),
    a.insert(1n, 3n),
    a.rollback(1n),
    a.begin(1n),
    a.insert(1n, 1n),
    a.insert(1n, 2n),
    a.insert(1n, 3n),
    a.insert(1n, 4n),
    a.commit(1n),
  ];
  const recorder = new Recorder();
  const assembler = new StreamingAssembler(recorder);
  await feed(assembler, messages.slice(0, 5));
  assert.deepEqual(recorder.events.slice(-2), ["mutation 1:3", "rollback 1 rollback"]);
  assert.deepEqual(recorder.applied, []);
  assert.equal(assembler.lastDelivered(NODE), undefined);
  await feed(assembler, messages.slice(5));
  assert.deepEqual(recorder.applied, [[1n, [1n, 2n, 3n, 4n]]]);
  assert.deepEqual(recorder.applied, wholeBatches(messages));
  assert.equal(assembler.stats.rolledBack, 1);
});

test("streaming: a begin without commit, then the re-send by a new relay", async () => {
  const a = publisher(PUBLISHER_A);
  const b = publisher(PUBLISHER_B);
  // A dies after two mutations of batch 5; B sends batch 5 whole.
  const messages = [
    a.begin(5n),
    a.insert(5n, 1n),
    a.insert(5n, 2n),
    b.begin(5n),
    b.insert(5n, 1n),
    b.insert(5n, 2n),
    b.insert(5n, 3n),
    b.commit(5n),
  ];
  const recorder = new Recorder();
  const assembler = new StreamingAssembler(recorder);
  await feed(assembler, messages);
  assert.deepEqual(recorder.events, [
    "begin 5 apply",
    "mutation 5:1",
    "mutation 5:2",
    "rollback 5 abandoned",
    "begin 5 apply",
    "mutation 5:1",
    "mutation 5:2",
    "mutation 5:3",
    "commit 5",
  ]);
  assert.deepEqual(recorder.applied, wholeBatches(messages));
  assert.equal(assembler.stats.abandoned, 1);
  assert.equal(assembler.stats.delivered, 1);
});

test("streaming: batches of two nodes are told apart", async () => {
  const a = publisher(PUBLISHER_A);
  const b = publisher(PUBLISHER_B);
  const messages = [
    a.begin(1n),
    b.begin(9n, OTHER_NODE),
    a.insert(1n, 1n),
    b.insert(9n, 7n, OTHER_NODE),
    b.commit(9n, OTHER_NODE),
    a.commit(1n),
  ];
  const recorder = new Recorder();
  await feed(new StreamingAssembler(recorder), messages);
  assert.deepEqual(recorder.applied, [
    [9n, [7n]],
    [1n, [1n]],
  ]);
});

test("streaming: a batch the handler skips is passed over and counted as seen", async () => {
  const a = publisher(PUBLISHER_A);
  const recorder = new Recorder((batch) => (batch.id === 1n ? "skip" : "apply"));
  const assembler = new StreamingAssembler(recorder);
  await feed(assembler, [
    a.begin(1n),
    a.insert(1n, 1n),
    a.commit(1n),
    a.begin(2n),
    a.insert(2n, 2n),
    a.commit(2n),
  ]);
  assert.deepEqual(recorder.events, ["begin 1 skip", "begin 2 apply", "mutation 2:2", "commit 2"]);
  assert.equal(assembler.stats.skipped, 1);
  assert.equal(assembler.stats.delivered, 1);
  assert.equal(assembler.lastDelivered(NODE), 2n);
});

test("streaming: a batch whose commit fails is not delivered", async () => {
  const a = publisher(PUBLISHER_A);
  const failing: BatchHandler = {
    begin: async () => "apply",
    mutation: () => {},
    commit: () => Promise.reject(new PgshovelError("DATABASE_UNAVAILABLE", "target is down")),
    rollback: () => {},
  };
  const assembler = new StreamingAssembler(failing);
  await feed(assembler, [a.begin(1n), a.insert(1n, 1n)]);
  await assert.rejects(assembler.push(a.commit(1n)), /target is down/);
  assert.equal(assembler.lastDelivered(NODE), undefined);
  assert.equal(assembler.stats.delivered, 0);
});

test("streaming: a contract breach is a DECODE_ERROR", async () => {
  const a = publisher(PUBLISHER_A);
  const assembler = new StreamingAssembler(new Recorder());
  await assembler.push(a.begin(1n));
  await assert.rejects(
    assembler.push(a.begin(2n)),
    (e: unknown) => e instanceof PgshovelError && e.code === "DECODE_ERROR",
  );
});

/** A full garbage collection (the flag is set at run time, so the test needs no node option). */
function collectGarbage(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

/** One batch of `count` INSERTs, generated as it is read; every `sampleEvery`-th mutation is watched. */
function* bigBatch(count: number, sampleEvery: number, watched: WeakRef<Mutation>[]) {
  const a = publisher(PUBLISHER_A);
  yield a.begin(1n);
  for (let i = 1; i <= count; i++) {
    const message = a.insert(1n, BigInt(i));
    if (i % sampleEvery === 0 && message.body.kind === "mutation") {
      watched.push(new WeakRef(message.body.mutation));
    }
    yield message;
  }
}

test("streaming: a million-mutation batch passes through without being held", async () => {
  const count = 1_000_000;
  const watched: WeakRef<Mutation>[] = [];
  let seen = 0;
  const counter: BatchHandler = {
    begin: async () => "apply",
    mutation: () => {
      seen++;
    },
    commit: () => {},
    rollback: () => {},
  };
  const assembler = new StreamingAssembler(counter);
  collectGarbage();
  const before = process.memoryUsage().heapUsed;
  for (const message of bigBatch(count, 10_000, watched)) await assembler.push(message);
  await nextTurn(); // WeakRefs are kept alive until the end of the job that created them
  collectGarbage();
  const growth = process.memoryUsage().heapUsed - before;
  assert.equal(seen, count);
  // The batch is still open (no commit yet), and not one of its mutations is kept.
  assert.equal(watched.length, 100);
  assert.equal(watched.filter((ref) => ref.deref() !== undefined).length, 0);
  // Held, a million mutations would take hundreds of MB; passing through, next to nothing.
  assert.ok(growth < 32 * 1024 * 1024, `heap grew by ${growth} bytes`);
  await assembler.push(publisher(PUBLISHER_A, BigInt(count + 1)).commit(1n));
  assert.equal(assembler.stats.delivered, 1);
});

test("whole-batch mode, by contrast, holds an open batch's mutations", async () => {
  const watched: WeakRef<Mutation>[] = [];
  const assembler = new BatchAssembler();
  for (const message of bigBatch(1000, 100, watched)) assembler.push(message);
  await nextTurn();
  collectGarbage();
  assert.equal(watched.filter((ref) => ref.deref() !== undefined).length, 10);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { PgshovelError } from "../../../src/errors.js";
import {
  BatchAssembler,
  type CommittedBatch,
  type Message,
  StreamValidator,
} from "../../../src/stream/index.js";
import { OTHER_NODE, publisher } from "./builders.js";
import { NODE, PUBLISHER_A, PUBLISHER_B, SAMPLE_STREAM } from "./sample.js";

function violations(messages: Message[], validator = new StreamValidator()) {
  return messages.map((m) => validator.check(m)).filter((v) => v !== undefined);
}

function pushAll(assembler: BatchAssembler, messages: Message[]): CommittedBatch[] {
  return messages.map((m) => assembler.push(m)).filter((b) => b !== undefined);
}

test("validator: the sample stream is valid", () => {
  assert.deepEqual(violations(SAMPLE_STREAM), []);
});

test("validator: a gap in a publisher's sequence is detected once", () => {
  const a = publisher(PUBLISHER_A);
  const messages = [a.begin(1n), a.insert(1n, 1n)];
  a.skip();
  messages.push(a.insert(1n, 2n), a.commit(1n));
  const found = violations(messages);
  assert.equal(found.length, 1);
  assert.equal(found[0]?.kind, "sequence-gap");
  assert.equal(found[0]?.sequence, 3n);
  assert.match(found[0]?.description ?? "", /expected sequence 2, got 3/);
});

test("validator: a publisher must start at 0 unless the consumer joined mid-stream", () => {
  const late = publisher(PUBLISHER_A, 40n);
  const messages = [
    late.insert(1n, 1n),
    late.commit(1n),
    late.begin(2n),
    late.insert(2n, 2n),
    late.commit(2n),
  ];
  assert.deepEqual(
    violations(messages).map((v) => v.kind),
    ["sequence-gap", "outside-batch"],
  );
  assert.deepEqual(violations(messages, new StreamValidator({ midStream: true })), []);
});

test("validator: mutations outside a batch, nested begins and foreign batch refs are violations", () => {
  const a = publisher(PUBLISHER_A);
  assert.deepEqual(
    violations([a.insert(1n, 1n)]).map((v) => v.kind),
    ["outside-batch"],
  );
  const b = publisher(PUBLISHER_B);
  assert.deepEqual(
    violations([
      b.begin(1n),
      b.begin(2n),
      b.insert(3n, 1n),
      b.commit(2n, OTHER_NODE),
      b.rollback(4n),
    ]).map((v) => v.kind),
    ["begin-inside-batch", "batch-mismatch", "batch-mismatch", "outside-batch"],
  );
});

test("validator: rows must fit the operation", () => {
  const a = publisher(PUBLISHER_A);
  const begin = a.begin(1n);
  const bad = a.insert(1n, 1n);
  if (bad.body.kind === "mutation") bad.body.mutation.operation = "DELETE";
  const found = violations([begin, bad]);
  assert.equal(found[0]?.kind, "row-shape");
  assert.match(found[0]?.description ?? "", /DELETE with no old row and an new row/);
});

test("validator: publishers are checked independently", () => {
  const a = publisher(PUBLISHER_A);
  const b = publisher(PUBLISHER_B);
  assert.deepEqual(
    violations([a.begin(1n), b.begin(1n), a.insert(1n, 1n), b.insert(1n, 1n), b.commit(1n)]),
    [],
  );
});

test("validator: accept throws DECODE_ERROR naming the publisher and sequence", () => {
  const validator = new StreamValidator();
  const a = publisher(PUBLISHER_A);
  assert.throws(
    () => validator.accept(a.commit(1n)),
    (e: unknown) =>
      e instanceof PgshovelError &&
      e.code === "DECODE_ERROR" &&
      e.message.includes(`publisher ${PUBLISHER_A} message 0`),
  );
});

test("assembler: the sample stream yields batch 7 and then batch 8 once, from the new publisher", () => {
  const assembler = new BatchAssembler();
  const batches = pushAll(assembler, SAMPLE_STREAM);
  assert.deepEqual(
    batches.map((b) => [b.id, b.mutations.map((m) => m.id)]),
    [
      [7n, [101n, 102n, 103n]],
      [8n, [104n]],
    ],
  );
  assert.equal(batches[0]?.node, NODE);
  assert.deepEqual(assembler.stats, { delivered: 2, duplicates: 0, rolledBack: 1, abandoned: 0 });
  assert.equal(assembler.lastDelivered(NODE), 8n);
});

test("assembler: a rolled-back batch is discarded", () => {
  const a = publisher(PUBLISHER_A);
  const assembler = new BatchAssembler();
  assert.deepEqual(pushAll(assembler, [a.begin(1n), a.insert(1n, 1n), a.rollback(1n)]), []);
  const [batch] = pushAll(assembler, [a.begin(1n), a.insert(1n, 2n), a.commit(1n)]);
  assert.deepEqual(
    batch?.mutations.map((m) => m.id),
    [2n],
  );
});

test("assembler: a batch re-sent after a crash by a new publisher is dropped when already delivered", () => {
  const a = publisher(PUBLISHER_A);
  const b = publisher(PUBLISHER_B);
  const assembler = new BatchAssembler();
  // A commits batch 5 but dies before PgQ hears of it; B re-sends batch 5 whole, then goes on.
  const first = pushAll(assembler, [a.begin(5n), a.insert(5n, 1n), a.insert(5n, 2n), a.commit(5n)]);
  const second = pushAll(assembler, [
    b.begin(5n),
    b.insert(5n, 1n),
    b.insert(5n, 2n),
    b.commit(5n),
    b.begin(6n),
    b.insert(6n, 3n),
    b.commit(6n),
  ]);
  assert.deepEqual(
    first.map((x) => x.id),
    [5n],
  );
  assert.deepEqual(
    second.map((x) => x.id),
    [6n],
  );
  assert.equal(assembler.stats.duplicates, 1);
});

test("assembler: a batch cut short by a crash is delivered once, whole, from the new publisher", () => {
  const a = publisher(PUBLISHER_A);
  const b = publisher(PUBLISHER_B);
  const assembler = new BatchAssembler();
  const batches = pushAll(assembler, [
    a.begin(5n),
    a.insert(5n, 1n),
    b.begin(5n),
    b.insert(5n, 1n),
    b.insert(5n, 2n),
    b.commit(5n),
  ]);
  assert.deepEqual(
    batches.map((x) => [x.id, x.mutations.map((m) => m.id)]),
    [[5n, [1n, 2n]]],
  );
  assert.equal(assembler.stats.abandoned, 1);
});

test("assembler: deduplication is per node, and restores from stored progress", () => {
  const a = publisher(PUBLISHER_A);
  const assembler = new BatchAssembler({ delivered: [[NODE, 10n]] });
  const batches = pushAll(assembler, [
    a.begin(9n),
    a.insert(9n, 1n),
    a.commit(9n),
    a.begin(9n, OTHER_NODE),
    a.commit(9n, OTHER_NODE),
    a.begin(11n),
    a.commit(11n),
  ]);
  assert.deepEqual(
    batches.map((x) => [x.node, x.id]),
    [
      [OTHER_NODE, 9n],
      [NODE, 11n],
    ],
  );
  assert.equal(assembler.stats.duplicates, 1);
});

test("assembler: a stream that breaks the contract throws DECODE_ERROR", () => {
  const a = publisher(PUBLISHER_A);
  const assembler = new BatchAssembler();
  assembler.push(a.begin(1n));
  a.skip();
  assert.throws(
    () => assembler.push(a.commit(1n)),
    (e: unknown) =>
      e instanceof PgshovelError &&
      e.code === "DECODE_ERROR" &&
      /expected sequence 1, got 2/.test(e.message),
  );
});

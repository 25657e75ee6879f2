/**
 * The bridge from the streaming assembler to a replica's batches, driven by scripted
 * message sequences: order, rollbacks and re-sends, duplicates, draining, bounded reading.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isPgshovelError } from "../../../src/errors.js";
import type { FeedBatch } from "../../../src/replication/feed.js";
import { FeedBridge } from "../../../src/replication/feeds/bridge.js";
import type { Message, Mutation, PositionedMessage } from "../../../src/stream/types.js";
import { OTHER_NODE, publisher } from "../stream/builders.js";
import { PUBLISHER_A, PUBLISHER_B } from "../stream/sample.js";

/** A source that hands out `messages` one at a time (position: index + 1), counting pulls. */
class ScriptedSource implements AsyncIterable<PositionedMessage> {
  pulled = 0;
  #waiting: (() => void) | undefined;
  #held: Message[] = [];

  constructor(
    private readonly messages: Message[],
    /** Keep waiting at the end instead of ending (a followed file, a topic). */
    private readonly follow = false,
  ) {}

  /** Adds messages after the script (a followed source growing). */
  append(...messages: Message[]): void {
    this.#held.push(...messages);
    this.#waiting?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<PositionedMessage> {
    let index = 0;
    for (;;) {
      if (index >= this.messages.length && this.#held.length > 0) {
        this.messages.push(...this.#held.splice(0));
      }
      if (index < this.messages.length) {
        this.pulled++;
        const message = this.messages[index++]!;
        yield { message, next: BigInt(index) };
        continue;
      }
      if (!this.follow) return;
      await new Promise<void>((resolve) => {
        this.#waiting = resolve;
      });
    }
  }
}

const bridgeOver = (source: AsyncIterable<PositionedMessage>, midStream = false) =>
  new FeedBridge(source, { description: "the test stream", midStream });

async function ids(mutations: AsyncIterable<Mutation>): Promise<bigint[]> {
  const seen: bigint[] = [];
  for await (const m of mutations) seen.push(m.id);
  return seen;
}

/** Applies every batch: reads its mutations, then calls done(). */
async function applyAll(bridge: FeedBridge): Promise<[bigint, bigint[], bigint][]> {
  const applied: [bigint, bigint[], bigint][] = [];
  for await (const batch of bridge.batches()) {
    applied.push([batch.id, await ids(batch.mutations), batch.position!]);
    await batch.done();
  }
  return applied;
}

async function next(iterator: AsyncIterator<FeedBatch>): Promise<FeedBatch> {
  const result = await iterator.next();
  assert.ok(!result.done, "a batch");
  return result.value;
}

const retryableRollback = (error: unknown) => {
  assert.ok(isPgshovelError(error), String(error));
  assert.equal(error.code, "SINK_ERROR");
  assert.equal(error.retryable, true);
  return true;
};

describe("feed bridge", () => {
  test("batches in order, each whole, with the position after its commit", async () => {
    const a = publisher(PUBLISHER_A);
    const source = new ScriptedSource([
      a.begin(1n),
      a.insert(1n, 10n),
      a.insert(1n, 11n),
      a.commit(1n),
      a.begin(2n),
      a.commit(2n),
      a.begin(3n),
      a.insert(3n, 12n),
      a.commit(3n),
    ]);
    assert.deepEqual(await applyAll(bridgeOver(source)), [
      [1n, [10n, 11n], 4n],
      [2n, [], 6n],
      [3n, [12n], 9n],
    ]);
  });

  test("a rollback mid-batch makes its mutations throw, retryable; the re-sent batch comes whole", async () => {
    const a = publisher(PUBLISHER_A);
    const source = new ScriptedSource([
      a.begin(1n),
      a.insert(1n, 10n),
      a.insert(1n, 11n),
      a.rollback(1n),
      a.begin(1n),
      a.insert(1n, 10n),
      a.insert(1n, 11n),
      a.insert(1n, 12n),
      a.commit(1n),
    ]);
    const batches = bridgeOver(source).batches()[Symbol.asyncIterator]();
    const first = await next(batches);
    const read: bigint[] = [];
    await assert.rejects(async () => {
      for await (const m of first.mutations) read.push(m.id);
    }, retryableRollback);
    assert.deepEqual(read, [10n, 11n]);
    // No done(): the applier rolled back. The stream settled the batch itself.
    const again = await next(batches);
    assert.equal(again.id, 1n);
    assert.deepEqual(await ids(again.mutations), [10n, 11n, 12n]);
    assert.equal(again.position, 9n);
    await again.done();
    assert.equal((await batches.next()).done, true);
  });

  test("a new relay beginning the batch again abandons the open one; it comes whole from the new relay", async () => {
    const a = publisher(PUBLISHER_A);
    const b = publisher(PUBLISHER_B);
    const source = new ScriptedSource([
      a.begin(1n),
      a.insert(1n, 10n),
      a.commit(1n),
      a.begin(2n),
      a.insert(2n, 20n),
      // a dies here; b sends batch 2 again, from its begin
      b.begin(2n),
      b.insert(2n, 20n),
      b.insert(2n, 21n),
      b.commit(2n),
    ]);
    const batches = bridgeOver(source).batches()[Symbol.asyncIterator]();
    const first = await next(batches);
    assert.deepEqual(await ids(first.mutations), [10n]);
    await first.done();
    const abandoned = await next(batches);
    await assert.rejects(ids(abandoned.mutations), (error: unknown) => {
      retryableRollback(error);
      assert.match((error as Error).message, /abandoned/);
      return true;
    });
    const resent = await next(batches);
    assert.equal(resent.id, 2n);
    assert.deepEqual(await ids(resent.mutations), [20n, 21n]);
    await resent.done();
  });

  test("a batch re-sent after its commit is not handed out again", async () => {
    const a = publisher(PUBLISHER_A);
    const b = publisher(PUBLISHER_B);
    const source = new ScriptedSource([
      a.begin(1n),
      a.insert(1n, 10n),
      a.commit(1n),
      // a died before PgQ heard of the commit: b sends batch 1 again, then batch 2
      b.begin(1n),
      b.insert(1n, 10n),
      b.commit(1n),
      b.begin(2n),
      b.insert(2n, 20n),
      b.commit(2n),
    ]);
    assert.deepEqual(await applyAll(bridgeOver(source)), [
      [1n, [10n], 3n],
      [2n, [20n], 9n],
    ]);
  });

  test("a batch the applier skips is drained before the next is handed out", async () => {
    const a = publisher(PUBLISHER_A);
    const messages = [a.begin(1n)];
    for (let id = 1n; id <= 50n; id++) messages.push(a.insert(1n, id));
    messages.push(a.commit(1n), a.begin(2n), a.insert(2n, 100n), a.commit(2n));
    const source = new ScriptedSource(messages);
    const batches = bridgeOver(source).batches()[Symbol.asyncIterator]();
    const skipped = await next(batches);
    assert.equal(source.pulled, 1, "only its begin was read");
    await skipped.done(); // found applied before: its mutations are never read
    const second = await next(batches);
    assert.equal(second.id, 2n);
    assert.equal(source.pulled, 53, "the skipped batch was read through to its commit");
    assert.throws(() => second.position, /known only once its mutations were read/);
    assert.deepEqual(await ids(second.mutations), [100n]);
    assert.equal(second.position, 55n);
    await assert.rejects(ids(skipped.mutations), /read once, before the next batch/);
  });

  test("reading is bounded: a mutation is taken from the source only when the applier asks for it", async () => {
    const a = publisher(PUBLISHER_A);
    const count = 10_000;
    const messages = [a.begin(1n)];
    for (let id = 1; id <= count; id++) messages.push(a.insert(1n, BigInt(id)));
    messages.push(a.commit(1n));
    const source = new ScriptedSource(messages);
    const batches = bridgeOver(source).batches()[Symbol.asyncIterator]();
    const batch = await next(batches);
    let read = 0;
    let mostAhead = 0;
    for await (const _ of batch.mutations) {
      read++;
      // begin + the mutations handed over so far: nothing waits in between
      mostAhead = Math.max(mostAhead, source.pulled - (read + 1));
    }
    assert.equal(read, count);
    assert.equal(mostAhead, 0);
    assert.equal(source.pulled, count + 2);
  });

  test("joining mid-stream: what comes before the first begin is passed over", async () => {
    const a = publisher(PUBLISHER_A, 40n);
    const source = new ScriptedSource([
      a.insert(7n, 70n),
      a.commit(7n),
      a.begin(8n),
      a.insert(8n, 80n),
      a.commit(8n),
    ]);
    assert.deepEqual(await applyAll(bridgeOver(source, true)), [[8n, [80n], 5n]]);
    const strict = bridgeOver(new ScriptedSource([a.begin(9n), a.commit(9n)]));
    await assert.rejects(applyAll(strict), (error: unknown) =>
      isPgshovelError(error, "DECODE_ERROR"),
    );
  });

  test("an input that ends inside a batch: its mutations throw STOPPED and the batches end", async () => {
    const a = publisher(PUBLISHER_A);
    const source = new ScriptedSource([a.begin(1n), a.insert(1n, 10n)]);
    const batches = bridgeOver(source).batches()[Symbol.asyncIterator]();
    const batch = await next(batches);
    await assert.rejects(ids(batch.mutations), (error: unknown) => {
      assert.ok(isPgshovelError(error, "STOPPED"), String(error));
      assert.match(error.message, /ended inside batch 1/);
      return true;
    });
    assert.equal((await batches.next()).done, true);
  });

  test("a batch neither done nor rolled back is not passed over: POSITION_LOST", async () => {
    const a = publisher(PUBLISHER_A);
    const source = new ScriptedSource([
      a.begin(1n),
      a.insert(1n, 10n),
      a.commit(1n),
      a.begin(2n),
      a.commit(2n),
    ]);
    const bridge = bridgeOver(source);
    const batches = bridge.batches()[Symbol.asyncIterator]();
    const batch = await next(batches);
    assert.deepEqual(await ids(batch.mutations), [10n]);
    // the target failed to commit: no done()
    await assert.rejects(batches.next(), (error: unknown) => {
      assert.ok(isPgshovelError(error, "POSITION_LOST"), String(error));
      assert.equal(error.retryable, false);
      assert.match(error.message, /batch 1 .* was handed out but not applied/);
      return true;
    });
    await assert.rejects(applyAll(bridge), (error: unknown) =>
      isPgshovelError(error, "POSITION_LOST"),
    );
  });

  test("iterated again after a rollback or an abort, it goes on where it stopped", async () => {
    const a = publisher(PUBLISHER_A);
    const source = new ScriptedSource([a.begin(1n), a.insert(1n, 10n), a.rollback(1n)], true);
    const bridge = bridgeOver(source);
    const controller = new AbortController();
    const first = bridge.batches(controller.signal)[Symbol.asyncIterator]();
    const rolledBack = await next(first);
    await assert.rejects(ids(rolledBack.mutations), retryableRollback);
    // the applier gave up on the iteration; a new one goes on
    await first.return(undefined);
    const second = bridge.batches(controller.signal)[Symbol.asyncIterator]();
    const waiting = second.next();
    // the source has nothing more: abort the wait, then come back with a new signal
    controller.abort();
    assert.equal((await waiting).done, true);
    source.append(a.begin(1n), a.insert(1n, 10n), a.commit(1n));
    const third = bridge.batches()[Symbol.asyncIterator]();
    const resent = await next(third);
    assert.deepEqual(await ids(resent.mutations), [10n]);
    assert.equal(resent.position, 6n);
    await resent.done();
    await bridge.close();
  });

  test("a batch of another node going on after a begin abandoned it is refused", async () => {
    const a = publisher(PUBLISHER_A);
    const b = publisher(PUBLISHER_B);
    const source = new ScriptedSource([
      a.begin(1n),
      a.insert(1n, 10n),
      b.begin(5n, OTHER_NODE),
      b.insert(5n, 50n, OTHER_NODE),
      b.commit(5n, OTHER_NODE),
      a.insert(1n, 11n),
      a.commit(1n),
    ]);
    const batches = bridgeOver(source).batches()[Symbol.asyncIterator]();
    const stale = await next(batches);
    await assert.rejects(ids(stale.mutations), retryableRollback);
    const other = await next(batches);
    assert.equal(other.node, OTHER_NODE);
    assert.deepEqual(await ids(other.mutations), [50n]);
    await other.done();
    await assert.rejects(batches.next(), (error: unknown) => {
      assert.ok(isPgshovelError(error, "DECODE_ERROR"), String(error));
      assert.match(error.message, /went on after a batch of another node began/);
      return true;
    });
  });
});

import { randomUUID } from "node:crypto";
import { describeError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Sink, WriteGuard } from "../sinks/sink.js";
import { timestampFromDate } from "../stream/timestamp.js";
import type { BatchRef, Body, Message } from "../stream/types.js";

/** Wraps one body of the batch being published into a message with the next header. */
export type Stamp = (body: Body) => Message;

/**
 * The relay's voice in the stream: it stamps every message with the publisher
 * id (one per relay process), a sequence number contiguous per publisher and a
 * timestamp, and hands batches to the sink. When a batch fails part way it
 * keeps the stream well formed: consumers of a transactional sink never see the
 * batch, so its sequence numbers are used again; other sinks get a `rollback`.
 */
export class Publisher {
  /** The publisher id in every header. */
  readonly id = randomUUID();
  private sequence = 0n;
  // Formatting a timestamp per message is measurable at 100k+ messages/s: once per millisecond is enough.
  private stampMs = 0;
  private stampText = "";
  /** A batch abandoned in a plain sink whose rollback could not be written yet. */
  private unclosed: BatchRef | undefined;

  constructor(
    private readonly sink: Sink,
    private readonly logger: Logger,
  ) {}

  /** The sequence number of the last message stamped, or null before the first. */
  get lastSequence(): bigint | null {
    return this.sequence === 0n ? null : this.sequence - 1n;
  }

  /**
   * Asks the sink for the last batch whose commit it holds (when it can tell) and says
   * whether that is `batch`, which must then be finished rather than published again.
   * A commit of ours that landed although its publish failed moves our sequence past it.
   */
  async sinkHolds(batch: BatchRef): Promise<boolean> {
    const last = await this.sink.lastCommittedBatch?.();
    if (!last) return false;
    if (last.header.publisher === this.id) this.sequence = last.header.sequence + 1n;
    return last.batch.node === batch.node && last.batch.id === batch.id;
  }

  /**
   * Publishes one batch: `messages` yields its begin, mutations and commit, each made
   * with the stamp it is given. Resolves once the sink acknowledged the commit. The sink
   * writes nothing once `guard` says so; a rollback it could not write then is written
   * before the next batch.
   */
  async publish(
    batch: BatchRef,
    messages: (stamp: Stamp) => AsyncIterable<Message>,
    guard?: WriteGuard,
  ): Promise<void> {
    if (this.unclosed) await this.sendRollback(this.unclosed, guard);
    const firstSequence = this.sequence;
    let committed = false;
    const stamp: Stamp = (body) => {
      if (body.kind === "commit") committed = true;
      return this.message(batch, body);
    };
    try {
      await this.sink.publishBatch(batch, messages(stamp), guard);
    } catch (error) {
      if (this.sink.transactional) {
        // Nothing of this batch is visible downstream: its sequence numbers are free again.
        this.sequence = firstSequence;
      } else if (this.sequence !== firstSequence && !(committed && guard?.signal.aborted)) {
        // Stopped by the guard after the sink took the commit, the batch is closed in the
        // stream: the commit was written (its fsync abandoned) or is kept to be written
        // first. A rollback would follow a commit; the batch is sent again whole instead,
        // and consumers drop the copy they saw. A sink that took nothing of the batch (it
        // refused at once, say with its guard already aborted) gets no rollback either: the
        // stream holds no begin for it to close.
        await this.sendRollback(batch, guard).catch((rollbackError) => {
          if (guard?.signal.aborted) return; // written once the relay may write again
          this.logger.warn(
            { err: describeError(rollbackError) },
            "could not publish the rollback of an abandoned batch",
          );
        });
      }
      throw error;
    }
  }

  /**
   * Publishes the rollback of `batch`. One the sink did not even take (it refused the
   * publish outright) is sent again before the next batch; one it took is written or
   * kept by the sink to be written first.
   */
  private async sendRollback(batch: BatchRef, guard: WriteGuard | undefined): Promise<void> {
    this.unclosed = batch;
    const before = this.sequence;
    try {
      await this.sink.publishBatch(batch, rollback(this.stamper(batch)), guard);
    } finally {
      if (this.sequence !== before) this.unclosed = undefined;
    }
  }

  private stamper(batch: BatchRef): Stamp {
    return (body) => this.message(batch, body);
  }

  private message(batch: BatchRef, body: Body): Message {
    const now = Date.now();
    if (now !== this.stampMs) {
      this.stampMs = now;
      this.stampText = timestampFromDate(new Date(now));
    }
    const header = { publisher: this.id, sequence: this.sequence, timestamp: this.stampText };
    this.sequence++;
    return { header, batch, body };
  }
}

// Stamped only when the sink takes it: a sink that fails first leaves no gap in the sequence.
async function* rollback(stamp: Stamp): AsyncGenerator<Message> {
  yield stamp({ kind: "rollback" });
}

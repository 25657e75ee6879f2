import type { BatchRef, Header, Message } from "../stream/types.js";

/** The commit a sink holds last: its batch and the header it was published with. */
export interface CommittedMark {
  batch: BatchRef;
  header: Header;
}

/**
 * What a sink asks before it writes on a leader's behalf (see `LeaderLease` in
 * src/coordination/): once the leader may no longer write — ZooKeeper silent for the
 * bound, the session expired, the candidacy gone — nothing more reaches the sink's
 * destination.
 */
export interface WriteGuard {
  /** Aborts, with the reason as a PgshovelError, once the writer must stop. */
  readonly signal: AbortSignal;
  /**
   * Throws that reason once the writer must stop. Called right before each write, fsync
   * or commit; it reads the clock, so it holds even when the abort event has not run yet.
   */
  check(): void;
}

/**
 * `work`'s outcome, or the guard's reason as soon as its signal aborts: a sink waiting on a
 * write, an fsync or a commit stops waiting at once (the operation itself was issued
 * while writing was still allowed, and may still complete).
 */
export async function untilRevoked<T>(work: Promise<T>, guard: WriteGuard | undefined): Promise<T> {
  if (guard === undefined) return work;
  const { signal } = guard;
  let onAbort: (() => void) | undefined;
  const revoked = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([work, revoked]);
  } finally {
    signal.removeEventListener("abort", onAbort!);
    // Abandoned, it may still fail: that failure is no one's any more.
    work.catch(() => {});
    revoked.catch(() => {});
  }
}

/**
 * Where a relay publishes its stream. A sink receives one batch at a time:
 * `begin`, mutations, then `commit` or `rollback`, in order.
 */
export interface Sink {
  /** Short description for logs, e.g. "file /tmp/x.jsonl" or "kafka topic c.s.mutations". */
  readonly description: string;
  /**
   * True when messages of a batch that did not commit are never seen by
   * consumers (Kafka transactions): the relay then reuses their sequence numbers.
   */
  readonly transactional: boolean;
  /** Prepares the sink (open the file, create or check the topic, init the producer). */
  open(): Promise<void>;
  /**
   * Publishes the messages of one batch. Resolves only when the final
   * message (commit) is durable: the file fsynced, the Kafka transaction
   * committed. Rejects when anything fails; the relay then retries the
   * whole batch. With a `guard`, the sink checks it before every write, fsync
   * or commit and stops waiting when its signal aborts: nothing more of the
   * batch reaches the destination (a Kafka transaction is aborted).
   */
  publishBatch(
    batch: BatchRef,
    messages: AsyncIterable<Message>,
    guard?: WriteGuard,
  ): Promise<void>;
  /**
   * The last batch whose commit the sink holds durably, when it can tell
   * (Kafka reads it back from the topic); used to finish a batch published
   * before a crash instead of publishing it again.
   */
  lastCommittedBatch?(): Promise<CommittedMark | undefined>;
  /** Flushes and releases everything. */
  close(): Promise<void>;
}

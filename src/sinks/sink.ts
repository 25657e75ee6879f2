import type { BatchRef, Header, Message } from "../stream/types.js";

/** The commit a sink holds last: its batch and the header it was published with. */
export interface CommittedMark {
  batch: BatchRef;
  header: Header;
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
   * whole batch.
   */
  publishBatch(batch: BatchRef, messages: AsyncIterable<Message>): Promise<void>;
  /**
   * The last batch whose commit the sink holds durably, when it can tell
   * (Kafka reads it back from the topic); used to finish a batch published
   * before a crash instead of publishing it again.
   */
  lastCommittedBatch?(): Promise<CommittedMark | undefined>;
  /** Flushes and releases everything. */
  close(): Promise<void>;
}

/**
 * Where a replica's stream comes from — the set's PgQ queue, a Kafka topic, a stream
 * file or stdin — seen the same way by the replication worker: batches in order, each
 * with the position to resume after it.
 */
import type { StreamPosition } from "../stream/types.js";
import type { BatchToApply } from "./apply.js";

/** One source batch as a feed delivers it. */
export interface FeedBatch extends BatchToApply {
  /**
   * Where the feed resumes after this batch (a file offset, a Kafka offset; for the queue,
   * where PgQ keeps the position, the batch's end tick, to check it by), stored in the
   * target in the batch's own transaction; null when the feed has none.
   */
  position: StreamPosition | null;
  /**
   * Called once the target has committed the batch, or found it applied before: the queue
   * feed finishes the PgQ batch here. Mutations the applier did not read (a skipped batch)
   * are drained by the feed itself before the next batch.
   */
  done(): Promise<void>;
  /** True once the stream itself rolled the batch back; it comes again whole, next. */
  readonly discarded?: boolean;
}

/** A replica's stream, whatever carries it. */
export interface ReplicaFeed {
  /** For logs and errors: "queue pgshovel_c_s as pgshovel_replica_…", "kafka topic c.s.mutations", a path. */
  readonly description: string;
  /**
   * Takes the stream position a new replica starts from, BEFORE the bootstrap snapshot is
   * taken (the queue registers its consumer; Kafka notes the topic's last stable offset; a
   * file its last complete batch boundary). Returns it — for the queue the tick its new
   * consumer starts after — or null when the feed has none.
   */
  mark(): Promise<StreamPosition | null>;
  /**
   * The batches from `from` (the position stored with the last applied batch, or the mark),
   * in order, until `signal` aborts; a finite input (a file without follow, stdin) ends the
   * iteration at its end. A position the source no longer holds is an error
   * (`POSITION_LOST`), never a silent skip.
   */
  batches(from: StreamPosition | null, signal: AbortSignal): AsyncIterable<FeedBatch>;
  /** Releases connections and readers. */
  close(): Promise<void>;
}

import type { Mutation, Tick } from "../stream/types.js";

/** A batch the source has ready: its id and the ids of the two ticks that bound it. */
export interface BatchInfo {
  id: bigint;
  startTickId: bigint;
  endTickId: bigint;
}

/** The consumer's lag and backlog as the source reports them, for diagnostics. */
export interface ConsumerInfo {
  lagSeconds: number | null;
  pendingEvents: string | null;
}

/**
 * Where a relay reads a set's batches (PgQ: `PgqSource`). One batch at a time:
 * {@link nextBatch} returns the same batch until it is finished, so a batch that
 * was not finished is read again whole.
 */
export interface BatchSource {
  /** Fields that name the source in log lines, e.g. `{ queue: "pgshovel_c_s" }`. */
  readonly labels: Readonly<Record<string, string>>;
  /** The source database's node id; valid after {@link open}. */
  readonly node: string;
  /** Connects and makes sure the consumer exists. */
  open(): Promise<void>;
  /** The next batch, or undefined when none is ready. */
  nextBatch(): Promise<BatchInfo | undefined>;
  /** Both ticks of a batch, with their snapshots. */
  ticks(batch: BatchInfo): Promise<{ start: Tick; end: Tick }>;
  /** The batch's mutations in event order, in runs. */
  events(batchId: bigint): AsyncIterable<readonly Mutation[]>;
  /** Marks a batch done: {@link nextBatch} moves on. Only after the sink acknowledged it. */
  finish(batchId: bigint): Promise<void>;
  /** Cuts a batch now if events wait, instead of waiting for the ticker. */
  tick(): Promise<void>;
  /** Lag and backlog of this consumer, when known. */
  consumerInfo(): Promise<ConsumerInfo | undefined>;
  /** Releases the connection; never fails. */
  close(): Promise<void>;
}

/** Opens a batch source on a set's database; called again when the set moves to another one. */
export type BatchSourceFactory = (dsn: string) => BatchSource;

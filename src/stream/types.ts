/**
 * The domain types of the pgshovel stream. Pure data: nothing here imports I/O,
 * so the relay, the sinks and consumers can all share them.
 *
 * 64-bit integers are `bigint`. Times are {@link Timestamp} strings.
 */

/** An RFC 3339 UTC time with exactly six fractional digits, e.g. "2026-11-24T03:45:27.123456Z". */
export type Timestamp = string;

/** A UUID in canonical lowercase 8-4-4-4-12 form. */
export type Uuid = string;

/** The kind of change a mutation records. */
export type Operation = "INSERT" | "UPDATE" | "DELETE" | "TRUNCATE";

/** Every {@link Operation}, in protobuf enum order. */
export const OPERATIONS: readonly Operation[] = ["INSERT", "UPDATE", "DELETE", "TRUNCATE"];

/**
 * One column value: SQL NULL is `null`, bool is a boolean, int2/int4 are numbers
 * (32-bit integers), every other type is PostgreSQL's text output of the value.
 */
export type Value = null | boolean | number | string;

/** A row: column name to value. */
export type Row = Record<string, Value>;

/** Identifies the sender of a message and orders its messages. */
export interface Header {
  /** A UUID chosen by each relay process when it starts. */
  publisher: Uuid;
  /** Contiguous from 0 for each publisher. */
  sequence: bigint;
  /** When the relay built the message. */
  timestamp: Timestamp;
}

/** The PgQ batch a message belongs to; consumers deduplicate by (node, id). */
export interface BatchRef {
  /** The node id of the source database. */
  node: Uuid;
  /** The PgQ batch id. */
  id: bigint;
}

/** A PostgreSQL transaction snapshot, as stored with each PgQ tick. */
export interface Snapshot {
  /** Lowest transaction id still running. */
  xmin: bigint;
  /** One past the highest completed transaction id. */
  xmax: bigint;
  /** Transactions in [xmin, xmax) still running, ascending. */
  xip: bigint[];
}

/** A PgQ tick: its id, its snapshot and when it was taken. */
export interface Tick {
  /** The PgQ tick id. */
  id: bigint;
  /** The snapshot taken at the tick. */
  snapshot: Snapshot;
  /** When the tick was taken. */
  time: Timestamp;
}

/** Opens a batch: the transactions that committed between two ticks. */
export interface Begin {
  /** The tick the batch starts after. */
  start: Tick;
  /** The tick the batch ends at. */
  end: Tick;
}

/**
 * Key of an optional member of {@link Mutation}: its `old` and `new` rows as JSON text,
 * the two members of an object (`"old": …, "new": …`), in the JSON codec's value
 * mapping. The relay sets it from the capture trigger's own JSON so that the JSON codec
 * copies the rows instead of serializing them again. Whoever sets it vouches that it
 * says exactly what `old` and `new` say.
 */
export const ROWS_JSON: unique symbol = Symbol("pgshovel.rowsJson");

/** One captured row change. */
export interface Mutation {
  /** The event id: a value of the queue's PgQ event sequence, unique within the queue (a packed event of statement mode holds one per row). */
  id: bigint;
  /** The table's schema. */
  schema: string;
  /** The table's name. */
  table: string;
  /** What happened to the row. */
  operation: Operation;
  /** The primary key column names. */
  identity: string[];
  /** The row before the change (UPDATE, DELETE), otherwise null. */
  old: Row | null;
  /** The row after the change (INSERT, UPDATE), otherwise null. */
  new: Row | null;
  /** The source transaction id (64-bit txid). */
  transaction: bigint;
  /** When the change was captured. */
  time: Timestamp;
  /** The rows as JSON text, when the producer of the mutation has it (see {@link ROWS_JSON}). */
  readonly [ROWS_JSON]?: string;
}

/** The body of a message: exactly one of begin, mutation, commit, rollback. */
export type Body =
  | { kind: "begin"; begin: Begin }
  | { kind: "mutation"; mutation: Mutation }
  | { kind: "commit" }
  | { kind: "rollback" };

/** The kind of a message body. */
export type BodyKind = Body["kind"];

/** One message of the stream. */
export interface Message {
  /** Sender and order. */
  header: Header;
  /** The batch the message belongs to. */
  batch: BatchRef;
  /** What the message says. */
  body: Body;
}

/**
 * Where a reader resumes after a message: the byte offset just past it in a file, the
 * offset of the next Kafka record in a topic. Passed back as a reader's `from`, it
 * continues with the message that followed; a consumer stores it with its own writes.
 */
export type StreamPosition = bigint;

/** A message as a reader delivered it, with the position just after it. */
export interface PositionedMessage {
  message: Message;
  /** Resume here to read what follows this message. */
  next: StreamPosition;
}

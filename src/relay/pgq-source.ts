import { setImmediate as setImmediatePromise } from "node:timers/promises";
import pg from "pg";
import { dbNames, ident } from "../config/names.js";
import { hidePassword } from "../config/set-config.js";
import { closeQuietly, convertPgError, query } from "../database/postgres.js";
import { PgshovelError } from "../errors.js";
import type { Snapshot, Tick, Timestamp } from "../stream/types.js";

/** A batch PgQ has ready for a consumer. */
export interface BatchInfo {
  id: bigint;
  startTickId: bigint;
  endTickId: bigint;
}

/**
 * One event row of a batch, with PgQ's column names (a FETCH returns them so;
 * keeping them spares a copy per event). What the capture trigger puts in each
 * column: src/capture/sql.ts.
 */
export interface QueueEvent {
  ev_id: string;
  /** timestamptz as PostgreSQL prints it. */
  ev_time: string;
  ev_txid: string;
  /** The operation. */
  ev_type: string;
  /** `{"old" : row, "new" : row}` as JSON text. */
  ev_data: string;
  /** The table's schema. */
  ev_extra1: string;
  /** The table's name. */
  ev_extra2: string;
  /** The set's configuration version. */
  ev_extra3: string;
  /** The identity column names as a JSON array. */
  ev_extra4: string;
}

/** Consumer lag and backlog as PgQ reports them. */
export interface ConsumerInfo {
  lagSeconds: number | null;
  lastSeenSeconds: number | null;
  pendingEvents: string | null;
}

// int8 stays text (converted to bigint where needed); timestamptz stays text (microseconds kept).
const TEXT = (value: string) => value;
const types = {
  getTypeParser: (oid: number, format?: "text" | "binary") => {
    if (oid === 20 || oid === 1184 || oid === 1114) return TEXT;
    return pg.types.getTypeParser(oid, format);
  },
};

/** Converts PostgreSQL's ISO timestamptz output in UTC ("2026-11-24 03:45:27.1234+00") to a stream Timestamp. */
export function toTimestamp(text: string): Timestamp {
  const match = /^(\d{4,}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?\+00$/.exec(text);
  if (!match)
    throw new PgshovelError(
      "INTERNAL",
      `unexpected timestamp ${JSON.stringify(text)} from PostgreSQL`,
    );
  return `${match[1]}T${match[2]}.${(match[3] ?? "").padEnd(6, "0")}Z`;
}

/** Parses a txid_snapshot's text form "xmin:xmax:xip,xip". */
export function parseSnapshot(text: string): Snapshot {
  const [xmin, xmax, xip = ""] = text.split(":");
  return {
    xmin: BigInt(xmin!),
    xmax: BigInt(xmax!),
    xip: xip === "" ? [] : xip.split(",").map((x) => BigInt(x)),
  };
}

const CURSOR = "pgshovel_batch";
/** Aim for about this many bytes of event data per FETCH. */
const FETCH_BYTES = 8 << 20;
const MIN_FETCH = 16;
const FIRST_FETCH = 256;
/** Rows handed out between two turns of the event loop. */
const YIELD_EVERY = 500;

/** A set's PgQ queue as seen by one consumer: next batch, its events, finish. */
export class PgqSource {
  readonly queue: string;
  private client: pg.Client | undefined;
  private nodeId = "";

  constructor(
    readonly dsn: string,
    readonly cluster: string,
    readonly set: string,
    readonly consumer: string,
  ) {
    this.queue = dbNames.queue(cluster, set);
  }

  /** The source database's node id (valid after {@link open}). */
  get node(): string {
    return this.nodeId;
  }

  private get db(): pg.Client {
    if (!this.client) throw new PgshovelError("INTERNAL", "PgQ source used before open()");
    return this.client;
  }

  /** Connects, registers the consumer (new consumers start at the latest tick) and reads the node id. */
  async open(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.dsn,
      types,
      application_name: `pgshovel-relay ${this.set}`,
      connectionTimeoutMillis: 10_000,
    });
    client.on("error", () => {});
    try {
      await client.connect();
    } catch (error) {
      await closeQuietly(client);
      throw convertPgError(error, `connecting to ${hidePassword(this.dsn)}`);
    }
    this.client = client;
    await query(
      client,
      "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'",
      [],
      "configuring the session",
    );
    const queue = await query(
      client,
      "SELECT 1 FROM pgq.queue WHERE queue_name = $1",
      [this.queue],
      "looking up the queue",
    ).catch((error: PgshovelError) => {
      if (error.message.includes("[3F000]")) return { rowCount: 0 };
      throw error;
    });
    if (!queue.rowCount) {
      throw new PgshovelError(
        "NOT_FOUND",
        `queue ${this.queue} of set ${this.set} does not exist in ${hidePassword(this.dsn)}`,
        {
          hint: "the set's database objects are missing: `pgshovel set update` reinstalls them",
        },
      );
    }
    await query(
      client,
      "SELECT pgq.register_consumer($1, $2)",
      [this.queue, this.consumer],
      "registering the PgQ consumer",
    );
    const node = await query<{ id: string }>(
      client,
      `SELECT id::text FROM ${ident(dbNames.schema(this.cluster))}.node`,
      [],
      "reading the node id",
    );
    this.nodeId = node.rows[0]!.id;
  }

  /** The next batch, or undefined when PgQ has none ready. The same batch is returned until finished. */
  async nextBatch(): Promise<BatchInfo | undefined> {
    const result = await query<{
      batch_id: string | null;
      prev_tick_id: string;
      cur_tick_id: string;
    }>(
      this.db,
      "SELECT batch_id, prev_tick_id, cur_tick_id FROM pgq.next_batch_info($1, $2)",
      [this.queue, this.consumer],
      "asking PgQ for the next batch",
    );
    const row = result.rows[0];
    if (!row?.batch_id) return undefined;
    return {
      id: BigInt(row.batch_id),
      startTickId: BigInt(row.prev_tick_id),
      endTickId: BigInt(row.cur_tick_id),
    };
  }

  /** Both ticks of a batch, with their snapshots. */
  async ticks(batch: BatchInfo): Promise<{ start: Tick; end: Tick }> {
    const result = await query<{ tick_id: string; snapshot: string; tick_time: string }>(
      this.db,
      `SELECT t.tick_id, t.tick_snapshot::text AS snapshot, t.tick_time
         FROM pgq.tick t JOIN pgq.queue q ON q.queue_id = t.tick_queue
        WHERE q.queue_name = $1 AND t.tick_id IN ($2, $3)`,
      [this.queue, batch.startTickId.toString(), batch.endTickId.toString()],
      "reading the batch's ticks",
    );
    const byId = new Map(
      result.rows.map((r) => [
        BigInt(r.tick_id),
        {
          id: BigInt(r.tick_id),
          snapshot: parseSnapshot(r.snapshot),
          time: toTimestamp(r.tick_time),
        },
      ]),
    );
    const start = byId.get(batch.startTickId);
    const end = byId.get(batch.endTickId);
    if (!start || !end)
      throw new PgshovelError("INTERNAL", `ticks of batch ${batch.id} are missing from pgq.tick`);
    return { start, end };
  }

  /**
   * The batch's events in event order, fetched through a cursor `fetchSize`
   * rows at a time so that memory stays flat whatever the batch's size, and
   * handed out in runs of at most {@link YIELD_EVERY} rows.
   */
  async *events(batchId: bigint, fetchSize: number): AsyncGenerator<QueueEvent[]> {
    const db = this.db;
    const doing = `reading batch ${batchId}`;
    await query(db, "BEGIN", [], doing);
    let done = false;
    try {
      // get_batch_cursor returns up to quick_limit rows at once; fewer means the batch is
      // complete. Later FETCHes take `fetchSize` rows, fewer when rows are wide, so that
      // each stays near FETCH_BYTES and memory stays flat whatever the rows hold. The
      // next FETCH is sent before the current rows are handed out: PostgreSQL reads
      // ahead while the relay encodes and publishes.
      const firstSize = Math.min(fetchSize, FIRST_FETCH);
      const first = await query<QueueEvent>(
        db,
        `SELECT ev_id, ev_time, ev_txid, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4
           FROM pgq.get_batch_cursor($1, '${CURSOR}', $2)`,
        [batchId.toString(), firstSize],
        doing,
      );
      let size = fetchSize;
      const fetchMore = () => query<QueueEvent>(db, `FETCH ${size} FROM ${CURSOR}`, [], doing);
      const resize = (rows: QueueEvent[]) => {
        let bytes = 0;
        for (const row of rows) bytes += row.ev_data.length;
        const perRow = Math.max(1, bytes / Math.max(1, rows.length));
        size = Math.max(MIN_FETCH, Math.min(fetchSize, Math.floor(FETCH_BYTES / perRow)));
      };
      let rows = first.rows;
      let more = rows.length >= firstSize;
      for (;;) {
        if (more) resize(rows);
        const asked = size;
        const next = more ? fetchMore() : undefined;
        next?.catch(() => {});
        for (let i = 0; i < rows.length; i += YIELD_EVERY) {
          // Handing out rows is a run of microtasks that keeps the event loop from reading
          // the socket: PostgreSQL, producing the next fetch, would stall on a full socket.
          // A turn of the event loop between runs lets both sides work at once.
          if (i > 0) await setImmediatePromise();
          yield rows.length <= YIELD_EVERY ? rows : rows.slice(i, i + YIELD_EVERY);
        }
        if (!next) break;
        rows = (await next).rows;
        more = rows.length >= asked;
      }
      done = true;
    } finally {
      await query(db, done ? "COMMIT" : "ROLLBACK", [], doing).catch(() => {});
    }
  }

  /** Marks a batch done for this consumer; PgQ then moves on. */
  async finish(batchId: bigint): Promise<void> {
    await query(
      this.db,
      "SELECT pgq.finish_batch($1)",
      [batchId.toString()],
      `finishing batch ${batchId}`,
    );
  }

  /** Asks PgQ for a tick now (it makes one only when events are waiting). */
  async tick(): Promise<void> {
    await query(this.db, "SELECT pgq.ticker($1)", [this.queue], "ticking the queue");
  }

  /** Lag and backlog of this consumer. */
  async consumerInfo(): Promise<ConsumerInfo | undefined> {
    const result = await query<{
      lag: number | null;
      last_seen: number | null;
      pending_events: string | null;
    }>(
      this.db,
      `SELECT extract(epoch FROM lag)::float8 AS lag, extract(epoch FROM last_seen)::float8 AS last_seen, pending_events::text
         FROM pgq.get_consumer_info($1, $2)`,
      [this.queue, this.consumer],
      "reading consumer info",
    );
    const row = result.rows[0];
    return row
      ? { lagSeconds: row.lag, lastSeenSeconds: row.last_seen, pendingEvents: row.pending_events }
      : undefined;
  }

  async close(): Promise<void> {
    await closeQuietly(this.client);
    this.client = undefined;
  }
}

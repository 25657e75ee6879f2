import { setImmediate as setImmediatePromise } from "node:timers/promises";
import pg from "pg";
import { queueExists } from "../capture/install.js";
import { dbNames, ident } from "../config/names.js";
import { hidePassword } from "../config/set-config.js";
import { closeQuietly, connect, type PgClient, query } from "../database/postgres.js";
import { PgshovelError } from "../errors.js";
import { parseSnapshot } from "../stream/snapshot.js";
import type { Mutation, Tick } from "../stream/types.js";
import type { BatchInfo, BatchSource, ConsumerInfo } from "./batch-source.js";
import { QUEUE_EVENT_COLUMNS, type QueueEvent, toMutations, toTimestamp } from "./pgq-event.js";

/** What a {@link PgqSource} reads: the set's queue, as one consumer. */
export interface PgqSourceOptions {
  cluster: string;
  set: string;
  /** The PgQ consumer; registered on open when missing (it then starts at the latest tick). */
  consumer: string;
  /** Rows fetched from a batch's cursor at a time. */
  fetchSize: number;
}

// int8 stays text (converted to bigint where needed); timestamptz stays text (microseconds kept).
const TEXT = (value: string) => value;
const types = {
  getTypeParser: (oid: number, format?: "text" | "binary") => {
    if (oid === 20 || oid === 1184 || oid === 1114) return TEXT;
    return pg.types.getTypeParser(oid, format);
  },
};

const CURSOR = "pgshovel_batch";
/** Aim for about this many bytes of event data per FETCH. */
const FETCH_BYTES = 8 << 20;
const MIN_FETCH = 16;
const FIRST_FETCH = 256;
/**
 * Mutations handed out between two turns of the event loop (a packed event of statement
 * mode, up to 1 000 rows, is handed out whole).
 */
const YIELD_EVERY = 500;

/** A set's PgQ queue as seen by one consumer: next batch, its events, finish. */
export class PgqSource implements BatchSource {
  readonly queue: string;
  readonly labels: Readonly<Record<string, string>>;
  private client: PgClient | undefined;
  private nodeId = "";
  private readonly identities = new Map<string, string[]>();

  constructor(
    readonly dsn: string,
    private readonly options: PgqSourceOptions,
  ) {
    this.queue = dbNames.queue(options.cluster, options.set);
    this.labels = { queue: this.queue };
  }

  /** The source database's node id (valid after {@link open}). */
  get node(): string {
    return this.nodeId;
  }

  private get db(): PgClient {
    if (!this.client) throw new PgshovelError("INTERNAL", "PgQ source used before open()");
    return this.client;
  }

  /** Connects, registers the consumer (new consumers start at the latest tick) and reads the node id. */
  async open(): Promise<void> {
    const { cluster, set, consumer } = this.options;
    const client = await connect(this.dsn, { applicationName: `pgshovel-relay ${set}`, types });
    this.client = client;
    await query(
      client,
      "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'",
      [],
      "configuring the session",
    );
    if (!(await queueExists(client, this.queue))) {
      throw new PgshovelError(
        "NOT_FOUND",
        `queue ${this.queue} of set ${set} does not exist in ${hidePassword(this.dsn)}`,
        {
          hint: "the set's database objects are missing: `pgshovel set update` reinstalls them",
        },
      );
    }
    await query(
      client,
      "SELECT pgq.register_consumer($1, $2)",
      [this.queue, consumer],
      "registering the PgQ consumer",
    );
    const node = await query<{ id: string }>(
      client,
      `SELECT id::text FROM ${ident(dbNames.schema(cluster))}.node`,
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
      [this.queue, this.options.consumer],
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
   * The batch's mutations in event order, fetched through a cursor `fetchSize`
   * rows at a time so that memory stays flat whatever the batch's size, and
   * handed out in runs of at most {@link YIELD_EVERY}.
   */
  async *events(batchId: bigint): AsyncGenerator<Mutation[]> {
    const db = this.db;
    const { fetchSize } = this.options;
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
        `SELECT ${QUEUE_EVENT_COLUMNS} FROM pgq.get_batch_cursor($1, '${CURSOR}', $2)`,
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
        for (let i = 0; i < rows.length; ) {
          // Handing out rows is a run of microtasks that keeps the event loop from reading
          // the socket: PostgreSQL, producing the next fetch, would stall on a full socket.
          // A turn of the event loop between runs lets both sides work at once. Runs are
          // counted in mutations, not events: a packed event holds many.
          if (i > 0) await setImmediatePromise();
          const run: Mutation[] = [];
          while (i < rows.length && run.length < YIELD_EVERY) {
            for (const mutation of toMutations(rows[i]!, this.identities)) run.push(mutation);
            i++;
          }
          yield run;
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
    const result = await query<{ lag: number | null; pending_events: string | null }>(
      this.db,
      `SELECT extract(epoch FROM lag)::float8 AS lag, pending_events::text
         FROM pgq.get_consumer_info($1, $2)`,
      [this.queue, this.options.consumer],
      "reading consumer info",
    );
    const row = result.rows[0];
    return row ? { lagSeconds: row.lag, pendingEvents: row.pending_events } : undefined;
  }

  async close(): Promise<void> {
    await closeQuietly(this.client);
    this.client = undefined;
  }
}

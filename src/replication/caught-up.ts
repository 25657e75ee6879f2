/**
 * When a replica has caught up (`replicate --until-caught-up`). The horizon X is the xmax
 * of the source's snapshot when the worker starts: every transaction begun before X is
 * decided once a snapshot has xmin >= X. The target holds all of those that committed
 * once the end tick of the last batch it applied has xmin >= X (or each table's copy
 * snapshot has). When the feed delivers nothing, a probe tells whether anything before X
 * can still come.
 */
import { dbNames, ident } from "../config/names.js";
import { closeQuietly, connect, type PgClient, query } from "../database/postgres.js";
import type { Snapshot } from "../stream/types.js";
import type { ReplicaPosition } from "./target-state.js";

/**
 * Whether the target holds every committed source transaction begun before `horizon`:
 * through the stream (the last applied end tick saw them all decided) or, with no batch
 * applied since, through the copies (every table's snapshot saw them all decided).
 */
export function holdsHorizon(
  horizon: bigint,
  position: Pick<ReplicaPosition, "endSnapshot"> | undefined,
  copies: readonly Snapshot[],
): boolean {
  if (position && position.endSnapshot.xmin >= horizon) return true;
  return copies.length > 0 && copies.every((snapshot) => snapshot.xmin >= horizon);
}

/** What `--until-caught-up` asks of the source, besides the batches themselves. */
export interface CaughtUpProbe {
  /** X, read from the source on the first call and fixed from then on. */
  horizon(): Promise<bigint>;
  /**
   * Asked while the feed has delivered nothing for a moment: true once nothing committed
   * before the horizon can still come. May nudge the source (tick the queue) so that the
   * next batch settles it.
   */
  whenIdle(position: ReplicaPosition | undefined): Promise<boolean>;
  close(): Promise<void>;
}

/** The probe's connection and the horizon it read. */
abstract class SourceProbe implements CaughtUpProbe {
  private client: PgClient | undefined;
  private fixed: bigint | undefined;
  protected readonly queue: string;

  constructor(
    protected readonly sourceDsn: string,
    cluster: string,
    set: string,
  ) {
    this.queue = dbNames.queue(cluster, set);
  }

  protected async run<R extends Record<string, unknown>>(
    sql: string,
    params: unknown[],
    doing: string,
  ): Promise<R[]> {
    try {
      this.client ??= await connect(this.sourceDsn, { applicationName: "pgshovel-replica probe" });
      return (await query<R>(this.client, sql, params, doing)).rows;
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  /** Whether the horizon has been read. */
  protected get read(): boolean {
    return this.fixed !== undefined;
  }

  async horizon(): Promise<bigint> {
    if (this.fixed === undefined) {
      const [row] = await this.run<{ xmax: string }>(
        "SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS xmax",
        [],
        "reading the source's horizon",
      );
      this.fixed = BigInt(row!.xmax);
    }
    return this.fixed;
  }

  abstract whenIdle(position: ReplicaPosition | undefined): Promise<boolean>;

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await closeQuietly(client);
  }
}

/**
 * For a replica reading the queue as its own consumer: caught up when the consumer has no
 * pending events and the queue's last tick has xmin >= X. An idle queue gets no tick from
 * `pgq.ticker` (it ticks only when events wait), and pgqd's idle tick may be a minute away:
 * the probe forces one (`pgq.force_tick`) once it has read X, and again when idle once every
 * transaction before X is decided; the feed's next poll makes it, and the (empty) batch up to
 * it settles the question.
 */
export class QueueCaughtUp extends SourceProbe {
  constructor(
    sourceDsn: string,
    cluster: string,
    set: string,
    private readonly consumer: string,
  ) {
    super(sourceDsn, cluster, set);
  }

  /**
   * The horizon, and a tick forced right after it is read: the feed's next tick of its own
   * then comes after X, so the batch up to it settles the question as soon as the backlog
   * is applied, instead of after an idle wait and a tick forced then.
   */
  override async horizon(): Promise<bigint> {
    const first = !this.read;
    const horizon = await super.horizon();
    if (first) {
      await this.run("SELECT pgq.force_tick($1)", [this.queue], "forcing a tick of the queue");
    }
    return horizon;
  }

  async whenIdle(): Promise<boolean> {
    const horizon = await this.horizon();
    const [row] = await this.run<{ pending: string | null; tick: string; now: string }>(
      `SELECT ci.pending_events::text AS pending,
              txid_snapshot_xmin(t.tick_snapshot)::text AS tick,
              pg_snapshot_xmin(pg_current_snapshot())::text AS now
         FROM pgq.get_consumer_info($1, $2) ci
         JOIN pgq.queue q ON q.queue_name = ci.queue_name
         CROSS JOIN LATERAL (SELECT tick_snapshot FROM pgq.tick WHERE tick_queue = q.queue_id
                              ORDER BY tick_id DESC LIMIT 1) t`,
      [this.queue, this.consumer],
      "checking whether the replica has caught up",
    );
    // No row: the consumer is gone; the feed reports it.
    if (row?.pending !== "0") return false;
    if (BigInt(row.tick) >= horizon) return true;
    if (BigInt(row.now) >= horizon) {
      await this.run("SELECT pgq.force_tick($1)", [this.queue], "forcing a tick of the queue");
    }
    return false;
  }
}

/**
 * For a replica reading a relay's stream (Kafka, a file): read-only. Caught up when every
 * transaction before X is decided, the replica has applied up to the relay consumer's last
 * finished tick T, and the queue holds no committed event of a transaction before X that T
 * does not see (one would reach the stream in a later batch).
 */
export class StreamCaughtUp extends SourceProbe {
  constructor(
    sourceDsn: string,
    cluster: string,
    set: string,
    private readonly relayConsumer: string,
  ) {
    super(sourceDsn, cluster, set);
  }

  async whenIdle(position: ReplicaPosition | undefined): Promise<boolean> {
    if (!position) return false;
    const horizon = await this.horizon();
    const doing = "checking whether the replica has caught up with the relay";
    const [row] = await this.run<{
      tick: string;
      snapshot: string;
      xmin: string;
      now: string;
      events: string;
    }>(
      `SELECT t.tick_id::text AS tick, t.tick_snapshot::text AS snapshot,
              txid_snapshot_xmin(t.tick_snapshot)::text AS xmin,
              pg_snapshot_xmin(pg_current_snapshot())::text AS now, q.queue_data_pfx AS events
         FROM pgq.get_consumer_info($1, $2) ci
         JOIN pgq.queue q ON q.queue_name = ci.queue_name
         JOIN pgq.tick t ON t.tick_queue = q.queue_id AND t.tick_id = ci.last_tick`,
      [this.queue, this.relayConsumer],
      doing,
    );
    if (!row || BigInt(row.now) < horizon || position.endTick < BigInt(row.tick)) return false;
    if (BigInt(row.xmin) >= horizon) return true;
    const [schema, table] = row.events.split(".");
    const [late] = await this.run<{ waiting: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM ${ident(schema!)}.${ident(table!)}
                       WHERE ev_txid >= $1 AND ev_txid < $2
                         AND NOT txid_visible_in_snapshot(ev_txid, $3::txid_snapshot)) AS waiting`,
      [row.xmin, horizon.toString(), row.snapshot],
      doing,
    );
    return late?.waiting === false;
  }
}

/**
 * What PgQ says about a set's queue and its consumers, read-only: the basis of `status`,
 * `set consumers` and the relay's queue metrics. Nothing here registers a consumer or
 * takes a batch.
 */
import { type PgClient, query } from "../database/postgres.js";

/** A queue's ticker and event tables, from `pgq.get_queue_info` and `pgq.queue`. */
export interface QueueInfo {
  /** Seconds since the queue's last tick. */
  tickerLagSeconds: number;
  /** Events per second over the recent ticks, as PgQ estimates it. */
  eventsPerSecond: number | null;
  /** Events inserted since the last tick. */
  newEvents: string;
  lastTickId: string;
  eventTables: {
    /** How many tables the ring has (`queue_ntables`). */
    count: number;
    /** The table events go into now. */
    current: number;
    rotationPeriodSeconds: number;
    /** When the ring last moved to the next table. */
    lastRotation: string;
    /** Whether a rotation is due (the period has passed since the last one). */
    rotationDue: boolean;
    /** Disk size of all the event tables, indexes included. */
    bytes: string;
  };
}

/** One registered consumer of a queue, from `pgq.get_consumer_info` and `pgq.subscription`. */
export interface ConsumerState {
  name: string;
  /** Age of the last tick the consumer finished, in seconds. */
  lagSeconds: number | null;
  /** Seconds since the consumer last took a batch. */
  lastSeenSeconds: number | null;
  /** Events the consumer has not finished yet. */
  pendingEvents: string | null;
  lastTick: string | null;
  /** The batch it holds open, if any. */
  currentBatch: string | null;
  /**
   * True when a rotation is due and this consumer still needs the previous event table:
   * PgQ will not truncate it, and the event tables grow, until the consumer moves on.
   */
  blocksRotation: boolean;
}

const seconds = (column: string) => `extract(epoch FROM ${column})::float8`;

/** The queue's info, or undefined when the queue does not exist. */
export async function readQueueInfo(
  client: PgClient,
  queue: string,
): Promise<QueueInfo | undefined> {
  const result = await query<{
    ticker_lag: number;
    ev_per_sec: number | null;
    ev_new: string;
    last_tick_id: string;
    ntables: number;
    cur_table: number;
    rotation_period: number;
    switch_time: string;
    rotation_due: boolean;
    bytes: string;
  }>(
    client,
    `SELECT ${seconds("i.ticker_lag")} AS ticker_lag, i.ev_per_sec, i.ev_new::text,
            i.last_tick_id::text, i.queue_ntables AS ntables, i.queue_cur_table AS cur_table,
            ${seconds("i.queue_rotation_period")} AS rotation_period,
            to_char(i.queue_switch_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS switch_time,
            i.queue_switch_time + i.queue_rotation_period < now() AS rotation_due,
            (SELECT coalesce(sum(pg_total_relation_size(to_regclass(q.queue_data_pfx || '_' || n))), 0)
               FROM generate_series(0, q.queue_ntables - 1) AS n)::text AS bytes
       FROM pgq.get_queue_info($1) i JOIN pgq.queue q ON q.queue_name = i.queue_name`,
    [queue],
    `reading the info of queue ${queue}`,
  );
  const row = result.rows[0];
  if (!row) return undefined;
  return {
    tickerLagSeconds: row.ticker_lag,
    eventsPerSecond: row.ev_per_sec,
    newEvents: row.ev_new,
    lastTickId: row.last_tick_id,
    eventTables: {
      count: row.ntables,
      current: row.cur_table,
      rotationPeriodSeconds: row.rotation_period,
      lastRotation: row.switch_time,
      rotationDue: row.rotation_due,
      bytes: row.bytes,
    },
  };
}

/**
 * Every registered consumer of the queue, by name. A consumer blocks rotation the way
 * `pgq.maint_rotate_tables_step1` decides it: a rotation is due and the snapshot of the
 * consumer's last tick does not reach past the previous switch.
 */
export async function readConsumers(client: PgClient, queue: string): Promise<ConsumerState[]> {
  const result = await query<{
    name: string;
    lag: number | null;
    last_seen: number | null;
    pending_events: string | null;
    last_tick: string | null;
    current_batch: string | null;
    blocks_rotation: boolean | null;
  }>(
    client,
    `SELECT i.consumer_name AS name, ${seconds("i.lag")} AS lag,
            ${seconds("i.last_seen")} AS last_seen, i.pending_events::text,
            i.last_tick::text, i.current_batch::text,
            (q.queue_switch_time + q.queue_rotation_period < now()
              AND txid_snapshot_xmin(t.tick_snapshot) <= q.queue_switch_step2) AS blocks_rotation
       FROM pgq.get_consumer_info($1) i
       JOIN pgq.queue q ON q.queue_name = i.queue_name
       LEFT JOIN pgq.tick t ON t.tick_queue = q.queue_id AND t.tick_id = i.last_tick
      ORDER BY i.consumer_name`,
    [queue],
    `reading the consumers of queue ${queue}`,
  );
  return result.rows.map((row) => ({
    name: row.name,
    lagSeconds: row.lag,
    lastSeenSeconds: row.last_seen,
    pendingEvents: row.pending_events,
    lastTick: row.last_tick,
    currentBatch: row.current_batch,
    blocksRotation: row.blocks_rotation === true,
  }));
}

/** How far a position in the queue is from its last tick. */
export interface TicksBehind {
  /** Ticks after the position's tick: batches still to come for a consumer taking every tick. */
  batches: number;
  /** Events between the two ticks, from their event sequence (PgQ's estimate); null when the position's tick is gone. */
  events: string | null;
}

/**
 * For each tick id, the ticks of the queue after it and the events since it. Tick ids
 * follow each other within a queue, so the count holds even once PgQ has deleted the
 * older ticks. An empty map when the queue is missing.
 */
export async function readTicksBehind(
  client: PgClient,
  queue: string,
  ticks: readonly bigint[],
): Promise<Map<bigint, TicksBehind>> {
  const result = await query<{ tick: string; batches: string; events: string | null }>(
    client,
    `SELECT e.tick::text, greatest(l.tick_id - e.tick, 0)::text AS batches,
            greatest(l.tick_event_seq - t.tick_event_seq, 0)::text AS events
       FROM pgq.queue q
       CROSS JOIN LATERAL (SELECT tick_id, tick_event_seq FROM pgq.tick
                            WHERE tick_queue = q.queue_id ORDER BY tick_id DESC LIMIT 1) l
       CROSS JOIN unnest($2::int8[]) AS e(tick)
       LEFT JOIN pgq.tick t ON t.tick_queue = q.queue_id AND t.tick_id = e.tick
      WHERE q.queue_name = $1`,
    [queue, ticks.map(String)],
    `reading the ticks of queue ${queue}`,
  );
  return new Map(
    result.rows.map((row) => [
      BigInt(row.tick),
      { batches: Number(row.batches), events: row.events },
    ]),
  );
}

/** Unregisters a consumer (`pgq.unregister_consumer`); false when it was not registered. */
export async function unregisterConsumer(
  client: PgClient,
  queue: string,
  consumer: string,
): Promise<boolean> {
  const registered = (await readConsumers(client, queue)).some((c) => c.name === consumer);
  if (!registered) return false;
  await query(
    client,
    "SELECT pgq.unregister_consumer($1, $2)",
    [queue, consumer],
    `unregistering consumer ${consumer} from queue ${queue}`,
  );
  return true;
}

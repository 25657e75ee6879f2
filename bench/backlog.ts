/**
 * A backlog of captured mutations, the plain-SQL read of it that the relay
 * figures are compared with, and the wait for a relay to have drained it.
 */
import pg from "pg";
import { forceTick, type RelayProcess } from "../test/support/fixtures.js";
import { waitFor } from "../test/support/wait.js";
import { nowMs } from "./stats.js";

/** The captured table of the throughput and memory figures (the row of docs/capture.md). */
export const ROWS_TABLE = "bench_rows";
export const ROWS_DDL = `CREATE TABLE ${ROWS_TABLE} (id int8 PRIMARY KEY, account int4, owner text, balance numeric, at timestamptz)`;

/** Rows per INSERT … SELECT transaction when filling a backlog. */
const FILL_CHUNK = 100_000;

/**
 * Inserts rows `first`…`first + count - 1` through the set's triggers, in
 * transactions of at most `chunk` rows (one transaction when `chunk` ≥
 * `count`), then ticks: returns the tick that closes the backlog.
 */
export async function fillBacklog(
  client: pg.Client,
  queue: string,
  first: number,
  count: number,
  chunk = FILL_CHUNK,
): Promise<{ tick: bigint; seconds: number }> {
  const started = nowMs();
  for (let from = first; from < first + count; from += chunk) {
    const to = Math.min(first + count, from + chunk) - 1;
    await client.query(
      `INSERT INTO ${ROWS_TABLE} SELECT g, g % 1000, 'owner ' || g, g * 1.25, now() FROM generate_series($1::int8, $2::int8) g`,
      [from, to],
    );
  }
  const seconds = (nowMs() - started) / 1000;
  return { tick: await tickNow(client, queue), seconds };
}

/**
 * Makes a tick of `queue` that follows everything committed so far (see forceTick: after
 * a big transaction a plain `pgq.ticker` may make none); returns its id.
 */
export async function tickNow(client: pg.Client, queue: string): Promise<bigint> {
  await forceTick(client, queue);
  const result = await client.query<{ tick: string }>(
    `SELECT max(t.tick_id)::text AS tick FROM pgq.tick t JOIN pgq.queue q ON q.queue_id = t.tick_queue
      WHERE q.queue_name = $1`,
    [queue],
  );
  return BigInt(result.rows[0]!.tick);
}

/**
 * Waits until `consumer` has finished every batch up to tick `tick`; returns the
 * wall-clock time (ms) it was first seen done. Polls every `intervalMs` (default 20).
 */
export async function waitConsumerPast(
  client: pg.Client,
  queue: string,
  consumer: string,
  tick: bigint,
  options: { timeoutMs: number; intervalMs?: number; relay?: RelayProcess },
): Promise<number> {
  const { relay } = options;
  return waitFor(
    async () => {
      const result = await client.query<{ last_tick: string; current_batch: string | null }>(
        "SELECT last_tick::text, current_batch::text FROM pgq.get_consumer_info($1, $2)",
        [queue, consumer],
      );
      const row = result.rows[0];
      const done = row && BigInt(row.last_tick) >= tick && row.current_batch === null;
      return done ? performance.timeOrigin + performance.now() : undefined;
    },
    {
      timeoutMs: options.timeoutMs,
      intervalMs: options.intervalMs ?? 20,
      abandonWhen: () => (relay?.ended() ? "the relay exited" : undefined),
      get description() {
        return `consumer ${consumer} past tick ${tick}${relay ? ` (relay stderr: ${relay.stderr().slice(-2000)})` : ""}`;
      },
    },
  );
}

/** Registers PgQ consumers now, so that they see everything written afterwards. */
export async function registerConsumers(client: pg.Client, queue: string, consumers: string[]) {
  for (const consumer of consumers) {
    await client.query("SELECT pgq.register_consumer($1, $2)", [queue, consumer]);
  }
}

/** The same columns the relay selects (src/relay/pgq-event.ts), as text. */
const EVENT_COLUMNS = `ev_id::text, ev_time::text, ev_txid::text, ev_type, ev_data,
  ev_extra1, ev_extra2, ev_extra4`;

/**
 * The baseline of the throughput figures: reads every batch of `consumer` up
 * to `tick` with plain SQL — `pgq.get_batch_cursor` then `FETCH fetchSize`,
 * as the relay does — discarding the rows, and finishes each batch.
 */
export async function readBacklogWithSql(
  dsn: string,
  queue: string,
  consumer: string,
  tick: bigint,
  fetchSize: number,
): Promise<{ events: number; batches: number; seconds: number }> {
  const client = new pg.Client({ connectionString: dsn });
  await client.connect();
  try {
    let events = 0;
    let batches = 0;
    const started = nowMs();
    for (;;) {
      const info = await client.query<{ batch_id: string | null; cur_tick_id: string | null }>(
        "SELECT batch_id::text, cur_tick_id::text FROM pgq.next_batch_info($1, $2)",
        [queue, consumer],
      );
      const row = info.rows[0];
      if (!row?.batch_id) break;
      await client.query("BEGIN");
      const first = await client.query(
        `SELECT ${EVENT_COLUMNS} FROM pgq.get_batch_cursor($1, 'bench_cursor', $2)`,
        [row.batch_id, fetchSize],
      );
      events += first.rowCount ?? 0;
      if ((first.rowCount ?? 0) >= fetchSize) {
        for (;;) {
          const more = await client.query(`FETCH ${fetchSize} FROM bench_cursor`);
          events += more.rowCount ?? 0;
          if ((more.rowCount ?? 0) < fetchSize) break;
        }
      }
      await client.query("COMMIT");
      await client.query("SELECT pgq.finish_batch($1)", [row.batch_id]);
      batches++;
      if (BigInt(row.cur_tick_id!) >= tick) break;
    }
    return { events, batches, seconds: (nowMs() - started) / 1000 };
  } finally {
    await client.end();
  }
}

import { ident } from "../config/names.js";
import { type PgClient, query } from "../database/postgres.js";

/** Events of a queue that one of its consumers has not finished yet. */
export interface PendingEvents {
  consumer: string;
  events: number;
}

/**
 * How many rows' events a PgQ event holds: a packed event (docs/capture.md) one per line after
 * its header, any other one.
 */
const ROWS_OF_EVENT = `CASE WHEN e.ev_type LIKE '% packed'
  THEN pg_catalog.length(e.ev_data) - pg_catalog.length(pg_catalog.replace(e.ev_data, E'\\n', ''))
  ELSE 1 END`;

/**
 * Counts, for every consumer of `queue`, the committed events it has not finished (a row's
 * change each, a packed event counting its rows): those
 * whose transaction is not visible in the snapshot of the consumer's last finished tick.
 * Unlike `pgq.get_consumer_info().pending_events`, this also counts events that no tick
 * covers yet. An unknown queue has no consumers.
 */
export async function pendingEvents(client: PgClient, queue: string): Promise<PendingEvents[]> {
  const doing = `counting the events not yet relayed from queue ${queue}`;
  const found = await query<{ id: string; table: string }>(
    client,
    `SELECT queue_id::text AS id, queue_data_pfx AS table FROM pgq.queue WHERE queue_name = $1`,
    [queue],
    doing,
  );
  const row = found.rows[0];
  if (!row) return [];
  // queue_data_pfx names the parent of the queue's rotating event tables, e.g. pgq.event_5.
  const table = row.table.split(".").map(ident).join(".");
  const counts = await query<{ consumer: string; events: string }>(
    client,
    `SELECT c.co_name AS consumer,
            (SELECT COALESCE(sum(${ROWS_OF_EVENT}), 0) FROM ${table} e
              WHERE NOT txid_visible_in_snapshot(e.ev_txid, t.tick_snapshot))::text AS events
       FROM pgq.subscription s
       JOIN pgq.consumer c ON c.co_id = s.sub_consumer
       JOIN pgq.tick t ON t.tick_queue = s.sub_queue AND t.tick_id = s.sub_last_tick
      WHERE s.sub_queue = $1::int
      ORDER BY 1`,
    [row.id],
    doing,
  );
  return counts.rows.map((r) => ({ consumer: r.consumer, events: Number(r.events) }));
}

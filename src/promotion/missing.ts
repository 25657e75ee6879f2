/**
 * The source transactions a replica lacks: after an unplanned failover, once the old source
 * is readable again, the events still in the set's queue whose transaction is not visible in
 * the snapshot of the end tick the replica last applied. Those committed after the replica's
 * last batch; every one before it is on the replica. Decoded as the relay decodes them.
 */
import { readNodeId } from "../capture/install.js";
import { dbNames, ident } from "../config/names.js";
import { hidePassword } from "../config/set-config.js";
import { closeQuietly, connect, type PgClient, query } from "../database/postgres.js";
import { PgshovelError } from "../errors.js";
import { type QueueEvent, toMutations } from "../relay/pgq-event.js";
import { type ReplicaPosition, readPosition } from "../replication/target-state.js";
import { formatSnapshot } from "../stream/snapshot.js";
import type { Mutation } from "../stream/types.js";

/** One source transaction the replica lacks, with its changes in event order. */
export interface MissingTransaction {
  txid: bigint;
  mutations: Mutation[];
}

/** What {@link findMissingTransactions} found. */
export interface MissingReport {
  /** Where the replica stands. */
  position: ReplicaPosition;
  queue: string;
  transactions: MissingTransaction[];
  /**
   * Whether the queue is known to hold every event after the position. PgQ deletes events
   * only by truncating an event table when it rotates them, and rotates only once every
   * consumer has passed them: the list is complete when some consumer stands at or before
   * the position, or when the queue's last rotation committed before the position's end tick.
   */
  complete: boolean;
  /** Whether the queue has rotated its event tables since the position's end tick. */
  rotatedSince: boolean;
  /** The lowest tick a consumer of the queue stands at (null: no consumer). */
  lowestConsumerTick: bigint | null;
}

/** Options of {@link findMissingTransactions}. */
export interface MissingOptions {
  cluster: string;
  set: string;
  targetDsn: string;
  /** The old source, readable again. */
  sourceDsn: string;
}

/** The replica's position for the set; NOT_FOUND when it never applied a batch. */
export async function requirePosition(
  target: PgClient,
  cluster: string,
  set: string,
  targetDsn: string,
): Promise<ReplicaPosition> {
  const position = await readPosition(target, cluster, set).catch((error: unknown) => {
    throw new PgshovelError(
      "NOT_FOUND",
      `${hidePassword(targetDsn)} holds no replica state of cluster ${cluster}`,
      { cause: error, hint: "check --target and --cluster" },
    );
  });
  if (!position) {
    throw new PgshovelError(
      "NOT_FOUND",
      `${hidePassword(targetDsn)} has applied no batch of set ${set}: it has no position to compare with`,
      { hint: "check --target and the set's name; a replica that only copied has no position yet" },
    );
  }
  return position;
}

/** Lists the transactions of the source's queue that the replica's position does not hold. */
export async function findMissingTransactions(options: MissingOptions): Promise<MissingReport> {
  const { cluster, set, targetDsn, sourceDsn } = options;
  const target = await connect(targetDsn, { applicationName: "pgshovel-missing" });
  let position: ReplicaPosition;
  try {
    position = await requirePosition(target, cluster, set, targetDsn);
  } finally {
    await closeQuietly(target);
  }
  const source = await connect(sourceDsn, { applicationName: "pgshovel-missing" });
  try {
    return await readMissing(source, { cluster, set, sourceDsn }, position);
  } finally {
    await closeQuietly(source);
  }
}

/** The part of {@link findMissingTransactions} that reads the source, from a known position. */
export async function readMissing(
  source: PgClient,
  options: { cluster: string; set: string; sourceDsn: string },
  position: ReplicaPosition,
): Promise<MissingReport> {
  const { cluster, set, sourceDsn } = options;
  const queue = dbNames.queue(cluster, set);
  const doing = `reading queue ${queue} in ${hidePassword(sourceDsn)}`;
  const node = await readNodeId(source, cluster);
  if (node !== position.node) {
    throw new PgshovelError(
      "INVALID_ARGUMENT",
      `${hidePassword(sourceDsn)} is node ${node ?? "(none)"}, but the replica followed node ${position.node}`,
      { hint: "give --source the DSN of the database the replica was fed from" },
    );
  }
  // The decoder reads timestamps in UTC and ISO, as the relay's sessions do.
  await query(source, "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'", [], doing);
  // The rotation that truncates an event table sets queue_switch_step1 to its own txid.
  const info = await query<{ table: string; rotated_since: boolean }>(
    source,
    `SELECT queue_data_pfx AS table,
            NOT pg_visible_in_snapshot(queue_switch_step1::text::xid8, $2::pg_snapshot) AS rotated_since
       FROM pgq.queue WHERE queue_name = $1`,
    [queue, formatSnapshot(position.endSnapshot)],
    doing,
  );
  const table = info.rows[0]?.table;
  const rotatedSince = info.rows[0]?.rotated_since ?? true;
  if (!table) {
    throw new PgshovelError(
      "NOT_FOUND",
      `queue ${queue} does not exist in ${hidePassword(sourceDsn)}`,
      {
        hint: "the set was dropped there: its events are gone with it",
      },
    );
  }
  const consumers = await query<{ tick: string | null }>(
    source,
    `SELECT min(s.sub_last_tick)::text AS tick FROM pgq.subscription s
       JOIN pgq.queue q ON q.queue_id = s.sub_queue WHERE q.queue_name = $1`,
    [queue],
    doing,
  );
  const lowest = consumers.rows[0]?.tick ?? null;
  const lowestConsumerTick = lowest === null ? null : BigInt(lowest);
  const [schema, name] = table.split(".");
  const events = await query<QueueEvent>(
    source,
    // As text whatever the connection's parsers: the decoder takes PostgreSQL's output.
    `SELECT ev_id::text AS ev_id, ev_time::text AS ev_time, ev_txid::text AS ev_txid,
            ev_type, ev_data, ev_extra1, ev_extra2, ev_extra4
       FROM ${ident(schema!)}.${ident(name!)}
      WHERE NOT pg_visible_in_snapshot(ev_txid::text::xid8, $1::pg_snapshot)
      ORDER BY ev_id`,
    [formatSnapshot(position.endSnapshot)],
    doing,
  );
  const byTxid = new Map<bigint, MissingTransaction>();
  const identities = new Map<string, string[]>();
  for (const event of events.rows) {
    for (const mutation of toMutations(event, identities)) {
      let transaction = byTxid.get(mutation.transaction);
      if (!transaction) {
        transaction = { txid: mutation.transaction, mutations: [] };
        byTxid.set(mutation.transaction, transaction);
      }
      transaction.mutations.push(mutation);
    }
  }
  return {
    position,
    queue,
    transactions: [...byTxid.values()],
    complete:
      !rotatedSince || (lowestConsumerTick !== null && lowestConsumerTick <= position.endTick),
    rotatedSince,
    lowestConsumerTick,
  };
}

/**
 * One point at which a replica and its source hold the same rows, found while both keep
 * running. The set's tables are locked on the source against writes (SHARE), so no change
 * to them is in flight; a PgQ tick made then sees every change to them, and every batch
 * after it is empty for them. A source snapshot taken under the lock sees exactly that
 * tick's rows; once the replica's stored end tick has reached the tick, a target snapshot
 * sees the same rows. The lock is then released (or kept, for a repair).
 */
import { setTimeout as delay } from "node:timers/promises";
import { hidePassword } from "../config/set-config.js";
import { closeQuietly, connect, type PgClient, query, sqlstate } from "../database/postgres.js";
import { PgshovelError } from "../errors.js";
import { SESSION_SETTINGS } from "../replication/bootstrap.js";
import {
  display,
  qualified,
  type ReplicaPosition,
  readMark,
  readPosition,
  type TableName,
} from "../replication/target-state.js";
import { Backoff, withRetry } from "../retry.js";

/** What {@link takeConsistentPoint} needs. */
export interface PointOptions {
  sourceDsn: string;
  targetDsn: string;
  cluster: string;
  set: string;
  /** The set's PgQ queue. */
  queue: string;
  /** The source database's node id, which the replica's position must name. */
  sourceNode: string;
  /** The tables compared: only they are locked. */
  tables: TableName[];
  /** How long one attempt to lock the tables may wait for writers (each of a few attempts). */
  lockTimeoutMs: number;
  /** How long the replica may take to reach the tick. */
  waitTimeoutMs: number;
  /** Keep the source tables locked until {@link ConsistentPoint.unlock} (a repair needs it). */
  holdLock: boolean;
  signal?: AbortSignal | undefined;
}

/** Two open snapshots, one per side, that hold the same rows of the compared tables. */
export interface ConsistentPoint {
  tick: bigint;
  /** The end tick the replica had applied when the target snapshot was taken. */
  targetTick: bigint;
  /** The source snapshot, `xmin:xmax:xip,…`. */
  sourceSnapshot: string;
  /** A source connection inside a REPEATABLE READ, READ ONLY transaction at the point. */
  source: PgClient;
  /** A target connection inside a REPEATABLE READ transaction at the point. */
  target: PgClient;
  /** Releases the source tables (idempotent). */
  unlock(): Promise<void>;
  /** How long the source tables have been (or were) locked, in milliseconds. */
  lockedMs(): number;
  /** Ends both transactions and every connection, the lock's included. */
  close(): Promise<void>;
}

const APPLICATION = "pgshovel verify";
// A tick is made by pgq.ticker only when it sees new events; force_tick makes it see some.
const TICK_ATTEMPTS = 20;

/** Fails unless the target keeps a replica of `set` fed from `sourceNode`'s database. */
export async function requireReplica(
  target: PgClient,
  options: Pick<PointOptions, "targetDsn" | "cluster" | "set" | "sourceNode">,
): Promise<void> {
  const where = hidePassword(options.targetDsn);
  let position: ReplicaPosition | undefined;
  let marked = false;
  try {
    position = await readPosition(target, options.cluster, options.set);
    if (!position) marked = (await readMark(target, options.cluster, options.set)) !== undefined;
  } catch (error) {
    // No state tables at all: the target never was a replica of this cluster.
    if (sqlstate(error) !== "42P01" && sqlstate(error) !== "3F000") throw error;
  }
  if (!position && !marked) {
    throw new PgshovelError(
      "NOT_FOUND",
      `${where} is not a replica of set ${options.set}: pgshovel_${options.cluster}.replica_position has no row for it`,
      { hint: "verify a database that `pgshovel replicate` keeps for this set (and this cluster)" },
    );
  }
  if (position && position.node !== options.sourceNode) {
    throw new PgshovelError(
      "INVALID_CONFIGURATION",
      `${where} replicates set ${options.set} from another source database (node ${position.node}; the set's database is node ${options.sourceNode})`,
      { hint: "a replica follows one source: rebuild it to follow the set's database" },
    );
  }
}

async function lockTables(lock: PgClient, options: PointOptions): Promise<void> {
  // One statement, tables in a fixed order: two verifies never wait on each other in a cycle.
  const names = [...options.tables]
    .sort((a, b) => display(a).localeCompare(display(b)))
    .map(qualified);
  const doing = `locking ${options.tables.map(display).join(", ")} against writes on the source`;
  await query(lock, "BEGIN", [], doing);
  try {
    await query(lock, `SET LOCAL lock_timeout = ${Math.max(1, options.lockTimeoutMs)}`, [], doing);
    await query(lock, `LOCK TABLE ${names.join(", ")} IN SHARE MODE`, [], doing);
  } catch (error) {
    await query(lock, "ROLLBACK", [], doing).catch(() => {});
    if (sqlstate(error) === "55P03") {
      throw new PgshovelError(
        "CONFLICT",
        `${doing}: long-running writers held them past the lock timeout (${options.lockTimeoutMs} ms)`,
        {
          retryable: true,
          cause: error,
          hint: "retry when the writers are done, or raise --lock-timeout",
        },
      );
    }
    throw error;
  }
}

/** Makes a tick of the queue now, in its own committed statement, and returns its id. */
async function makeTick(source: PgClient, queue: string): Promise<bigint> {
  const doing = `making a tick of queue ${queue}`;
  for (let attempt = 0; attempt < TICK_ATTEMPTS; attempt++) {
    await query(source, "SELECT pgq.force_tick($1)", [queue], doing);
    const made = await query<{ tick: string | null }>(
      source,
      "SELECT pgq.ticker($1)::text AS tick",
      [queue],
      doing,
    );
    // NULL: another ticker (pgqd, a relay) ticked between the two calls; force again.
    const tick = made.rows[0]?.tick;
    if (tick !== null && tick !== undefined) return BigInt(tick);
  }
  throw new PgshovelError("DATABASE_ERROR", `${doing}: pgq.ticker made no tick`, {
    hint: "is the queue's ticker paused (pgq.set_queue_config … ticker_paused)?",
  });
}

/**
 * Opens the target snapshot once the replica's position has reached `tick`: the position
 * is read inside the REPEATABLE READ transaction it opens, so both agree.
 */
async function awaitTarget(target: PgClient, options: PointOptions, tick: bigint): Promise<bigint> {
  const deadline = Date.now() + options.waitTimeoutMs;
  const backoff = new Backoff({ initialDelayMs: 20, maxDelayMs: 500 });
  const doing = "waiting for the replica to reach the verify's tick";
  for (;;) {
    await query(target, "BEGIN ISOLATION LEVEL REPEATABLE READ", [], doing);
    const position = await readPosition(target, options.cluster, options.set);
    if (position && position.endTick >= tick) return position.endTick;
    await query(target, "ROLLBACK", [], doing);
    if (Date.now() >= deadline) {
      const stands = position
        ? `it stands at tick ${position.endTick} (batch ${position.batch}, which ended at ${position.endTime}), ${tick - position.endTick} tick(s) short`
        : "it has not applied a batch yet";
      throw new PgshovelError(
        "DATABASE_NOT_READY",
        `the replica of set ${options.set} did not reach tick ${tick} within ${options.waitTimeoutMs} ms: ${stands}`,
        {
          hint: "is `pgshovel replicate` running for this target and applying? A replica far behind needs a longer --wait-timeout",
        },
      );
    }
    await delay(backoff.next(), undefined, options.signal ? { signal: options.signal } : {});
  }
}

/** Finds the point and opens both snapshots at it; on failure nothing stays open or locked. */
export async function takeConsistentPoint(options: PointOptions): Promise<ConsistentPoint> {
  const clients: PgClient[] = [];
  const open = async (dsn: string, role: string) => {
    const client = await connect(dsn, { applicationName: `${APPLICATION} (${role})` });
    clients.push(client);
    await query(client, SESSION_SETTINGS, [], `configuring the ${role} session`);
    return client;
  };
  let lock: PgClient | undefined;
  let lockedAt: number | undefined;
  let unlockedAt: number | undefined;
  const unlock = async () => {
    if (!lock) return;
    const held = lock;
    lock = undefined;
    unlockedAt = Date.now();
    await query(held, "ROLLBACK", [], "releasing the source tables").catch(() => {});
    await closeQuietly(held);
  };
  const close = async () => {
    await unlock();
    for (const client of clients) await closeQuietly(client);
  };
  try {
    const target = await open(options.targetDsn, "target");
    await requireReplica(target, options);
    const source = await open(options.sourceDsn, "source");
    lock = await open(options.sourceDsn, "lock");
    if (!options.holdLock) {
      // Should this process freeze while it holds the lock, the server ends the session.
      const bound = options.waitTimeoutMs + 60_000;
      await query(
        lock,
        `SET idle_in_transaction_session_timeout = ${bound}`,
        [],
        "configuring the lock session",
      );
    }
    const held = lock;
    await withRetry(() => lockTables(held, options), {
      attempts: 5,
      initialDelayMs: 100,
      maxDelayMs: 2_000,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    lockedAt = Date.now();
    const tick = await makeTick(source, options.queue);
    await query(
      source,
      "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
      [],
      "opening the source snapshot",
    );
    const snapshot = await query<{ s: string }>(
      source,
      "SELECT pg_current_snapshot()::text AS s",
      [],
      "opening the source snapshot",
    );
    const targetTick = await awaitTarget(target, options, tick);
    if (!options.holdLock) await unlock();
    return {
      tick,
      targetTick,
      sourceSnapshot: snapshot.rows[0]!.s,
      source,
      target,
      unlock,
      lockedMs: () => (lockedAt === undefined ? 0 : (unlockedAt ?? Date.now()) - lockedAt),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

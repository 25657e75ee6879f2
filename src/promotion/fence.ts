/**
 * Fencing a set: its tables refuse ordinary writes, so that its replica can take over with
 * nothing lost. The fence is kept as set configuration is: triggers in the set's database
 * and a record in ZooKeeper (`/<cluster>/fences/<set>`), changed together by two-phase
 * commit. The fence waits for the writes in flight, then a tick of the set's queue is taken:
 * every change captured before the fence lies before that tick.
 */
import { readNodeId } from "../capture/install.js";
import { readCluster } from "../cluster/chroot.js";
import type { AdminContext } from "../cluster/context.js";
import { decodeRecord, encodeRecord, requireSet } from "../cluster/records.js";
import { commitEverywhere, recover } from "../cluster/two-phase.js";
import type { ZkOp } from "../cluster/zookeeper.js";
import { checkSetName, dbNames, zkPaths } from "../config/names.js";
import { hidePassword } from "../config/set-config.js";
import { closeQuietly, connect, query, sqlstate } from "../database/postgres.js";
import { PgshovelError } from "../errors.js";
import type { TableName } from "../replication/target-state.js";
import {
  coversAll,
  fencedTables,
  fenceStatements,
  lockStatement,
  unfenceStatement,
} from "./fence-sql.js";
import { fencePaths } from "./names.js";

/** A fence as ZooKeeper keeps it, at `/<cluster>/fences/<set>`. */
export interface FenceRecord {
  /** The fenced database (the set's, when fenced). */
  database: { dsn: string; node: string };
  tables: TableName[];
  fenced_at: string;
  /** The set's queue. */
  queue: string;
  /** The first tick taken after the fence held: every captured change lies before it; null until taken. */
  tick: string | null;
}

/** What {@link fenceSet} did. */
export interface FenceResult {
  record: FenceRecord;
  /** The set was fenced already (the command changed nothing but perhaps the tick). */
  already: boolean;
}

/** Options of {@link fenceSet}. */
export interface FenceOptions {
  /** How long to wait for the writes in flight before giving up (nothing changes then). */
  lockTimeoutMs: number;
}

/** A set's fence record and its znode version; undefined when the set is not fenced. */
export async function readFence(
  ctx: AdminContext,
  set: string,
): Promise<{ record: FenceRecord; version: number } | undefined> {
  const path = fencePaths.fence(ctx.cluster, set);
  const node = await ctx.zk.get(path);
  if (!node) return undefined;
  return { record: decodeRecord<FenceRecord>(node.data, path), version: node.stat.version };
}

/**
 * Fences a set: waits for the writes in flight on its tables (up to the lock timeout), then
 * installs the fence triggers and writes the fence record, atomically; then takes a tick of
 * the set's queue and records it. A set fenced already is left as it is (its tick is taken
 * if it was not).
 */
export async function fenceSet(
  ctx: AdminContext,
  set: string,
  options: FenceOptions,
): Promise<FenceResult> {
  checkSetName(set);
  await recover(ctx);
  await readCluster(ctx, { current: true });
  const current = await requireSet(ctx, set);
  const { dsn } = current.config.database;
  const tables = current.config.tables.map(({ schema, name }) => ({ schema, name }));
  const existing = await readFence(ctx, set);
  if (existing && (await fenceHolds(ctx, set, dsn, tables))) {
    const record = existing.record.tick
      ? existing.record
      : await recordTick(ctx, set, existing.record, existing.version);
    return { record, already: true };
  }
  const fencedAt = new Date().toISOString();
  await ctx.zk.ensurePath(fencePaths.fences(ctx.cluster));
  let record: FenceRecord | undefined;
  try {
    await commitEverywhere(ctx, {
      set,
      operation: "fence",
      participants: [
        {
          dsn,
          prepare: async (client) => {
            const doing = `fencing set ${set}`;
            await query(
              client,
              `SET LOCAL lock_timeout = ${Math.max(1, options.lockTimeoutMs)}`,
              [],
              doing,
            );
            await query(
              client,
              lockStatement(tables),
              [],
              `${doing}: waiting for the writes in flight`,
            );
            for (const statement of fenceStatements(ctx.cluster, set, tables, fencedAt)) {
              await query(client, statement, [], doing);
            }
            return (await readNodeId(client, ctx.cluster)) ?? current.config.database.node;
          },
        },
      ],
      zkOps: ([node]): ZkOp[] => {
        record = {
          database: { dsn, node: node! },
          tables,
          fenced_at: fencedAt,
          queue: dbNames.queue(ctx.cluster, set),
          tick: null,
        };
        const path = fencePaths.fence(ctx.cluster, set);
        return [
          // A set changed meanwhile (tables added, moved) would not be fenced whole.
          { op: "check", path: zkPaths.set(ctx.cluster, set), version: current.version },
          existing
            ? { op: "setData", path, data: encodeRecord(record), version: existing.version }
            : { op: "create", path, data: encodeRecord(record) },
        ];
      },
    });
  } catch (error) {
    if (sqlstate(error) === "55P03") {
      throw new PgshovelError(
        "IN_USE",
        `could not fence set ${set}: transactions in flight held its tables in ${hidePassword(dsn)} for longer than the lock timeout (${options.lockTimeoutMs} ms); nothing was changed`,
        {
          cause: error,
          hint: "find them in pg_stat_activity (or pg_locks), let them finish or end them, and run set fence again; --lock-timeout waits longer",
        },
      );
    }
    throw error;
  }
  ctx.logger.info({ set, tables: tables.length }, "set fenced");
  const written = await readFence(ctx, set);
  return { record: await recordTick(ctx, set, record!, written?.version ?? 0), already: false };
}

/** Whether every table of the set carries the fence trigger in the set's database. */
async function fenceHolds(
  ctx: AdminContext,
  set: string,
  dsn: string,
  tables: TableName[],
): Promise<boolean> {
  const client = await connect(dsn);
  try {
    return coversAll(await fencedTables(client, ctx.cluster, set), tables);
  } finally {
    await closeQuietly(client);
  }
}

/**
 * Takes a tick of the set's queue after the fence committed and writes it into the record.
 * `force_tick` makes the ticker tick even though no event waits; a tick pgqd took meanwhile
 * counts as well, since it too was taken after the fence.
 */
async function recordTick(
  ctx: AdminContext,
  set: string,
  record: FenceRecord,
  version: number,
): Promise<FenceRecord> {
  const client = await connect(record.database.dsn);
  let tick: string | undefined;
  try {
    const doing = `taking a tick of queue ${record.queue} after the fence`;
    const last = async () =>
      (
        await query<{ tick: string }>(
          client,
          "SELECT last_tick_id::text AS tick FROM pgq.get_queue_info($1)",
          [record.queue],
          doing,
        )
      ).rows[0]!.tick;
    const before = BigInt(await last());
    for (let attempt = 0; attempt < 50 && tick === undefined; attempt++) {
      await query(client, "SELECT pgq.force_tick($1)", [record.queue], doing);
      await query(client, "SELECT pgq.ticker($1)", [record.queue], doing);
      const now = await last();
      if (BigInt(now) > before) tick = now;
    }
  } finally {
    await closeQuietly(client);
  }
  if (tick === undefined) {
    throw new PgshovelError(
      "INTERNAL",
      `set ${set} is fenced, but queue ${record.queue} made no tick after it (is its ticker paused?)`,
      { hint: "run set fence again to take the tick" },
    );
  }
  const updated = { ...record, tick };
  await ctx.zk.multi(
    [
      {
        op: "setData",
        path: fencePaths.fence(ctx.cluster, set),
        data: encodeRecord(updated),
        version,
      },
    ],
    `recording the fence tick of set ${set}`,
  );
  return updated;
}

/**
 * Lifts a set's fence: its triggers go and its record with them, atomically. Returns false
 * when the set was not fenced. Works from the record alone, so a fence outlives its set.
 */
export async function unfenceSet(ctx: AdminContext, set: string): Promise<boolean> {
  checkSetName(set);
  await recover(ctx);
  await readCluster(ctx, { current: true });
  const existing = await readFence(ctx, set);
  if (!existing) {
    // No record: the database may still hold a fence written by hand or left by a crash.
    const config = await requireSet(ctx, set);
    const client = await connect(config.config.database.dsn);
    try {
      if ((await fencedTables(client, ctx.cluster, set)).length === 0) return false;
      await query(client, unfenceStatement(ctx.cluster, set), [], `unfencing set ${set}`);
      return true;
    } finally {
      await closeQuietly(client);
    }
  }
  await commitEverywhere(ctx, {
    set,
    operation: "unfence",
    participants: [
      {
        dsn: existing.record.database.dsn,
        prepare: async (client) => {
          await query(client, unfenceStatement(ctx.cluster, set), [], `unfencing set ${set}`);
        },
      },
    ],
    zkOps: () => [
      { op: "remove", path: fencePaths.fence(ctx.cluster, set), version: existing.version },
    ],
  });
  ctx.logger.info({ set }, "set unfenced");
  return true;
}

/**
 * Promoting a replica to primary: the last step of a switchover, the first of a failover.
 * It holds the replica's election while it works (so no worker can apply meanwhile), checks
 * the source when it can be reached (fenced, nothing missing), moves the target's sequences
 * past every value the source used, and records the promotion in the target, which makes
 * any later worker for that (set, target) refuse to start.
 */
import { hostname } from "node:os";
import { readNodeId } from "../capture/install.js";
import { readCluster } from "../cluster/chroot.js";
import type { AdminContext } from "../cluster/context.js";
import { requireSet } from "../cluster/records.js";
import { checkSetName, zkPaths } from "../config/names.js";
import { hidePassword } from "../config/set-config.js";
import { readCandidates } from "../coordination/leadership.js";
import { closeQuietly, connect, type PgClient, query } from "../database/postgres.js";
import { describeError, isPgshovelError, PgshovelError } from "../errors.js";
import type { ReplicaPosition } from "../replication/target-state.js";
import { type FenceRecord, readFence } from "./fence.js";
import { readMissing, requirePosition } from "./missing.js";
import {
  installPromotionState,
  type PromotionRecord,
  readPromotion,
  writePromotion,
} from "./promotion-state.js";
import {
  advanceSequences,
  type CapturedColumns,
  type OwnedSequence,
  ownedSequences,
  type SequenceMove,
} from "./sequences.js";

/** Options of {@link promoteReplica}. */
export interface PromoteOptions {
  set: string;
  targetDsn: string;
  /** Added to the highest value known of each sequence. */
  sequenceGap: bigint;
  /** Promote although the source, reached, is not fenced or holds transactions the replica lacks. */
  force: boolean;
  /** How long to try reaching the source before counting it gone. */
  sourceTimeoutMs: number;
}

/** What {@link promoteReplica} found and did. */
export interface PromoteResult {
  /** Set when the target was promoted before: nothing was done. */
  already?: PromotionRecord;
  position?: ReplicaPosition;
  /** Why the source could not be read; undefined when it was. */
  sourceUnreachable?: string;
  fence?: FenceRecord;
  /** Transactions of the source the replica lacks (null: not known). */
  missing: number | null;
  sequences: SequenceMove[];
  /** What --force went past. */
  forced: string[];
}

/** Promotes the replica of `set` in `targetDsn`; see the file's comment. */
export async function promoteReplica(
  ctx: AdminContext,
  options: PromoteOptions,
): Promise<PromoteResult> {
  const { set, targetDsn } = options;
  checkSetName(set);
  await readCluster(ctx);
  const config = (await requireSet(ctx, set)).config;
  const target = await connect(targetDsn, { applicationName: "pgshovel-promote" });
  try {
    const node = await readNodeId(target, ctx.cluster);
    if (!node) {
      throw new PgshovelError(
        "NOT_FOUND",
        `${hidePassword(targetDsn)} is not a replica of cluster ${ctx.cluster} (it has no pgshovel_${ctx.cluster} schema)`,
        { hint: "check --target and --cluster" },
      );
    }
    const already = await readPromotion(target, ctx.cluster, set);
    if (already) return { already, missing: null, sequences: [], forced: [] };
    const position = await requirePosition(target, ctx.cluster, set, targetDsn);
    const election = zkPaths.replicaElection(ctx.cluster, set, node);
    const mine = await holdElection(ctx, election, set, targetDsn);
    try {
      return await promoteHeld(ctx, options, target, config, position);
    } finally {
      await ctx.zk.remove(mine).catch(() => {});
    }
  } finally {
    await closeQuietly(target);
  }
}

/**
 * Stands in the replica's election and leads it, or fails with IN_USE: a worker is active
 * (or stands by, and would take over). While the node is ours no worker can lead; one that
 * wins after us reads the promotion and refuses.
 */
async function holdElection(
  ctx: AdminContext,
  path: string,
  set: string,
  targetDsn: string,
): Promise<string> {
  const busy = (candidates: Awaited<ReturnType<typeof readCandidates>>) => {
    const who = candidates
      .map(
        (c) =>
          `pid ${String(c.data.pid ?? "?")} on ${String(c.data.host ?? "?")} since ${String(c.data.since ?? "?")}`,
      )
      .join("; ");
    return new PgshovelError(
      "IN_USE",
      `${candidates.length} replica worker(s) stand for set ${set} on ${hidePassword(targetDsn)} (${who}): nothing was changed`,
      {
        hint: "stop them first (SIGTERM); a worker that was killed keeps its place until its ZooKeeper session expires (the session timeout, 10 s by default): try again then",
      },
    );
  };
  const before = await readCandidates(ctx.zk, path);
  if (before.length > 0) throw busy(before);
  await ctx.zk.ensurePath(path);
  const data = {
    promotion: true,
    pid: process.pid,
    host: hostname(),
    since: new Date().toISOString(),
  };
  const mine = await ctx.zk.createEphemeralSequential(
    `${path}/candidate-`,
    Buffer.from(JSON.stringify(data)),
  );
  const after = await readCandidates(ctx.zk, path);
  if (after[0]?.node !== mine.slice(path.length + 1)) {
    await ctx.zk.remove(mine).catch(() => {});
    throw busy(after.filter((c) => c.data.promotion !== true));
  }
  return mine;
}

type SetConfig = Awaited<ReturnType<typeof requireSet>>["config"];

async function promoteHeld(
  ctx: AdminContext,
  options: PromoteOptions,
  target: PgClient,
  config: SetConfig,
  position: ReplicaPosition,
): Promise<PromoteResult> {
  const { set, targetDsn } = options;
  const tables: CapturedColumns[] = config.tables.map((t) => ({
    schema: t.schema,
    name: t.name,
    columns: t.columns,
  }));
  const result: PromoteResult = { position, missing: null, sequences: [], forced: [] };
  let sourceSequences: Map<string, OwnedSequence> | undefined;
  const source = await reachSource(config.database.dsn, options.sourceTimeoutMs);
  if (typeof source === "string") {
    result.sourceUnreachable = source;
  } else {
    try {
      const problems: string[] = [];
      const fence = await readFence(ctx, set);
      if (fence) result.fence = fence.record;
      else
        problems.push(
          `set ${set} is not fenced: its source still accepts writes, which would not reach the new primary (fence it: pgshovel set fence ${set})`,
        );
      const missing = await readMissing(
        source,
        { cluster: ctx.cluster, set, sourceDsn: config.database.dsn },
        position,
      );
      result.missing = missing.transactions.length;
      if (missing.transactions.length > 0) {
        problems.push(
          `the replica lacks ${missing.transactions.length} transaction(s) the source committed (let it catch up: pgshovel replicate ${set} --target … --until-caught-up; pgshovel set missing lists them)`,
        );
      }
      if (!missing.complete) {
        problems.push(
          `queue ${missing.queue} may no longer hold every event after the replica's position (no consumer stands at or before tick ${position.endTick}, and its event tables have rotated since): what it lacks cannot be told`,
        );
      }
      if (problems.length > 0 && !options.force) {
        throw new PgshovelError(
          "IN_USE",
          `not promoting ${hidePassword(targetDsn)}: ${problems.join("; ")}; nothing was changed`,
          {
            hint: "fix the above, or promote anyway with --force (what the source holds beyond the replica stays there)",
          },
        );
      }
      result.forced = problems;
      sourceSequences = await ownedSequences(source, tables);
    } finally {
      await closeQuietly(source);
    }
  }
  const doing = `promoting ${hidePassword(targetDsn)}`;
  await query(target, "BEGIN", [], doing);
  try {
    await installPromotionState(target, ctx.cluster);
    result.sequences = await advanceSequences(target, tables, sourceSequences, options.sequenceGap);
    await writePromotion(target, ctx.cluster, set, {
      node: position.node,
      batch: position.batch,
      endTick: position.endTick,
      sourceReached: result.sourceUnreachable === undefined,
      sequences: result.sequences,
    });
    await query(target, "COMMIT", [], doing);
  } catch (error) {
    await query(target, "ROLLBACK", [], doing).catch(() => {});
    throw error;
  }
  ctx.logger.info({ set, target: hidePassword(targetDsn) }, "replica promoted");
  return result;
}

/** A connection to the source, or why it could not be reached (it is down, gone, dropped). */
async function reachSource(dsn: string, timeoutMs: number): Promise<PgClient | string> {
  try {
    return await connect(dsn, { applicationName: "pgshovel-promote", timeoutMs });
  } catch (error) {
    if (isPgshovelError(error, "DATABASE_UNAVAILABLE") || isPgshovelError(error, "NOT_FOUND")) {
      return describeError(error).split("\n")[0]!;
    }
    throw error;
  }
}

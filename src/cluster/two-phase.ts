import { randomUUID } from "node:crypto";
import { literal, zkPaths } from "../config/names.js";
import { hidePassword } from "../config/set-config.js";
import { closeQuietly, connect, type PgClient, query } from "../database/postgres.js";
import { describeError, PgshovelError } from "../errors.js";
import { withRetry } from "../retry.js";
import type { AdminContext } from "./context.js";
import { decodeRecord, encodeRecord } from "./records.js";
import { isZkError, type ZkOp, ZooKeeper } from "./zookeeper.js";

/** A database taking part in a change: `prepare` does its work inside the transaction. */
export interface Participant<T = unknown> {
  dsn: string;
  prepare: (client: PgClient) => Promise<T>;
}

/**
 * The coordinator's log entry at `/<cluster>/transactions/<id>`: written before
 * any database prepares, flipped to "committed" by the same ZooKeeper multi-op
 * that changes the configuration. An ephemeral `owner` child marks it in progress.
 */
export interface TransactionRecord {
  set: string;
  operation: string;
  state: "prepared" | "committed" | "aborted";
  participants: { dsn: string; gid: string }[];
  created_at: string;
}

/** What {@link recover} did. */
export interface RecoveryReport {
  committed: string[];
  rolledBack: string[];
  inProgress: string[];
  failed: string[];
}

/** Prefix of every prepared transaction pgshovel makes: `pgshovel:<cluster>:<set>:<operation>:<id>`. */
export function gidPrefix(cluster: string): string {
  return `pgshovel:${cluster}:`;
}

async function finishPrepared(dsn: string, gid: string, commit: boolean): Promise<boolean> {
  const client = await connect(dsn);
  try {
    const found = await query(
      client,
      "SELECT 1 FROM pg_prepared_xacts WHERE gid = $1 AND database = current_database()",
      [gid],
      "looking up a prepared transaction",
    );
    if (!found.rowCount) return false;
    await query(
      client,
      `${commit ? "COMMIT" : "ROLLBACK"} PREPARED ${literal(gid)}`,
      [],
      `${commit ? "committing" : "rolling back"} prepared transaction ${gid}`,
    );
    return true;
  } finally {
    await closeQuietly(client);
  }
}

/**
 * Changes several databases and ZooKeeper atomically. Each participant's work
 * runs in a transaction that is prepared (PREPARE TRANSACTION); then one
 * ZooKeeper multi-op applies `zkOps` and marks the log entry committed; then the
 * prepared transactions are committed. Any failure before the multi-op rolls
 * every participant back. When the multi-op's outcome is unknown (connection
 * lost), it is looked up; if ZooKeeper stays out of reach the prepared
 * transactions are left for `pgshovel cluster recover`, and the error says so.
 */
export async function commitEverywhere<T>(
  ctx: AdminContext,
  options: {
    set: string;
    operation: string;
    participants: Participant<T>[];
    zkOps: (results: T[]) => ZkOp[];
  },
): Promise<T[]> {
  const id = randomUUID().replaceAll("-", "").slice(0, 16);
  const recordPath = zkPaths.transaction(ctx.cluster, id);
  const gids = options.participants.map(
    (_, i) => `${gidPrefix(ctx.cluster)}${options.set}:${options.operation}:${id}:${i}`,
  );
  const record: TransactionRecord = {
    set: options.set,
    operation: options.operation,
    state: "prepared",
    participants: options.participants.map((p, i) => ({ dsn: p.dsn, gid: gids[i]! })),
    created_at: new Date().toISOString(),
  };
  await ctx.zk.ensurePath(zkPaths.transactions(ctx.cluster));
  await ctx.zk.create(recordPath, encodeRecord(record));
  await ctx.zk.create(`${recordPath}/owner`, Buffer.alloc(0), { ephemeral: true });

  const clients: PgClient[] = [];
  const prepared: { dsn: string; gid: string }[] = [];
  const results: T[] = [];
  const abort = async (cause: unknown): Promise<never> => {
    for (const client of clients) {
      await client.query("ROLLBACK").catch(() => {});
    }
    for (const { dsn, gid } of prepared) {
      try {
        await finishPrepared(dsn, gid, false);
      } catch (error) {
        ctx.logger.error(
          { gid, err: describeError(error) },
          "could not roll back a prepared transaction; run `pgshovel cluster recover`",
        );
      }
    }
    await ctx.zk.removeRecursive(recordPath).catch(() => {});
    throw cause;
  };

  try {
    for (const [i, participant] of options.participants.entries()) {
      const client = await connect(participant.dsn);
      clients.push(client);
      await query(client, "BEGIN", [], "starting a transaction");
      results.push(await participant.prepare(client));
      await query(
        client,
        `PREPARE TRANSACTION ${literal(gids[i]!)}`,
        [],
        `preparing the change in ${hidePassword(participant.dsn)}`,
      );
      prepared.push({ dsn: participant.dsn, gid: gids[i]! });
    }
  } catch (error) {
    return abort(error);
  } finally {
    for (const client of clients) await closeQuietly(client);
    clients.length = 0;
  }

  await ctx.hooks?.afterPrepare?.(gids);

  let committed: boolean;
  try {
    await ctx.zk.multi(
      [
        ...options.zkOps(results),
        {
          op: "setData",
          path: recordPath,
          data: encodeRecord({ ...record, state: "committed" }),
          version: 0,
        },
      ],
      `writing the configuration of set ${options.set} to ZooKeeper`,
      // The client queues requests while disconnected: without a bound, a lost ZooKeeper hangs here.
      ctx.zookeeperTimeoutMs,
    );
    committed = true;
  } catch (error) {
    if (!(error instanceof PgshovelError) || !error.retryable) {
      if (
        isZkError(error, "BAD_VERSION") ||
        isZkError(error, "NODE_EXISTS") ||
        isZkError(error, "NO_NODE")
      ) {
        return abort(
          new PgshovelError(
            "CONFLICT",
            `set ${options.set} or cluster ${ctx.cluster} was changed concurrently; nothing was changed`,
            {
              cause: error,
              hint: "read the current state (`pgshovel set inspect`) and try again",
            },
          ),
        );
      }
      return abort(error);
    }
    committed = await learnOutcome(ctx, recordPath, error);
  }
  await settle(ctx, recordPath, prepared, committed);
  if (!committed) {
    throw new PgshovelError(
      "ZOOKEEPER_UNAVAILABLE",
      `lost ZooKeeper while changing set ${options.set}; the change was rolled back`,
      {
        retryable: true,
      },
    );
  }
  return results;
}

/** After a lost multi-op: decide from the log entry, aborting it if it is still "prepared". */
async function learnOutcome(
  ctx: AdminContext,
  recordPath: string,
  cause: PgshovelError,
): Promise<boolean> {
  const deadline = Date.now() + ctx.zookeeperTimeoutMs;
  let session: ZooKeeper | undefined;
  try {
    return await withRetry(
      async () => {
        session ??= await ZooKeeper.connect({
          hosts: ctx.zk.hosts,
          timeoutMs: Math.max(1000, deadline - Date.now()),
          operationTimeoutMs: ctx.zookeeperTimeoutMs,
        });
        return decide(session, recordPath);
      },
      {
        attempts: Number.POSITIVE_INFINITY,
        initialDelayMs: 200,
        maxDelayMs: 2000,
        signal: AbortSignal.timeout(ctx.zookeeperTimeoutMs),
      },
    );
  } catch (error) {
    throw new PgshovelError(
      "ZOOKEEPER_UNAVAILABLE",
      `lost ZooKeeper (${ctx.zk.hosts}) while committing a change; its outcome is unknown, so the prepared transactions are kept: ${describeError(cause)}`,
      {
        cause: error,
        hint: "once ZooKeeper is reachable run `pgshovel cluster recover` (set create, update and drop also do it first); until then the prepared transactions hold locks on the set's tables",
      },
    );
  } finally {
    session?.close();
  }
}

/** Reads a log entry and returns whether it committed; a "prepared" entry is aborted first. */
async function decide(zk: ZooKeeper, recordPath: string): Promise<boolean> {
  const node = await zk.get(recordPath);
  if (!node) return false;
  const record = decodeRecord<TransactionRecord>(node.data, recordPath);
  if (record.state === "committed") return true;
  if (record.state === "prepared") {
    try {
      await zk.multi(
        [
          {
            op: "setData",
            path: recordPath,
            data: encodeRecord({ ...record, state: "aborted" }),
            version: node.stat.version,
          },
        ],
        "aborting a transaction",
      );
    } catch (error) {
      if (isZkError(error, "BAD_VERSION")) return decide(zk, recordPath);
      throw error;
    }
  }
  return false;
}

async function settle(
  ctx: AdminContext,
  recordPath: string,
  participants: { dsn: string; gid: string }[],
  commit: boolean,
): Promise<void> {
  for (const { dsn, gid } of participants) {
    await withRetry(() => finishPrepared(dsn, gid, commit), {
      attempts: 5,
      initialDelayMs: 200,
      maxDelayMs: 2000,
    });
  }
  await ctx.zk.removeRecursive(recordPath).catch((error) => {
    ctx.logger.warn(
      { err: describeError(error), path: recordPath },
      "could not remove a finished transaction record; `pgshovel cluster recover` will",
    );
  });
}

/**
 * Resolves interrupted changes: every log entry whose owner is gone is
 * committed or rolled back in its databases according to ZooKeeper, then removed.
 * Entries whose owner is still connected are in progress and left alone.
 */
export async function recover(ctx: AdminContext): Promise<RecoveryReport> {
  const report: RecoveryReport = { committed: [], rolledBack: [], inProgress: [], failed: [] };
  for (const id of await ctx.zk.children(zkPaths.transactions(ctx.cluster))) {
    const path = zkPaths.transaction(ctx.cluster, id);
    if (await ctx.zk.exists(`${path}/owner`)) {
      report.inProgress.push(id);
      continue;
    }
    const node = await ctx.zk.get(path);
    if (!node) continue;
    const record = decodeRecord<TransactionRecord>(node.data, path);
    let commit: boolean;
    try {
      commit = await decide(ctx.zk, path);
    } catch (error) {
      report.failed.push(id);
      ctx.logger.warn({ err: describeError(error), id }, "could not decide an interrupted change");
      continue;
    }
    let ok = true;
    for (const { dsn, gid } of record.participants) {
      try {
        if (await finishPrepared(dsn, gid, commit))
          (commit ? report.committed : report.rolledBack).push(gid);
      } catch (error) {
        ok = false;
        ctx.logger.warn(
          { gid, database: hidePassword(dsn), err: describeError(error) },
          "could not resolve a prepared transaction",
        );
      }
    }
    if (ok) await ctx.zk.removeRecursive(path);
    else report.failed.push(id);
  }
  if (report.committed.length + report.rolledBack.length > 0) {
    ctx.logger.info(report, "recovered interrupted configuration changes");
  }
  return report;
}

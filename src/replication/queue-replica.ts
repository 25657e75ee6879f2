/**
 * A replica fed straight from a set's PgQ queue, without election: bootstrap (consumer
 * first, then the snapshot copy) and applying the batches ready now. The pieces a
 * replication worker combines, usable on their own as a library.
 */
import { readNodeId } from "../capture/install.js";
import { dbNames } from "../config/names.js";
import type { SetConfigInput } from "../config/set-config.js";
import { closeQuietly, connect, type PgClient, query } from "../database/postgres.js";
import { PgshovelError } from "../errors.js";
import { PgqSource } from "../relay/pgq-source.js";
import type { Mutation, Uuid } from "../stream/types.js";
import { type ApplyResult, BatchApplier } from "./apply.js";
import { type BootstrapOptions, type BootstrapResult, bootstrapCopy } from "./bootstrap.js";
import type { RunLimits } from "./runs.js";
import { describeSourceTables, prepareTargetTables, type ReplicaTable } from "./target-schema.js";
import { installReplicaState, type TableName } from "./target-state.js";

/** Where a queue replica reads and writes. */
export interface QueueReplicaOptions {
  sourceDsn: string;
  targetDsn: string;
  cluster: string;
  set: string;
  /** The set's tables, as its configuration lists them. */
  tables: SetConfigInput["tables"];
}

/** Options of {@link bootstrapFromQueue}. */
export interface QueueBootstrapOptions
  extends QueueReplicaOptions,
    Pick<BootstrapOptions, "jobs" | "onProgress" | "progressIntervalMs"> {
  /** Create missing target tables with the captured columns and primary key. */
  createTables?: boolean;
}

/** What {@link bootstrapFromQueue} did. */
export interface QueueBootstrapResult extends BootstrapResult {
  /** The PgQ consumer the replica reads the set's queue as. */
  consumer: string;
  targetNode: Uuid;
  /** Target tables created because they were missing. */
  created: TableName[];
}

async function withClients<T>(
  options: Pick<QueueReplicaOptions, "sourceDsn" | "targetDsn">,
  body: (source: PgClient, target: PgClient) => Promise<T>,
): Promise<T> {
  let source: PgClient | undefined;
  let target: PgClient | undefined;
  try {
    source = await connect(options.sourceDsn, { applicationName: "pgshovel-replica" });
    target = await connect(options.targetDsn, { applicationName: "pgshovel-replica" });
    return await body(source, target);
  } finally {
    await closeQuietly(source);
    await closeQuietly(target);
  }
}

/**
 * Bootstraps (or resumes bootstrapping) a replica: checks or creates the target tables
 * before writing anything, installs the replica state, registers the replica's PgQ
 * consumer — the stream position, taken before the snapshot — and copies every table
 * not copied yet. Safe to run again after any failure.
 */
export async function bootstrapFromQueue(
  options: QueueBootstrapOptions,
): Promise<QueueBootstrapResult> {
  const { tables, targetNode, consumer, created } = await withClients(
    options,
    async (source, target) => {
      const tables = await describeSourceTables(source, options.tables);
      const { created } = await prepareTargetTables(target, tables, {
        createTables: options.createTables ?? false,
      });
      const targetNode = await installReplicaState(target, options.cluster);
      const consumer = dbNames.replicaConsumer(targetNode);
      // A consumer registered already keeps its position: a resumed bootstrap's new
      // snapshot is later still, so the position stays before it.
      await query(
        source,
        "SELECT pgq.register_consumer($1, $2)",
        [dbNames.queue(options.cluster, options.set), consumer],
        "registering the replica's PgQ consumer",
      );
      return { tables, targetNode, consumer, created };
    },
  );
  const copy: BootstrapOptions = { ...options, tables };
  const result = await bootstrapCopy(copy);
  return { ...result, consumer, targetNode, created };
}

/** Options of {@link applyQueueBatches}. */
export interface QueueApplyOptions extends QueueReplicaOptions {
  /** Stop after this many batches (default: every batch ready now). */
  maxBatches?: number;
  /**
   * Finish each PgQ batch after the target committed it (default true). Without it,
   * one batch is applied and left unfinished, as a crash right after the commit would.
   */
  finish?: boolean;
  /** Events fetched per round trip (default 5,000). */
  fetchSize?: number;
  limits?: RunLimits;
}

async function describeTables(options: QueueReplicaOptions): Promise<{
  tables: ReplicaTable[];
  targetNode: Uuid;
}> {
  return withClients(options, async (source, target) => {
    const targetNode = await readNodeId(target, options.cluster);
    if (!targetNode) {
      throw new PgshovelError(
        "NOT_FOUND",
        `the target holds no replica state of cluster ${options.cluster}`,
        { hint: "bootstrap the replica first" },
      );
    }
    return { tables: await describeSourceTables(source, options.tables), targetNode };
  });
}

/**
 * Applies the set's batches that PgQ has ready for the replica's consumer, each as one
 * target transaction, and finishes each PgQ batch only after its target commit. A
 * batch applied before (the crash came between the commit and `finish_batch`) is
 * skipped and finished. Returns one result per batch, in order.
 */
export async function applyQueueBatches(options: QueueApplyOptions): Promise<ApplyResult[]> {
  const { tables, targetNode } = await describeTables(options);
  const finish = options.finish ?? true;
  const fetchSize = options.fetchSize ?? 5_000;
  const source = new PgqSource(options.sourceDsn, {
    cluster: options.cluster,
    set: options.set,
    consumer: dbNames.replicaConsumer(targetNode),
    fetchSize,
  });
  let target: PgClient | undefined;
  try {
    await source.open();
    target = await connect(options.targetDsn, { applicationName: "pgshovel-replica" });
    const applier = new BatchApplier(target, {
      cluster: options.cluster,
      set: options.set,
      tables,
      ...(options.limits ? { limits: options.limits } : {}),
    });
    const results: ApplyResult[] = [];
    for (;;) {
      const info = await source.nextBatch();
      if (!info) break;
      const begin = await source.ticks(info);
      const mutations = async function* (): AsyncGenerator<Mutation> {
        for await (const chunk of source.events(info.id)) yield* chunk;
      };
      results.push(
        await applier.apply({ node: source.node, id: info.id, begin, mutations: mutations() }),
      );
      // Without finishing, PgQ hands out the same batch again: one is all there is.
      if (!finish) break;
      await source.finish(info.id);
      if (options.maxBatches !== undefined && results.length >= options.maxBatches) break;
    }
    return results;
  } finally {
    await source.close();
    await closeQuietly(target);
  }
}

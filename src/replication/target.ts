/**
 * The target database as the replication worker sees it: one small interface over the
 * schema check, the replica state, the bootstrap copy and the applier, so that the worker's
 * loop runs as well against a scripted target in a unit test.
 */
import type { SetConfigInput } from "../config/set-config.js";
import { hidePassword } from "../config/set-config.js";
import { closeQuietly, connect, type PgClient, query } from "../database/postgres.js";
import { refusePromoted } from "../promotion/promotion-state.js";
import { untilRevoked, type WriteGuard } from "../sinks/sink.js";
import type { Uuid } from "../stream/types.js";
import { adoptTables } from "./adopt.js";
import { type ApplyResult, BatchApplier, type BatchToApply } from "./apply.js";
import { type BootstrapResult, bootstrapCopy, type CopyProgress } from "./bootstrap.js";
import type { RunLimits } from "./runs.js";
import {
  describeSourceTables,
  prepareTargetTables,
  type ReplicaTable,
  requireCaptureTriggers,
} from "./target-schema.js";
import {
  type CopiedTable,
  forgetCopied,
  installReplicaState,
  type ReplicaMark,
  type ReplicaPosition,
  readCopiedTables,
  readMark,
  readPosition,
  type TableName,
  writeMark,
} from "./target-state.js";

/** The set's tables, checked on the target, and the target's node id. */
export interface PreparedTarget {
  node: Uuid;
  tables: ReplicaTable[];
  /** Tables created because they were missing (with `createTables`). */
  created: TableName[];
}

/** What the target stores for the set. */
export interface StoredReplica {
  position: ReplicaPosition | undefined;
  mark: ReplicaMark | undefined;
  /** By `schema.name`. */
  copied: Map<string, CopiedTable>;
}

/** Options of {@link ReplicaTarget.copy}. */
export interface CopyOptions {
  jobs: number;
  onProgress?: (progress: CopyProgress) => void;
  /** Once it ends, the copy stops at once: its open target transactions roll back. */
  guard?: WriteGuard;
  /** Take the target's tables as they are instead of copying (`replicate --no-copy`; see adopt.ts). */
  withoutCopy?: boolean;
}

/** A replica's target database; connections open on first use and again after {@link close}. */
export interface ReplicaTarget {
  /** For logs: the target without its password. */
  readonly description: string;
  /**
   * Describes the set's tables on the source, checks them on the target (or creates the
   * missing ones) — every problem found before anything is written — and installs the
   * replica state.
   */
  prepare(
    sourceDsn: string,
    tables: SetConfigInput["tables"],
    createTables: boolean,
  ): Promise<PreparedTarget>;
  stored(): Promise<StoredReplica>;
  /** Stores the mark (a mark stored already is kept). */
  storeMark(mark: ReplicaMark): Promise<void>;
  /** Forgets the copies of tables that left the set. */
  forget(tables: TableName[]): Promise<void>;
  /** Copies `tables` from one snapshot of the source, once each carries the set's trigger. */
  copy(sourceDsn: string, tables: ReplicaTable[], options: CopyOptions): Promise<BootstrapResult>;
  /**
   * Applies one batch as one transaction for a set of `tables` (see BatchApplier). Once
   * `guard` ends, the transaction in flight rolls back at once and nothing commits.
   */
  apply(batch: BatchToApply, tables: ReplicaTable[], guard?: WriteGuard): Promise<ApplyResult>;
  close(): Promise<void>;
}

/** Options of {@link PgTarget}. */
export interface PgTargetOptions {
  targetDsn: string;
  cluster: string;
  set: string;
  limits?: RunLimits;
}

const APPLICATION = "pgshovel-replica";

/** A PostgreSQL target. */
export class PgTarget implements ReplicaTarget {
  readonly description: string;
  private client: PgClient | undefined;
  private applier: { tables: ReplicaTable[]; applier: BatchApplier } | undefined;

  constructor(private readonly options: PgTargetOptions) {
    this.description = hidePassword(options.targetDsn);
  }

  private async db(): Promise<PgClient> {
    this.client ??= await connect(this.options.targetDsn, { applicationName: APPLICATION });
    return this.client;
  }

  /** Runs `body` on the target connection; a failure closes it, so the next call reconnects. */
  private async using<T>(body: (client: PgClient) => Promise<T>): Promise<T> {
    try {
      return await body(await this.db());
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  async prepare(
    sourceDsn: string,
    configured: SetConfigInput["tables"],
    createTables: boolean,
  ): Promise<PreparedTarget> {
    const source = await connect(sourceDsn, { applicationName: APPLICATION });
    let tables: ReplicaTable[];
    try {
      tables = await describeSourceTables(source, configured);
    } finally {
      await closeQuietly(source);
    }
    const { cluster } = this.options;
    return this.using(async (target) => {
      // Workers of one target starting together must not both create a table.
      const lock = [`pgshovel replica tables ${cluster}`];
      await query(target, "SELECT pg_advisory_lock(hashtext($1))", lock, "locking the target");
      try {
        const { created } = await prepareTargetTables(target, tables, { createTables });
        const node = await installReplicaState(target, cluster);
        return { node, tables, created };
      } finally {
        await query(target, "SELECT pg_advisory_unlock(hashtext($1))", lock, "unlocking");
      }
    });
  }

  stored(): Promise<StoredReplica> {
    const { cluster, set } = this.options;
    return this.using(async (target) => {
      // Read once the election is won: a promotion holds the election while it writes this.
      await refusePromoted(target, cluster, set, this.description);
      return {
        position: await readPosition(target, cluster, set),
        mark: await readMark(target, cluster, set),
        copied: await readCopiedTables(target, cluster, set),
      };
    });
  }

  storeMark(mark: ReplicaMark): Promise<void> {
    return this.using((target) => writeMark(target, this.options.cluster, this.options.set, mark));
  }

  forget(tables: TableName[]): Promise<void> {
    const { cluster, set } = this.options;
    return this.using((target) => forgetCopied(target, cluster, set, tables));
  }

  async copy(
    sourceDsn: string,
    tables: ReplicaTable[],
    options: CopyOptions,
  ): Promise<BootstrapResult> {
    const { cluster, set, targetDsn } = this.options;
    if (options.withoutCopy) return adoptTables({ sourceDsn, targetDsn, cluster, set, tables });
    const source = await connect(sourceDsn, { applicationName: APPLICATION });
    try {
      await requireCaptureTriggers(source, cluster, set, tables);
    } finally {
      await closeQuietly(source);
    }
    return bootstrapCopy({
      sourceDsn,
      targetDsn,
      cluster,
      set,
      tables,
      jobs: options.jobs,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.guard ? { guard: options.guard } : {}),
    });
  }

  apply(batch: BatchToApply, tables: ReplicaTable[], guard?: WriteGuard): Promise<ApplyResult> {
    return this.using(async (target) => {
      if (this.applier?.tables !== tables) {
        const { cluster, set, limits } = this.options;
        const applier = new BatchApplier(target, {
          cluster,
          set,
          tables,
          ...(limits && { limits }),
        });
        this.applier = { tables, applier };
      }
      const applier = this.applier.applier;
      if (!guard) return applier.apply(batch);
      guard.check();
      // Closing the connection is the quickest way to end the transaction in flight: the
      // server rolls it back, whatever statement was running.
      const onAbort = () => void this.close();
      guard.signal.addEventListener("abort", onAbort, { once: true });
      try {
        // Not waiting for the closed connection's answer: a statement waiting on a lock, say,
        // hears of the close only once it has the lock (and then rolls back).
        return await untilRevoked(applier.apply(batch, guard), guard);
      } finally {
        guard.signal.removeEventListener("abort", onAbort);
      }
    });
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.applier = undefined;
    await closeQuietly(client);
  }
}

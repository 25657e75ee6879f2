/**
 * The applier: one source batch becomes one target transaction that holds the batch's
 * changes and the replica's new position, so a crash anywhere resumes exactly.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { from as copyFrom } from "pg-copy-streams";
import { convertPgError, type PgClient, query, sqlstate } from "../database/postgres.js";
import { PgshovelError, wrapError } from "../errors.js";
import type { WriteGuard } from "../sinks/sink.js";
import { pastSnapshot, visible } from "../stream/snapshot.js";
import type { Begin, Mutation, StreamPosition, Uuid } from "../stream/types.js";
import { DEFAULT_RUN_LIMITS, RowRun, type RunLimits, TruncateRun } from "./runs.js";
import type { ReplicaTable } from "./target-schema.js";
import {
  display,
  type ReplicaPosition,
  readCopiedTables,
  readPosition,
  writePosition,
} from "./target-state.js";

/** One source batch to apply: its reference, its ticks and its mutations in event order. */
export interface BatchToApply {
  /** The source database's node id. */
  node: Uuid;
  /** The PgQ batch id. */
  id: bigint;
  begin: Begin;
  /** Read once, in order; not read at all when the batch is skipped. Throwing rolls back. */
  mutations: AsyncIterable<Mutation>;
  /** Where the feed resumes after this batch; stored with the position, in its transaction. */
  position?: StreamPosition | null;
}

/** What happened to the mutations of an applied batch. */
export interface ApplyStats {
  /** Mutations read. */
  mutations: number;
  /** Mutations written to the target. */
  applied: number;
  /** Skipped: their transaction is visible in the table's copy snapshot. */
  inCopy: number;
  /** Skipped: their table is not copied yet (its copy will hold them). */
  notCopied: number;
  /** Skipped: their table is not in the set. */
  notInSet: number;
  /** Statements sent (one per run). */
  statements: number;
}

/** The outcome of {@link BatchApplier.apply}. */
export type ApplyResult =
  | { kind: "applied"; node: Uuid; id: bigint; stats: ApplyStats }
  | { kind: "skipped"; node: Uuid; id: bigint; position: ReplicaPosition };

/** The set an applier writes for. */
export interface ApplierOptions {
  cluster: string;
  set: string;
  /** The set's tables (captured columns with their types); anything else is skipped. */
  tables: ReplicaTable[];
  limits?: RunLimits;
}

type Run = RowRun | TruncateRun;

/**
 * Applies batches to a target connection. Each batch is one transaction run with
 * `session_replication_role = replica`, so the target's triggers (a capture trigger
 * of its own, say) do not fire and foreign keys are not checked between runs.
 */
export class BatchApplier {
  private readonly tables: Map<string, ReplicaTable>;
  private readonly limits: RunLimits;

  constructor(
    private readonly target: PgClient,
    private readonly options: ApplierOptions,
  ) {
    this.tables = new Map(options.tables.map((table) => [display(table), table]));
    this.limits = options.limits ?? DEFAULT_RUN_LIMITS;
  }

  /**
   * Applies `batch` unless the position shows it applied already (same node, id not
   * above the stored one), in which case it is skipped whole. Mutations are skipped
   * when their table is not in the set, not copied yet, or when their transaction is
   * visible in the snapshot the table was copied under (the copy holds them).
   *
   * Skipping a table not yet copied is exact: its copy will be taken later, from a
   * snapshot that sees every transaction of every batch applied before it (those
   * batches ended at ticks taken earlier), and the mutations after that are applied.
   *
   * With `guard`, nothing is committed once it has ended (checked right before COMMIT); the
   * caller closes the connection when its signal aborts, which rolls the transaction back.
   */
  async apply(batch: BatchToApply, guard?: WriteGuard): Promise<ApplyResult> {
    const { target, options } = this;
    const doing = `applying batch ${batch.id} of node ${batch.node}`;
    await query(target, "BEGIN", [], doing);
    try {
      await query(target, "SET LOCAL session_replication_role = replica", [], doing);
      const position = await readPosition(target, options.cluster, options.set);
      if (position && position.node === batch.node && batch.id <= position.batch) {
        await query(target, "ROLLBACK", [], doing);
        return { kind: "skipped", node: batch.node, id: batch.id, position };
      }
      const stats = await this.applyMutations(batch);
      if (!(await writePosition(target, options.cluster, options.set, batch))) {
        throw new PgshovelError(
          "CONFLICT",
          `batch ${batch.id} was applied meanwhile by another writer of set ${options.set}`,
          { hint: "run one replica worker per set and target" },
        );
      }
      // The last moment to refuse: a worker whose lease ended must not commit.
      guard?.check();
      await query(target, "COMMIT", [], doing);
      return { kind: "applied", node: batch.node, id: batch.id, stats };
    } catch (error) {
      await query(target, "ROLLBACK", [], doing).catch(() => {});
      // Aborted by the guard: its reason, not the closed connection's error, says why.
      if (guard?.signal.aborted) throw guard.signal.reason;
      throw wrapError(error, doing);
    }
  }

  private async applyMutations(batch: BatchToApply): Promise<ApplyStats> {
    const stats: ApplyStats = {
      mutations: 0,
      applied: 0,
      inCopy: 0,
      notCopied: 0,
      notInSet: 0,
      statements: 0,
    };
    const copied = await readCopiedTables(this.target, this.options.cluster, this.options.set);
    // Per table: undefined = not copied; true = its copy may hold some of this batch.
    const mayBeInCopy = new Map<string, boolean>();
    for (const [name, table] of copied) {
      mayBeInCopy.set(name, !pastSnapshot(batch.begin.start.snapshot, table.snapshot));
    }
    // One open run per table: a batch is applied as one transaction with triggers and
    // foreign keys off, so changes to different tables commute; each table's changes keep
    // their order (its runs are flushed in order). All open runs are flushed once they hold
    // `limits.rows` rows together, so memory stays flat whatever the batch.
    const open = new Map<string, RowRun>();
    let truncating: TruncateRun | undefined;
    let buffered = 0;
    // One statement in flight while the next run is gathered: reading the source and
    // writing the target overlap. Its failure surfaces at the next flush or at the end.
    let inFlight: Promise<void> | undefined;
    const flush = async (done: Run) => {
      if (done instanceof RowRun) buffered -= done.size;
      if (inFlight) await inFlight;
      stats.statements++;
      inFlight = this.execute(done);
      inFlight.catch(() => {});
    };
    const flushAll = async () => {
      for (const run of open.values()) await flush(run);
      open.clear();
    };
    for await (const mutation of batch.mutations) {
      stats.mutations++;
      const name = `${mutation.schema}.${mutation.table}`;
      const table = this.tables.get(name);
      if (!table) {
        stats.notInSet++;
        continue;
      }
      const check = mayBeInCopy.get(name);
      if (check === undefined) {
        stats.notCopied++;
        continue;
      }
      if (check && visible(mutation.transaction, copied.get(name)!.snapshot)) {
        stats.inCopy++;
        continue;
      }
      stats.applied++;
      if (mutation.operation === "TRUNCATE") {
        // Consecutive TRUNCATEs stay one statement (tables referencing each other must be
        // truncated together), after every row change before them.
        if (!truncating) await flushAll();
        truncating ??= new TruncateRun();
        truncating.add(table);
        continue;
      }
      if (truncating) {
        await flush(truncating);
        truncating = undefined;
      }
      let run = open.get(name) as RowRun | undefined;
      if (run && !run.accepts(mutation, table)) {
        await flush(run);
        run = undefined;
      }
      run ??= new RowRun(table, mutation.operation, this.limits);
      const before = run.size;
      run.add(mutation);
      buffered += run.size - before;
      open.set(name, run);
      if (buffered >= this.limits.rows) await flushAll();
    }
    if (truncating) await flush(truncating);
    await flushAll();
    if (inFlight) await inFlight;
    return stats;
  }

  private async execute(run: Run): Promise<void> {
    if (run instanceof TruncateRun) {
      const names = run.tables.map(display).join(", ");
      await query(this.target, run.statement(), [], `truncating ${names}`);
      return;
    }
    const what = `${run.operation} of ${run.size} rows of ${display(run.table)}`;
    let result: { rows: { n: string }[] };
    try {
      if (run.operation === "INSERT" && run.size >= (this.limits.copyInsertsFrom ?? Infinity)) {
        const copy = run.copy();
        await pipeline(Readable.from([copy.data]), this.target.query(copyFrom(copy.text)));
        return;
      }
      result = await this.target.query<{ n: string }>(run.statement());
    } catch (error) {
      if (sqlstate(error) === "23505") throw diverged(run, `${what}: a key already exists`, error);
      throw convertPgError(error, what);
    }
    if (run.operation === "INSERT" || result.rows.length === run.size) return;
    const matched = new Set(result.rows.map((row) => Number(row.n)));
    let missing = 1;
    while (matched.has(missing)) missing++;
    throw diverged(
      run,
      `${what}: ${result.rows.length} matched; no row has key ${run.keyAt(missing)}`,
    );
  }
}

function diverged(run: RowRun, message: string, cause?: unknown): PgshovelError {
  const detail = (cause as { detail?: string } | undefined)?.detail;
  return new PgshovelError(
    "CONFLICT",
    `the target has diverged from the source: ${message}${detail ? ` (${detail})` : ""}`,
    {
      cause,
      hint: `something other than this replica wrote to ${display(run.table)} on the target: copy the table again (truncate it and delete its row in the replica's replica_tables)`,
    },
  );
}

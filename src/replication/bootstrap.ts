/**
 * The bootstrap copy: every table of a set not yet copied, read from one source
 * snapshot and written with COPY, one target transaction per table that also records
 * the table as copied under that snapshot.
 */
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { from as copyFrom, to as copyTo } from "pg-copy-streams";
import { ident, literal } from "../config/names.js";
import {
  closeQuietly,
  connect,
  convertPgError,
  type PgClient,
  query,
} from "../database/postgres.js";
import { PgshovelError, wrapError } from "../errors.js";
import { untilRevoked, type WriteGuard } from "../sinks/sink.js";
import { parseSnapshot } from "../stream/snapshot.js";
import type { Snapshot } from "../stream/types.js";
import type { ReplicaTable } from "./target-schema.js";
import {
  display,
  qualified,
  readCopiedTables,
  recordCopied,
  type TableName,
} from "./target-state.js";

/** How far the copy of one table has come; `done` on its last report. */
export interface CopyProgress {
  /** schema.name */
  table: string;
  rows: number;
  /** The source's `pg_class.reltuples`; undefined when the table was never analyzed. */
  totalEstimate: number | undefined;
  rowsPerSecond: number;
  done: boolean;
}

/** What {@link bootstrapCopy} needs. */
export interface BootstrapOptions {
  sourceDsn: string;
  targetDsn: string;
  cluster: string;
  set: string;
  /** The set's tables; those the target already records as copied are left alone. */
  tables: ReplicaTable[];
  /** Tables copied at once, each on its own pair of connections (default 1). */
  jobs?: number;
  onProgress?: (progress: CopyProgress) => void;
  /** Least time between two reports of one table (default 500 ms; 0 reports every chunk). */
  progressIntervalMs?: number;
  /**
   * Once it ends (a stop, a lease that ended), the copy stops at once: the COPY streams are
   * destroyed, the open target transactions roll back, and nothing more commits.
   */
  guard?: WriteGuard;
}

/** What {@link bootstrapCopy} did. */
export interface BootstrapResult {
  /** The snapshot S the tables were copied under; undefined when nothing was left to copy. */
  snapshot: Snapshot | undefined;
  copied: { table: TableName; rows: bigint }[];
  /** Tables found copied already (by an earlier, interrupted bootstrap). */
  alreadyCopied: TableName[];
}

// Text output that reads back as the same value whatever the servers' defaults are.
export const SESSION_SETTINGS =
  "SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET bytea_output = 'hex'";

/** Counts rows in COPY's text format: one line per row, newlines inside values are escaped. */
class RowCounter extends Transform {
  rows = 0;
  constructor(private readonly onChunk: () => void) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
    for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) this.rows++;
    this.onChunk();
    callback(null, chunk);
  }
}

async function estimate(source: PgClient, table: ReplicaTable): Promise<number | undefined> {
  const result = await query<{ estimate: number }>(
    source,
    "SELECT reltuples::float8 AS estimate FROM pg_class WHERE oid = $1::regclass",
    [qualified(table)],
    `estimating the size of ${display(table)}`,
  );
  const value = result.rows[0]?.estimate ?? -1;
  return value < 0 ? undefined : value;
}

/** Copies one table in one target transaction; returns its rows, or undefined if it was copied meanwhile. */
async function copyTable(
  source: PgClient,
  target: PgClient,
  options: BootstrapOptions,
  table: ReplicaTable,
  snapshot: Snapshot,
): Promise<bigint | undefined> {
  const name = display(table);
  const columns = table.columns.map((column) => ident(column.name)).join(", ");
  const totalEstimate = await estimate(source, table);
  const doing = `copying ${name}`;
  await query(target, "BEGIN", [], doing);
  try {
    // Replica role: the target's own triggers (and foreign keys) stay out of the copy.
    await query(target, "SET LOCAL session_replication_role = replica", [], doing);
    await query(target, `LOCK TABLE ${qualified(table)} IN EXCLUSIVE MODE`, [], doing);
    const copied = await readCopiedTables(target, options.cluster, options.set);
    if (copied.has(name)) {
      await query(target, "ROLLBACK", [], doing);
      return undefined;
    }
    await assertEmpty(target, options, table);
    const started = Date.now();
    let reportedAt = 0;
    const interval = options.progressIntervalMs ?? 500;
    const report = (done: boolean) => {
      const now = Date.now();
      if (!options.onProgress || (!done && now - reportedAt < interval)) return;
      reportedAt = now;
      const seconds = Math.max(0.001, (now - started) / 1000);
      options.onProgress({
        table: name,
        rows: counter.rows,
        totalEstimate,
        rowsPerSecond: counter.rows / seconds,
        done,
      });
    };
    const counter = new RowCounter(() => report(false));
    const reader = source.query(
      copyTo(`COPY (SELECT ${columns} FROM ${qualified(table)}) TO STDOUT`),
    );
    const writer = target.query(copyFrom(`COPY ${qualified(table)} (${columns}) FROM STDIN`));
    try {
      // pipeline: the source is read only as fast as the target takes it, so memory
      // stays flat whatever the table's size.
      const guard = options.guard;
      await (guard
        ? pipeline(reader, counter, writer, { signal: guard.signal })
        : pipeline(reader, counter, writer));
    } catch (error) {
      throw convertPgError(error, doing);
    }
    const rows = BigInt(writer.rowCount);
    await recordCopied(target, options.cluster, options.set, table, snapshot, rows);
    options.guard?.check();
    await query(target, "COMMIT", [], doing);
    report(true);
    return rows;
  } catch (error) {
    // A stopped copy does not wait for its ROLLBACK: closing the connection rolls back too.
    if (options.guard?.signal.aborted) throw options.guard.signal.reason;
    await query(target, "ROLLBACK", [], doing).catch(() => {});
    throw error;
  }
}

async function assertEmpty(
  target: PgClient,
  options: Pick<BootstrapOptions, "cluster">,
  table: TableName,
): Promise<void> {
  const rows = await query(
    target,
    `SELECT 1 FROM ${qualified(table)} LIMIT 1`,
    [],
    `checking that target table ${display(table)} is empty`,
  );
  if (rows.rowCount) {
    throw new PgshovelError(
      "INVALID_CONFIGURATION",
      `target table ${display(table)} has rows but the replica has not copied it: refusing to copy over them`,
      {
        hint: `truncate ${display(table)} on the target to copy it afresh; to rebuild the whole replica, also delete the set's rows from pgshovel_${options.cluster}.replica_tables and replica_position there`,
      },
    );
  }
}

/**
 * Copies every table of `options.tables` that the target does not record as copied,
 * from one REPEATABLE READ snapshot S of the source: `jobs` tables at a time on
 * connections sharing S (`pg_export_snapshot`, `SET TRANSACTION SNAPSHOT`, as
 * `pg_dump -j` does). Each table is one target transaction holding its rows and its
 * state row (S), so a failure leaves the table empty and unrecorded, and a later run
 * copies only what is missing. A target table with rows and no state row is an error.
 *
 * ORDERING RULE for callers: take the stream position first (register the PgQ
 * consumer, note the topic's end offset, …), then call this. Every batch before that
 * position then holds only transactions that S sees, and the applier skips, after it,
 * the transactions S saw. No batch may be applied while a copy runs.
 */
export async function bootstrapCopy(options: BootstrapOptions): Promise<BootstrapResult> {
  const jobs = Math.max(1, Math.floor(options.jobs ?? 1));
  const control = await connect(options.targetDsn, { applicationName: "pgshovel-replica" });
  let pending: ReplicaTable[];
  const alreadyCopied: TableName[] = [];
  try {
    const copied = await readCopiedTables(control, options.cluster, options.set);
    pending = [];
    for (const table of options.tables) {
      if (copied.has(display(table)))
        alreadyCopied.push({ schema: table.schema, name: table.name });
      else pending.push(table);
    }
    // Fail before opening the snapshot: no table is copied when one is known to be refused.
    for (const table of pending) await assertEmpty(control, options, table);
  } finally {
    await closeQuietly(control);
  }
  if (pending.length === 0) return { snapshot: undefined, copied: [], alreadyCopied };

  const workers = Math.min(jobs, pending.length);
  const sources: PgClient[] = [];
  const targets: PgClient[] = [];
  const applicationName = `pgshovel-replica-copy ${options.set}`;
  // Stopped: every connection closes at once, and the server rolls back what they held.
  const onAbort = () => {
    for (const client of [...sources, ...targets]) void closeQuietly(client);
  };
  options.guard?.signal.addEventListener("abort", onAbort, { once: true });
  try {
    for (let i = 0; i < workers; i++) {
      options.guard?.check();
      sources.push(await connect(options.sourceDsn, { applicationName }));
      targets.push(await connect(options.targetDsn, { applicationName }));
    }
    for (const client of [...sources, ...targets]) {
      await query(client, SESSION_SETTINGS, [], "configuring the copy session");
    }
    const exporter = sources[0]!;
    await query(
      exporter,
      "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
      [],
      "opening the snapshot",
    );
    const exported = await query<{ snapshot: string; id: string }>(
      exporter,
      "SELECT pg_current_snapshot()::text AS snapshot, pg_export_snapshot() AS id",
      [],
      "opening the snapshot",
    );
    const snapshot = parseSnapshot(exported.rows[0]!.snapshot);
    for (const importer of sources.slice(1)) {
      await query(
        importer,
        `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT ${literal(exported.rows[0]!.id)}`,
        [],
        "sharing the snapshot",
      );
    }
    const queue = [...pending];
    const copiedNow: BootstrapResult["copied"] = [];
    let failure: unknown;
    const work = async (i: number) => {
      for (let table = queue.shift(); table && failure === undefined; table = queue.shift()) {
        try {
          const rows = await copyTable(sources[i]!, targets[i]!, options, table, snapshot);
          if (rows !== undefined)
            copiedNow.push({ table: { schema: table.schema, name: table.name }, rows });
          else alreadyCopied.push({ schema: table.schema, name: table.name });
        } catch (error) {
          if (options.guard?.signal.aborted) {
            failure ??= options.guard.signal.reason;
            continue;
          }
          // Tables being copied on other connections finish; no new one starts.
          failure ??= wrapError(error, `bootstrap copy of ${display(table)}`, "DATABASE_ERROR");
        }
      }
    };
    // The exporting transaction (sources[0]) stays open until every worker is done.
    // A statement waiting on a lock hears of its closed connection only once it has it.
    await untilRevoked(Promise.all(sources.map((_, i) => work(i))), options.guard);
    options.guard?.check();
    if (failure !== undefined) throw failure;
    return { snapshot, copied: copiedNow, alreadyCopied };
  } finally {
    options.guard?.signal.removeEventListener("abort", onAbort);
    const closing = [...sources, ...targets].map((client) => closeQuietly(client));
    // A stopped copy leaves its connections closing: the server rolls their work back.
    if (!options.guard?.signal.aborted) await Promise.all(closing);
  }
}

/**
 * Verifies a replica against its source at one consistent point: per table, count and
 * checksum on both sides; where they differ, narrowed by key-hash buckets, then only the
 * differing rows fetched and compared. Optionally writes, or applies, the repair.
 */
import type { AdminContext } from "../cluster/context.js";
import { requireSet } from "../cluster/records.js";
import { dbNames } from "../config/names.js";
import { hidePassword, type SetConfigInput } from "../config/set-config.js";
import { closeQuietly, connect, query } from "../database/postgres.js";
import { PgshovelError } from "../errors.js";
import {
  describeSourceTables,
  prepareTargetTables,
  type ReplicaTable,
} from "../replication/target-schema.js";
import { display } from "../replication/target-state.js";
import { largerCount, sameChecksum, tableChecksum } from "./checksum.js";
import { type ConsistentPoint, requireReplica, takeConsistentPoint } from "./consistent-point.js";
import { diffRows } from "./diff.js";
import { narrow } from "./narrow.js";
import { repairScript, type TableRepair } from "./repair.js";
import type { RowDifference, TableVerdict, VerifyReport } from "./types.js";

/** How to verify, beyond what to verify. */
export interface VerifyTuning {
  /** Only these tables of the set (`name` or `schema.name`); all of them when absent. */
  tables?: string[] | undefined;
  /** How long the replica may take to reach the verify's tick (default 60 s). */
  waitTimeoutMs?: number | undefined;
  /** How long each attempt to lock the source tables may wait for writers (default 5 s). */
  lockTimeoutMs?: number | undefined;
  /** `sql`: build the repair script; `apply`: also apply it, the replica held at the point. */
  repair?: "sql" | "apply" | undefined;
  /** Differing rows listed per table (default 20). */
  maxKeys?: number | undefined;
  /** Narrow until at most this many rows are left to fetch (default 10,000). */
  fetchLimit?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** A replica and the set it follows, without ZooKeeper: what {@link verifyReplica} compares. */
export interface VerifyReplicaOptions extends VerifyTuning {
  cluster: string;
  set: string;
  sourceDsn: string;
  /** The source database's node id (the set's configuration records it). */
  sourceNode: string;
  targetDsn: string;
  /** The set's tables as configured: captured columns and identity. */
  setTables: SetConfigInput["tables"];
}

const APPLICATION = "pgshovel verify";

function pick(tables: ReplicaTable[], wanted: string[] | undefined, set: string): ReplicaTable[] {
  if (!wanted || wanted.length === 0) return tables;
  const picked = wanted.map((name) => {
    const found = tables.find(
      (t) => display(t) === name || (t.schema === "public" && t.name === name),
    );
    if (!found) {
      throw new PgshovelError("NOT_FOUND", `table ${name} is not in set ${set}`, {
        hint: `the set's tables: ${tables.map(display).join(", ")}`,
      });
    }
    return found;
  });
  return [...new Set(picked)];
}

async function describe(options: VerifyReplicaOptions): Promise<ReplicaTable[]> {
  const source = await connect(options.sourceDsn, { applicationName: APPLICATION });
  let tables: ReplicaTable[];
  try {
    tables = pick(
      await describeSourceTables(source, options.setTables),
      options.tables,
      options.set,
    );
  } finally {
    await closeQuietly(source);
  }
  const target = await connect(options.targetDsn, { applicationName: APPLICATION });
  try {
    await requireReplica(target, options);
    // The same check a replica makes: a table or column the target lacks is named.
    await prepareTargetTables(target, tables);
  } finally {
    await closeQuietly(target);
  }
  return tables;
}

/** One table's verdict and, when a repair is asked for, every differing row. */
async function compareTable(
  point: ConsistentPoint,
  table: ReplicaTable,
  options: VerifyTuning,
): Promise<{ verdict: TableVerdict; differences: RowDifference[] }> {
  const maxKeys = options.maxKeys ?? 20;
  const [ours, theirs] = await Promise.all([
    tableChecksum(point.source, table),
    tableChecksum(point.target, table),
  ]);
  const verdict: TableVerdict = {
    schema: table.schema,
    name: table.name,
    equal: sameChecksum(ours, theirs),
    sourceRows: ours.rows,
    targetRows: theirs.rows,
    missing: 0,
    extra: 0,
    different: 0,
    keys: [],
    rowsFetched: 0,
    narrowingRounds: 0,
  };
  const differences: RowDifference[] = [];
  if (verdict.equal) return { verdict, differences };
  const larger = largerCount(ours.rows, theirs.rows);
  const fetchLimit = options.fetchLimit ?? 10_000;
  const where = await narrow(point.source, point.target, table, larger, fetchLimit);
  const found = await diffRows(point.source, point.target, table, where.filter, (d) => {
    if (verdict.keys.length < maxKeys) verdict.keys.push({ kind: d.kind, key: d.key });
    if (options.repair) differences.push(d);
  });
  Object.assign(verdict, found, { narrowingRounds: where.rounds });
  // Equal sums of different rows would need a 64-bit collision: the rows decide.
  verdict.equal = found.missing + found.extra + found.different === 0;
  return { verdict, differences };
}

/** Runs the repair script on the target: one transaction, all of it or nothing. */
async function applyRepair(targetDsn: string, sql: string): Promise<void> {
  const writer = await connect(targetDsn, { applicationName: `${APPLICATION} (repair)` });
  try {
    await query(writer, sql, [], "applying the repair to the target (nothing of it committed)");
  } finally {
    // A script that failed left its transaction open: closing the connection ends it.
    await closeQuietly(writer);
  }
}

/** Compares the replica in `targetDsn` with its source; see docs/replication.md. */
export async function verifyReplica(options: VerifyReplicaOptions): Promise<VerifyReport> {
  const started = Date.now();
  const tables = await describe(options);
  const point = await takeConsistentPoint({
    sourceDsn: options.sourceDsn,
    targetDsn: options.targetDsn,
    cluster: options.cluster,
    set: options.set,
    queue: dbNames.queue(options.cluster, options.set),
    sourceNode: options.sourceNode,
    tables,
    lockTimeoutMs: options.lockTimeoutMs ?? 5_000,
    waitTimeoutMs: options.waitTimeoutMs ?? 60_000,
    holdLock: options.repair === "apply",
    signal: options.signal,
  });
  try {
    const verdicts: TableVerdict[] = [];
    const repairs: TableRepair[] = [];
    for (const table of tables) {
      const { verdict, differences } = await compareTable(point, table, options);
      verdicts.push(verdict);
      if (differences.length > 0) repairs.push({ table, differences });
    }
    const report: VerifyReport = {
      cluster: options.cluster,
      set: options.set,
      equal: verdicts.every((v) => v.equal),
      point: {
        tick: point.tick,
        targetTick: point.targetTick,
        sourceSnapshot: point.sourceSnapshot,
        lockedMs: 0,
      },
      tables: verdicts,
      elapsedMs: 0,
    };
    if (options.repair && repairs.length > 0) {
      const script = repairScript(repairs, [
        `repairs the replica ${hidePassword(options.targetDsn)} of set ${options.set}`,
        `to the source's rows at tick ${point.tick} (source snapshot ${point.sourceSnapshot})`,
      ]);
      let applied = false;
      if (options.repair === "apply") {
        // The source tables are still locked: the replica's batches carry nothing for them
        // until the repair commits, so the target still holds the rows compared.
        await applyRepair(options.targetDsn, script.sql);
        applied = true;
      }
      report.repair = {
        sql: script.sql,
        applied,
        deleted: script.deleted,
        updated: script.updated,
        inserted: script.inserted,
      };
    }
    await point.unlock();
    report.point.lockedMs = point.lockedMs();
    report.elapsedMs = Date.now() - started;
    return report;
  } finally {
    await point.close();
  }
}

/** Verifies the replica in `targetDsn` of a set, reading the set's configuration from ZooKeeper. */
export async function verifySet(
  ctx: AdminContext,
  set: string,
  targetDsn: string,
  tuning: VerifyTuning = {},
): Promise<VerifyReport> {
  const { config } = await requireSet(ctx, set);
  return verifyReplica({
    ...tuning,
    cluster: ctx.cluster,
    set,
    sourceDsn: config.database.dsn,
    sourceNode: config.database.node,
    targetDsn,
    setTables: config.tables,
  });
}

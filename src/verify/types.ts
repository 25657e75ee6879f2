/**
 * What a verification of a replica against its source reports: pure data, no I/O, so
 * that the command, the library and the repair script share one shape.
 */
import type { TableName } from "../replication/target-state.js";

/** How a row of the target differs from the source's row with the same key. */
export type DifferenceKind = "missing" | "extra" | "different";

/** One differing row: its key (column → text value) and, for repair, the source's values. */
export interface RowDifference {
  kind: DifferenceKind;
  /** The identity columns' values as text, in identity order. */
  key: Record<string, string | null>;
  /** The source's captured values as text, in column order (missing and different rows). */
  source?: (string | null)[];
}

/** A table's verdict. */
export interface TableVerdict extends TableName {
  equal: boolean;
  /** Rows on each side, counted inside the shared point's snapshots. */
  sourceRows: bigint;
  targetRows: bigint;
  /** Rows of the source with no row of that key on the target. */
  missing: number;
  /** Rows of the target with no row of that key on the source. */
  extra: number;
  /** Rows whose captured values differ. */
  different: number;
  /** The first differing rows, at most the report's key limit. */
  keys: RowDifference[];
  /** Rows fetched from each side to find the differences (0 when the checksums agreed). */
  rowsFetched: number;
  /** How many narrowing rounds the checksums took before rows were fetched. */
  narrowingRounds: number;
}

/** The point both sides were compared at. */
export interface VerifyPoint {
  /** The PgQ tick made while the source tables were locked. */
  tick: bigint;
  /** The end tick the target stood at when its snapshot was taken (≥ tick). */
  targetTick: bigint;
  /** The source snapshot the checksums read, as `xmin:xmax:xip,…`. */
  sourceSnapshot: string;
  /** How long the source tables were locked, in milliseconds. */
  lockedMs: number;
}

/** What a repair did, when one was asked for. */
export interface RepairOutcome {
  /** The SQL that makes the target equal to the source at the point (one transaction). */
  sql: string;
  /** Whether it was applied to the target (with the replica held at the point). */
  applied: boolean;
  deleted: number;
  updated: number;
  inserted: number;
}

/** The whole report of one verification. */
export interface VerifyReport {
  cluster: string;
  set: string;
  equal: boolean;
  point: VerifyPoint;
  tables: TableVerdict[];
  /** Present when a repair was asked for and something differed. */
  repair?: RepairOutcome;
  /** Milliseconds from the start to the verdict. */
  elapsedMs: number;
}

/**
 * Checksums computed inside each database, so that rows travel only where they differ.
 * A row's checksum is a 64-bit hash of the text form of its captured columns (the record's
 * output, in the session settings both sides share); a table's is the row count and the
 * exact sum of those hashes, which no row order changes. A bucket gathers the rows whose
 * key hash ends in the same bits, so a differing sum can be narrowed to fewer rows.
 */
import { ident } from "../config/names.js";
import { type PgClient, query } from "../database/postgres.js";
import type { ReplicaTable } from "../replication/target-schema.js";
import { display, qualified } from "../replication/target-state.js";

/** The count and hash sum of a table or a bucket, as the server prints them. */
export interface Checksum {
  rows: bigint;
  sum: string;
}

/** The rows of a table as (key hash, row hash): what every checksum query aggregates. */
export function hashedRows(table: ReplicaTable): string {
  const key = table.identity.map(ident).join(", ");
  const columns = table.columns.map((column) => ident(column.name)).join(", ");
  return `SELECT hashtextextended(ROW(${key})::text, 0) AS kh,
                 hashtextextended(ROW(${columns})::text, 0) AS h
            FROM ${qualified(table)}`;
}

/** The whole table's checksum. */
export async function tableChecksum(client: PgClient, table: ReplicaTable): Promise<Checksum> {
  const result = await query<{ n: string; s: string }>(
    client,
    `SELECT count(*)::text AS n, coalesce(sum(r.h), 0)::text AS s FROM (${hashedRows(table)}) r`,
    [],
    `computing the checksum of ${display(table)}`,
  );
  const row = result.rows[0]!;
  return { rows: BigInt(row.n), sum: row.s };
}

// Hash aggregation, in parallel workers where the server has them (a few thousand groups).
const PLAN_FOR_FEW_GROUPS =
  "SET LOCAL enable_sort = off; SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0";
const PLAN_RESET = "RESET enable_sort; RESET parallel_setup_cost; RESET parallel_tuple_cost";

/** Which rows a bucket query reads: all, or those whose key hash falls in the given buckets. */
export interface BucketFilter {
  mask: bigint;
  buckets: string[];
}

/** The SQL condition on `r.kh` that keeps only the rows of `filter`'s buckets. */
export function bucketCondition(filter: BucketFilter | undefined): string {
  if (!filter) return "true";
  // Bucket ids are integers this module printed: safe to inline as an int8 array.
  return `(r.kh & ${filter.mask}::int8) = ANY('{${filter.buckets.join(",")}}'::int8[])`;
}

/** Checksums per bucket of `mask` (rows whose key hash has the same low bits), within `within`. */
export async function bucketChecksums(
  client: PgClient,
  table: ReplicaTable,
  mask: bigint,
  within: BucketFilter | undefined,
): Promise<Map<string, Checksum>> {
  const doing = `computing bucket checksums of ${display(table)}`;
  // The planner cannot know that a bucket expression takes at most 2^bits values: it
  // expects a group per row, and sorts them all (spilling to disk) rather than hash a few.
  await query(client, PLAN_FOR_FEW_GROUPS, [], doing);
  try {
    const result = await query<{ b: string; n: string; s: string }>(
      client,
      `SELECT (r.kh & ${mask}::int8)::text AS b, count(*)::text AS n, sum(r.h)::text AS s
         FROM (${hashedRows(table)}) r
        WHERE ${bucketCondition(within)}
        GROUP BY (r.kh & ${mask}::int8)`,
      [],
      doing,
    );
    return new Map(result.rows.map((row) => [row.b, { rows: BigInt(row.n), sum: row.s }]));
  } finally {
    await query(client, PLAN_RESET, [], doing).catch(() => {});
  }
}

/** True when both sides hold the same count and sum. */
export function sameChecksum(a: Checksum | undefined, b: Checksum | undefined): boolean {
  return a !== undefined && b !== undefined && a.rows === b.rows && a.sum === b.sum;
}

/** The larger of two row counts (Math.max takes no bigint). */
export function largerCount(a: bigint, b: bigint): bigint {
  return a < b ? b : a;
}

/**
 * Narrows a table whose checksums differ to the buckets that hold the differing rows: each
 * round splits the differing buckets of the round before by 8 more bits of the key hash,
 * both sides in parallel, until few enough rows are left to fetch — or until a round no
 * longer halves them (most rows differ: fetching them all is then the cheapest).
 */
import type { PgClient } from "../database/postgres.js";
import type { ReplicaTable } from "../replication/target-schema.js";
import { type BucketFilter, bucketChecksums, largerCount, sameChecksum } from "./checksum.js";

/** Bits of the key hash each round adds. */
const BITS_PER_ROUND = 8n;
/** 7 rounds use 56 of the hash's 64 bits; the mask stays a positive int8. */
const MAX_ROUNDS = 7;

/** Where the differing rows are: the buckets to fetch (undefined: the whole table). */
export interface Narrowed {
  filter: BucketFilter | undefined;
  /** Rows to fetch at most, on the larger side. */
  rows: bigint;
  rounds: number;
}

/** Finds the buckets to fetch for a table of `rows` rows (the larger side's count). */
export async function narrow(
  source: PgClient,
  target: PgClient,
  table: ReplicaTable,
  rows: bigint,
  fetchLimit: number,
): Promise<Narrowed> {
  let found: Narrowed = { filter: undefined, rows, rounds: 0 };
  for (let round = 1; round <= MAX_ROUNDS && found.rows > BigInt(fetchLimit); round++) {
    const mask = (1n << (BITS_PER_ROUND * BigInt(round))) - 1n;
    const [ours, theirs] = await Promise.all([
      bucketChecksums(source, table, mask, found.filter),
      bucketChecksums(target, table, mask, found.filter),
    ]);
    const buckets: string[] = [];
    let left = 0n;
    for (const bucket of new Set([...ours.keys(), ...theirs.keys()])) {
      const a = ours.get(bucket);
      const b = theirs.get(bucket);
      if (sameChecksum(a, b)) continue;
      buckets.push(bucket);
      left += largerCount(a?.rows ?? 0n, b?.rows ?? 0n);
    }
    const stalled = left * 2n > found.rows;
    found = { filter: { mask, buckets }, rows: left, rounds: round };
    if (stalled) break;
  }
  return found;
}

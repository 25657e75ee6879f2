/**
 * Fetches the rows of the narrowed buckets from both sides, each ordered by (key hash,
 * key text in byte order), and merges the two streams: a key on one side only is missing
 * or extra, a key on both with other values is different. Rows come through cursors, a
 * chunk at a time, so memory stays flat however many rows differ.
 */
import { ident } from "../config/names.js";
import { type PgClient, query } from "../database/postgres.js";
import type { ReplicaTable } from "../replication/target-schema.js";
import { display, qualified } from "../replication/target-state.js";
import { type BucketFilter, bucketCondition } from "./checksum.js";
import type { RowDifference } from "./types.js";

/** A row as fetched: key hash, key text and every captured value as text. */
interface FetchedRow {
  kh: bigint;
  key: Buffer;
  values: (string | null)[];
}

const CHUNK = 1_000;
const CURSOR = "pgshovel_verify_rows";

async function* fetchRows(
  client: PgClient,
  table: ReplicaTable,
  filter: BucketFilter | undefined,
): AsyncGenerator<FetchedRow> {
  const key = table.identity.map(ident).join(", ");
  const values = table.columns.map((column) => `${ident(column.name)}::text`).join(", ");
  const doing = `reading the differing rows of ${display(table)}`;
  await query(
    client,
    `DECLARE ${CURSOR} NO SCROLL CURSOR FOR
     SELECT r.kh::text AS kh, r.k AS k, r.v AS v
       FROM (SELECT hashtextextended(ROW(${key})::text, 0) AS kh, ROW(${key})::text AS k,
                    ARRAY[${values}]::text[] AS v
               FROM ${qualified(table)}) r
      WHERE ${bucketCondition(filter)}
      ORDER BY r.kh, r.k COLLATE "C"`,
    [],
    doing,
  );
  try {
    for (;;) {
      const chunk = await query<{ kh: string; k: string; v: (string | null)[] }>(
        client,
        `FETCH ${CHUNK} FROM ${CURSOR}`,
        [],
        doing,
      );
      for (const row of chunk.rows) {
        yield { kh: BigInt(row.kh), key: Buffer.from(row.k, "utf8"), values: row.v };
      }
      if (chunk.rows.length < CHUNK) break;
    }
  } finally {
    await query(client, `CLOSE ${CURSOR}`, [], doing).catch(() => {});
  }
}

/** The order both sides are fetched in: key hash, then the key's bytes (collation "C"). */
function compare(a: FetchedRow, b: FetchedRow): number {
  if (a.kh !== b.kh) return a.kh < b.kh ? -1 : 1;
  return Buffer.compare(a.key, b.key);
}

function sameValues(a: (string | null)[], b: (string | null)[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}

/** What {@link diffRows} found. */
export interface RowsDiff {
  missing: number;
  extra: number;
  different: number;
  rowsFetched: number;
}

/**
 * Merges both sides' rows of the filter's buckets; `onDifference` hears of each differing
 * row (with the source's values for a missing or different one).
 */
export async function diffRows(
  source: PgClient,
  target: PgClient,
  table: ReplicaTable,
  filter: BucketFilter | undefined,
  onDifference: (difference: RowDifference) => void,
): Promise<RowsDiff> {
  const keyIndexes = table.identity.map((name) => table.columns.findIndex((c) => c.name === name));
  const keyOf = (row: FetchedRow) =>
    Object.fromEntries(table.identity.map((name, i) => [name, row.values[keyIndexes[i]!] ?? null]));
  const result: RowsDiff = { missing: 0, extra: 0, different: 0, rowsFetched: 0 };
  const ours = fetchRows(source, table, filter);
  // Two cursors of the same name live in two sessions: no clash.
  const theirs = fetchRows(target, table, filter);
  try {
    let a = await ours.next();
    let b = await theirs.next();
    while (!a.done || !b.done) {
      const order = a.done ? 1 : b.done ? -1 : compare(a.value, b.value);
      if (order < 0 && !a.done) {
        result.missing++;
        onDifference({ kind: "missing", key: keyOf(a.value), source: a.value.values });
        result.rowsFetched++;
        a = await ours.next();
      } else if (order > 0 && !b.done) {
        result.extra++;
        onDifference({ kind: "extra", key: keyOf(b.value) });
        result.rowsFetched++;
        b = await theirs.next();
      } else if (!a.done && !b.done) {
        if (!sameValues(a.value.values, b.value.values)) {
          result.different++;
          onDifference({ kind: "different", key: keyOf(a.value), source: a.value.values });
        }
        result.rowsFetched += 2;
        a = await ours.next();
        b = await theirs.next();
      }
    }
  } finally {
    await ours.return(undefined);
    await theirs.return(undefined);
  }
  return result;
}

/**
 * Sequences of a promoted replica. The replica's copies and batches carry the rows, not the
 * sequences behind their keys: a new primary would hand out values the source used already.
 * Each sequence owned by a captured column (serial, bigserial, identity) is moved past the
 * highest value known: the source's sequence when it can be read, the target's column and
 * sequence always, plus a gap for values handed out but not seen.
 */
import { ident } from "../config/names.js";
import { type PgClient, query } from "../database/postgres.js";
import type { TableName } from "../replication/target-state.js";

/** A captured column of a set's table. */
export interface CapturedColumns extends TableName {
  columns: string[];
}

/** A sequence owned by a column, with its state as `pg_sequences` shows it. */
export interface OwnedSequence {
  schema: string;
  table: string;
  column: string;
  /** The sequence, schema-qualified and quoted. */
  sequence: string;
  /** Its last value handed out; null before its first. */
  lastValue: bigint | null;
  increment: bigint;
}

/** What was done to one sequence of the new primary. */
export interface SequenceMove {
  column: string;
  sequence: string;
  /** The source's last value, when read. */
  source: string | null;
  /** The highest value of the column on the target. */
  targetMax: string | null;
  /** The value the sequence was set to (its next value is the one after), or null if untouched. */
  setTo: string | null;
  /** Why it was left alone. */
  skipped?: string;
}

/** The sequences owned by the captured columns of `tables`, by `schema.table.column`. */
export async function ownedSequences(
  client: PgClient,
  tables: CapturedColumns[],
): Promise<Map<string, OwnedSequence>> {
  const rows = tables.flatMap((t) => t.columns.map((c) => [t.schema, t.name, c] as const));
  const result = await query<{
    schema: string;
    table: string;
    column: string;
    sequence: string;
    last: string | null;
    increment: string;
  }>(
    client,
    `SELECT n.nspname AS schema, c.relname AS table, a.attname AS column,
            format('%I.%I', sn.nspname, s.relname) AS sequence,
            ps.last_value::text AS last, ps.increment_by::text AS increment
       FROM unnest($1::text[], $2::text[], $3::text[]) AS wanted(schema, tbl, col)
       JOIN pg_namespace n ON n.nspname = wanted.schema
       JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = wanted.tbl
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = wanted.col
       JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid
                       AND d.refobjsubid = a.attnum AND d.classid = 'pg_class'::regclass
                       AND d.deptype IN ('a', 'i')
       JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
       JOIN pg_namespace sn ON sn.oid = s.relnamespace
       JOIN pg_sequences ps ON ps.schemaname = sn.nspname AND ps.sequencename = s.relname`,
    [rows.map((r) => r[0]), rows.map((r) => r[1]), rows.map((r) => r[2])],
    "listing the sequences owned by the set's columns",
  );
  return new Map(
    result.rows.map((row) => [
      `${row.schema}.${row.table}.${row.column}`,
      {
        schema: row.schema,
        table: row.table,
        column: row.column,
        sequence: row.sequence,
        lastValue: row.last === null ? null : BigInt(row.last),
        increment: BigInt(row.increment),
      },
    ]),
  );
}

function maxOf(values: (bigint | null)[]): bigint | null {
  let best: bigint | null = null;
  for (const value of values) if (value !== null && (best === null || value > best)) best = value;
  return best;
}

/**
 * Moves each target sequence of `tables` past the source's last value (`source`, when it
 * was read), the column's maximum and its own last value, plus `gap`. Runs in the caller's
 * transaction; setval itself is not transactional, which only leaves a larger gap.
 */
export async function advanceSequences(
  target: PgClient,
  tables: CapturedColumns[],
  source: Map<string, OwnedSequence> | undefined,
  gap: bigint,
): Promise<SequenceMove[]> {
  const owned = await ownedSequences(target, tables);
  const moves: SequenceMove[] = [];
  for (const [key, sequence] of owned) {
    const from = source?.get(key);
    const column = `${sequence.schema}.${sequence.table}.${sequence.column}`;
    const move: SequenceMove = {
      column,
      sequence: sequence.sequence,
      source: from?.lastValue?.toString() ?? null,
      targetMax: null,
      setTo: null,
    };
    moves.push(move);
    if (sequence.increment < 0n) {
      move.skipped = "a descending sequence: left alone";
      continue;
    }
    const max = await query<{ max: string | null }>(
      target,
      `SELECT max(${ident(sequence.column)})::text AS max FROM ${ident(sequence.schema)}.${ident(sequence.table)}`,
      [],
      `reading the highest ${column}`,
    );
    const targetMax = max.rows[0]?.max ?? null;
    move.targetMax = targetMax;
    const highest = maxOf([
      from?.lastValue ?? null,
      targetMax === null ? null : BigInt(targetMax),
      sequence.lastValue,
    ]);
    if (highest === null) {
      move.skipped = "no value used anywhere yet";
      continue;
    }
    const value = highest + gap;
    await query(
      target,
      "SELECT setval($1::regclass, $2, true)",
      [sequence.sequence, value.toString()],
      `advancing ${sequence.sequence}`,
    );
    move.setTo = value.toString();
  }
  for (const table of tables) {
    for (const column of table.columns) {
      const key = `${table.schema}.${table.name}.${column}`;
      if (source?.has(key) && !owned.has(key)) {
        moves.push({
          column: key,
          sequence: source.get(key)!.sequence,
          source: source.get(key)!.lastValue?.toString() ?? null,
          targetMax: null,
          setTo: null,
          skipped:
            "the source's column owns a sequence, the target's none: new rows need their keys given",
        });
      }
    }
  }
  return moves;
}

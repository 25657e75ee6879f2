/**
 * The tables a replica writes: read from the source's catalog (captured columns with
 * their exact types, the identity), then checked against, or created in, the target —
 * before anything is written there.
 */
import { resolveTables } from "../capture/catalog.js";
import { statementTriggerName } from "../capture/spec.js";
import { dbNames, ident } from "../config/names.js";
import type { SetConfigInput } from "../config/set-config.js";
import { type PgClient, query } from "../database/postgres.js";
import { PgshovelError } from "../errors.js";
import { display, qualified, type TableName } from "./target-state.js";

/** A captured column and its type as `format_type` prints it (typmod included). */
export interface ReplicaColumn {
  name: string;
  type: string;
}

/** A table of a set as a replica sees it: identity first, then the other captured columns. */
export interface ReplicaTable extends TableName {
  /** The primary key (or configured identity) columns. */
  identity: string[];
  /** Every captured column, the identity included, in capture order. */
  columns: ReplicaColumn[];
}

/** The set's tables as the source catalog describes them (see src/capture/catalog.ts). */
export async function describeSourceTables(
  source: PgClient,
  tables: SetConfigInput["tables"],
): Promise<ReplicaTable[]> {
  const resolved = await resolveTables(source, tables);
  return resolved.map((table) => ({
    schema: table.schema,
    name: table.name,
    identity: table.primary_keys,
    columns: table.columnTypes.map((column) => ({ name: column.name, type: column.type })),
  }));
}

/** One thing the target lacks for a table. */
interface Problem {
  code: "NOT_FOUND" | "INVALID_CONFIGURATION";
  missingTable: boolean;
  text: string;
}

async function inspect(target: PgClient, table: ReplicaTable): Promise<Problem[]> {
  const doing = `reading the target's catalog for ${display(table)}`;
  const relation = await query<{ relid: number }>(
    target,
    `SELECT c.oid::int AS relid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
    [table.schema, table.name],
    doing,
  );
  const relid = relation.rows[0]?.relid;
  if (relid === undefined) {
    return [
      {
        code: "NOT_FOUND",
        missingTable: true,
        text: `target table ${display(table)} does not exist`,
      },
    ];
  }
  const columns = await query<{ name: string; type: string }>(
    target,
    `SELECT attname::text AS name, format_type(atttypid, atttypmod) AS type
       FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped`,
    [relid],
    doing,
  );
  const types = new Map(columns.rows.map((row) => [row.name, row.type]));
  const problems: Problem[] = [];
  for (const column of table.columns) {
    const type = types.get(column.name);
    if (type === undefined) {
      problems.push({
        code: "NOT_FOUND",
        missingTable: false,
        text: `target table ${display(table)} has no column ${JSON.stringify(column.name)} (${column.type} on the source)`,
      });
    } else if (type !== column.type) {
      problems.push({
        code: "INVALID_CONFIGURATION",
        missingTable: false,
        text: `target table ${display(table)}: column ${JSON.stringify(column.name)} is ${type}, the source's is ${column.type}`,
      });
    }
  }
  // Keys are matched by equality in every UPDATE and DELETE, and a duplicate INSERT must
  // fail: the target needs a unique index over exactly the identity columns.
  const indexes = await query<{ keys: string[] }>(
    target,
    `SELECT array(SELECT a.attname::text FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) k(attnum)
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum) AS keys
       FROM pg_index i
      WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL`,
    [relid],
    doing,
  );
  const identity = [...table.identity].sort().join(",");
  if (!indexes.rows.some((row) => [...row.keys].sort().join(",") === identity)) {
    problems.push({
      code: "INVALID_CONFIGURATION",
      missingTable: false,
      text: `target table ${display(table)} has no primary key or unique index on (${table.identity.join(", ")})`,
    });
  }
  return problems;
}

/** What {@link prepareTargetTables} did. */
export interface TargetTablesReport {
  /** Tables that were missing and have been created. */
  created: TableName[];
}

/** The DDL that creates a table with the captured columns, exact types and the identity as primary key. */
export function createTableSql(table: ReplicaTable): string {
  const columns = table.columns.map((column) => `${ident(column.name)} ${column.type}`);
  const key = table.identity.map(ident).join(", ");
  return `CREATE TABLE ${qualified(table)} (${columns.join(", ")}, PRIMARY KEY (${key}))`;
}

/**
 * Checks that every table exists on the target with each captured column of the
 * source's exact type and a unique key on the identity. With `createTables`, missing
 * tables (and their schemas) are created in one transaction. Every problem is found
 * before anything is written, and reported together in one error.
 */
export async function prepareTargetTables(
  target: PgClient,
  tables: ReplicaTable[],
  options: { createTables?: boolean } = {},
): Promise<TargetTablesReport> {
  const toCreate: ReplicaTable[] = [];
  const problems: Problem[] = [];
  for (const table of tables) {
    const found = await inspect(target, table);
    if (options.createTables && found.length === 1 && found[0]!.missingTable) {
      toCreate.push(table);
    } else {
      problems.push(...found);
    }
  }
  if (problems.length > 0) {
    throw new PgshovelError(problems[0]!.code, problems.map((p) => p.text).join("; "), {
      hint: problems.some((p) => p.missingTable)
        ? "create the missing tables with the source's columns and primary key, or let the replica create them (createTables)"
        : "make the target's columns match the source's types and keys: a replica writes every captured column as it is",
    });
  }
  if (toCreate.length === 0) return { created: [] };
  const doing = "creating the target tables";
  await query(target, "BEGIN", [], doing);
  try {
    for (const schema of new Set(toCreate.map((table) => table.schema))) {
      await query(target, `CREATE SCHEMA IF NOT EXISTS ${ident(schema)}`, [], doing);
    }
    for (const table of toCreate) {
      await query(target, createTableSql(table), [], `creating target table ${display(table)}`);
    }
    await query(target, "COMMIT", [], doing);
  } catch (error) {
    await query(target, "ROLLBACK", [], doing).catch(() => {});
    throw error;
  }
  return { created: toCreate.map(({ schema, name }) => ({ schema, name })) };
}

/**
 * Fails (retryably) unless every table carries the set's capture trigger on the source. A
 * table added to a set is in ZooKeeper before its trigger commits in the database (the
 * two-phase commit's order): a copy taken in between would miss the writes that commit
 * after its snapshot and before the trigger. Checked before the copy's snapshot is taken.
 */
export async function requireCaptureTriggers(
  source: PgClient,
  cluster: string,
  set: string,
  tables: TableName[],
): Promise<void> {
  const result = await query<{ schema: string; name: string }>(
    source,
    `SELECT n.nspname::text AS schema, c.relname::text AS name
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE t.tgname = ANY ($1::text[])`,
    // the row trigger, or in statement mode the INSERT statement trigger (a set's triggers on a
    // table are created in one transaction: one of them stands for all)
    [[dbNames.trigger(cluster, set), statementTriggerName({ cluster, set }, "INSERT")]],
    "reading the source's capture triggers",
  );
  const captured = new Set(result.rows.map((row) => display(row)));
  const missing = tables.filter((table) => !captured.has(display(table))).map(display);
  if (missing.length > 0) {
    throw new PgshovelError(
      "DATABASE_NOT_READY",
      `set ${set} has no capture trigger on ${missing.join(", ")} in the source yet`,
      {
        retryable: true,
        hint: "a set change is being committed, or the set's objects are missing: `pgshovel set update` reinstalls them",
      },
    );
  }
}

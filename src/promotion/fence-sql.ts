/**
 * The SQL of a fence: one function per set that refuses the write, and one BEFORE statement
 * trigger per table that calls it. Ordinary triggers do not fire under
 * `session_replication_role = replica`, so a replication worker still writes to a fenced
 * database while every other writer is refused. Pure: statements in, nothing run here.
 */
import { dbNames, ident, literal } from "../config/names.js";
import { type PgClient, query } from "../database/postgres.js";
import { display, qualified, type TableName } from "../replication/target-state.js";
import { FENCE_SQLSTATE, promotionNames } from "./names.js";

/** The fence function, schema-qualified and quoted. */
function fenceFunction(cluster: string, set: string): string {
  return `${ident(dbNames.schema(cluster))}.${ident(promotionNames.fenceFunction(set))}`;
}

/** The statements that fence `tables`: the function (replaced if present) and a trigger per table. */
export function fenceStatements(
  cluster: string,
  set: string,
  tables: TableName[],
  fencedAt: string,
): string[] {
  const message = `the table is fenced by pgshovel set ${set} of cluster ${cluster}: writes are refused`;
  const detail = `fenced at ${fencedAt} for a switchover: the set's replica is to take over`;
  const hint = `pgshovel --cluster ${cluster} set unfence ${set} accepts writes again`;
  const trigger = ident(promotionNames.fenceTrigger(cluster, set));
  const statements = [
    `CREATE OR REPLACE FUNCTION ${fenceFunction(cluster, set)}() RETURNS trigger
       LANGUAGE plpgsql AS $fence$
     BEGIN
       RAISE EXCEPTION USING ERRCODE = ${literal(FENCE_SQLSTATE)},
         MESSAGE = format('%s on %I.%I refused: %s', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, ${literal(message)}),
         DETAIL = ${literal(detail)}, HINT = ${literal(hint)};
     END
     $fence$`,
  ];
  for (const table of tables) {
    statements.push(`DROP TRIGGER IF EXISTS ${trigger} ON ${qualified(table)}`);
    statements.push(
      `CREATE TRIGGER ${trigger} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON ${qualified(table)}
         FOR EACH STATEMENT EXECUTE FUNCTION ${fenceFunction(cluster, set)}()`,
    );
  }
  return statements;
}

/** The statement that lifts a fence: the function goes, and its triggers with it. */
export function unfenceStatement(cluster: string, set: string): string {
  return `DROP FUNCTION IF EXISTS ${fenceFunction(cluster, set)}() CASCADE`;
}

/** Locks `tables` against writes, waiting for the writes in flight to commit or roll back. */
export function lockStatement(tables: TableName[]): string {
  return `LOCK TABLE ${tables.map(qualified).join(", ")} IN SHARE ROW EXCLUSIVE MODE`;
}

/** The tables (`schema.name`) that carry a set's fence trigger in the connected database. */
export async function fencedTables(
  client: PgClient,
  cluster: string,
  set: string,
): Promise<string[]> {
  const result = await query<{ name: string }>(
    client,
    `SELECT n.nspname || '.' || c.relname AS name
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE t.tgname = $1 ORDER BY 1`,
    [promotionNames.fenceTrigger(cluster, set)],
    "listing the fence's triggers",
  );
  return result.rows.map((row) => row.name);
}

/** Whether every one of `tables` is fenced. */
export function coversAll(fenced: string[], tables: TableName[]): boolean {
  const have = new Set(fenced);
  return tables.every((table) => have.has(display(table)));
}

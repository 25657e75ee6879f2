/**
 * The C capture function of statement mode (`ext/pgshovel_capture`, docs/capture.md, "The C
 * capture function"): an optional extension that writes the same packed events as the
 * generated PL/pgSQL, reading an UPDATE's old and new rows in step off its transition tables
 * instead of joining them. Its triggers carry, as arguments, everything the generated function
 * bakes in.
 */
import { dbNames, ident, literal } from "../config/names.js";
import { type PgClient, query } from "../database/postgres.js";
import { PACKED_SUFFIX } from "./packed.js";
import { fieldKind } from "./row-json.js";
import { type CaptureSpec, statementTriggerName, TRANSITION_TABLES } from "./spec.js";
import { packedHeaders } from "./statement-sql.js";

/** The extension's name, which is also its schema. */
export const NATIVE_EXTENSION = "pgshovel_capture";

/** The trigger function the extension provides. */
export const NATIVE_FUNCTION = `${NATIVE_EXTENSION}.capture_statement`;

/**
 * The trigger arguments, in the order `ext/pgshovel_capture/pgshovel_capture.c` reads them: the
 * queue, the event's fixed fields, the packed header, the old-image option, each column's kind
 * (upper case for an identity column), then the column names.
 */
function triggerArguments(spec: CaptureSpec, op: keyof typeof TRANSITION_TABLES): string[] {
  const { table, queue } = spec;
  const cols = table.columnTypes;
  const kinds = cols
    .map((c) => {
      const kind = fieldKind(c);
      return table.primary_keys.includes(c.name) ? kind.toUpperCase() : kind;
    })
    .join("");
  return [
    queue.name,
    String(queue.id),
    queue.dataPrefix,
    queue.eventSeq,
    table.schema,
    table.name,
    String(spec.configVersion),
    JSON.stringify(table.primary_keys),
    op + PACKED_SUFFIX,
    JSON.stringify(packedHeaders(spec)[op]),
    spec.old,
    kinds,
    ...cols.map((c) => c.name),
  ];
}

/**
 * The name of the view that holds a table's monitored columns in place: the capture function's
 * name, schema-qualified (a view and a function do not share a namespace).
 */
export function columnsViewName(spec: CaptureSpec): string {
  return `${ident(dbNames.schema(spec.cluster))}.${ident(dbNames.captureFunction(spec.set, spec.table.relid))}`;
}

/**
 * The statements of a table's capture on the C function: its three statement triggers, and a
 * view over the monitored columns. A row trigger's column list keeps PostgreSQL from dropping
 * or retyping a monitored column under a capture function that reads it; the C function's
 * triggers have none (statement triggers with transition tables take no column list), so an
 * empty view over those columns does it instead, at no cost to a write.
 */
export function nativeTriggersSql(spec: CaptureSpec, target: string): string[] {
  const columns = spec.table.columnTypes.map((c) => ident(c.name)).join(", ");
  const view = `CREATE VIEW ${columnsViewName(spec)} AS SELECT ${columns} FROM ${target} WHERE false`;
  return [
    view,
    ...(["INSERT", "UPDATE", "DELETE"] as const).map(
      (op) => `CREATE TRIGGER ${ident(statementTriggerName(spec, op))}
       AFTER ${op} ON ${target} ${TRANSITION_TABLES[op]}
       FOR EACH STATEMENT EXECUTE FUNCTION ${NATIVE_FUNCTION}(${triggerArguments(spec, op).map(literal).join(", ")})`,
    ),
  ];
}

/**
 * Whether this database can use the C capture function: the extension is installed in it, or
 * its files are on the server and it can be created here. Creating it needs a superuser; where
 * that fails, the attempt is rolled back to a savepoint (`failed` says why) and the generated
 * PL/pgSQL is used. Runs inside the caller's transaction.
 */
export async function nativeCaptureAvailable(
  client: PgClient,
): Promise<{ available: boolean; failed?: string }> {
  const doing = "creating the pgshovel_capture extension";
  const state = await query<{ installed: boolean; available: boolean }>(
    client,
    `SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = $1) AS installed,
            EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = $1) AS available`,
    [NATIVE_EXTENSION],
    "checking for the pgshovel_capture extension",
  );
  const { installed, available } = state.rows[0]!;
  if (!installed) {
    if (!available) return { available: false };
    await query(client, "SAVEPOINT pgshovel_native", [], doing);
    try {
      await query(client, `CREATE EXTENSION ${ident(NATIVE_EXTENSION)}`, [], doing);
      await query(client, "RELEASE SAVEPOINT pgshovel_native", [], doing);
    } catch (error) {
      await query(client, "ROLLBACK TO SAVEPOINT pgshovel_native", [], doing);
      return { available: false, failed: error instanceof Error ? error.message : String(error) };
    }
  }
  // Attaching the function to a table needs USAGE on its schema and EXECUTE on it, which only
  // its owner has unless granted. Looked up by OID: naming it would need USAGE already.
  const allowed = await query<{ allowed: boolean }>(
    client,
    `SELECT pg_catalog.has_schema_privilege(n.oid, 'USAGE')
            AND pg_catalog.has_function_privilege(p.oid, 'EXECUTE') AS allowed
       FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = $1 AND p.proname = 'capture_statement'`,
    [NATIVE_EXTENSION],
    "checking for the pgshovel_capture extension",
  );
  if (!allowed.rows[0]?.allowed) {
    return {
      available: false,
      failed: `permission denied for function ${NATIVE_FUNCTION}(): a superuser may grant this role USAGE on schema ${NATIVE_EXTENSION} and EXECUTE on the function`,
    };
  }
  return { available: true };
}

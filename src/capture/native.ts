/**
 * The C capture function of statement mode (`ext/pgshovel_capture`, docs/capture.md, "The C
 * capture function"): an optional extension that writes the same packed events as the
 * generated PL/pgSQL, reading an UPDATE's old and new rows in step off its transition tables
 * instead of joining them. Its triggers carry, as arguments, everything the generated function
 * bakes in.
 */
import { ident, literal } from "../config/names.js";
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

/** The CREATE TRIGGER statements of a table's three statement triggers on the C function. */
export function nativeTriggersSql(spec: CaptureSpec, target: string): string[] {
  return (["INSERT", "UPDATE", "DELETE"] as const).map(
    (op) => `CREATE TRIGGER ${ident(statementTriggerName(spec, op))}
       AFTER ${op} ON ${target} ${TRANSITION_TABLES[op]}
       FOR EACH STATEMENT EXECUTE FUNCTION ${NATIVE_FUNCTION}(${triggerArguments(spec, op).map(literal).join(", ")})`,
  );
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
  if (installed) return { available: true };
  if (!available) return { available: false };
  await query(client, "SAVEPOINT pgshovel_native", [], doing);
  try {
    await query(client, `CREATE EXTENSION ${ident(NATIVE_EXTENSION)}`, [], doing);
    await query(client, "RELEASE SAVEPOINT pgshovel_native", [], doing);
    return { available: true };
  } catch (error) {
    await query(client, "ROLLBACK TO SAVEPOINT pgshovel_native", [], doing);
    return { available: false, failed: error instanceof Error ? error.message : String(error) };
  }
}

import { dbNames, ident, literal } from "../config/names.js";
import type { CatalogColumn, CatalogTable } from "./catalog.js";

// Types whose JSON rendering is exact: emitted natively; everything else as PostgreSQL's text output.
const NATIVE_JSON_TYPES = new Set([16 /* bool */, 21 /* int2 */, 23 /* int4 */]);
// json_build_object takes at most 100 arguments: 50 columns.
const COLUMNS_PER_CALL = 50;

function valueExpression(record: "OLD" | "NEW", column: CatalogColumn): string {
  const ref = `${record}.${ident(column.name)}`;
  return NATIVE_JSON_TYPES.has(column.typeOid) ? ref : `${ref}::pg_catalog.text`;
}

function rowExpression(record: "OLD" | "NEW", columns: CatalogColumn[]): string {
  const pairs = columns.map(
    (column) => `${literal(column.name)}, ${valueExpression(record, column)}`,
  );
  if (pairs.length <= COLUMNS_PER_CALL) return `pg_catalog.json_build_object(${pairs.join(", ")})`;
  const chunks: string[] = [];
  for (let i = 0; i < pairs.length; i += COLUMNS_PER_CALL) {
    chunks.push(
      `pg_catalog.jsonb_build_object(${pairs.slice(i, i + COLUMNS_PER_CALL).join(", ")})`,
    );
  }
  return `(${chunks.join(" OPERATOR(pg_catalog.||) ")})`;
}

/** Everything the capture function of one table bakes in. */
export interface CaptureSpec {
  cluster: string;
  set: string;
  table: CatalogTable;
  /** The set's configuration version (znode version) the trigger reports. */
  configVersion: number;
}

/** The name of a table's capture function, schema-qualified and quoted. */
export function captureFunctionName(
  spec: Pick<CaptureSpec, "cluster" | "set"> & { relid: number },
): string {
  return `${ident(dbNames.schema(spec.cluster))}.${ident(dbNames.captureFunction(spec.set, spec.relid))}`;
}

/**
 * SQL that (re)creates a table's capture function and its triggers. The
 * function is generated per table so that it reads each monitored column
 * directly: no dynamic SQL and no per-row catalog lookups.
 *
 * Each event: ev_type = operation, ev_data = {"old": row, "new": row} (both members
 * always, null where not applicable: the relay copies the text into JSON streams),
 * ev_extra1 = schema, ev_extra2 = table, ev_extra3 = configuration version,
 * ev_extra4 = identity column names as a JSON array.
 */
export function captureSql(spec: CaptureSpec): string[] {
  const { table } = spec;
  const fn = captureFunctionName({ ...spec, relid: table.relid });
  const queue = literal(dbNames.queue(spec.cluster, spec.set));
  const target = `${ident(table.schema)}.${ident(table.name)}`;
  const extras = [
    literal(table.schema),
    literal(table.name),
    literal(String(spec.configVersion)),
    literal(JSON.stringify(table.primary_keys)),
  ].join(", ");
  const cols = table.columnTypes;
  // Binary image equality (record *=): no casts, every type, and a change of
  // representation (1.0 → 1.00, -0 → 0) still counts as a change.
  const image = (record: "OLD" | "NEW") =>
    `(ROW(${cols.map((c) => `${record}.${ident(c.name)}`).join(", ")}))::pg_catalog.record`;
  const body = `
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM pgq.insert_event_raw(${queue}, NULL, pg_catalog.now(), NULL, NULL, 'INSERT', pg_catalog.json_build_object('old', NULL, 'new', ${rowExpression("NEW", cols)})::pg_catalog.text, ${extras});
  ELSIF TG_OP = 'UPDATE' THEN
    IF ${image("OLD")} OPERATOR(pg_catalog.*=) ${image("NEW")} THEN
      RETURN NULL;
    END IF;
    PERFORM pgq.insert_event_raw(${queue}, NULL, pg_catalog.now(), NULL, NULL, 'UPDATE', pg_catalog.json_build_object('old', ${rowExpression("OLD", cols)}, 'new', ${rowExpression("NEW", cols)})::pg_catalog.text, ${extras});
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM pgq.insert_event_raw(${queue}, NULL, pg_catalog.now(), NULL, NULL, 'DELETE', pg_catalog.json_build_object('old', ${rowExpression("OLD", cols)}, 'new', NULL)::pg_catalog.text, ${extras});
  ELSE
    PERFORM pgq.insert_event_raw(${queue}, NULL, pg_catalog.now(), NULL, NULL, 'TRUNCATE', '{}', ${extras});
  END IF;
  RETURN NULL;
END`;
  const updateOf = cols.map((c) => ident(c.name)).join(", ");
  return [
    // SECURITY DEFINER: application roles may write to a captured table without being
    // granted PgQ's pgq_writer. Every name in the body is schema-qualified, so no
    // search_path can redirect it.
    `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $pgshovel$${body}
$pgshovel$`,
    `DROP TRIGGER IF EXISTS ${ident(dbNames.trigger(spec.cluster, spec.set))} ON ${target}`,
    `DROP TRIGGER IF EXISTS ${ident(dbNames.truncateTrigger(spec.cluster, spec.set))} ON ${target}`,
    `CREATE TRIGGER ${ident(dbNames.trigger(spec.cluster, spec.set))}
       AFTER INSERT OR UPDATE OF ${updateOf} OR DELETE ON ${target}
       FOR EACH ROW EXECUTE FUNCTION ${fn}()`,
    `CREATE TRIGGER ${ident(dbNames.truncateTrigger(spec.cluster, spec.set))}
       AFTER TRUNCATE ON ${target} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`,
  ];
}

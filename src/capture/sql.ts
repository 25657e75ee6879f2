import { dbNames, ident, literal } from "../config/names.js";
import { columnsViewName, nativeTriggersSql } from "./native.js";
import { eventDataExpression, imageExpression, rowExpression } from "./row-json.js";
import {
  type CaptureSpec,
  captureFunctionName,
  eventExtras,
  eventTableDispatch,
  identityColumns,
  keyChangeSetting,
  oldImageExpression,
  queueTableBlock,
  statementTriggerName,
  TRANSITION_TABLES,
} from "./spec.js";
import { statementBranch } from "./statement-sql.js";

export type { CaptureMode, CaptureSpec, OldImage, QueueTables } from "./spec.js";
export { captureFunctionName };

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
  const queue = literal(spec.queue.name);
  const target = `${ident(table.schema)}.${ident(table.name)}`;
  const extras = eventExtras(spec);
  const cols = table.columnTypes;
  // An event goes straight into the queue's current event table, as PgQ's insert_event_raw
  // would put it (docs/capture.md, "PgQ's rules"): one INSERT with a cached plan per event
  // table (and, at a transaction's first event, one query for the table's number), where
  // calling insert_event_raw runs three queries per event (the call, its read of pgq.queue,
  // its INSERT). A queue whose inserts are disabled or limited per transaction, or a table
  // number the function does not know, goes through insert_event_raw, so PgQ enforces those
  // rules itself.
  const viaPgq = `event_id := pgq.insert_event_raw(${queue}, NULL, pg_catalog.now(), NULL, NULL, event_type, event_data, ${extras});`;
  const insertEvent = `
${queueTableBlock(spec.queue)}
${eventTableDispatch(
  spec.queue,
  viaPgq,
  (target) => `event_id := pg_catalog.nextval(${literal(spec.queue.eventSeq)}::pg_catalog.regclass);
    INSERT INTO ${target} (ev_id, ev_time, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4)
      VALUES (event_id, pg_catalog.now(), event_type, event_data, ${extras});`,
)}`;
  // Statement mode on the C function: the generated function serves TRUNCATE only, and an
  // UPDATE's rows are paired by the C function itself (no row trigger for changed keys).
  const native = spec.mode === "statement" && spec.native === true;
  const statement = spec.mode === "statement" && !native;
  const identity = identityColumns(table);
  // A key changed when a key column's text did: the statement trigger pairs rows by that
  // text, and both compare it under "C" (byte for byte), so that a column with a
  // nondeterministic collation cannot make a row neither paired nor captured here.
  const keyChanged = identity
    .map(
      (c) =>
        `OLD.${ident(c.name)}::pg_catalog.text COLLATE pg_catalog."C" IS DISTINCT FROM NEW.${ident(c.name)}::pg_catalog.text COLLATE pg_catalog."C"`,
    )
    .join(" OR ");
  // In statement mode the row trigger fires only for rows whose key changed; it leaves the
  // id of its first event where the statement trigger looks, so that one skips those rows.
  const setting = literal(keyChangeSetting(spec));
  const markKeyChange = statement
    ? `
  IF TG_OP = 'UPDATE' AND COALESCE(pg_catalog.current_setting(${setting}, true), '') = '' THEN
    PERFORM pg_catalog.set_config(${setting}, event_id::pg_catalog.text, true);
  END IF;`
    : "";
  // The row-level half: one event per row. Left out under the C function, whose statement
  // triggers capture every row: the function then serves TRUNCATE alone.
  // Binary image equality (record *=): no casts, every type, and a change of
  // representation (1.0 → 1.00, -0 → 0) still counts as a change.
  const rowBranch = `
  IF TG_OP = 'INSERT' THEN
    event_data := ${eventDataExpression(null, rowExpression("NEW", cols))};
  ELSIF TG_OP = 'UPDATE' THEN
    IF ${imageExpression("OLD", cols)} OPERATOR(pg_catalog.*=) ${imageExpression("NEW", cols)} THEN
      RETURN NULL;
    END IF;
    event_data := ${eventDataExpression(oldImageExpression(spec, "OLD", "NEW"), rowExpression("NEW", cols))};
  ELSE
    event_data := ${eventDataExpression(oldImageExpression(spec, "OLD"), null)};
  END IF;
  event_type := TG_OP;${insertEvent}${markKeyChange}
  RETURN NULL;`;
  const body = `
DECLARE
  event_id int8;
  event_type text;
  event_data text;
  queue_table text;
  first_key_change text;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    event_type := 'TRUNCATE';
    event_data := '{}';${insertEvent.replaceAll("\n", "\n  ")}
    RETURN NULL;
  END IF;${statement ? statementBranch(spec) : ""}${native ? "\n  RETURN NULL;" : rowBranch}
END`;
  const rowTrigger = ident(dbNames.trigger(spec.cluster, spec.set));
  const truncateTrigger = ident(dbNames.truncateTrigger(spec.cluster, spec.set));
  const statementTriggers = (["INSERT", "UPDATE", "DELETE"] as const).map((op) =>
    ident(statementTriggerName(spec, op)),
  );
  // In statement mode the row trigger exists for UPDATE rows whose key changed only, and its
  // WHEN clause (evaluated by the server, no function call) keeps every other row from
  // queueing a trigger event at all: a bulk statement pays no per-row call.
  const monitored = cols.map((c) => ident(c.name)).join(", ");
  const rowTriggerSql = statement
    ? `CREATE TRIGGER ${rowTrigger}
       AFTER UPDATE OF ${monitored} ON ${target}
       FOR EACH ROW WHEN (${keyChanged}) EXECUTE FUNCTION ${fn}()`
    : `CREATE TRIGGER ${rowTrigger}
       AFTER INSERT OR UPDATE OF ${monitored} OR DELETE ON ${target}
       FOR EACH ROW EXECUTE FUNCTION ${fn}()`;
  return [
    // SECURITY DEFINER: application roles may write to a captured table without being
    // granted PgQ's pgq_writer. Every name in the body is schema-qualified, so no
    // search_path can redirect it.
    // jit off in statement mode: the cost of a statement over a large transition table passes
    // the JIT thresholds, and compiling its expressions (again on every call: a compiled plan
    // is not kept) took longer than running them. Not in row mode, where the SET would be paid
    // on every row and no query is large.
    `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER${statement ? " SET jit = off" : ""} AS $pgshovel$${body}
$pgshovel$`,
    ...[rowTrigger, truncateTrigger, ...statementTriggers].map(
      (name) => `DROP TRIGGER IF EXISTS ${name} ON ${target}`,
    ),
    `DROP VIEW IF EXISTS ${columnsViewName(spec)}`,
    ...(native ? [] : [rowTriggerSql]),
    `CREATE TRIGGER ${truncateTrigger}
       AFTER TRUNCATE ON ${target} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`,
    ...(statement
      ? (["INSERT", "UPDATE", "DELETE"] as const).map(
          (op, i) => `CREATE TRIGGER ${statementTriggers[i]}
       AFTER ${op} ON ${target} ${TRANSITION_TABLES[op]}
       FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`,
        )
      : []),
    ...(native ? nativeTriggersSql(spec, target) : []),
  ];
}

import { dbNames, ident, literal } from "../config/names.js";
import type { CatalogTable } from "./catalog.js";
import { keyImageExpression, rowExpression } from "./row-json.js";

/** A PgQ queue as its event tables are laid out: what a set-based insert writes to. */
export interface QueueTables {
  name: string;
  id: number;
  /** The parent of the rotating event tables, schema-qualified (`pgq.event_5`). */
  dataPrefix: string;
  /** How many event tables rotate (`<dataPrefix>_0` … `_<tables - 1>`). */
  tables: number;
  /** The event id sequence, schema-qualified. */
  eventSeq: string;
}

/**
 * How a table's INSERT, UPDATE and DELETE are captured: one event per row from a row
 * trigger, or every event of a statement in one INSERT … SELECT from statement triggers
 * over transition tables (docs/capture.md says which and why).
 */
export type CaptureMode = "row" | "statement";

/** What an UPDATE or DELETE event's `old` image holds: every monitored column, or the key and the changed columns. */
export type OldImage = "full" | "key";

/** Everything the capture function of one table bakes in. */
export interface CaptureSpec {
  cluster: string;
  set: string;
  table: CatalogTable;
  /** The set's configuration version (znode version) the trigger reports. */
  configVersion: number;
  /** The set's queue and its rotating event tables. */
  queue: QueueTables;
  mode: CaptureMode;
  old: OldImage;
  /** Statement mode through the C function of the pgshovel_capture extension (src/capture/native.ts). */
  native?: boolean;
}

/** The name of a table's capture function, schema-qualified and quoted. */
export function captureFunctionName(
  spec: Pick<CaptureSpec, "cluster" | "set"> & { relid: number },
): string {
  return `${ident(dbNames.schema(spec.cluster))}.${ident(dbNames.captureFunction(spec.set, spec.relid))}`;
}

/** The `ev_extra1..4` values every event of a table carries, as SQL literals. */
export function eventExtras(spec: CaptureSpec): string {
  return [
    literal(spec.table.schema),
    literal(spec.table.name),
    literal(String(spec.configVersion)),
    literal(JSON.stringify(spec.table.primary_keys)),
  ].join(", ");
}

/** The identity columns of a table, in key order. */
export function identityColumns(table: CatalogTable): CatalogTable["columnTypes"] {
  return table.primary_keys.map((name) => table.columnTypes.find((c) => c.name === name)!);
}

/** The `old` member of an UPDATE (with `newRow`) or DELETE event. */
export function oldImageExpression(spec: CaptureSpec, oldRow: string, newRow?: string): string {
  const cols = spec.table.columnTypes;
  return spec.old === "key"
    ? keyImageExpression(oldRow, newRow, cols, spec.table.primary_keys)
    : rowExpression(oldRow, cols);
}

/** The transaction-local setting where a row trigger leaves its first key-change event id. */
export function keyChangeSetting(spec: Pick<CaptureSpec, "cluster" | "set" | "table">): string {
  return `pgshovel.key_change_${spec.cluster}_${spec.set}_${spec.table.relid}`;
}

/** The transition tables each statement trigger names (`pgs_old`, `pgs_new`). */
export const TRANSITION_TABLES = {
  INSERT: "REFERENCING NEW TABLE AS pgs_new",
  UPDATE: "REFERENCING OLD TABLE AS pgs_old NEW TABLE AS pgs_new",
  DELETE: "REFERENCING OLD TABLE AS pgs_old",
} as const;

/** The statement trigger of one operation (`pgs_<cluster>_<set>_i`, `_u`, `_d`). */
export function statementTriggerName(
  spec: Pick<CaptureSpec, "cluster" | "set">,
  op: "INSERT" | "UPDATE" | "DELETE",
): string {
  return `${dbNames.trigger(spec.cluster, spec.set)}_${op[0]!.toLowerCase()}`;
}

/** A schema-qualified name (`pgq.event_5`) quoted part by part. */
export function qualified(name: string): string {
  return name.split(".").map(ident).join(".");
}

/**
 * PL/pgSQL that leaves in `queue_table` where this transaction writes its events: the queue's
 * current event table number as text, or `p` when PgQ must take each event itself (inserts
 * disabled or limited per transaction). Read from `pgq.queue` at the transaction's first
 * event, once the transaction has its id, and kept for the rest of it in a transaction-local
 * setting (docs/capture.md, "PgQ's rules": while the transaction runs, consumers read that
 * table for it and no rotation can retire it).
 */
export function queueTableBlock(queue: QueueTables, indent = "  "): string {
  const setting = literal(`pgshovel.queue_table_${queue.id}`);
  return [
    `queue_table := pg_catalog.current_setting(${setting}, true);`,
    "IF COALESCE(queue_table, '') = '' THEN",
    // The transaction's id first: PgQ's readers look for its events in the table it read
    // only if that id precedes the next rotation's step 2 (a statement that wrote no row
    // may not have one yet).
    "  PERFORM pg_catalog.txid_current();",
    `  SELECT CASE WHEN queue_disable_insert OR queue_per_tx_limit IS NOT NULL THEN 'p' ELSE queue_cur_table::pg_catalog.text END`,
    `    INTO queue_table FROM pgq.queue WHERE queue_id = ${queue.id};`,
    `  PERFORM pg_catalog.set_config(${setting}, queue_table, true);`,
    "END IF;",
  ]
    .map((line) => indent + line)
    .join("\n");
}

/**
 * PL/pgSQL that writes events where `queue_table` (see {@link queueTableBlock}) says: `insert`
 * of each event table's name when it names one the function knows, else `viaPgq` (PgQ's own
 * `insert_event_raw`, which enforces inserts disabled or limited per transaction).
 */
export function eventTableDispatch(
  queue: QueueTables,
  viaPgq: string,
  insert: (table: string) => string,
  indent = "  ",
): string {
  const branches = Array.from(
    { length: queue.tables },
    (_, n) =>
      `ELSIF queue_table = '${n}' THEN\n${indent}  ${insert(qualified(`${queue.dataPrefix}_${n}`))}`,
  );
  return ["IF queue_table = 'p' THEN", `  ${viaPgq}`, ...branches, "ELSE", `  ${viaPgq}`, "END IF;"]
    .map((line) => indent + line)
    .join("\n");
}

import { DEFAULT_CONSUMER, dbNames, ident } from "../config/names.js";
import { type PgClient, query } from "../database/postgres.js";
import { PgshovelError } from "../errors.js";
import type { Logger } from "../log.js";
import type { CatalogTable } from "./catalog.js";
import { NATIVE_EXTENSION, nativeCaptureAvailable } from "./native.js";
import { qualified, statementTriggerName } from "./spec.js";
import { type CaptureMode, captureSql, type QueueTables } from "./sql.js";

/**
 * Fails with DATABASE_NOT_READY unless the server can host a set: PgQ is
 * available and prepared transactions are enabled.
 */
export async function checkDatabaseReady(client: PgClient): Promise<void> {
  const pgq = await query(
    client,
    "SELECT 1 FROM pg_available_extensions WHERE name = 'pgq'",
    [],
    "checking for PgQ",
  );
  if (pgq.rowCount === 0) {
    throw new PgshovelError(
      "DATABASE_NOT_READY",
      "the PgQ extension is not installed on this PostgreSQL server",
      {
        hint: "install PgQ 3.5 (Debian: apt-get install postgresql-15-pgq3) and run pgqd",
      },
    );
  }
  const prepared = await query<{ setting: string }>(
    client,
    "SELECT setting FROM pg_settings WHERE name = 'max_prepared_transactions'",
    [],
    "checking max_prepared_transactions",
  );
  if (Number(prepared.rows[0]?.setting ?? 0) === 0) {
    throw new PgshovelError(
      "DATABASE_NOT_READY",
      "max_prepared_transactions is 0 on this PostgreSQL server; pgshovel changes configuration with two-phase commit",
      { hint: "set max_prepared_transactions (e.g. 10) in postgresql.conf and restart PostgreSQL" },
    );
  }
}

/** The database's node id, or undefined when the cluster's schema is not installed there. */
export async function readNodeId(client: PgClient, cluster: string): Promise<string | undefined> {
  const schema = dbNames.schema(cluster);
  const exists = await query(
    client,
    "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = 'node'",
    [schema],
    "reading the node id",
  );
  if (exists.rowCount === 0) return undefined;
  const row = await query<{ id: string }>(
    client,
    `SELECT id::text FROM ${ident(schema)}.node`,
    [],
    "reading the node id",
  );
  return row.rows[0]?.id;
}

/**
 * Installs (or refreshes) the cluster's database-side objects — PgQ, the
 * schema, the node id and the installed version — and returns the node id.
 * Meant to run inside the caller's transaction.
 */
export async function installClusterSchema(
  client: PgClient,
  cluster: string,
  version: string,
): Promise<string> {
  const schema = ident(dbNames.schema(cluster));
  const doing = "installing the cluster schema";
  await query(client, "CREATE EXTENSION IF NOT EXISTS pgq", [], doing);
  await query(client, `CREATE SCHEMA IF NOT EXISTS ${schema}`, [], doing);
  await query(
    client,
    `CREATE TABLE IF NOT EXISTS ${schema}.node (
       singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
       id uuid NOT NULL DEFAULT gen_random_uuid(),
       version text NOT NULL,
       installed_at timestamptz NOT NULL DEFAULT now())`,
    [],
    doing,
  );
  const node = await query<{ id: string }>(
    client,
    `INSERT INTO ${schema}.node (version) VALUES ($1)
     ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version
     RETURNING id::text`,
    [version],
    doing,
  );
  return node.rows[0]!.id;
}

/** Capture functions that belong to a set, by name. */
async function setFunctions(client: PgClient, cluster: string, set: string): Promise<string[]> {
  const rows = await query<{ name: string }>(
    client,
    `SELECT p.proname::text AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = $1 AND p.proname ~ $2`,
    [dbNames.schema(cluster), dbNames.captureFunctionPattern(set)],
    "listing capture functions",
  );
  return rows.rows.map((r) => r.name);
}

/**
 * Drops a set's capture functions and, with them, its triggers; the statement triggers on the
 * C capture function (which the set's functions do not own) first, by name, and the views that
 * hold their tables' monitored columns.
 */
export async function removeSetTriggers(
  client: PgClient,
  cluster: string,
  set: string,
): Promise<void> {
  const native = await query<{ name: string; target: string }>(
    client,
    `SELECT t.tgname::text AS name, format('%I.%I', n.nspname, c.relname) AS target
       FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
       JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
      WHERE t.tgname = ANY ($1::text[]) AND pn.nspname = $2`,
    [
      (["INSERT", "UPDATE", "DELETE"] as const).map((op) =>
        statementTriggerName({ cluster, set }, op),
      ),
      NATIVE_EXTENSION,
    ],
    "listing capture triggers",
  );
  for (const { name, target } of native.rows) {
    await query(client, `DROP TRIGGER ${ident(name)} ON ${target}`, [], `dropping trigger ${name}`);
  }
  const views = await query<{ name: string }>(
    client,
    `SELECT c.relname::text AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind = 'v' AND c.relname ~ $2`,
    [dbNames.schema(cluster), dbNames.captureFunctionPattern(set)],
    "listing capture views",
  );
  for (const { name } of views.rows) {
    await query(
      client,
      `DROP VIEW ${ident(dbNames.schema(cluster))}.${ident(name)}`,
      [],
      `dropping capture view ${name}`,
    );
  }
  for (const name of await setFunctions(client, cluster, set)) {
    await query(
      client,
      `DROP FUNCTION ${ident(dbNames.schema(cluster))}.${ident(name)}() CASCADE`,
      [],
      `dropping capture function ${name}`,
    );
  }
}

/** The layout of a queue's event tables, which a set-based capture function writes to directly. */
async function queueTables(client: PgClient, queue: string): Promise<QueueTables> {
  const row = await query<{ id: number; prefix: string; tables: number; seq: string }>(
    client,
    `SELECT queue_id AS id, queue_data_pfx AS prefix, queue_ntables AS tables, queue_event_seq AS seq
       FROM pgq.queue WHERE queue_name = $1`,
    [queue],
    "reading the PgQ queue's event tables",
  );
  const { id, prefix, tables, seq } = row.rows[0]!;
  return { name: queue, id, dataPrefix: prefix, tables, eventSeq: seq };
}

/**
 * Packed events (statement mode) are large enough for TOAST to compress, and lz4 compresses
 * them several times faster than PostgreSQL's default pglz at about the same size
 * (docs/benchmarks.md, "Capture cost"). When the server was built with lz4, the queue's
 * event tables compress `ev_data` with it; elsewhere they keep the default. Only tables not
 * yet set are altered, so that a later `set update` takes no lock on them, and only by a role
 * that owns them (PgQ's `create_queue` makes its owner theirs: a DSN user with `pgq_admin` only
 * leaves them as they are).
 */
async function compressWithLz4(client: PgClient, queue: string): Promise<void> {
  const { dataPrefix, tables } = await queueTables(client, queue);
  const names = Array.from({ length: tables }, (_, n) => `${dataPrefix}_${n}`);
  const pending = await query<{ table: string }>(
    client,
    `SELECT t AS table FROM pg_catalog.unnest($1::text[]) t
       JOIN pg_catalog.pg_attribute a ON a.attrelid = t::regclass AND a.attname = 'ev_data'
      WHERE a.attcompression <> 'l'
        AND pg_catalog.pg_has_role((SELECT relowner FROM pg_catalog.pg_class WHERE oid = t::regclass), 'USAGE')
        AND EXISTS (SELECT FROM pg_catalog.pg_settings
                     WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals))`,
    [names],
    "reading the PgQ queue's event tables",
  );
  for (const { table } of pending.rows) {
    await query(
      client,
      `ALTER TABLE ${qualified(table)} ALTER COLUMN ev_data SET COMPRESSION lz4`,
      [],
      "setting the PgQ queue's compression",
    );
  }
}

/** The most fields a record may have (PostgreSQL's MaxTupleAttributeNumber). */
const MAX_RECORD_FIELDS = 1664;

/**
 * How a table is captured. `capture: row` and `capture: statement` are what they say; without
 * the option, statement mode where the C capture function is available (it captures every
 * workload more cheaply than row mode, docs/capture.md "Which mode, and why"), else row mode.
 * Either way only a plain table gets statement triggers: a partitioned table or one with
 * inheritance children keeps row triggers (its statement triggers would see its children's
 * rows as its own, and a row moved between partitions is not an UPDATE to a partition's
 * triggers), and so does a table of more than 831 monitored columns, whose packed UPDATE
 * record would not fit in a row.
 */
async function captureMode(
  client: PgClient,
  table: CatalogTable,
  native: boolean,
): Promise<CaptureMode> {
  if (table.capture === "row" || (table.capture === undefined && !native)) return "row";
  // A packed UPDATE row is one record of both images (and a mask): it must fit in a row,
  // which PostgreSQL bounds at 1 664 fields.
  if (2 * table.columnTypes.length + 1 > MAX_RECORD_FIELDS) return "row";
  const row = await query<{ plain: boolean }>(
    client,
    "SELECT relkind = 'r' AND NOT relhassubclass AS plain FROM pg_catalog.pg_class WHERE oid = $1",
    [table.relid],
    "reading the catalog",
  );
  return row.rows[0]?.plain ? "statement" : "row";
}

/**
 * Creates the set's queue when missing and (re)creates one capture function
 * and its triggers per table; tables no longer in the set lose theirs.
 */
export async function installSet(
  client: PgClient,
  options: {
    cluster: string;
    set: string;
    tables: CatalogTable[];
    configVersion: number;
    logger?: Logger;
  },
): Promise<void> {
  const { cluster, set } = options;
  const queue = dbNames.queue(cluster, set);
  await query(client, "SELECT pgq.create_queue($1)", [queue], "creating the PgQ queue");
  await compressWithLz4(client, queue);
  // Tick as soon as events wait (pgqd's next round, or the relay's own tick) instead of
  // PgQ's default of up to 3 s: latency is what a CDC stream is judged on.
  await query(
    client,
    "SELECT pgq.set_queue_config($1, 'ticker_max_lag', '0')",
    [queue],
    "configuring the PgQ queue",
  );
  // The default consumer exists from the moment the queue does, so nothing captured
  // before the first relay run is missed (a consumer registered later starts at the latest tick).
  await query(
    client,
    "SELECT pgq.register_consumer($1, $2)",
    [queue, DEFAULT_CONSUMER],
    "registering the default consumer",
  );
  await removeSetTriggers(client, cluster, set);
  const native = options.tables.some((t) => t.capture !== "row")
    ? await nativeCaptureAvailable(client)
    : { available: false };
  if (native.failed) {
    options.logger?.warn(
      { extension: NATIVE_EXTENSION, error: native.failed },
      "could not create the pgshovel_capture extension; statement mode uses PL/pgSQL capture functions",
    );
  }
  for (const table of options.tables) {
    await installTableCapture(client, {
      cluster,
      set,
      table,
      configVersion: options.configVersion,
      native: native.available,
    });
  }
}

/**
 * (Re)creates one table's capture function and triggers. The mode is the table's `capture`
 * option (on a plain table) unless given (benchmarks and tests compare both on one table).
 */
export async function installTableCapture(
  client: PgClient,
  options: {
    cluster: string;
    set: string;
    table: CatalogTable;
    configVersion: number;
    mode?: CaptureMode;
    /** Statement mode through the C function (the pgshovel_capture extension must be installed). */
    native?: boolean;
  },
): Promise<void> {
  const { cluster, set, table } = options;
  const queue = await queueTables(client, dbNames.queue(cluster, set));
  const statements = captureSql({
    cluster,
    set,
    table,
    configVersion: options.configVersion,
    queue,
    mode: options.mode ?? (await captureMode(client, table, options.native ?? false)),
    old: table.old ?? "full",
    native: options.native ?? false,
  });
  for (const statement of statements) {
    await query(
      client,
      statement,
      [],
      `installing the capture trigger on ${table.schema}.${table.name}`,
    );
  }
}

/**
 * Whether a PgQ queue exists; false also in a database without PgQ (e.g. recreated since).
 * Nothing here fails on a missing PgQ, so it is safe inside a transaction that must go on.
 */
export async function queueExists(client: PgClient, queue: string): Promise<boolean> {
  const pgq = await query(
    client,
    "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'pgq'",
    [],
    "checking for PgQ",
  );
  if (!pgq.rowCount) return false;
  const exists = await query(
    client,
    "SELECT 1 FROM pgq.queue WHERE queue_name = $1",
    [queue],
    "looking up the queue",
  );
  return (exists.rowCount ?? 0) > 0;
}

/** Removes a set's triggers, capture functions and queue (with its consumers and events). */
export async function uninstallSet(client: PgClient, cluster: string, set: string): Promise<void> {
  await removeSetTriggers(client, cluster, set);
  const queue = dbNames.queue(cluster, set);
  if (await queueExists(client, queue)) {
    await query(client, "SELECT pgq.drop_queue($1, true)", [queue], "dropping the PgQ queue");
  }
}

/** What a set has installed in a database: used by `set drop --force` reports and by tests. */
export async function describeSetObjects(
  client: PgClient,
  cluster: string,
  set: string,
): Promise<{ queue: boolean; triggers: string[] }> {
  const queue = await queueExists(client, dbNames.queue(cluster, set));
  const triggers = await query<{ name: string }>(
    client,
    `SELECT format('%I.%I:%I', n.nspname, c.relname, t.tgname) AS name
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE t.tgname = ANY($1::text[]) ORDER BY 1`,
    [
      [
        dbNames.trigger(cluster, set),
        dbNames.truncateTrigger(cluster, set),
        ...(["INSERT", "UPDATE", "DELETE"] as const).map((op) =>
          statementTriggerName({ cluster, set }, op),
        ),
      ],
    ],
    "listing triggers",
  );
  return { queue, triggers: triggers.rows.map((r) => r.name) };
}

/**
 * A replica's own state in its target database, in the cluster's schema
 * `pgshovel_<cluster>`: the target's node id, the position applied per set, and the
 * tables copied per set with the snapshot each was copied under. Every write here is
 * meant to run inside the caller's transaction: the position with the batch's changes,
 * a table's state with its COPY.
 */
import { dbNames, ident } from "../config/names.js";
import { type PgClient, query } from "../database/postgres.js";
import { formatSnapshot, parseSnapshot } from "../stream/snapshot.js";
import type { Begin, Snapshot, StreamPosition, Uuid } from "../stream/types.js";
import { SOFTWARE_VERSION } from "../version.js";

/** A table of a set, named by schema and name. */
export interface TableName {
  schema: string;
  name: string;
}

/** Where a replica stands for one set: the last batch applied and its end tick. */
export interface ReplicaPosition {
  /** The source database's node id. */
  node: Uuid;
  /** The last PgQ batch id applied. */
  batch: bigint;
  endTick: bigint;
  endSnapshot: Snapshot;
  /** The end tick's time, as PostgreSQL prints timestamptz. */
  endTime: string;
  /** Where the feed resumes after this batch (a Kafka or file offset, the queue's end tick); null if none. */
  stream: StreamPosition | null;
}

/** Where a replica's stream started: the position its feed marked before the bootstrap snapshot. */
export interface ReplicaMark {
  /** A Kafka or file offset; for the queue, the tick its new consumer starts after. */
  stream: StreamPosition | null;
  /** The feed that took it, as its description read then. */
  feed: string;
}

/** A table of a set that the bootstrap copied, and the snapshot it copied under. */
export interface CopiedTable extends TableName {
  snapshot: Snapshot;
  rows: bigint;
}

/** The schema-qualified, quoted name of a table. */
export function qualified(table: TableName): string {
  return `${ident(table.schema)}.${ident(table.name)}`;
}

/** A table's name for people: schema.name. */
export function display(table: TableName): string {
  return `${table.schema}.${table.name}`;
}

function stateTable(cluster: string, name: string): string {
  return `${ident(dbNames.schema(cluster))}.${ident(name)}`;
}

/**
 * Creates the cluster schema's replica tables when missing and returns the target's
 * node id. The node table has the shape a source's has (src/capture/install.ts), so one
 * database may be a source of some sets and a replica of others; an existing node id
 * is kept. Needs no PgQ on the target.
 */
export async function installReplicaState(client: PgClient, cluster: string): Promise<Uuid> {
  const schema = ident(dbNames.schema(cluster));
  const doing = "installing the replica state";
  const statements = [
    `CREATE SCHEMA IF NOT EXISTS ${schema}`,
    `CREATE TABLE IF NOT EXISTS ${schema}.node (
       singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
       id uuid NOT NULL DEFAULT gen_random_uuid(),
       version text NOT NULL,
       installed_at timestamptz NOT NULL DEFAULT now())`,
    `CREATE TABLE IF NOT EXISTS ${stateTable(cluster, dbNames.replicaPosition)} (
       set_name text PRIMARY KEY,
       source_node uuid NOT NULL,
       batch_id bigint NOT NULL,
       end_tick_id bigint NOT NULL,
       end_tick_snapshot text NOT NULL,
       end_tick_time timestamptz NOT NULL,
       applied_at timestamptz NOT NULL DEFAULT now())`,
    // Added after the first release of the table: a target installed then gains it here.
    `ALTER TABLE ${stateTable(cluster, dbNames.replicaPosition)}
       ADD COLUMN IF NOT EXISTS stream_position bigint`,
    `CREATE TABLE IF NOT EXISTS ${stateTable(cluster, dbNames.replicaMark)} (
       set_name text PRIMARY KEY,
       stream_position bigint,
       feed text NOT NULL,
       marked_at timestamptz NOT NULL DEFAULT now())`,
    `CREATE TABLE IF NOT EXISTS ${stateTable(cluster, dbNames.replicaTables)} (
       set_name text NOT NULL,
       schema_name text NOT NULL,
       table_name text NOT NULL,
       state text NOT NULL CHECK (state IN ('copied')),
       snapshot text NOT NULL,
       rows bigint NOT NULL,
       copied_at timestamptz NOT NULL DEFAULT now(),
       PRIMARY KEY (set_name, schema_name, table_name))`,
  ];
  await query(client, "BEGIN", [], doing);
  try {
    // Two replicas of one target starting at once must not both create the schema.
    await query(client, "SELECT pg_advisory_xact_lock(hashtext($1))", [schema], doing);
    for (const statement of statements) await query(client, statement, [], doing);
    const node = await query<{ id: string }>(
      client,
      `WITH inserted AS (INSERT INTO ${schema}.node (version) VALUES ($1)
                           ON CONFLICT (singleton) DO NOTHING RETURNING id)
       SELECT id::text FROM inserted UNION ALL SELECT id::text FROM ${schema}.node`,
      [SOFTWARE_VERSION],
      doing,
    );
    await query(client, "COMMIT", [], doing);
    return node.rows[0]!.id;
  } catch (error) {
    await query(client, "ROLLBACK", [], doing).catch(() => {});
    throw error;
  }
}

/** The position applied for a set, or undefined before the first batch. */
export async function readPosition(
  client: PgClient,
  cluster: string,
  set: string,
): Promise<ReplicaPosition | undefined> {
  const result = await query<{
    node: string;
    batch: string;
    tick: string;
    snapshot: string;
    time: string;
    stream: string | null;
  }>(
    client,
    `SELECT source_node::text AS node, batch_id::text AS batch, end_tick_id::text AS tick,
            end_tick_snapshot AS snapshot, end_tick_time::text AS time,
            stream_position::text AS stream
       FROM ${stateTable(cluster, dbNames.replicaPosition)} WHERE set_name = $1`,
    [set],
    "reading the replica position",
  );
  const row = result.rows[0];
  if (!row) return undefined;
  return {
    node: row.node,
    batch: BigInt(row.batch),
    endTick: BigInt(row.tick),
    endSnapshot: parseSnapshot(row.snapshot),
    endTime: row.time,
    stream: row.stream === null ? null : BigInt(row.stream),
  };
}

/**
 * Records that batch `batch` of `node` is applied. Refuses (returns false) when the
 * stored position is already at or past it for the same node: another applier got
 * there first, and the caller must roll back.
 */
export async function writePosition(
  client: PgClient,
  cluster: string,
  set: string,
  batch: { node: Uuid; id: bigint; begin: Begin; position?: StreamPosition | null | undefined },
): Promise<boolean> {
  const table = stateTable(cluster, dbNames.replicaPosition);
  const result = await query(
    client,
    `INSERT INTO ${table} AS p
            (set_name, source_node, batch_id, end_tick_id, end_tick_snapshot, end_tick_time,
             stream_position)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (set_name) DO UPDATE SET
            source_node = EXCLUDED.source_node, batch_id = EXCLUDED.batch_id,
            end_tick_id = EXCLUDED.end_tick_id, end_tick_snapshot = EXCLUDED.end_tick_snapshot,
            end_tick_time = EXCLUDED.end_tick_time, stream_position = EXCLUDED.stream_position,
            applied_at = now()
      WHERE p.source_node <> EXCLUDED.source_node OR p.batch_id < EXCLUDED.batch_id`,
    [
      set,
      batch.node,
      batch.id.toString(),
      batch.begin.end.id.toString(),
      formatSnapshot(batch.begin.end.snapshot),
      batch.begin.end.time,
      batch.position === undefined || batch.position === null ? null : batch.position.toString(),
    ],
    `storing the position of batch ${batch.id}`,
  );
  return result.rowCount === 1;
}

/** The tables of a set copied so far, by `schema.name`. */
export async function readCopiedTables(
  client: PgClient,
  cluster: string,
  set: string,
): Promise<Map<string, CopiedTable>> {
  const result = await query<{ schema: string; name: string; snapshot: string; rows: string }>(
    client,
    `SELECT schema_name AS schema, table_name AS name, snapshot, rows::text AS rows
       FROM ${stateTable(cluster, dbNames.replicaTables)} WHERE set_name = $1 AND state = 'copied'`,
    [set],
    "reading the replica's copied tables",
  );
  return new Map(
    result.rows.map((row) => [
      display(row),
      {
        schema: row.schema,
        name: row.name,
        snapshot: parseSnapshot(row.snapshot),
        rows: BigInt(row.rows),
      },
    ]),
  );
}

/**
 * Records a table as copied under `snapshot`, in the transaction of its COPY. A second
 * record of the same table fails on the primary key: a table is never copied twice.
 */
export async function recordCopied(
  client: PgClient,
  cluster: string,
  set: string,
  table: TableName,
  snapshot: Snapshot,
  rows: bigint,
): Promise<void> {
  await query(
    client,
    `INSERT INTO ${stateTable(cluster, dbNames.replicaTables)}
            (set_name, schema_name, table_name, state, snapshot, rows)
     VALUES ($1, $2, $3, 'copied', $4, $5)`,
    [set, table.schema, table.name, formatSnapshot(snapshot), rows.toString()],
    `recording the copy of ${display(table)}`,
  );
}

/** The mark a set's replica started from, or undefined before its first bootstrap. */
export async function readMark(
  client: PgClient,
  cluster: string,
  set: string,
): Promise<ReplicaMark | undefined> {
  const result = await query<{ stream: string | null; feed: string }>(
    client,
    `SELECT stream_position::text AS stream, feed
       FROM ${stateTable(cluster, dbNames.replicaMark)} WHERE set_name = $1`,
    [set],
    "reading the replica's stream mark",
  );
  const row = result.rows[0];
  if (!row) return undefined;
  return { stream: row.stream === null ? null : BigInt(row.stream), feed: row.feed };
}

/**
 * Stores the mark taken before the bootstrap snapshot. A mark stored already is kept:
 * a resumed bootstrap copies under a later snapshot, which the first mark still precedes.
 */
export async function writeMark(
  client: PgClient,
  cluster: string,
  set: string,
  mark: ReplicaMark,
): Promise<void> {
  await query(
    client,
    `INSERT INTO ${stateTable(cluster, dbNames.replicaMark)} (set_name, stream_position, feed)
     VALUES ($1, $2, $3) ON CONFLICT (set_name) DO NOTHING`,
    [set, mark.stream === null ? null : mark.stream.toString(), mark.feed],
    "storing the replica's stream mark",
  );
}

/**
 * Forgets that tables were copied (they left the set): the replica stops applying them,
 * and should one come back, it is copied again — which needs it emptied first, since the
 * changes made meanwhile never reached the replica.
 */
export async function forgetCopied(
  client: PgClient,
  cluster: string,
  set: string,
  tables: TableName[],
): Promise<void> {
  if (tables.length === 0) return;
  await query(
    client,
    `DELETE FROM ${stateTable(cluster, dbNames.replicaTables)}
      WHERE set_name = $1 AND (schema_name, table_name) IN
            (SELECT * FROM unnest($2::text[], $3::text[]))`,
    [set, tables.map((t) => t.schema), tables.map((t) => t.name)],
    "forgetting tables that left the set",
  );
}

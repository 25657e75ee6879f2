/** Fresh PostgreSQL databases for integration tests, on the shared stack or a private server. */
import pg from "pg";
import { stackEnv, uniqueName } from "./env.js";

export interface PgServer {
  host: string;
  port: number;
  user: string;
}

export interface TestDatabase {
  name: string;
  /** libpq URL reaching the database as the superuser. */
  dsn: string;
  server: PgServer;
  /** Runs SQL on a small pool of connections to the database; returns the rows. */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
  ): Promise<R[]>;
  /** A new dedicated client (connected); the caller ends it. */
  connect(): Promise<pg.Client>;
  /** Ends the pool, terminates every backend on the database and drops it. Idempotent. */
  drop(): Promise<void>;
}

export interface CreateTestDatabaseOptions {
  /** CREATE EXTENSION pgq in the new database (default true). */
  pgq?: boolean;
  /** The server to create it on (default: the shared stack from the environment). */
  server?: PgServer;
}

export function stackServer(): PgServer {
  const env = stackEnv();
  return { host: env.pgHost, port: env.pgPort, user: env.pgUser };
}

export function dsnFor(server: PgServer, database: string): string {
  return `postgresql://${encodeURIComponent(server.user)}@${server.host}:${server.port}/${encodeURIComponent(database)}`;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Runs SQL on DATABASE (default postgres) with a short-lived superuser connection. */
export async function adminQuery<R extends pg.QueryResultRow = Record<string, unknown>>(
  sql: string,
  params: unknown[] = [],
  options: { server?: PgServer; database?: string } = {},
): Promise<R[]> {
  const server = options.server ?? stackServer();
  const client = new pg.Client({
    connectionString: dsnFor(server, options.database ?? "postgres"),
  });
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** Drops DATABASE after terminating its backends (no error when it does not exist). */
export async function dropDatabase(name: string, server: PgServer = stackServer()): Promise<void> {
  await adminQuery(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    [name],
    { server },
  );
  await adminQuery(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`, [], { server });
}

/** Creates a fresh database named after PREFIX (unique), with PgQ unless {pgq: false}. */
export async function createTestDatabase(
  prefix: string,
  options: CreateTestDatabaseOptions = {},
): Promise<TestDatabase> {
  const server = options.server ?? stackServer();
  const name = uniqueName(prefix);
  await adminQuery(`CREATE DATABASE ${quoteIdent(name)}`, [], { server });
  const dsn = dsnFor(server, name);
  const pool = new pg.Pool({ connectionString: dsn, max: 4, idleTimeoutMillis: 5_000 });
  // An idle pooled client whose backend gets terminated must not crash the test process.
  pool.on("error", () => {});
  let dropped = false;
  const db: TestDatabase = {
    name,
    dsn,
    server,
    async query<R extends pg.QueryResultRow = Record<string, unknown>>(
      sql: string,
      params: unknown[] = [],
    ): Promise<R[]> {
      return (await pool.query<R>(sql, params)).rows;
    },
    async connect(): Promise<pg.Client> {
      const client = new pg.Client({ connectionString: dsn });
      await client.connect();
      return client;
    },
    async drop(): Promise<void> {
      if (dropped) return;
      dropped = true;
      await pool.end().catch(() => {});
      await dropDatabase(name, server);
    },
  };
  try {
    if (options.pgq ?? true) await db.query("CREATE EXTENSION IF NOT EXISTS pgq");
  } catch (error) {
    await db.drop().catch(() => {});
    throw error;
  }
  return db;
}

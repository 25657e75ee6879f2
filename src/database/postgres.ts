import pg from "pg";
import { hidePassword } from "../config/set-config.js";
import { type ErrorCode, PgshovelError } from "../errors.js";

/** A PostgreSQL connection. */
export type PgClient = pg.Client;

/** Fields PostgreSQL attaches to an error, kept when converting. */
export interface ServerErrorFields {
  sqlstate?: string;
  detail?: string;
  hint?: string;
}

// Connection-level failures that a retry may cure.
const RETRYABLE_SQLSTATE_CLASSES = ["08", "57P", "53", "40001", "40P01"];
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENOTFOUND",
]);

/** The SQLSTATE of a driver error, or of the driver error a PgshovelError wraps. */
export function sqlstate(error: unknown): string | undefined {
  const source = error instanceof PgshovelError ? error.cause : error;
  const code = (source as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** Converts a driver error into a PgshovelError that says what was being done. */
export function convertPgError(error: unknown, doing: string): PgshovelError {
  if (error instanceof PgshovelError) return error;
  const err = error as Error & { code?: string; detail?: string; hint?: string };
  const code = err?.code ?? "";
  const message = err?.message ?? String(error);
  if (
    NETWORK_CODES.has(code) ||
    /Connection terminated|timeout expired|not queryable|connection error|Client was closed/i.test(
      message,
    )
  ) {
    return new PgshovelError("DATABASE_UNAVAILABLE", `${doing}: ${message}`, {
      cause: error,
      retryable: true,
      hint: "check that PostgreSQL is running and that the DSN's host and port are right",
    });
  }
  if (code === "28P01" || code === "28000") {
    return new PgshovelError(
      "DATABASE_UNAVAILABLE",
      `${doing}: authentication failed: ${message}`,
      {
        cause: error,
        hint: "check the user and password in the DSN (and pg_hba.conf)",
      },
    );
  }
  if (code === "3D000") {
    return new PgshovelError("NOT_FOUND", `${doing}: ${message}`, {
      cause: error,
      hint: "create the database or fix the DSN's database name",
    });
  }
  const retryable = RETRYABLE_SQLSTATE_CLASSES.some((prefix) => code.startsWith(prefix));
  const kind: ErrorCode =
    retryable && code.startsWith("08") ? "DATABASE_UNAVAILABLE" : "DATABASE_ERROR";
  const extra = [err?.detail && `detail: ${err.detail}`].filter(Boolean).join("; ");
  return new PgshovelError(
    kind,
    `${doing}: ${message}${extra ? ` (${extra})` : ""}${code ? ` [${code}]` : ""}`,
    {
      cause: error,
      retryable,
      hint: err?.hint,
    },
  );
}

/** Options of {@link connect}. */
export interface ConnectOptions {
  applicationName?: string;
  timeoutMs?: number;
  /** How column values are parsed, when the driver's defaults do not fit. */
  types?: pg.CustomTypesConfig;
}

/** Connects to a DSN (a `postgresql://` URI), converting failures. */
export async function connect(dsn: string, options: ConnectOptions = {}): Promise<PgClient> {
  if (!/^postgres(ql)?:\/\//i.test(dsn)) {
    throw new PgshovelError(
      "INVALID_ARGUMENT",
      `unsupported DSN ${JSON.stringify(hidePassword(dsn))}: write it as a URI, postgresql://user:password@host:port/database`,
    );
  }
  const client = new pg.Client({
    connectionString: dsn,
    application_name: options.applicationName ?? "pgshovel",
    connectionTimeoutMillis: options.timeoutMs ?? 10_000,
    ...(options.types ? { types: options.types } : {}),
  });
  // An idle connection that breaks emits "error"; callers see it on their next query.
  client.on("error", () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw convertPgError(error, `connecting to ${hidePassword(dsn)}`);
  }
  return client;
}

/** Runs a query, converting errors with the given context. */
export async function query<R extends pg.QueryResultRow = pg.QueryResultRow>(
  client: PgClient,
  sql: string,
  params: unknown[],
  doing: string,
): Promise<pg.QueryResult<R>> {
  try {
    return await client.query<R>(sql, params);
  } catch (error) {
    throw convertPgError(error, doing);
  }
}

/** Closes a connection, ignoring errors (it may be broken already). */
export async function closeQuietly(client: PgClient | undefined): Promise<void> {
  if (client) await client.end().catch(() => {});
}

/** The closed list of error codes pgshovel raises. */
export const ERROR_CODES = [
  "INVALID_ARGUMENT", // bad user input: options, set configuration, names
  "INVALID_CONFIGURATION", // a set configuration that does not match the database
  "NOT_FOUND", // a cluster, set, table or column that does not exist
  "ALREADY_EXISTS", // a cluster or set that exists already
  "CONFLICT", // a concurrent change won (znode version mismatch)
  "IN_USE", // a command would remove what is still used: running relays, events not yet relayed
  "VERSION_MISMATCH", // software version and cluster record differ
  "DATABASE_UNAVAILABLE", // cannot reach or authenticate to PostgreSQL
  "DATABASE_ERROR", // PostgreSQL refused a statement
  "DATABASE_NOT_READY", // PgQ missing, max_prepared_transactions = 0, …
  "ZOOKEEPER_UNAVAILABLE", // cannot reach ZooKeeper within the timeout
  "ZOOKEEPER_ERROR", // ZooKeeper refused an operation
  "KAFKA_UNAVAILABLE", // cannot reach the brokers
  "KAFKA_ERROR", // the broker refused an operation
  "SINK_ERROR", // a file or stdout sink failed
  "DECODE_ERROR", // a stream message that does not decode
  "POSITION_LOST", // a stream position the source no longer holds (retention removed it)
  "FENCED", // another relay took over
  "STOPPED", // asked to stop (a signal, an aborted run): not a failure
  "INTERNAL", // a bug: an invariant did not hold
] as const;

/** One of {@link ERROR_CODES}. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Options accepted by {@link PgshovelError}. */
export interface PgshovelErrorOptions {
  retryable?: boolean;
  cause?: unknown;
  /** What the user can do about it, printed after the message. */
  hint?: string;
}

/** The one error type of pgshovel: a code from a closed list, a retryable flag and a cause. */
export class PgshovelError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: PgshovelErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "PgshovelError";
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.hint = options.hint;
  }
}

/** True when `error` is a {@link PgshovelError}, optionally with the given code. */
export function isPgshovelError(error: unknown, code?: ErrorCode): error is PgshovelError {
  return error instanceof PgshovelError && (code === undefined || error.code === code);
}

/**
 * Adds context to an error while keeping its code and retryability:
 * `wrapError(err, "publishing batch 42 to topic t")`.
 */
export function wrapError(
  error: unknown,
  doing: string,
  fallback: ErrorCode = "INTERNAL",
): PgshovelError {
  if (error instanceof PgshovelError) {
    return new PgshovelError(error.code, `${doing}: ${error.message}`, {
      retryable: error.retryable,
      cause: error,
      hint: error.hint,
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new PgshovelError(fallback, `${doing}: ${message}`, { cause: error });
}

/**
 * Formats an error for a person: its message and hint. Causes are not printed: a wrapped
 * error's message already carries its cause's (see {@link wrapError}, convertPgError).
 */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const lines = [error.message];
  if (error instanceof PgshovelError && error.hint) lines.push(`hint: ${error.hint}`);
  return lines.join("\n");
}

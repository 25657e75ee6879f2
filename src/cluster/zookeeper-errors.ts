import zookeeper from "node-zookeeper-client";
import { PgshovelError } from "../errors.js";

/** An error as the client library reports it: its own Exception, or a plain Error. */
export type ClientError = Error | zookeeper.Exception;

const RETRYABLE_CODES = new Set([
  zookeeper.Exception.CONNECTION_LOSS,
  zookeeper.Exception.OPERATION_TIMEOUT,
  zookeeper.Exception.SESSION_EXPIRED,
]);

// Codes the client library makes up itself; any other reply is an answer from the server.
const CLIENT_SIDE_CODES = new Set([...RETRYABLE_CODES, zookeeper.Exception.AUTH_FAILED]);

/** The ZooKeeper exception code carried by a converted error, when there is one. */
export function zkCode(error: unknown): number | undefined {
  const cause = error instanceof PgshovelError ? error.cause : error;
  if (cause instanceof zookeeper.Exception) return cause.getCode();
  return undefined;
}

/** True when `error` comes from ZooKeeper with the given exception name (NO_NODE, BAD_VERSION…). */
export function isZkError(error: unknown, name: keyof typeof zookeeper.Exception): boolean {
  return zkCode(error) === (zookeeper.Exception[name] as unknown as number);
}

/** Converts a client error into pgshovel's vocabulary, naming what was being done. */
export function convert(error: unknown, doing: string, hosts: string): PgshovelError {
  if (error instanceof PgshovelError) return error;
  if (error instanceof zookeeper.Exception) {
    const retryable = RETRYABLE_CODES.has(error.getCode());
    return new PgshovelError(
      retryable ? "ZOOKEEPER_UNAVAILABLE" : "ZOOKEEPER_ERROR",
      `${doing}: ZooKeeper ${error.getName()}${retryable ? ` (hosts ${hosts})` : ""}`,
      { cause: error, retryable },
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return new PgshovelError("ZOOKEEPER_ERROR", `${doing}: ZooKeeper client: ${message}`, {
    cause: error,
  });
}

/** False for the codes the client library makes up itself (a lost connection, say). */
export function answeredByServer(error: ClientError | null): boolean {
  return !(error instanceof zookeeper.Exception && CLIENT_SIDE_CODES.has(error.getCode()));
}

/** True for the client's CONNECTION_LOSS. */
export function isConnectionLoss(error: ClientError | null): boolean {
  return (
    error instanceof zookeeper.Exception && error.getCode() === zookeeper.Exception.CONNECTION_LOSS
  );
}

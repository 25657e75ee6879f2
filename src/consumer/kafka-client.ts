/**
 * What the Kafka sink and the Kafka consumer share: how to reach the brokers and
 * how @platformatic/kafka errors become {@link PgshovelError}s.
 */
import type { ConnectionOptions as TlsOptions } from "node:tls";
import { findErrorBy, type SASLOptions } from "@platformatic/kafka";
import { PgshovelError } from "../errors.js";

/** How to reach a Kafka cluster; tls and sasl go to the client untouched. */
export interface KafkaConnectionOptions {
  /** Bootstrap brokers, "host:port". */
  brokers: string[];
  /** The client id the brokers log; a default names the role. */
  clientId?: string;
  /** TLS options of node:tls, e.g. `{ ca, cert, key }`; absent: plaintext. */
  tls?: TlsOptions;
  /** SASL mechanism and credentials. */
  sasl?: SASLOptions;
}

/** The options every @platformatic/kafka client takes, from {@link KafkaConnectionOptions}. */
export function clientOptions(connection: KafkaConnectionOptions, defaultClientId: string) {
  return {
    clientId: connection.clientId ?? defaultClientId,
    bootstrapBrokers: connection.brokers,
    ...(connection.tls === undefined ? {} : { tls: connection.tls }),
    ...(connection.sasl === undefined ? {} : { sasl: connection.sasl }),
    connectTimeout: 5_000,
    // A few quick retries inside the client; longer outages are the caller's
    // withRetry's business, driven by the retryable flag.
    retries: 3,
    retryDelay: 250,
  };
}

const FENCING_ERRORS = ["PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH"] as const;

/** True when the broker says a newer producer with our transactional id exists. */
export function isFencing(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return FENCING_ERRORS.some((id) => findErrorBy(error, "apiId", id) !== null);
}

/**
 * Broker answers meaning the producer's sequence state was lost (typically across a
 * broker restart): a fresh producer (new epoch) publishes again safely.
 */
const PRODUCER_STATE_ERRORS = ["OUT_OF_ORDER_SEQUENCE_NUMBER", "UNKNOWN_PRODUCER_ID"];

/** True when `error` says the producer must be replaced before publishing again. */
export function isProducerStateLost(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return PRODUCER_STATE_ERRORS.some((id) => findErrorBy(error, "apiId", id) !== null);
}

function isUnavailable(error: Error): boolean {
  return (
    isProducerStateLost(error) ||
    findErrorBy(error, "code", "PLT_KFK_NETWORK") !== null ||
    findErrorBy(error, "code", "PLT_KFK_TIMEOUT") !== null ||
    findErrorBy(error, "canRetry", true) !== null
  );
}

/**
 * Converts an error met while talking to Kafka: fencing → FENCED (final),
 * network trouble and errors the broker calls retriable → KAFKA_UNAVAILABLE
 * (retryable), anything else → KAFKA_ERROR. A PgshovelError keeps its code.
 */
export function kafkaFailure(error: unknown, doing: string): PgshovelError {
  if (error instanceof PgshovelError) {
    return new PgshovelError(error.code, `${doing}: ${error.message}`, {
      retryable: error.retryable,
      cause: error,
      hint: error.hint,
    });
  }
  const detail = describeKafkaError(error);
  if (isFencing(error)) {
    return new PgshovelError("FENCED", `${doing}: fenced by a newer producer (${detail})`, {
      cause: error,
      hint: "another relay with the same transactional id took over; this one must stop",
    });
  }
  if (error instanceof Error && isUnavailable(error)) {
    return new PgshovelError("KAFKA_UNAVAILABLE", `${doing}: ${detail}`, {
      retryable: true,
      cause: error,
      hint: "check that the brokers are running and reachable",
    });
  }
  return new PgshovelError("KAFKA_ERROR", `${doing}: ${detail}`, { cause: error });
}

/** The message of a client error with the server's own message and its nested causes. */
function describeKafkaError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const parts = [error.message];
  const seen = new Set<unknown>([error]);
  const visit = (e: unknown) => {
    if (!(e instanceof Error) || seen.has(e)) return;
    seen.add(e);
    const server = (e as { serverErrorMessage?: unknown }).serverErrorMessage;
    const id = (e as { apiId?: unknown }).apiId;
    parts.push(typeof id === "string" ? `${id}: ${server ?? e.message}` : e.message);
    if (e instanceof AggregateError) for (const inner of e.errors) visit(inner);
    visit(e.cause);
  };
  if (error instanceof AggregateError) for (const inner of error.errors) visit(inner);
  visit(error.cause);
  return [...new Set(parts)].slice(0, 4).join("; ");
}

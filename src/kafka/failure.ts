/**
 * How @platformatic/kafka errors become {@link PgshovelError}s, for the sink and the
 * readers alike: one place decides what is fencing, what is worth a retry.
 */
import { findErrorBy } from "@platformatic/kafka";
import { PgshovelError } from "../errors.js";

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

/** What to do when a stored position is gone: what it pointed at cannot be read again. */
export const POSITION_LOST_HINT =
  "retention (or a re-created topic) removed the messages at that position: rebuild the consumer's state from a new snapshot, or start again from the topic's first offset knowing that what lay between is lost";

/**
 * Converts an error met while talking to Kafka: fencing → FENCED (final), an
 * offset out of the partition's range → POSITION_LOST (final), network trouble and
 * errors the broker calls retriable → KAFKA_UNAVAILABLE (retryable), anything else
 * → KAFKA_ERROR. A PgshovelError keeps its code.
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
  if (error instanceof Error && findErrorBy(error, "apiId", "OFFSET_OUT_OF_RANGE") !== null) {
    return new PgshovelError("POSITION_LOST", `${doing}: the offset is no longer held`, {
      cause: error,
      hint: POSITION_LOST_HINT,
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

/**
 * Opening a relay's sink: retryable failures (Kafka brokers not started yet, say) are
 * retried with backoff for up to a bound, so a relay under a supervisor rides out a sink
 * that comes up after it.
 */
import { candidacyLost } from "../coordination/leadership.js";
import { describeError, isPgshovelError, PgshovelError } from "../errors.js";
import type { Logger } from "../log.js";
import { withRetry } from "../retry.js";
import type { Sink } from "../sinks/sink.js";

/** How {@link openSink} waits. */
export interface OpenSinkOptions {
  maxWaitMs: number;
  retryInitialMs: number;
  retryMaxMs: number;
  /** False once the relay lost its candidacy: it stops waiting and stands again. */
  isLeading: () => boolean;
  logger: Logger;
}

/**
 * Opens `sink`, retrying for up to `maxWaitMs`. The relay leads meanwhile: a sink it cannot
 * reach, a standby could not reach either, and the bound ends the wait (exit 1, for the
 * supervisor to try again).
 */
export async function openSink(
  sink: Sink,
  options: OpenSinkOptions,
  signal: AbortSignal,
): Promise<void> {
  const { maxWaitMs, logger } = options;
  const bound = AbortSignal.timeout(maxWaitMs);
  try {
    await withRetry(
      async () => {
        if (!options.isLeading()) throw candidacyLost("relay");
        await sink.open();
      },
      {
        attempts: Number.POSITIVE_INFINITY,
        initialDelayMs: options.retryInitialMs,
        maxDelayMs: options.retryMaxMs,
        signal: AbortSignal.any([signal, bound]),
        onRetry: (error, attempt, delayMs) =>
          logger.warn(
            { sink: sink.description, attempt, retryInMs: delayMs, err: describeError(error) },
            "the sink did not open: retrying",
          ),
      },
    );
  } catch (error) {
    if (signal.aborted || !bound.aborted || !isPgshovelError(error) || !error.retryable) {
      throw error;
    }
    throw new PgshovelError(
      error.code,
      `the sink (${sink.description}) did not open within ${maxWaitMs} ms (--max-sink-wait): ${error.message}`,
      { cause: error, ...(error.hint === undefined ? {} : { hint: error.hint }) },
    );
  }
}

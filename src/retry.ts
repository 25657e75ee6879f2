import { setTimeout as delay } from "node:timers/promises";
import { PgshovelError } from "./errors.js";

/** How {@link withRetry} retries. */
export interface RetryPolicy {
  /** Attempts in all, the first included; Infinity retries until aborted. */
  attempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  /** Called before each wait, e.g. to log. */
  onRetry?: (error: PgshovelError, attempt: number, delayMs: number) => void;
  signal?: AbortSignal;
}

/** A sensible default: 10 attempts, 100 ms doubling to 5 s. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 10, initialDelayMs: 100, maxDelayMs: 5_000 };

/**
 * Runs `operation`, retrying with exponential backoff and jitter while it throws
 * a retryable {@link PgshovelError}. Anything else is rethrown at once.
 */
export async function withRetry<T>(
  operation: (attempt: number) => Promise<T>,
  policy: RetryPolicy = DEFAULT_RETRY,
): Promise<T> {
  let waitMs = policy.initialDelayMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (!(error instanceof PgshovelError) || !error.retryable || attempt >= policy.attempts) {
        throw error;
      }
      if (policy.signal?.aborted) throw error;
      const jittered = Math.round(waitMs * (0.5 + Math.random() / 2));
      policy.onRetry?.(error, attempt, jittered);
      try {
        await delay(jittered, undefined, policy.signal ? { signal: policy.signal } : undefined);
      } catch {
        throw error;
      }
      waitMs = Math.min(waitMs * 2, policy.maxDelayMs);
    }
  }
}

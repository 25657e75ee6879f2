import { setTimeout as delay } from "node:timers/promises";
import { PgshovelError } from "./errors.js";

/** Bounds of an exponential backoff. */
export interface BackoffPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
  /** Wait a random 50–100 % of each delay, so that many clients do not retry in step. */
  jitter?: boolean;
}

/**
 * An exponential backoff: the first delay is `initialDelayMs`, each next one
 * doubles, up to `maxDelayMs`, until {@link reset}. It only computes delays;
 * the caller waits in whatever way suits it (a wait that wakes on an event, say).
 */
export class Backoff {
  #delayMs: number;

  constructor(private readonly policy: BackoffPolicy) {
    this.#delayMs = policy.initialDelayMs;
  }

  /** The delay to wait now; the following call returns twice as much, up to the bound. */
  next(): number {
    const delayMs = this.#delayMs;
    this.#delayMs = Math.min(delayMs * 2, this.policy.maxDelayMs);
    return this.policy.jitter ? Math.round(delayMs * (0.5 + Math.random() / 2)) : delayMs;
  }

  /** Starts again from the initial delay (after a success). */
  reset(): void {
    this.#delayMs = this.policy.initialDelayMs;
  }
}

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

/**
 * Runs `operation`, retrying with exponential backoff and jitter while it throws
 * a retryable {@link PgshovelError}. Anything else is rethrown at once.
 */
export async function withRetry<T>(
  operation: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
): Promise<T> {
  const backoff = new Backoff({ ...policy, jitter: true });
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (!(error instanceof PgshovelError) || !error.retryable || attempt >= policy.attempts) {
        throw error;
      }
      if (policy.signal?.aborted) throw error;
      const waitMs = backoff.next();
      policy.onRetry?.(error, attempt, waitMs);
      try {
        await delay(waitMs, undefined, policy.signal ? { signal: policy.signal } : undefined);
      } catch {
        throw error;
      }
    }
  }
}

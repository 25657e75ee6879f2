/** Polling helpers: tests wait on conditions, never for fixed amounts of time. */
import { setTimeout as delay } from "node:timers/promises";

export interface WaitOptions {
  /** Give up after this many milliseconds (default 30 000). */
  timeoutMs?: number;
  /** Pause between attempts (default 100 ms). */
  intervalMs?: number;
  /** What is awaited; named in the timeout error. */
  description: string;
}

export type Falsy = undefined | null | false | 0 | "";

/**
 * Calls CONDITION until it returns a truthy value, which it returns. An exception thrown by
 * CONDITION counts as "not yet" and is reported in the timeout error if it was the last one.
 */
export async function waitFor<T>(
  condition: () => Promise<T | Falsy> | T | Falsy,
  options: WaitOptions,
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const intervalMs = options.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value as T;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const cause =
        lastError === undefined
          ? ""
          : `; last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${options.description}${cause}`,
        {
          cause: lastError,
        },
      );
    }
    await delay(Math.min(intervalMs, Math.max(1, deadline - Date.now())));
  }
}

/** Rejects with an error naming DESCRIPTION when PROMISE does not settle within TIMEOUTMS. */
export async function withTimeout<T>(
  promise: Promise<T>,
  timeoutMs: number,
  description: string,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms: ${description}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

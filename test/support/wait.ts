/** Polling helpers: tests wait on conditions, never for fixed amounts of time. */
import { setTimeout as delay } from "node:timers/promises";

export interface WaitOptions {
  /** Give up after this many milliseconds (default 30 000). */
  timeoutMs?: number;
  /** Pause between attempts (default 100 ms). */
  intervalMs?: number;
  /** What is awaited; named in the timeout error. */
  description: string;
  /**
   * Asked after each attempt that fails: a reason ends the wait at once (after one last
   * attempt), e.g. because the process that should bring the condition about has exited.
   */
  abandonWhen?: () => string | undefined;
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
  const attempt = async (): Promise<{ value: T } | undefined> => {
    try {
      const value = await condition();
      lastError = undefined;
      if (value) return { value: value as T };
    } catch (error) {
      lastError = error;
    }
    return undefined;
  };
  const fail = (what: string): never => {
    const cause =
      lastError === undefined
        ? ""
        : `; last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
    throw new Error(`${what} waiting for ${options.description}${cause}`, { cause: lastError });
  };
  for (;;) {
    const done = await attempt();
    if (done) return done.value;
    const reason = options.abandonWhen?.();
    if (reason !== undefined) {
      // The condition may have come true just before the reason did.
      const last = await attempt();
      if (last) return last.value;
      fail(`gave up (${reason})`);
    }
    if (Date.now() >= deadline) fail(`timed out after ${timeoutMs} ms`);
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

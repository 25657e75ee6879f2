/**
 * Readers end their iteration when their signal aborts; they do not throw. These
 * helpers let a reader stop waiting on a request the client cannot cancel.
 */

/** What {@link unlessAborted} resolves with when the signal won. */
export const ABORTED: unique symbol = Symbol("pgshovel.aborted");

/**
 * `promise`'s value, or {@link ABORTED} as soon as `signal` aborts (at once when it
 * already has). A rejection of `promise` after the abort is ignored: the reader has
 * stopped and closes the client, which fails whatever was still in flight.
 */
export async function unlessAborted<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
): Promise<T | typeof ABORTED> {
  if (signal === undefined) return promise;
  if (signal.aborted) {
    promise.catch(() => {});
    return ABORTED;
  }
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<typeof ABORTED>((resolve) => {
    onAbort = () => resolve(ABORTED);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    const winner = await Promise.race([promise, aborted]);
    if (winner === ABORTED) promise.catch(() => {});
    return winner;
  } catch (error) {
    // A failure that the abort caused (or that came after it) is no failure of the read.
    if (signal.aborted) return ABORTED;
    throw error;
  } finally {
    if (onAbort !== undefined) signal.removeEventListener("abort", onAbort);
  }
}

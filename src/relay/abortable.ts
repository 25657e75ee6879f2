/**
 * Waits for `started` (a connection being opened, say) until `signal` aborts, then rejects
 * with the signal's reason. A step that cannot itself be cut short then no longer holds up
 * a stop: what it yields after the abort goes to `discard` (close it), a late failure is
 * dropped.
 */
export function untilAborted<T>(
  started: Promise<T>,
  signal: AbortSignal,
  discard: (late: T) => unknown,
): Promise<T> {
  if (signal.aborted) {
    started.then(discard, () => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      started.then(discard, () => {});
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    started.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

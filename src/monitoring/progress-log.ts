import { describeError } from "../errors.js";
import type { Logger } from "../log.js";
import type { RelayDiagnostics } from "../relay/options.js";

/** Options of {@link startProgressLog}. */
export interface ProgressLogOptions {
  /** Where the figures come from: the relay's diagnostics. */
  diagnostics: () => Promise<RelayDiagnostics>;
  logger: Logger;
  /** One line this often (a minute by default in the CLI). */
  intervalMs: number;
}

/**
 * Logs one `progress` line at info level every interval: batches and mutations since the
 * previous line and in all, the consumer's lag and pending events, the relay's state.
 * Returns the function that stops it.
 */
export function startProgressLog(options: ProgressLogOptions): () => void {
  const { diagnostics, logger } = options;
  let previous = { batches: 0, mutations: 0 };
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    diagnostics()
      .then((d) => {
        logger.info(
          {
            state: d.state,
            batches: d.batchesPublished - previous.batches,
            mutations: d.mutationsPublished - previous.mutations,
            batchesPublished: d.batchesPublished,
            mutationsPublished: d.mutationsPublished,
            lagSeconds: d.lagSeconds,
            pendingEvents: d.pendingEvents,
          },
          "progress",
        );
        previous = { batches: d.batchesPublished, mutations: d.mutationsPublished };
      })
      .catch((error: unknown) => logger.debug({ err: describeError(error) }, "no progress figures"))
      .finally(() => {
        busy = false;
      });
  }, options.intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

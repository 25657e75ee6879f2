/**
 * What every long-running command (a relay, a replica worker) adds around its loop for its
 * operators: error reporting (`--sentry-dsn`), a monitoring endpoint (`--metrics-listen`)
 * and a progress log line. Each command supplies its own monitoring; this wires the rest.
 */
import type { Logger } from "../log.js";
import { type ErrorReporter, reportingLogger, startErrorReporting } from "./error-reporting.js";

/** A command's monitoring endpoint, once started. */
export interface ServedMonitoring {
  readonly url: string;
  close(): Promise<void>;
}

/** Options of {@link startOperations}. */
export interface OperationsOptions<M extends ServedMonitoring> {
  /** Tags of every error report (cluster, set, …). */
  tags: Record<string, string>;
  sentryDsn?: string | undefined;
  /** Secrets the error reports must never hold (a SASL password, say). */
  secrets: readonly string[];
  logger: Logger;
  /** Starts the monitoring endpoint with the reporting logger; absent without `--metrics-listen`. */
  monitoring?: ((logger: Logger) => Promise<M>) | undefined;
}

/** The operations parts every long-running command shares. */
export interface Operations<M extends ServedMonitoring> {
  /** The logger to use: it also reports warnings and errors when Sentry is configured. */
  readonly logger: Logger;
  readonly monitoring: M | undefined;
  /** Logs a progress line every `intervalMs`, from `line` (undefined: nothing to say). */
  progress(intervalMs: number, line: () => Promise<Record<string, unknown> | undefined>): void;
  /** Reports the error that ends the process. */
  failed(error: unknown): void;
  /** Stops the progress line and the endpoint, flushes the error reports. */
  close(): Promise<void>;
}

/** Starts what the options ask for; nothing is loaded that is not configured. */
export async function startOperations<M extends ServedMonitoring>(
  options: OperationsOptions<M>,
): Promise<Operations<M>> {
  let reporter: ErrorReporter | undefined;
  let logger = options.logger;
  if (options.sentryDsn) {
    reporter = await startErrorReporting({
      dsn: options.sentryDsn,
      tags: options.tags,
      secrets: options.secrets,
      logger,
    });
    logger = reportingLogger(logger, reporter);
  }
  const monitoring = await options.monitoring?.(logger);
  const timers: NodeJS.Timeout[] = [];
  return {
    logger,
    monitoring,
    progress(intervalMs, line) {
      let busy = false;
      const timer = setInterval(() => {
        if (busy) return;
        busy = true;
        line()
          .then((fields) => {
            if (fields) logger.info(fields, "progress");
          })
          .catch(() => {})
          .finally(() => {
            busy = false;
          });
      }, intervalMs);
      timer.unref();
      timers.push(timer);
    },
    failed: (error) => reporter?.error(error),
    async close() {
      for (const timer of timers) clearInterval(timer);
      await monitoring?.close();
      await reporter?.flush();
    },
  };
}

/**
 * What a relay process adds around the loop for its operators: the progress log line,
 * error reporting (`--sentry-dsn`) and metrics with health (`--metrics-listen`). The CLI
 * wiring builds it from the flags and hands its parts to the sink, the codec and the relay.
 */
import type { Logger } from "../log.js";
import type { RelayObserver } from "../relay/observer.js";
import type { RelayDiagnostics } from "../relay/options.js";
import type { Sink } from "../sinks/sink.js";
import type { Codec } from "../stream/codec.js";
import type { ListenAddress } from "./listen-address.js";
import { startOperations } from "./operations.js";
import { startProgressLog } from "./progress-log.js";
import type { RelayLabels } from "./relay-metrics.js";
import type { RelayMonitoring } from "./relay-monitoring.js";

/** Options of {@link startRelayOperations}. */
export interface RelayOperationsOptions {
  labels: RelayLabels;
  /** The set's PgQ queue. */
  queue: string;
  metricsListen?: ListenAddress | undefined;
  healthStallAfterMs: number;
  sentryDsn?: string | undefined;
  /** Secrets the error reports must never hold (a SASL password, say). */
  secrets: readonly string[];
  progressIntervalMs: number;
  logger: Logger;
}

/** The operations parts of one relay process. */
export interface RelayOperations {
  /** The logger to use: it also reports warnings and errors when Sentry is configured. */
  readonly logger: Logger;
  /** The relay's observer (metrics, health), when metrics are served. */
  readonly observer: RelayObserver | undefined;
  /** Where /metrics and /health are served, when they are. */
  readonly url: string | undefined;
  codec(codec: Codec): Codec;
  sink(sink: Sink): Sink;
  /** Called with the set's DSN whenever the relay opens its database. */
  useDatabase(dsn: string): void;
  /** Starts the progress log over the relay's diagnostics. */
  follow(diagnostics: () => Promise<RelayDiagnostics>): void;
  /** Reports the error that ends the process. */
  failed(error: unknown): void;
  /** Stops serving, flushes the error reports. */
  close(): Promise<void>;
}

/** Starts what the options ask for (see {@link startOperations}); nothing unconfigured is loaded. */
export async function startRelayOperations(
  options: RelayOperationsOptions,
): Promise<RelayOperations> {
  const metricsListen = options.metricsListen;
  const ops = await startOperations<RelayMonitoring>({
    tags: { ...options.labels },
    sentryDsn: options.sentryDsn,
    secrets: options.secrets,
    logger: options.logger,
    monitoring: metricsListen
      ? async (logger) => {
          // Loaded only here: a relay without metrics does not load prom-client.
          const { startRelayMonitoring } = await import("./relay-monitoring.js");
          return startRelayMonitoring({
            listen: metricsListen,
            labels: options.labels,
            queue: options.queue,
            stallAfterMs: options.healthStallAfterMs,
            logger,
          });
        }
      : undefined,
  });
  const { logger, monitoring } = ops;
  let stopProgress: (() => void) | undefined;
  return {
    logger,
    observer: monitoring?.observer,
    url: monitoring?.url,
    codec: (codec) => monitoring?.codec(codec) ?? codec,
    sink: (sink) => monitoring?.sink(sink) ?? sink,
    useDatabase: (dsn) => monitoring?.useDatabase(dsn),
    follow(diagnostics) {
      stopProgress = startProgressLog({
        diagnostics,
        logger,
        intervalMs: options.progressIntervalMs,
      });
    },
    failed: (error) => ops.failed(error),
    async close() {
      stopProgress?.();
      await ops.close();
    },
  };
}

/**
 * Everything a relay serves on `--metrics-listen`, assembled for the CLI's wiring:
 * loaded with a dynamic import, so that a relay without it never loads prom-client.
 */
import { Registry } from "prom-client";
import type { Logger } from "../log.js";
import type { RelayObserver } from "../relay/observer.js";
import type { RelayState } from "../relay/options.js";
import type { Sink } from "../sinks/sink.js";
import type { Codec } from "../stream/codec.js";
import { assessHealth, type HealthReport, HealthTracker } from "./health.js";
import { type MonitoringServer, serveMonitoring } from "./http-server.js";
import type { ListenAddress } from "./listen-address.js";
import { QueueSampler } from "./queue-sampler.js";
import { addDefaultMetrics, type RelayLabels, RelayMetrics } from "./relay-metrics.js";

/** Options of {@link startRelayMonitoring}. */
export interface RelayMonitoringOptions {
  listen: ListenAddress;
  labels: RelayLabels;
  /** The set's PgQ queue. */
  queue: string;
  /** /health fails when the leader makes no progress for this long while events wait. */
  stallAfterMs: number;
  logger: Logger;
}

/** A relay's metrics, health and their HTTP endpoint. */
export interface RelayMonitoring {
  readonly url: string;
  /** Observes the relay (metrics and health). */
  readonly observer: RelayObserver;
  /** Counts the bytes a codec encodes (give the sink this codec). */
  codec(codec: Codec): Codec;
  /** Times and counts the sink's batches and failures. */
  sink(sink: Sink): Sink;
  /** Tells the sampler which database the relay reads now. */
  useDatabase(dsn: string): void;
  /** The current health (what /health answers). */
  health(): Promise<HealthReport>;
  close(): Promise<void>;
}

/** Builds the registry, the metrics and the health tracker, and starts serving them. */
export async function startRelayMonitoring(
  options: RelayMonitoringOptions,
): Promise<RelayMonitoring> {
  const registry = new Registry();
  addDefaultMetrics(registry);
  const sampler = new QueueSampler({ queue: options.queue, logger: options.logger });
  const metrics = new RelayMetrics(registry, options.labels, sampler);
  const tracker = new HealthTracker();
  const health = async () => {
    const sample = await sampler.sample();
    const own = sample?.consumers.find((c) => c.name === options.labels.consumer);
    return assessHealth({
      state: tracker.state,
      lastFailure: tracker.lastFailure,
      progressAt: tracker.progressAt,
      pendingEvents: own?.pendingEvents ?? undefined,
      now: Date.now(),
      stallAfterMs: options.stallAfterMs,
    });
  };
  let server: MonitoringServer;
  try {
    server = await serveMonitoring({ ...options, registry, health });
  } catch (error) {
    await sampler.close();
    throw error;
  }
  const observer: RelayObserver = {
    stateChanged: (state: RelayState) => {
      tracker.stateChanged(state);
      metrics.stateChanged(state);
    },
    batchFinished: (batch) => {
      tracker.batchFinished();
      metrics.batchFinished(batch);
    },
    batchSkipped: () => tracker.batchSkipped(),
    retrying: (failure) => {
      tracker.retrying(failure);
      metrics.retrying(failure);
    },
    standingAgain: (reason) => metrics.standingAgain(reason),
  };
  return {
    url: server.url,
    observer,
    codec: (codec) => metrics.codec(codec),
    sink: (sink) => metrics.sink(sink),
    useDatabase: (dsn) => sampler.use(dsn),
    health,
    async close() {
      await server.close();
      await sampler.close();
    },
  };
}

/**
 * What a replica worker process adds around its loop for its operators, as a relay does:
 * the progress log line (with the batches still to apply, read from the source), error
 * reporting (`--sentry-dsn`), metrics and health (`--metrics-listen`). All of it is fed by
 * the worker's observer.
 */
import { dbNames } from "../config/names.js";
import type { Logger } from "../log.js";
import type { WorkerObserver, WorkerState } from "../replication/worker-options.js";
import type { ListenAddress } from "./listen-address.js";
import { startOperations } from "./operations.js";
import { BehindSampler } from "./replica-behind.js";
import type { ReplicaLabels, ReplicaMonitoring } from "./replica-monitoring.js";

/** Options of {@link startReplicaOperations}. */
export interface ReplicaOperationsOptions {
  labels: ReplicaLabels;
  metricsListen?: ListenAddress | undefined;
  /** /health fails while the worker applies more than this far behind the source. */
  healthStallAfterMs: number;
  sentryDsn?: string | undefined;
  secrets: readonly string[];
  progressIntervalMs: number;
  logger: Logger;
}

/** The operations parts of one replica worker process. */
export interface ReplicaOperations {
  readonly logger: Logger;
  /** The worker's observer: the progress line's figures, and the metrics when served. */
  readonly observer: WorkerObserver;
  /** Where /metrics and /health are served, when they are. */
  readonly url: string | undefined;
  failed(error: unknown): void;
  close(): Promise<void>;
}

/** Starts what the options ask for; nothing is loaded that is not configured. */
export async function startReplicaOperations(
  options: ReplicaOperationsOptions,
): Promise<ReplicaOperations> {
  const listen = options.metricsListen;
  const behind = new BehindSampler({
    queue: dbNames.queue(options.labels.cluster, options.labels.set),
    logger: options.logger,
  });
  const ops = await startOperations<ReplicaMonitoring>({
    tags: { ...options.labels },
    sentryDsn: options.sentryDsn,
    secrets: options.secrets,
    logger: options.logger,
    monitoring: listen
      ? async (logger) => {
          const { startReplicaMonitoring } = await import("./replica-monitoring.js");
          return startReplicaMonitoring({
            listen,
            labels: options.labels,
            stallAfterMs: options.healthStallAfterMs,
            logger,
            behind: () => behind.sample(),
          });
        }
      : undefined,
  });
  const metrics = ops.monitoring?.observer;
  const tally = {
    state: "starting" as WorkerState,
    batches: 0,
    mutations: 0,
    lag: null as number | null,
  };
  let previous = { batches: 0, mutations: 0 };
  const observer: WorkerObserver = {
    state(state) {
      tally.state = state;
      // A worker standing by again has no position of its own to be behind from.
      if (state === "standby" || state === "stopped") void behind.forget();
      metrics?.state?.(state);
    },
    batch(event) {
      tally.batches++;
      if (event.result.kind === "applied") tally.mutations += event.result.stats.applied;
      tally.lag = event.lagSeconds;
      behind.follow(event.sourceDsn, event.endTick);
      metrics?.batch?.(event);
    },
    copied: (table, rows) => metrics?.copied?.(table, rows),
    retrying: (failure) => metrics?.retrying?.(failure),
    standingAgain: (reason) => metrics?.standingAgain?.(reason),
  };
  ops.progress(options.progressIntervalMs, async () => {
    const sample = await behind.sample();
    const line = {
      state: tally.state,
      batches: tally.batches - previous.batches,
      mutations: tally.mutations - previous.mutations,
      batchesApplied: tally.batches,
      mutationsApplied: tally.mutations,
      lagSeconds: tally.lag,
      batchesBehind: sample?.batches ?? null,
      eventsBehind: sample?.events ?? null,
    };
    previous = { batches: tally.batches, mutations: tally.mutations };
    return line;
  });
  return {
    logger: ops.logger,
    observer,
    url: ops.monitoring?.url,
    failed: (error) => ops.failed(error),
    close: async () => {
      await ops.close();
      await behind.close();
    },
  };
}

/**
 * What a replica worker serves on `--metrics-listen`: its `pgshovel_apply_*` metrics
 * (docs/monitoring.md lists them) and its /health. Loaded with a dynamic import, so that a
 * worker without it never loads prom-client.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Logger } from "../log.js";
import type { WorkerObserver, WorkerState } from "../replication/worker-options.js";
import { type MonitoringServer, serveMonitoring } from "./http-server.js";
import type { ListenAddress } from "./listen-address.js";
import type { TicksBehind } from "./pgq-info.js";
import { addDefaultMetrics } from "./relay-metrics.js";

/** The labels every series of a replica worker carries; `replica` names its target. */
export interface ReplicaLabels {
  cluster: string;
  set: string;
  replica: string;
}

/** What a replica's /health answers (200 when `healthy`, 503 otherwise). */
export interface ReplicaHealth {
  healthy: boolean;
  state: WorkerState;
  /** Why it is unhealthy; null when healthy. */
  reason: string | null;
  /** Lag of the last batch applied, in seconds; null before the first. */
  lagSeconds: number | null;
}

/** Options of {@link startReplicaMonitoring}. */
export interface ReplicaMonitoringOptions {
  listen: ListenAddress;
  labels: ReplicaLabels;
  /** /health fails when the last batch applied lagged more than this (in milliseconds). */
  stallAfterMs: number;
  logger: Logger;
  /** The batches still to apply, read at each scrape; undefined when unknown (a standby, say). */
  behind?: () => Promise<TicksBehind | undefined>;
}

/** A replica's metrics and health, served. */
export interface ReplicaMonitoring {
  readonly url: string;
  readonly observer: WorkerObserver;
  health(): ReplicaHealth;
  close(): Promise<void>;
}

const STATES: readonly WorkerState[] = [
  "starting",
  "standby",
  "bootstrapping",
  "applying",
  "idle",
  "backing off",
  "renewing the ZooKeeper session",
  "stopped",
];
const LEADING: readonly WorkerState[] = ["bootstrapping", "applying", "idle", "backing off"];
const LABELS = ["cluster", "set", "replica"] as const;

/** The health of a worker, from its state and the lag of its last batch. Pure. */
export function assessReplicaHealth(
  state: WorkerState,
  lagSeconds: number | null,
  stallAfterMs: number,
): ReplicaHealth {
  const report = (reason: string | null): ReplicaHealth => ({
    healthy: reason === null,
    state,
    reason,
    lagSeconds,
  });
  switch (state) {
    case "standby":
    case "bootstrapping":
    case "idle":
      return report(null);
    case "applying":
      // Applying while far behind: the worker does not keep up (or catches up after a pause).
      return lagSeconds !== null && lagSeconds * 1000 > stallAfterMs
        ? report(`applying ${Math.round(lagSeconds)} s behind the source`)
        : report(null);
    case "backing off":
      return report("backing off after a recoverable failure");
    case "renewing the ZooKeeper session":
      return report("renewing the ZooKeeper session: not applying");
    case "starting":
      return report("starting: not applying yet");
    case "stopped":
      return report("stopped");
    default: {
      const unreachable: never = state;
      return report(`unknown state ${String(unreachable)}`);
    }
  }
}

/** Builds the registry and the metrics, and starts serving them with /health. */
export async function startReplicaMonitoring(
  options: ReplicaMonitoringOptions,
): Promise<ReplicaMonitoring> {
  const registry = new Registry();
  addDefaultMetrics(registry);
  const labels = { ...options.labels };
  const registers = [registry];
  const metric = (name: string, help: string, extra: string[] = []) => ({
    name,
    help,
    labelNames: [...LABELS, ...extra],
    registers,
  });
  const batches = new Counter(
    metric("pgshovel_apply_batches_total", "Batches done with, by result (applied, skipped)", [
      "result",
    ]),
  );
  const mutations = new Counter(
    metric(
      "pgshovel_apply_mutations_total",
      "Mutations of applied batches, by outcome (applied, or skipped: in the copy, table not copied yet, not in the set)",
      ["outcome"],
    ),
  );
  const duration = new Histogram({
    ...metric(
      "pgshovel_apply_duration_seconds",
      "Time a batch took on the target, from its transaction's start to its commit",
    ),
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  });
  const lag = new Gauge(
    metric(
      "pgshovel_apply_lag_seconds",
      "Seconds between the end tick of the last batch applied and its commit on the target",
    ),
  );
  const readBehind = options.behind;
  new Gauge({
    ...metric(
      "pgshovel_apply_batches_behind",
      "Ticks of the source's queue after the end tick of the last batch applied: batches still to apply (read from the source at each scrape)",
    ),
    async collect() {
      const sample = await readBehind?.();
      // Unknown (a standby, the source unreachable): no series rather than a stale one.
      if (sample) this.set(labels, sample.batches);
      else this.reset();
    },
  });
  const lastBatchAt = new Gauge(
    metric("pgshovel_apply_last_batch_timestamp_seconds", "When the last batch was done with"),
  );
  const leader = new Gauge(
    metric("pgshovel_apply_leader", "1 while this worker is the active one of its set and target"),
  );
  const stateGauge = new Gauge(
    metric("pgshovel_apply_state", "1 for the worker's current state, 0 for the others", ["state"]),
  );
  const retries = new Counter(
    metric("pgshovel_apply_retries_total", "Recoverable failures retried, by error code", [
      "reason",
    ]),
  );
  const stoodAgain = new Counter(
    metric(
      "pgshovel_apply_stood_again_total",
      "Times the worker stopped applying and stood for election again, by reason",
      ["reason"],
    ),
  );
  const copiedRows = new Counter(
    metric("pgshovel_apply_copied_rows_total", "Rows of the tables copied by bootstraps", [
      "table",
    ]),
  );
  for (const result of ["applied", "skipped"]) batches.inc({ ...labels, result }, 0);
  let state: WorkerState = "starting";
  let lastLag: number | null = null;
  const setState = (next: WorkerState) => {
    state = next;
    for (const each of STATES) stateGauge.set({ ...labels, state: each }, each === next ? 1 : 0);
    leader.set(labels, LEADING.includes(next) ? 1 : 0);
  };
  setState("starting");
  const observer: WorkerObserver = {
    state: setState,
    batch({ result, lagSeconds, durationMs }) {
      batches.inc({ ...labels, result: result.kind });
      duration.observe(labels, durationMs / 1000);
      lastBatchAt.set(labels, Date.now() / 1000);
      lastLag = lagSeconds;
      lag.set(labels, lagSeconds);
      if (result.kind !== "applied") return;
      const { stats } = result;
      mutations.inc({ ...labels, outcome: "applied" }, stats.applied);
      mutations.inc({ ...labels, outcome: "in copy" }, stats.inCopy);
      mutations.inc({ ...labels, outcome: "not copied" }, stats.notCopied);
      mutations.inc({ ...labels, outcome: "not in set" }, stats.notInSet);
    },
    copied: (table, rows) => copiedRows.inc({ ...labels, table }, Number(rows)),
    retrying: (failure) => retries.inc({ ...labels, reason: failure.code }),
    standingAgain: (reason) => stoodAgain.inc({ ...labels, reason }),
  };
  const health = () => assessReplicaHealth(state, lastLag, options.stallAfterMs);
  const server: MonitoringServer = await serveMonitoring({
    listen: options.listen,
    registry,
    health: async () => health(),
    logger: options.logger,
  });
  return { url: server.url, observer, health, close: () => server.close() };
}

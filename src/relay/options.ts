import type { ZooKeeper } from "../cluster/zookeeper.js";
import type { Election } from "../coordination/leadership.js";
import type { Follower } from "../coordination/set-follower.js";
import type { Logger } from "../log.js";
import type { Sink } from "../sinks/sink.js";
import type { BatchSourceFactory } from "./batch-source.js";
import type { RelayObserver } from "./observer.js";

/** How long a relay tries to open its sink (brokers not up yet, say) before giving up: 5 minutes. */
export const DEFAULT_MAX_SINK_WAIT_MS = 300_000;

/** Everything a relay needs, validated by the caller. */
export interface RelayOptions {
  zk: ZooKeeper;
  cluster: string;
  set: string;
  /** PgQ consumer name; one active relay per (set, consumer). */
  consumer: string;
  sink: Sink;
  logger: Logger;
  /** Opens the batch source on the set's database; again whenever the set moves to another. */
  source: BatchSourceFactory;
  /** The set follower of a ZooKeeper session (default: a `SetFollower` of the set). */
  follower?: (zk: ZooKeeper) => Follower;
  /** The election of a ZooKeeper session (default: a `Leadership` of the (set, consumer)). */
  leadership?: (zk: ZooKeeper) => Election;
  /** Wait between polls when the queue is idle. */
  pollIntervalMs: number;
  /** Tick the queue ourselves when idle (pgqd remains the fallback). */
  selfTick: boolean;
  /** Longest pause while ZooKeeper is unreachable before giving up. */
  maxZooKeeperPauseMs: number;
  /**
   * Give up when the sink still fails to open this long after the relay began to open it,
   * retrying meanwhile on retryable failures (default {@link DEFAULT_MAX_SINK_WAIT_MS}).
   */
  maxSinkWaitMs?: number;
  /** Back-off bounds for recoverable failures. */
  retryInitialMs: number;
  retryMaxMs: number;
  /** Whether to wait for leadership (one active relay per set and consumer). */
  elect: boolean;
  /**
   * Opens a new ZooKeeper session. With it, a relay whose session expired, or whose
   * Kafka producer was fenced by a newer one, stops publishing, opens a new session
   * (giving up after `maxZooKeeperPauseMs`), stands for leadership again and carries
   * on; without it, either ends the run with an error.
   * The relay closes the sessions it replaces; `Relay.zookeeper` is the current one.
   */
  reconnect?: () => Promise<ZooKeeper>;
  /** Told of state changes, finished batches and retries (metrics, health, progress logs). */
  observer?: RelayObserver;
}

/** How a relay run ended. */
export type RelayOutcome = { kind: "stopped" } | { kind: "dropped" };

/** What a relay is doing, as its diagnostics report it. */
export type RelayState =
  | "starting"
  | "standby"
  | "opening sink"
  | "polling"
  | "publishing"
  | "backing off"
  | "renewing the ZooKeeper session"
  | "stopped";

/** What SIGUSR1 prints. */
export interface RelayDiagnostics {
  set: string;
  consumer: string;
  publisher: string;
  sink: string;
  state: RelayState;
  currentBatch: string | null;
  lastSequence: string | null;
  batchesPublished: number;
  mutationsPublished: number;
  lagSeconds: number | null;
  pendingEvents: string | null;
}

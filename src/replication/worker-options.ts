/** What a replication worker is given, how it ends, and what it reports as it goes. */
import type { ZooKeeper } from "../cluster/zookeeper.js";
import type { Election } from "../coordination/leadership.js";
import type { RenewalReason } from "../coordination/session.js";
import type { Follower } from "../coordination/set-follower.js";
import type { ErrorCode } from "../errors.js";
import type { Logger } from "../log.js";
import type { ApplyResult } from "./apply.js";
import type { CopyProgress } from "./bootstrap.js";
import type { CaughtUpProbe } from "./caught-up.js";
import type { FeedBatch, ReplicaFeed } from "./feed.js";
import type { ReplicaTarget } from "./target.js";

/** Opens the feed of a set whose database is `sourceDsn`, for the target whose node id is `targetNode`. */
export type FeedFactory = (sourceDsn: string, targetNode: string) => ReplicaFeed;

/** Shows how the copy of a round of tables goes (bars on a terminal, log lines elsewhere). */
export interface CopyReporter {
  update(progress: CopyProgress): void;
  /** The round is over, whether it succeeded or not. */
  stop(): void;
}

/** What a worker is doing. */
export type WorkerState =
  | "starting"
  | "standby"
  | "bootstrapping"
  | "applying"
  | "idle"
  | "backing off"
  | "renewing the ZooKeeper session"
  | "stopped";

/** One batch the worker is done with: applied (committed) or found applied before. */
export interface BatchEvent {
  result: ApplyResult;
  /** Seconds between the batch's end tick and now. */
  lagSeconds: number;
  /** How long the target took: from its transaction's start to its commit (or the skip). */
  durationMs: number;
  /** The batch's end tick: where the replica stands in the source's queue now. */
  endTick: bigint;
  /** The source database the batch came from (to measure, say, the batches still behind). */
  sourceDsn: string;
}

/**
 * Hooks for instrumentation (metrics, status): called synchronously, must not throw, and
 * are never awaited by the loop.
 */
export interface WorkerObserver {
  state?(state: WorkerState): void;
  /** After each batch's commit (or skip) and its `done()`. */
  batch?(event: BatchEvent): void;
  /** A table's copy committed. */
  copied?(table: string, rows: bigint): void;
  /** A recoverable failure: the worker waits `delayMs` and tries again. */
  retrying?(failure: { code: ErrorCode; delayMs: number }): void;
  /** The worker stopped applying and stands for election again in a new session. */
  standingAgain?(reason: RenewalReason): void;
}

/** Everything a replication worker needs, validated by the caller. */
export interface WorkerOptions {
  zk: ZooKeeper;
  /** Opens a new ZooKeeper session after an expiry; without it an expiry ends the run. */
  reconnect?: () => Promise<ZooKeeper>;
  cluster: string;
  set: string;
  logger: Logger;
  /** The stream's source, opened on the set's database (again when the worker restarts it). */
  feed: FeedFactory;
  target: ReplicaTarget;
  /** The set follower of a session (default: a `SetFollower` of the set). */
  follower?: (zk: ZooKeeper) => Follower;
  /** The election of a session (default: a `Leadership` at `zkPaths.replicaElection`). */
  leadership?: (zk: ZooKeeper, targetNode: string) => Election;
  /** Wait to lead before writing: one active worker per (set, target). */
  elect: boolean;
  /** The candidate node's data (worker id, pid, host, start time, target without password, feed). */
  candidate: Record<string, unknown>;
  /** Create missing target tables (with the captured columns and the identity as key). */
  createTables: boolean;
  /** Tables copied at once in a bootstrap. */
  jobs: number;
  /**
   * A new replica takes the target's tables as they are instead of copying them, refused
   * unless the set's queue has captured nothing (after a switchover; see adopt.ts).
   */
  noCopy?: boolean;
  /** With it, the run ends ({@link WorkerOutcome} "caught-up") once the probe's rule holds. */
  untilCaughtUp?: (sourceDsn: string, targetNode: string) => CaughtUpProbe;
  progress?: (tables: string[]) => CopyReporter;
  observer?: WorkerObserver;
  /**
   * Called after a batch's target commit and before its `done()`: a test stops the process
   * there to prove that a batch committed but not finished is skipped when it comes again.
   */
  afterCommit?: (batch: FeedBatch, result: ApplyResult) => Promise<void>;
  /** Longest pause while ZooKeeper is unreachable before giving up. */
  maxZooKeeperPauseMs: number;
  /** Back-off bounds for recoverable failures. */
  retryInitialMs: number;
  retryMaxMs: number;
  /** How long the feed may deliver nothing before the worker counts itself idle (default 500 ms). */
  idleMs?: number;
  /** Least time between two log lines of the replica's lag (default one minute). */
  lagLogIntervalMs?: number;
}

/** How a worker's run ended. */
export type WorkerOutcome =
  | { kind: "stopped" }
  | { kind: "dropped" }
  /** `untilCaughtUp`: everything committed before the start is applied. */
  | { kind: "caught-up" }
  /** A finite feed (a file, stdin) reached its end. */
  | { kind: "ended" };

/** The replica: target state, schema check, bootstrap copy, set-based apply, the worker and its feeds. */

export { formatSnapshot, parseSnapshot, pastSnapshot, visible } from "../stream/snapshot.js";
export {
  type ApplierOptions,
  type ApplyResult,
  type ApplyStats,
  BatchApplier,
  type BatchToApply,
} from "./apply.js";
export {
  type BootstrapOptions,
  type BootstrapResult,
  bootstrapCopy,
  type CopyProgress,
} from "./bootstrap.js";
export {
  type CaughtUpProbe,
  holdsHorizon,
  QueueCaughtUp,
  StreamCaughtUp,
} from "./caught-up.js";
export { checkContinuity } from "./continuity.js";
export type { FeedBatch, ReplicaFeed } from "./feed.js";
export { type CopyReporterOptions, copyReporter } from "./progress.js";
export { consumerLost, QueueFeed, type QueueFeedOptions } from "./queue-feed.js";
export {
  applyQueueBatches,
  bootstrapFromQueue,
  type QueueApplyOptions,
  type QueueBootstrapOptions,
  type QueueBootstrapResult,
  type QueueReplicaOptions,
} from "./queue-replica.js";
export { DEFAULT_RUN_LIMITS, type RunLimits } from "./runs.js";
export {
  type CopyOptions,
  PgTarget,
  type PgTargetOptions,
  type PreparedTarget,
  type ReplicaTarget,
  type StoredReplica,
} from "./target.js";
export {
  createTableSql,
  describeSourceTables,
  prepareTargetTables,
  type ReplicaColumn,
  type ReplicaTable,
  type TargetTablesReport,
} from "./target-schema.js";
export {
  type CopiedTable,
  installReplicaState,
  type ReplicaMark,
  type ReplicaPosition,
  readCopiedTables,
  readMark,
  readPosition,
  type TableName,
} from "./target-state.js";
export { ReplicaWorker } from "./worker.js";
export type {
  BatchEvent,
  CopyReporter,
  FeedFactory,
  WorkerObserver,
  WorkerOptions,
  WorkerOutcome,
  WorkerState,
} from "./worker-options.js";

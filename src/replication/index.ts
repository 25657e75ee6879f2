/** The replica's core: target state, schema check, bootstrap copy, set-based apply. */
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
export type { FeedBatch, ReplicaFeed } from "./feed.js";
export {
  applyQueueBatches,
  bootstrapFromQueue,
  type QueueApplyOptions,
  type QueueBootstrapOptions,
  type QueueBootstrapResult,
  type QueueReplicaOptions,
} from "./queue-replica.js";
export { DEFAULT_RUN_LIMITS, type RunLimits } from "./runs.js";
export { formatSnapshot, parseSnapshot, pastSnapshot, visible } from "./snapshot.js";
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
  type ReplicaPosition,
  readCopiedTables,
  readPosition,
  type TableName,
} from "./target-state.js";

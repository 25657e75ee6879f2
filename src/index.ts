/**
 * pgshovel as a library: the administration API (the CLI is a thin layer over
 * it), the relay, the sinks and the stream (types, codecs, consumer side).
 */
export {
  type ClusterDropReport,
  createSet,
  describeSetObjects,
  dropCluster,
  dropSet,
  initializeCluster,
  inspectSet,
  listSets,
  recoverCluster,
  type SetSummary,
  updateSet,
  upgradeCluster,
} from "./cluster/admin.js";
export type { AdminContext, TwoPhaseHooks } from "./cluster/context.js";
export type { ClusterRecord } from "./cluster/records.js";
export { ZooKeeper, type ZooKeeperEvent, type ZooKeeperOptions } from "./cluster/zookeeper.js";
export {
  checkClusterName,
  checkSetName,
  DEFAULT_CONSUMER,
  dbNames,
  kafkaNames,
  zkPaths,
} from "./config/names.js";
export {
  hidePassword,
  parseSetConfig,
  type ResolvedTable,
  type SetConfigInput,
  type StoredSetConfig,
  setConfigSchema,
} from "./config/set-config.js";
export * from "./consumer/index.js";
export {
  LeaderLease,
  type LeaderLeaseOptions,
  type LeaseEnd,
  LeaseEnded,
  type LeaseSession,
} from "./coordination/leader-lease.js";
export {
  type Election,
  Leadership,
  type LeadershipOptions,
} from "./coordination/leadership.js";
export {
  type Follower,
  SessionExpired,
  SetFollower,
  type SetState,
} from "./coordination/set-follower.js";
export { ERROR_CODES, type ErrorCode, isPgshovelError, PgshovelError } from "./errors.js";
export * from "./kafka/index.js";
export { createLogger, type Logger, silentLogger } from "./log.js";
export {
  type ClusterStatus,
  collectStatus,
  type SetStatus,
  type StatusOptions,
} from "./monitoring/status.js";
export type { Finding, FindingCode, Level, Thresholds } from "./monitoring/verdict.js";
export * from "./promotion/index.js";
export type {
  BatchInfo,
  BatchSource,
  BatchSourceFactory,
  ConsumerInfo,
} from "./relay/batch-source.js";
export type { FinishedBatch, RelayObserver, StandAgainReason } from "./relay/observer.js";
export type {
  RelayDiagnostics,
  RelayOptions,
  RelayOutcome,
  RelayState,
} from "./relay/options.js";
export { PgqSource, type PgqSourceOptions } from "./relay/pgq-source.js";
export { Relay } from "./relay/relay.js";
export * from "./replication/index.js";
export { FileSink, StreamSink } from "./sinks/file/file-sink.js";
export * from "./sinks/kafka/index.js";
export { type CommittedMark, type Sink, untilRevoked, type WriteGuard } from "./sinks/sink.js";
export * from "./stream/index.js";
export * from "./verify/index.js";
export { SOFTWARE_VERSION } from "./version.js";

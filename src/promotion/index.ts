/** Switchover and failover: fencing a set, promoting its replica, what a replica lacks. */
export {
  type FenceOptions,
  type FenceRecord,
  type FenceResult,
  fenceSet,
  readFence,
  unfenceSet,
} from "./fence.js";
export {
  findMissingTransactions,
  type MissingOptions,
  type MissingReport,
  type MissingTransaction,
} from "./missing.js";
export { FENCE_SQLSTATE, fencePaths, promotionNames } from "./names.js";
export { type PromoteOptions, type PromoteResult, promoteReplica } from "./promote.js";
export { type PromotionRecord, readPromotion, refusePromoted } from "./promotion-state.js";
export type { SequenceMove } from "./sequences.js";

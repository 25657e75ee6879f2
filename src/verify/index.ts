/** Verifying a replica against its source at one consistent point, and repairing it. */
export {
  type ConsistentPoint,
  type PointOptions,
  takeConsistentPoint,
} from "./consistent-point.js";
export { type RepairScript, repairScript, type TableRepair } from "./repair.js";
export type {
  DifferenceKind,
  RepairOutcome,
  RowDifference,
  TableVerdict,
  VerifyPoint,
  VerifyReport,
} from "./types.js";
export {
  type VerifyReplicaOptions,
  type VerifyTuning,
  verifyReplica,
  verifySet,
} from "./verifier.js";

/** Names that switchover and failover add to a cluster, derived in one place. */
import { dbNames, zkPaths } from "../config/names.js";

/** ZooKeeper paths of fences: one node per fenced set, holding its {@link FenceRecord}. */
export const fencePaths = {
  fences: (cluster: string) => `${zkPaths.cluster(cluster)}/fences`,
  fence: (cluster: string, set: string) => `${zkPaths.cluster(cluster)}/fences/${set}`,
};

/** Database-side names of fences and promotions. */
export const promotionNames = {
  /** The function a fenced set's statement triggers call: it refuses the write. */
  fenceFunction: (set: string) => `fence_${set}`,
  /**
   * The statement trigger that fences a table. Its own prefix (not `pgs_`) keeps it apart
   * from every capture trigger name, and within PostgreSQL's 63 bytes.
   */
  fenceTrigger: (cluster: string, set: string) => `pgf_${cluster}_${set}`,
  /** A promoted replica's record per set, in the target's cluster schema. */
  replicaPromotion: "replica_promotion",
  /** The set's queue (where the fence's tick is taken). */
  queue: dbNames.queue,
};

/** SQLSTATE of a write refused by a fence: read_only_sql_transaction, what a standby answers. */
export const FENCE_SQLSTATE = "25006";

import { zkPaths } from "../config/names.js";
import type { StoredSetConfig } from "../config/set-config.js";
import { PgshovelError } from "../errors.js";
import { compareVersions, SOFTWARE_VERSION } from "../version.js";
import type { AdminContext } from "./context.js";

/** The cluster record stored at `/<cluster>`. */
export interface ClusterRecord {
  version: string;
  created_at: string;
}

/** Serializes a record as znode data. */
export function encodeRecord(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value, null, 2));
}

/** Parses znode data written by {@link encodeRecord}; INTERNAL when it is not JSON. */
export function decodeRecord<T>(data: Buffer, path: string): T {
  try {
    return JSON.parse(data.toString("utf8")) as T;
  } catch (error) {
    throw new PgshovelError("INTERNAL", `znode ${path} does not hold valid JSON`, { cause: error });
  }
}

/** NOT_FOUND: the cluster has no record in ZooKeeper. */
export function clusterNotInitialized(cluster: string): PgshovelError {
  return new PgshovelError("NOT_FOUND", `cluster ${JSON.stringify(cluster)} is not initialized`, {
    hint: "run `pgshovel cluster initialize` (or check --cluster and --zookeeper-hosts)",
  });
}

/** NOT_FOUND: the cluster has no such set. */
export function setNotFound(cluster: string, set: string): PgshovelError {
  return new PgshovelError(
    "NOT_FOUND",
    `set ${JSON.stringify(set)} does not exist in cluster ${JSON.stringify(cluster)}`,
    { hint: "`pgshovel set list` shows the sets" },
  );
}

/** Reads the cluster record and its znode version; NOT_FOUND when the cluster is not initialized. */
export async function readClusterRecord(
  ctx: AdminContext,
): Promise<{ record: ClusterRecord; version: number }> {
  const path = zkPaths.cluster(ctx.cluster);
  const node = await ctx.zk.get(path);
  if (!node) throw clusterNotInitialized(ctx.cluster);
  return { record: decodeRecord<ClusterRecord>(node.data, path), version: node.stat.version };
}

/** Reads the cluster record and fails unless it was written by this software version. */
export async function requireCurrentCluster(
  ctx: AdminContext,
): Promise<{ record: ClusterRecord; version: number }> {
  const cluster = await readClusterRecord(ctx);
  if (cluster.record.version !== SOFTWARE_VERSION) {
    const newer = compareVersions(cluster.record.version, SOFTWARE_VERSION) > 0;
    throw new PgshovelError(
      "VERSION_MISMATCH",
      `cluster ${JSON.stringify(ctx.cluster)} is at version ${cluster.record.version} but this pgshovel is ${SOFTWARE_VERSION}`,
      {
        hint: newer
          ? "use a pgshovel of the cluster's version"
          : "run `pgshovel cluster upgrade` to bring the cluster to this version",
      },
    );
  }
  return cluster;
}

/** Reads a set's stored configuration and znode version; undefined when the set does not exist. */
export async function readSet(
  ctx: AdminContext,
  name: string,
): Promise<{ config: StoredSetConfig; version: number } | undefined> {
  const path = zkPaths.set(ctx.cluster, name);
  const node = await ctx.zk.get(path);
  if (!node) return undefined;
  return { config: decodeRecord<StoredSetConfig>(node.data, path), version: node.stat.version };
}

/** Like {@link readSet} but NOT_FOUND when the set does not exist. */
export async function requireSet(
  ctx: AdminContext,
  name: string,
): Promise<{ config: StoredSetConfig; version: number }> {
  const set = await readSet(ctx, name);
  if (!set) throw setNotFound(ctx.cluster, name);
  return set;
}

/** Names of the cluster's sets, sorted. */
export async function listSetNames(ctx: AdminContext): Promise<string[]> {
  return (await ctx.zk.children(zkPaths.sets(ctx.cluster))).sort();
}

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

function decodeRecord<T>(data: Buffer, path: string): T {
  try {
    return JSON.parse(data.toString("utf8")) as T;
  } catch (error) {
    throw new PgshovelError("INTERNAL", `znode ${path} does not hold valid JSON`, { cause: error });
  }
}

/** Reads the cluster record and its znode version; NOT_FOUND when the cluster is not initialized. */
export async function readClusterRecord(
  ctx: AdminContext,
): Promise<{ record: ClusterRecord; version: number }> {
  const path = zkPaths.cluster(ctx.cluster);
  const node = await ctx.zk.get(path);
  if (!node) {
    throw new PgshovelError(
      "NOT_FOUND",
      `cluster ${JSON.stringify(ctx.cluster)} is not initialized`,
      {
        hint: "run `pgshovel cluster initialize` (or check --cluster and --zookeeper-hosts)",
      },
    );
  }
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
  if (!set) {
    throw new PgshovelError(
      "NOT_FOUND",
      `set ${JSON.stringify(name)} does not exist in cluster ${JSON.stringify(ctx.cluster)}`,
      {
        hint: "`pgshovel set list` shows the sets",
      },
    );
  }
  return set;
}

/** Names of the cluster's sets, sorted. */
export async function listSetNames(ctx: AdminContext): Promise<string[]> {
  return (await ctx.zk.children(zkPaths.sets(ctx.cluster))).sort();
}

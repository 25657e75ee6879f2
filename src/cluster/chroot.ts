import { isPgshovelError, PgshovelError } from "../errors.js";
import type { AdminContext } from "./context.js";
import { type ClusterRecord, readClusterRecord, requireCurrentCluster } from "./records.js";

/**
 * Reads the cluster record (of this software version, with `current`), telling a missing
 * chroot of `--zookeeper-hosts` apart from a cluster that was never initialized: both read as
 * "no such node", but only `cluster initialize` with the same hosts creates the chroot.
 */
export async function readCluster(
  ctx: AdminContext,
  options: { current?: boolean } = {},
): Promise<{ record: ClusterRecord; version: number }> {
  try {
    return options.current ? await requireCurrentCluster(ctx) : await readClusterRecord(ctx);
  } catch (error) {
    if (!isPgshovelError(error, "NOT_FOUND") || (await ctx.zk.chrootExists())) throw error;
    throw new PgshovelError(
      "NOT_FOUND",
      `the ZooKeeper chroot ${ctx.zk.chroot} does not exist (hosts ${ctx.zk.hosts}), so cluster ${JSON.stringify(ctx.cluster)} is not initialized`,
      {
        cause: error,
        hint: `run \`pgshovel --zookeeper-hosts ${ctx.zk.hosts} --cluster ${ctx.cluster} cluster initialize\`: it creates the chroot and the cluster`,
      },
    );
  }
}

import { posix } from "node:path";
import { uninstallSet } from "../capture/install.js";
import { dbNames, ident, zkPaths } from "../config/names.js";
import type { StoredSetConfig } from "../config/set-config.js";
import { query } from "../database/postgres.js";
import { PgshovelError } from "../errors.js";
import { readCluster } from "./chroot.js";
import type { AdminContext } from "./context.js";
import { listSetNames, readSet } from "./records.js";
import { commitEverywhere, type Participant, recover } from "./two-phase.js";
import { isZkError, type ZkOp } from "./zookeeper.js";

/** What {@link dropCluster} removed. */
export interface ClusterDropReport {
  sets: string[];
  /** How many databases lost their sets and their `pgshovel_<cluster>` schema. */
  databases: number;
  /** The relays that were running (`set/consumer`), stopped by the drop (only with force). */
  relays: string[];
}

/** Every relay candidate of the cluster, as `set/consumer` once per candidate. */
async function runningRelays(ctx: AdminContext): Promise<string[]> {
  const root = posix.dirname(zkPaths.relays(ctx.cluster, "any"));
  const found: string[] = [];
  for (const set of await ctx.zk.children(root)) {
    for (const consumer of await ctx.zk.children(`${root}/${set}`)) {
      const candidates = await ctx.zk.children(`${root}/${set}/${consumer}`);
      for (const candidate of candidates) {
        if (candidate.startsWith("candidate-")) found.push(`${set}/${consumer}`);
      }
    }
  }
  return found;
}

/**
 * Removes a whole cluster, all or nothing: every set's triggers, capture functions and queue,
 * the `pgshovel_<cluster>` schema of every database holding a set, then its znodes. Refused
 * (IN_USE) while relays are registered, unless `force`: they then stop as their set vanishes.
 */
export async function dropCluster(
  ctx: AdminContext,
  options: { force?: boolean } = {},
): Promise<ClusterDropReport> {
  await recover(ctx);
  const cluster = await readCluster(ctx, { current: true });
  const relays = await runningRelays(ctx);
  if (relays.length > 0 && !options.force) {
    throw new PgshovelError(
      "IN_USE",
      `cluster ${JSON.stringify(ctx.cluster)} has ${relays.length} relay(s) running (${[...new Set(relays)].join(", ")}); nothing was changed`,
      { hint: "stop the relays first, or use --force: each then stops as its set disappears" },
    );
  }
  const sets: { name: string; config: StoredSetConfig; version: number }[] = [];
  for (const name of await listSetNames(ctx)) {
    const set = await readSet(ctx, name);
    if (set) sets.push({ name, ...set });
  }
  // One participant per database (node id): two prepared transactions in one database would
  // each wait for the other's locks on the shared schema.
  const databases = new Map<string, { dsn: string; sets: string[] }>();
  for (const set of sets) {
    const database = databases.get(set.config.database.node);
    if (database) database.sets.push(set.name);
    else
      databases.set(set.config.database.node, { dsn: set.config.database.dsn, sets: [set.name] });
  }
  const participants: Participant<undefined>[] = [...databases.values()].map((database) => ({
    dsn: database.dsn,
    prepare: async (client) => {
      for (const set of database.sets) await uninstallSet(client, ctx.cluster, set);
      await query(
        client,
        `DROP SCHEMA IF EXISTS ${ident(dbNames.schema(ctx.cluster))} CASCADE`,
        [],
        "dropping the cluster schema",
      );
      return undefined;
    },
  }));
  // The commit point removes the sets' znodes: from then on the databases' objects are gone
  // (or, after a crash, `cluster recover` finishes removing them) and the cluster is empty.
  await commitEverywhere(ctx, {
    set: "_cluster",
    operation: "drop",
    participants,
    zkOps: () => [
      { op: "check", path: zkPaths.cluster(ctx.cluster), version: cluster.version },
      ...sets.map(
        (set): ZkOp => ({
          op: "remove",
          path: zkPaths.set(ctx.cluster, set.name),
          version: set.version,
        }),
      ),
    ],
  });
  await removeClusterTree(ctx);
  ctx.logger.info(
    { cluster: ctx.cluster, sets: sets.length, databases: databases.size },
    "cluster dropped",
  );
  return { sets: sets.map((s) => s.name), databases: databases.size, relays };
}

/**
 * Removes `/<cluster>` and everything below. Relays stopped by a forced drop remove their
 * candidate nodes as they go, so a node appearing or vanishing meanwhile is tried again.
 */
async function removeClusterTree(ctx: AdminContext): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await ctx.zk.removeRecursive(zkPaths.cluster(ctx.cluster));
      return;
    } catch (error) {
      if (!isZkError(error, "NOT_EMPTY") || attempt >= 5) throw error;
    }
  }
}

import { resolveTables } from "../capture/catalog.js";
import {
  checkDatabaseReady,
  describeSetObjects,
  installClusterSchema,
  installSet,
  readNodeId,
  uninstallSet,
} from "../capture/install.js";
import { pendingEvents } from "../capture/pending.js";
import { checkSetName, dbNames, zkPaths } from "../config/names.js";
import { hidePassword, type SetConfigInput, type StoredSetConfig } from "../config/set-config.js";
import { closeQuietly, connect, type PgClient, sqlstate } from "../database/postgres.js";
import { describeError, isPgshovelError, PgshovelError } from "../errors.js";
import { compareVersions, SOFTWARE_VERSION } from "../version.js";
import { readCluster } from "./chroot.js";
import type { AdminContext } from "./context.js";
import { type ClusterRecord, encodeRecord, listSetNames, readSet, requireSet } from "./records.js";
import { commitEverywhere, type Participant, recover } from "./two-phase.js";
import { isZkError, type ZkOp } from "./zookeeper.js";

/** A set as `set list` shows it. */
export interface SetSummary {
  name: string;
  database: string;
  tables: string[];
  version: number;
}

/**
 * Creates the cluster record and its sets node, and first the chroot of the ZooKeeper
 * connection string when it is missing; ALREADY_EXISTS when the cluster exists.
 */
export async function initializeCluster(ctx: AdminContext): Promise<ClusterRecord> {
  const record: ClusterRecord = { version: SOFTWARE_VERSION, created_at: new Date().toISOString() };
  if (await ctx.zk.ensureChroot()) {
    ctx.logger.info({ chroot: ctx.zk.chroot }, "created the ZooKeeper chroot");
  }
  try {
    await ctx.zk.multi(
      [
        { op: "create", path: zkPaths.cluster(ctx.cluster), data: encodeRecord(record) },
        { op: "create", path: zkPaths.sets(ctx.cluster), data: Buffer.alloc(0) },
        { op: "create", path: zkPaths.transactions(ctx.cluster), data: Buffer.alloc(0) },
      ],
      `initializing cluster ${ctx.cluster}`,
    );
  } catch (error) {
    if (isZkError(error, "NODE_EXISTS")) {
      throw new PgshovelError(
        "ALREADY_EXISTS",
        `cluster ${JSON.stringify(ctx.cluster)} is already initialized`,
        {
          hint: "use another --cluster name, or `pgshovel set list` to see what it holds",
        },
      );
    }
    throw error;
  }
  ctx.logger.info({ cluster: ctx.cluster, version: record.version }, "cluster initialized");
  return record;
}

/** Resolves interrupted changes of this cluster; see {@link recover}. */
export async function recoverCluster(ctx: AdminContext) {
  await readCluster(ctx);
  return recover(ctx);
}

function clusterCheck(ctx: AdminContext, version: number): ZkOp {
  return { op: "check", path: zkPaths.cluster(ctx.cluster), version };
}

/** Checks a DSN reaches a server able to host a set, returning its node id (undefined before the first set). */
async function probeDatabase(ctx: AdminContext, dsn: string): Promise<string | undefined> {
  const client = await connect(dsn);
  try {
    await checkDatabaseReady(client);
    return await readNodeId(client, ctx.cluster);
  } finally {
    await closeQuietly(client);
  }
}

function installParticipant(
  ctx: AdminContext,
  name: string,
  config: SetConfigInput,
  configVersion: number,
): Participant<StoredSetConfig> {
  return {
    dsn: config.database.dsn,
    prepare: async (client: PgClient) => {
      const node = await installClusterSchema(client, ctx.cluster, SOFTWARE_VERSION);
      const tables = await resolveTables(client, config.tables);
      await installSet(client, {
        cluster: ctx.cluster,
        set: name,
        tables,
        configVersion,
        logger: ctx.logger,
      });
      return {
        database: { dsn: config.database.dsn, node },
        tables: tables.map(({ schema, name: table, primary_keys, columns, old, capture }) => ({
          schema,
          name: table,
          primary_keys,
          columns,
          ...(old ? { old } : {}),
          ...(capture ? { capture } : {}),
        })),
        operation: "",
      };
    },
  };
}

async function warnOnSharedNode(
  ctx: AdminContext,
  name: string,
  node: string | undefined,
  dsn: string,
): Promise<void> {
  if (!node) return;
  for (const other of await listSetNames(ctx)) {
    if (other === name) continue;
    const set = await readSet(ctx, other);
    if (set && set.config.database.node === node && set.config.database.dsn !== dsn) {
      ctx.logger.warn(
        { set: name, other, database: hidePassword(dsn), node },
        "this DSN reaches the same database (node id) as another set through a different DSN",
      );
    }
  }
}

/** Creates a set: queue and triggers in its database and its znode, all or nothing. */
export async function createSet(
  ctx: AdminContext,
  name: string,
  config: SetConfigInput,
): Promise<StoredSetConfig> {
  checkSetName(name);
  await recover(ctx);
  const cluster = await readCluster(ctx, { current: true });
  if (await readSet(ctx, name)) {
    throw new PgshovelError(
      "ALREADY_EXISTS",
      `set ${JSON.stringify(name)} already exists in cluster ${JSON.stringify(ctx.cluster)}`,
      {
        hint: "use `pgshovel set update` to change it",
      },
    );
  }
  const node = await probeDatabase(ctx, config.database.dsn);
  await warnOnSharedNode(ctx, name, node, config.database.dsn);
  let stored: StoredSetConfig | undefined;
  await commitEverywhere(ctx, {
    set: name,
    operation: "create",
    participants: [installParticipant(ctx, name, config, 0)],
    zkOps: ([result]) => {
      stored = { ...result!, operation: "create" };
      return [
        clusterCheck(ctx, cluster.version),
        { op: "create", path: zkPaths.set(ctx.cluster, name), data: encodeRecord(stored) },
      ];
    },
  });
  ctx.logger.info({ set: name, tables: stored!.tables.length }, "set created");
  return stored!;
}

/**
 * Applies a new configuration to a set: triggers follow the new table and
 * column lists; a DSN reaching another database moves the set there and
 * cleans the old one. Guarded by the znode version. A move drops the old queue
 * with whatever it still holds: it is refused (IN_USE) while a consumer has
 * events pending there, unless `force`, and `droppedEvents` says how many went.
 */
export async function updateSet(
  ctx: AdminContext,
  name: string,
  config: SetConfigInput,
  options: { expectedVersion?: number; force?: boolean } = {},
): Promise<{ config: StoredSetConfig; version: number; droppedEvents: number }> {
  checkSetName(name);
  await recover(ctx);
  const cluster = await readCluster(ctx, { current: true });
  const current = await requireSet(ctx, name);
  const expected = options.expectedVersion ?? current.version;
  if (expected !== current.version) {
    throw new PgshovelError(
      "CONFLICT",
      `set ${name} is at version ${current.version}, not ${expected}`,
    );
  }
  const newNode = await probeDatabase(ctx, config.database.dsn);
  const moves = newNode !== current.config.database.node;
  const participants: Participant<StoredSetConfig | undefined>[] = [
    installParticipant(ctx, name, config, expected + 1),
  ];
  let droppedEvents = 0;
  if (moves) {
    participants.push({
      dsn: current.config.database.dsn,
      prepare: async (client) => {
        // Counted in the transaction that drops the queue, so nothing counted can be relayed meanwhile.
        droppedEvents = await checkNothingPending(
          client,
          ctx,
          name,
          current.config.database.dsn,
          options.force,
        );
        await uninstallSet(client, ctx.cluster, name);
        return undefined;
      },
    });
  }
  let stored: StoredSetConfig | undefined;
  await commitEverywhere(ctx, {
    set: name,
    operation: "update",
    participants,
    zkOps: ([result]) => {
      stored = { ...result!, operation: moves ? "update (moved)" : "update" };
      return [
        clusterCheck(ctx, cluster.version),
        {
          op: "setData",
          path: zkPaths.set(ctx.cluster, name),
          data: encodeRecord(stored),
          version: expected,
        },
      ];
    },
  });
  if (droppedEvents > 0) {
    ctx.logger.warn(
      { set: name, events: droppedEvents },
      "the set moved with events not yet relayed: they were dropped with the old queue",
    );
  }
  ctx.logger.info({ set: name, version: expected + 1, moved: moves }, "set updated");
  return { config: stored!, version: expected + 1, droppedEvents };
}

/**
 * How many events the set's queue still holds for its furthest-behind consumer; IN_USE
 * when there are any and `force` is not given.
 */
async function checkNothingPending(
  client: PgClient,
  ctx: AdminContext,
  name: string,
  dsn: string,
  force: boolean | undefined,
): Promise<number> {
  const pending = (await pendingEvents(client, dbNames.queue(ctx.cluster, name))).filter(
    (p) => p.events > 0,
  );
  // Consumers read one sequence: the one furthest behind is owed every other one's events too.
  const lost = Math.max(0, ...pending.map((p) => p.events));
  if (lost > 0 && !force) {
    throw new PgshovelError(
      "IN_USE",
      `set ${name} would move to another database, dropping its queue in ${hidePassword(dsn)} with ${lost} event(s) not yet relayed (${pending.map((p) => `consumer ${p.consumer}: ${p.events}`).join(", ")}); nothing was changed`,
      {
        hint: "stop writes to the set's tables, let its relays catch up (pending_events = 0 in pgq.get_consumer_info), then run set update again; --force moves it and drops those events",
      },
    );
  }
  return lost;
}

/** Drops a set. With `force`, an unreachable database is skipped and what it keeps is reported. */
export async function dropSet(
  ctx: AdminContext,
  name: string,
  options: { force?: boolean } = {},
): Promise<{ leftBehind?: string }> {
  checkSetName(name);
  await recover(ctx);
  const cluster = await readCluster(ctx, { current: true });
  const current = await requireSet(ctx, name);
  const zkOps = (): ZkOp[] => [
    clusterCheck(ctx, cluster.version),
    { op: "remove", path: zkPaths.set(ctx.cluster, name), version: current.version },
  ];
  try {
    await commitEverywhere(ctx, {
      set: name,
      operation: "drop",
      participants: [
        {
          dsn: current.config.database.dsn,
          prepare: (client) => uninstallSet(client, ctx.cluster, name),
        },
      ],
      zkOps,
    });
  } catch (error) {
    // A database that no longer exists (3D000) is as unreachable as a server that is down.
    const unreachable =
      isPgshovelError(error, "DATABASE_UNAVAILABLE") || sqlstate(error) === "3D000";
    if (!options.force || !unreachable) throw error;
    await ctx.zk.multi(zkOps(), `removing set ${name} from ZooKeeper`);
    const leftBehind = `the queue and triggers of set ${name} in ${hidePassword(current.config.database.dsn)} (tables ${current.config.tables
      .map((t) => `${t.schema}.${t.name}`)
      .join(", ")}) were left behind because the database is unreachable (${describeError(error)})`;
    ctx.logger.warn({ set: name }, leftBehind);
    return { leftBehind };
  }
  ctx.logger.info({ set: name }, "set dropped");
  return {};
}

/** Every set with its database (password hidden), tables and configuration version. */
export async function listSets(ctx: AdminContext): Promise<SetSummary[]> {
  await readCluster(ctx);
  const summaries: SetSummary[] = [];
  for (const name of await listSetNames(ctx)) {
    const set = await readSet(ctx, name);
    if (!set) continue;
    summaries.push({
      name,
      database: hidePassword(set.config.database.dsn),
      tables: set.config.tables.map((t) => `${t.schema}.${t.name}`),
      version: set.version,
    });
  }
  return summaries;
}

/** A set's stored configuration with the password hidden, and its version. */
export async function inspectSet(
  ctx: AdminContext,
  name: string,
): Promise<{ config: StoredSetConfig; version: number }> {
  checkSetName(name);
  await readCluster(ctx);
  const set = await requireSet(ctx, name);
  return {
    config: {
      ...set.config,
      database: { ...set.config.database, dsn: hidePassword(set.config.database.dsn) },
    },
    version: set.version,
  };
}

/**
 * Records this software version in the cluster record and reinstalls the
 * database-side objects of every set, atomically. A downgrade needs `force`.
 */
export async function upgradeCluster(
  ctx: AdminContext,
  options: { force?: boolean } = {},
): Promise<{ from: string; to: string }> {
  await recover(ctx);
  const cluster = await readCluster(ctx);
  const from = cluster.record.version;
  if (compareVersions(from, SOFTWARE_VERSION) > 0 && !options.force) {
    throw new PgshovelError(
      "VERSION_MISMATCH",
      `cluster ${ctx.cluster} is at version ${from}, newer than this pgshovel (${SOFTWARE_VERSION}); refusing to downgrade`,
      {
        hint: "use --force to downgrade anyway",
      },
    );
  }
  const sets: ({ name: string } & { config: StoredSetConfig; version: number })[] = [];
  for (const name of await listSetNames(ctx)) {
    const set = await readSet(ctx, name);
    if (set) sets.push({ name, ...set });
  }
  const participants: Participant<undefined>[] = sets.map((set) => ({
    dsn: set.config.database.dsn,
    prepare: async (client) => {
      await installClusterSchema(client, ctx.cluster, SOFTWARE_VERSION);
      const tables = await resolveTables(client, set.config.tables);
      await installSet(client, {
        cluster: ctx.cluster,
        set: set.name,
        tables,
        configVersion: set.version,
        logger: ctx.logger,
      });
      return undefined;
    },
  }));
  const record: ClusterRecord = { ...cluster.record, version: SOFTWARE_VERSION };
  await commitEverywhere(ctx, {
    set: "_cluster",
    operation: "upgrade",
    participants,
    zkOps: () => [
      {
        op: "setData",
        path: zkPaths.cluster(ctx.cluster),
        data: encodeRecord(record),
        version: cluster.version,
      },
      ...sets.map(
        (set): ZkOp => ({
          op: "check",
          path: zkPaths.set(ctx.cluster, set.name),
          version: set.version,
        }),
      ),
    ],
  });
  ctx.logger.info({ from, to: SOFTWARE_VERSION, sets: sets.length }, "cluster upgraded");
  return { from, to: SOFTWARE_VERSION };
}

export { type ClusterDropReport, dropCluster } from "./drop-cluster.js";
/** What a set left in its database; for reports and tests. */
export { describeSetObjects };

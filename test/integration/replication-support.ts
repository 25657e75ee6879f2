/** Fixtures for replica tests: a source with a set, an empty target, catching up, checksums. */
import { createSet, initializeCluster } from "../../src/cluster/admin.js";
import { ZooKeeper } from "../../src/cluster/zookeeper.js";
import { dbNames } from "../../src/config/names.js";
import type { SetConfigInput } from "../../src/config/set-config.js";
import { silentLogger } from "../../src/log.js";
import type { ApplyResult } from "../../src/replication/apply.js";
import { applyQueueBatches, type QueueApplyOptions } from "../../src/replication/queue-replica.js";
import { stackEnv, uniqueName } from "../support/env.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";

/** A source database with set "s", an empty target, and the replica's options. */
export interface ReplicaFixture {
  source: TestDatabase;
  target: TestDatabase;
  cluster: string;
  set: string;
  queue: string;
  /** Options for bootstrapFromQueue / applyQueueBatches, tables as the set lists them. */
  replica: { sourceDsn: string; targetDsn: string; cluster: string; set: string } & {
    tables: SetConfigInput["tables"];
  };
  close(): Promise<void>;
}

/**
 * Creates a source (`prepare` makes its tables), a cluster with set "s" over `tables`,
 * and an empty target (`prepareTarget` may make tables there).
 */
export async function replicaFixture(options: {
  prepare: (source: TestDatabase) => Promise<void>;
  tables: (string | SetConfigInput["tables"][number])[];
  prepareTarget?: (target: TestDatabase) => Promise<void>;
}): Promise<ReplicaFixture> {
  const source = await createTestDatabase("repl_src");
  const target = await createTestDatabase("repl_dst", { pgq: false });
  const zk = await ZooKeeper.connect({
    hosts: stackEnv().zookeeperHosts,
    timeoutMs: 10_000,
    operationTimeoutMs: 10_000,
  });
  const cluster = uniqueName("rp").slice(0, 16);
  const close = async () => {
    await zk.removeRecursive(`/${cluster}`).catch(() => {});
    zk.close();
    await source.drop();
    await target.drop();
  };
  try {
    await options.prepare(source);
    await options.prepareTarget?.(target);
    const ctx = { zk, cluster, logger: silentLogger, zookeeperTimeoutMs: 10_000 };
    await initializeCluster(ctx);
    const tables = options.tables.map((t) =>
      typeof t === "string" ? { name: t, schema: "public" } : t,
    );
    await createSet(ctx, "s", { database: { dsn: source.dsn }, tables });
    return {
      source,
      target,
      cluster,
      set: "s",
      queue: dbNames.queue(cluster, "s"),
      replica: { sourceDsn: source.dsn, targetDsn: target.dsn, cluster, set: "s", tables },
      close,
    };
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
}

/**
 * Ticks the source queue so that a batch ends after every commit so far, then applies
 * every batch ready: afterwards the target is at the source's current state.
 */
export async function catchUp(
  fixture: ReplicaFixture,
  options: Partial<QueueApplyOptions> = {},
): Promise<ApplyResult[]> {
  // force_tick: a plain ticker may see no new events when pgqd ticked mid-commit.
  await fixture.source.query("SELECT pgq.force_tick($1)", [fixture.queue]);
  await fixture.source.query("SELECT pgq.ticker($1)", [fixture.queue]);
  return applyQueueBatches({ ...fixture.replica, ...options });
}

/** Sums the stats of applied batches. */
export function totals(results: ApplyResult[]): Record<string, number> {
  const sum: Record<string, number> = { applied: 0, inCopy: 0, notCopied: 0, notInSet: 0 };
  for (const result of results) {
    if (result.kind !== "applied") continue;
    for (const key of Object.keys(sum)) {
      sum[key]! += result.stats[key as keyof typeof result.stats];
    }
  }
  return sum;
}

/** Row count and an md5 over `columns` (in key order) of a table: equal on both sides means equal rows. */
export async function checksum(
  db: Pick<TestDatabase, "query">,
  table: string,
  columns: string[],
  key: string[],
): Promise<{ count: string; md5: string | null }> {
  const [row] = await db.query<{ count: string; md5: string | null }>(
    `SELECT count(*)::text AS count,
            md5(string_agg(ROW(${columns.join(", ")})::text, ',' ORDER BY ${key.join(", ")})) AS md5
       FROM ${table}`,
  );
  return row!;
}

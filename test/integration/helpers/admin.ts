/**
 * Shared fixtures of the administration and capture tests: a fresh cluster name with its own
 * ZooKeeper session and admin context, leftover checks (znodes, triggers, queues, prepared
 * transactions), the CLI runner and a PgQ reader.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type pg from "pg";
import { resolveTables } from "../../../src/capture/catalog.js";
import { installTableCapture } from "../../../src/capture/install.js";
import { createSet, initializeCluster } from "../../../src/cluster/admin.js";
import type { AdminContext } from "../../../src/cluster/context.js";
import { ZooKeeper } from "../../../src/cluster/zookeeper.js";
import { dbNames, zkPaths } from "../../../src/config/names.js";
import type { SetConfigInput } from "../../../src/config/set-config.js";
import { silentLogger } from "../../../src/log.js";
import { type QueueEvent, toMutations } from "../../../src/relay/pgq-event.js";
import { repoRoot, stackEnv } from "../../support/env.js";
import { forceTick } from "../../support/fixtures.js";
import { createTestDatabase, type TestDatabase } from "../../support/postgres.js";
import { withTimeout } from "../../support/wait.js";
import { connectZk, type TestZk } from "../../support/zookeeper.js";

/** A cluster name unique to this call: [a-z0-9_], at most 16 characters. */
export function clusterName(): string {
  return `c${randomBytes(5).toString("hex")}`;
}

/** A fresh cluster (not initialized) with a library session and a raw test session. */
export interface ClusterFixture {
  cluster: string;
  hosts: string;
  ctx: AdminContext;
  /** The raw test client, for asserting on znodes behind the library's back. */
  zk: TestZk;
  /** Closes both sessions and removes the cluster's znodes. */
  close(): Promise<void>;
}

/** Opens a fixture on the stack's ZooKeeper (or HOSTS). */
export async function clusterFixture(
  options: { hosts?: string; timeoutMs?: number; sessionTimeoutMs?: number } = {},
): Promise<ClusterFixture> {
  const hosts = options.hosts ?? stackEnv().zookeeperHosts;
  const cluster = clusterName();
  const timeoutMs = options.timeoutMs ?? 10_000;
  const session = await ZooKeeper.connect({
    hosts,
    timeoutMs,
    operationTimeoutMs: timeoutMs,
    ...(options.sessionTimeoutMs ? { sessionTimeoutMs: options.sessionTimeoutMs } : {}),
  });
  const zk = await connectZk({ hosts });
  const ctx: AdminContext = {
    zk: session,
    cluster,
    logger: silentLogger,
    zookeeperTimeoutMs: timeoutMs,
  };
  return {
    cluster,
    hosts,
    ctx,
    zk,
    async close() {
      session.close();
      // Bounded: a session that expired while a test stopped ZooKeeper never answers again.
      await withTimeout(
        zk.removeRecursive(`/${cluster}`),
        10_000,
        "removing the test cluster",
      ).catch(() => {});
      zk.close();
    },
  };
}

/** A set configuration for TABLES (names, or table entries) in DB. */
export function setConfig(
  dsn: string,
  tables: (string | SetConfigInput["tables"][number])[],
): SetConfigInput {
  return {
    database: { dsn },
    tables: tables.map((t) => (typeof t === "string" ? { name: t, schema: "public" } : t)),
  };
}

/** What a set (or a failed command) left in a database and in ZooKeeper. */
export interface Leftovers {
  setZnode: boolean;
  transactionRecords: string[];
  triggers: string[];
  queue: boolean;
  functions: string[];
  prepared: string[];
}

/**
 * The capture triggers `set create` gives a table by default on the test stack, which has the
 * C capture function: statement mode's INSERT, UPDATE and DELETE triggers and the TRUNCATE
 * trigger, named `<table>.<trigger>` in the order {@link leftovers} lists them.
 */
export function defaultTriggers(cluster: string, set: string, ...tables: string[]): string[] {
  const base = dbNames.trigger(cluster, set);
  return tables.flatMap((table) => ["_d", "_i", "_t", "_u"].map((s) => `${table}.${base}${s}`));
}

/** Everything of SET (and every prepared transaction of CLUSTER) in DB and ZooKeeper. */
export async function leftovers(
  db: Pick<TestDatabase, "query">,
  zk: TestZk,
  cluster: string,
  set: string,
): Promise<Leftovers> {
  const base = dbNames.trigger(cluster, set);
  const triggers = await db.query<{ name: string }>(
    `SELECT format('%s.%s', c.relname, t.tgname) AS name
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
      WHERE t.tgname = ANY ($1::text[]) ORDER BY 1`,
    [[base, ...["_t", "_i", "_u", "_d"].map((suffix) => base + suffix)]],
  );
  const hasPgq = await db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'pgq'");
  const queue =
    hasPgq.length > 0 &&
    (await db.query("SELECT 1 FROM pgq.queue WHERE queue_name = $1", [dbNames.queue(cluster, set)]))
      .length > 0;
  const functions = await db.query<{ name: string }>(
    `SELECT p.proname::text AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = $1 AND p.proname LIKE $2`,
    [dbNames.schema(cluster), `capture\\_${set}\\_%`],
  );
  // pg_prepared_xacts is server-wide: every database of the server, filtered by cluster.
  const prepared = await db.query<{ gid: string }>(
    "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE $1 ORDER BY gid",
    [`pgshovel:${cluster}:%`],
  );
  return {
    setZnode: (await zk.exists(zkPaths.set(cluster, set))) !== null,
    transactionRecords: await zk.children(zkPaths.transactions(cluster)),
    triggers: triggers.map((r) => r.name),
    queue,
    functions: functions.map((r) => r.name),
    prepared: prepared.map((r) => r.gid),
  };
}

/** Asserts a failed command left nothing: no znode, trigger, queue, function or prepared transaction. */
export async function assertNothingLeft(
  db: Pick<TestDatabase, "query">,
  zk: TestZk,
  cluster: string,
  set: string,
): Promise<void> {
  assert.deepEqual(await leftovers(db, zk, cluster, set), {
    setZnode: false,
    transactionRecords: [],
    triggers: [],
    queue: false,
    functions: [],
    prepared: [],
  });
}

/** The result of one CLI run. */
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
}

/**
 * Runs bin/pgshovel with ARGS. The environment is the test's minus every PGSHOVEL_* variable,
 * plus ENV: a test says exactly which PGSHOVEL_* settings the command sees.
 */
export function runCli(
  args: string[],
  options: { env?: Record<string, string>; stdin?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("PGSHOVEL_")) env[key] = value;
  }
  Object.assign(env, options.env ?? {});
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(join(repoRoot, "bin", "pgshovel"), args, { env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, elapsedMs: Date.now() - started });
    });
    child.stdin.end(options.stdin ?? "");
  });
}

/** One PgQ event as the capture trigger writes it. */
export interface CapturedEvent {
  type: string;
  data: { old?: Record<string, unknown>; new?: Record<string, unknown> };
  schema: string;
  table: string;
  configVersion: string;
  identity: string[];
  txid: string;
}

/** Registers CONSUMER on QUEUE: it sees the events inserted from now on. */
export async function registerConsumer(
  db: Pick<TestDatabase, "query">,
  queue: string,
  consumer = "test",
): Promise<void> {
  await db.query("SELECT pgq.register_consumer($1, $2)", [queue, consumer]);
}

/**
 * Ticks QUEUE and reads every batch up to that tick for CONSUMER (registered before the changes):
 * every event committed so far, in event order.
 */
export async function readEvents(
  db: Pick<TestDatabase, "query">,
  queue: string,
  consumer = "test",
): Promise<CapturedEvent[]> {
  await forceTick(db, queue);
  const events: CapturedEvent[] = [];
  const identities = new Map<string, string[]>();
  for (;;) {
    const [info] = await db.query<{ batch_id: string | null }>(
      "SELECT batch_id::text FROM pgq.next_batch_info($1, $2)",
      [queue, consumer],
    );
    if (!info?.batch_id) return events;
    const rows = await db.query<QueueEvent & { ev_extra3: string }>(
      `SELECT e.ev_id::text, (e.ev_time AT TIME ZONE 'UTC')::text || '+00' AS ev_time, e.ev_type,
              e.ev_data, e.ev_extra1, e.ev_extra2, e.ev_extra3, e.ev_extra4, e.ev_txid::text
         FROM pgq.get_batch_events($1) e ORDER BY e.ev_id`,
      [info.batch_id],
    );
    // a packed event of statement mode is decoded as the relay decodes it: one event per row
    for (const row of rows) {
      if (!row.ev_type.endsWith(" packed")) {
        events.push({
          type: row.ev_type,
          data: JSON.parse(row.ev_data) as CapturedEvent["data"],
          schema: row.ev_extra1,
          table: row.ev_extra2,
          configVersion: row.ev_extra3,
          identity: JSON.parse(row.ev_extra4) as string[],
          txid: row.ev_txid,
        });
        continue;
      }
      for (const mutation of toMutations(row, identities)) {
        events.push({
          type: mutation.operation,
          data: { old: mutation.old, new: mutation.new } as CapturedEvent["data"],
          schema: mutation.schema,
          table: mutation.table,
          configVersion: row.ev_extra3,
          identity: mutation.identity,
          txid: row.ev_txid,
        });
      }
    }
    await db.query("SELECT pgq.finish_batch($1)", [info.batch_id]);
  }
}

/** Ends a client, ignoring errors. */
export async function endQuietly(client: pg.Client | undefined): Promise<void> {
  await client?.end().catch(() => {});
}

/**
 * A fresh cluster and database, `setup` run in it, and a set "s1" over `tables` with a
 * consumer registered on its queue; `body` runs with them, and everything goes afterwards.
 */
export async function withCaptureSet(
  prefix: string,
  setup: string[],
  tables: Parameters<typeof setConfig>[1],
  body: (db: TestDatabase, queue: string, f: ClusterFixture) => Promise<void>,
  options: {
    /** Statement mode by the generated PL/pgSQL, not the C function (reinstalled after `set create`). */
    plpgsql?: boolean;
  } = {},
): Promise<void> {
  const f = await clusterFixture();
  const db = await createTestDatabase(prefix);
  try {
    for (const sql of setup) await db.query(sql);
    await initializeCluster(f.ctx);
    await createSet(f.ctx, "s1", setConfig(db.dsn, tables));
    if (options.plpgsql) {
      const client = await db.connect();
      try {
        for (const table of await resolveTables(client, setConfig(db.dsn, tables).tables)) {
          if (table.capture !== "statement") continue;
          await installTableCapture(client, {
            cluster: f.cluster,
            set: "s1",
            table,
            configVersion: 0,
            mode: "statement",
            native: false,
          });
        }
      } finally {
        await client.end();
      }
    }
    const queue = dbNames.queue(f.cluster, "s1");
    await registerConsumer(db, queue);
    await body(db, queue, f);
  } finally {
    await f.close();
    await db.drop();
  }
}

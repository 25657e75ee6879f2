/**
 * The benchmarks' fixtures on the local services: a fresh database with a
 * replication set in a fresh cluster, spawned relays, their memory, PgQ
 * progress. Everything created here is removed by the matching close/stop.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import type pg from "pg";
import { createSet, initializeCluster } from "../src/cluster/admin.js";
import type { AdminContext } from "../src/cluster/context.js";
import { ZooKeeper } from "../src/cluster/zookeeper.js";
import { dbNames } from "../src/config/names.js";
import { silentLogger } from "../src/log.js";
import { repoRoot, stackEnv, uniqueName } from "../test/support/env.js";
import { createTestDatabase, type PgServer, type TestDatabase } from "../test/support/postgres.js";

/** A database holding `tables`, captured by set "s" of a fresh cluster. */
export interface BenchSet {
  db: TestDatabase;
  cluster: string;
  set: string;
  queue: string;
  zkHosts: string;
  close(): Promise<void>;
}

/** Creates the database (`prepare` makes its tables), a cluster and a set "s" over `tables`. */
export async function createBenchSet(options: {
  prefix: string;
  prepare: (db: TestDatabase) => Promise<void>;
  tables: string[];
  /** Another PostgreSQL than the local stack's (a private instance). */
  server?: PgServer;
}): Promise<BenchSet> {
  const db = await createTestDatabase(
    options.prefix,
    options.server ? { server: options.server } : {},
  );
  const zkHosts = stackEnv().zookeeperHosts;
  let zk: ZooKeeper | undefined;
  const cluster = uniqueName("b").slice(0, 16);
  const close = async () => {
    if (zk) {
      await zk.removeRecursive(`/${cluster}`).catch(() => {});
      zk.close();
    }
    await db.drop();
  };
  try {
    await options.prepare(db);
    zk = await ZooKeeper.connect({ hosts: zkHosts, timeoutMs: 10_000 });
    const ctx: AdminContext = { zk, cluster, logger: silentLogger, zookeeperTimeoutMs: 10_000 };
    await initializeCluster(ctx);
    await createSet(ctx, "s", {
      database: { dsn: db.dsn },
      tables: options.tables.map((name) => ({ name, schema: "public" })),
    });
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
  return { db, cluster, set: "s", queue: dbNames.queue(cluster, "s"), zkHosts, close };
}

/** A spawned `bin/pgshovel relay` process. */
export interface RelayProcess {
  child: ChildProcess;
  pid: number;
  stderr(): string;
  /** SIGTERM, then waits for the exit (SIGKILL after 15 s). */
  stop(): Promise<void>;
}

/** Options of {@link spawnRelay}. */
export interface SpawnRelayOptions {
  set: BenchSet;
  consumer: string;
  /** Sink arguments, e.g. ["--sink", "file:/tmp/x"]. */
  args: string[];
  /** Write a V8 CPU profile of the relay into this directory. */
  profileDir?: string | undefined;
}

/** Starts `bin/pgshovel relay` (the launcher execs node: the pid is the relay's own). */
export function spawnRelay(options: SpawnRelayOptions): RelayProcess {
  const { set } = options;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PGSHOVEL_CLUSTER: set.cluster,
    PGSHOVEL_ZOOKEEPER_HOSTS: set.zkHosts,
    PGSHOVEL_LOG_FORMAT: "json",
    PGSHOVEL_LOG_LEVEL: "info",
  };
  if (options.profileDir) {
    env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ""} --cpu-prof --cpu-prof-dir=${options.profileDir}`;
  }
  const child = spawn(
    join(repoRoot, "bin", "pgshovel"),
    ["relay", set.set, "--consumer-id", options.consumer, ...options.args],
    { env, stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
    if (stderr.length > 1 << 20) stderr = stderr.slice(-(1 << 19));
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  if (child.pid === undefined) throw new Error("could not spawn bin/pgshovel");
  return {
    child,
    pid: child.pid,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** Waits until the relay logged `text`; fails early when it exits. */
export async function waitForRelayLog(
  relay: RelayProcess,
  text: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!relay.stderr().includes(text)) {
    if (relay.child.exitCode !== null || relay.child.signalCode !== null) {
      throw new Error(`the relay exited before logging "${text}": ${relay.stderr().slice(-2000)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `the relay did not log "${text}" in ${timeoutMs} ms: ${relay.stderr().slice(-2000)}`,
      );
    }
    await delay(20);
  }
}

/** A process's resident memory, from /proc/<pid>/status, in MB. */
export interface ProcessMemory {
  /** VmRSS: resident now. */
  rssMB: number;
  /** VmHWM: the peak resident size so far. */
  peakMB: number;
}

/** Reads VmRSS and VmHWM of `pid`. */
export async function processMemory(pid: number): Promise<ProcessMemory> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status);
    if (!match) throw new Error(`no ${name} in /proc/${pid}/status`);
    return (Number(match[1]) * 1024) / 1e6;
  };
  return { rssMB: field("VmRSS"), peakMB: field("VmHWM") };
}

/**
 * Makes a tick of `queue` that follows everything committed so far; returns
 * its id. A plain `pgq.ticker` is not enough: the relay's self-ticking (and
 * pgqd) tick while a big transaction is still writing, because its events
 * already advanced the queue's event sequence; after its commit `pgq.ticker`
 * then sees no new events and makes no tick. `pgq.force_tick` bumps the
 * sequence, so the next tick — ours or anyone's — comes after this call.
 */
export async function tickNow(client: pg.Client, queue: string): Promise<bigint> {
  await client.query("SELECT pgq.force_tick($1)", [queue]);
  await client.query("SELECT pgq.ticker($1)", [queue]);
  const result = await client.query<{ tick: string }>(
    `SELECT max(t.tick_id)::text AS tick FROM pgq.tick t JOIN pgq.queue q ON q.queue_id = t.tick_queue
      WHERE q.queue_name = $1`,
    [queue],
  );
  return BigInt(result.rows[0]!.tick);
}

/**
 * Waits until `consumer` has finished every batch up to tick `tick`; returns
 * the wall-clock time (ms) it was first seen done. Polls every `intervalMs`.
 */
export async function waitConsumerPast(
  client: pg.Client,
  queue: string,
  consumer: string,
  tick: bigint,
  options: { timeoutMs: number; intervalMs?: number; relay?: RelayProcess },
): Promise<number> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const result = await client.query<{ last_tick: string; current_batch: string | null }>(
      "SELECT last_tick::text, current_batch::text FROM pgq.get_consumer_info($1, $2)",
      [queue, consumer],
    );
    const row = result.rows[0];
    if (row && BigInt(row.last_tick) >= tick && row.current_batch === null) {
      return performance.timeOrigin + performance.now();
    }
    const relay = options.relay;
    if (relay && (relay.child.exitCode !== null || relay.child.signalCode !== null)) {
      throw new Error(`the relay exited while draining: ${relay.stderr().slice(-2000)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `consumer ${consumer} did not pass tick ${tick} within ${options.timeoutMs} ms${relay ? `: ${relay.stderr().slice(-2000)}` : ""}`,
      );
    }
    await delay(options.intervalMs ?? 20);
  }
}

/** The Kafka brokers of the local stack. */
export function kafkaBrokers(): string[] {
  return stackEnv().kafkaBrokers;
}

export { uniqueName };

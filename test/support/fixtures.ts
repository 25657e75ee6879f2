/**
 * The fixtures that integration tests and benchmarks share (development only, never
 * shipped): a fresh database captured by a set of a fresh cluster, pgbench, a spawned
 * relay process and waits on its log, a PgQ tick that follows every commit so far.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { createSet, initializeCluster } from "../../src/cluster/admin.js";
import type { AdminContext } from "../../src/cluster/context.js";
import { ZooKeeper } from "../../src/cluster/zookeeper.js";
import { dbNames } from "../../src/config/names.js";
import { silentLogger } from "../../src/log.js";
import { repoRoot, stackEnv, uniqueName } from "./env.js";
import { createTestDatabase, type PgServer, type TestDatabase } from "./postgres.js";
import { waitFor } from "./wait.js";

const execFileAsync = promisify(execFile);
/** Where Debian's postgresql-15 puts pgbench (and the other server programs). */
const PG_BIN = "/usr/lib/postgresql/15/bin";

/** A database with a replication set "s" over some of its tables, in a fresh cluster. */
export interface SetFixture {
  db: TestDatabase;
  cluster: string;
  set: string;
  /** The set's PgQ queue. */
  queue: string;
  zkHosts: string;
  ctx: AdminContext;
  /** Removes the cluster's znodes, closes the session and drops the database. */
  close(): Promise<void>;
}

/** Options of {@link setupSet}. */
export interface SetupSetOptions {
  /** Makes the tables in the fresh database. */
  prepare: (db: TestDatabase) => Promise<void>;
  tables: string[];
  /** Prefix of the database's name (default "relay"). */
  prefix?: string;
  /** Another ZooKeeper than the local stack's. */
  zkHosts?: string;
  /** Another PostgreSQL than the local stack's (a private instance). */
  server?: PgServer;
  /** The tables' capture mode (default: the set configuration's default, statement mode on the C function where the server has it). */
  capture?: "row" | "statement";
}

/** Creates a database (`prepare` makes its tables), a cluster and a set "s" over `tables`. */
export async function setupSet(options: SetupSetOptions): Promise<SetFixture> {
  const db = await createTestDatabase(
    options.prefix ?? "relay",
    options.server ? { server: options.server } : {},
  );
  const zkHosts = options.zkHosts ?? stackEnv().zookeeperHosts;
  const cluster = uniqueName("r").slice(0, 16);
  let zk: ZooKeeper | undefined;
  const close = async () => {
    if (zk) {
      await zk.removeRecursive(`/${cluster}`).catch(() => {});
      zk.close();
    }
    await db.drop();
  };
  try {
    await options.prepare(db);
    zk = await ZooKeeper.connect({ hosts: zkHosts, timeoutMs: 10_000, operationTimeoutMs: 10_000 });
    const ctx: AdminContext = { zk, cluster, logger: silentLogger, zookeeperTimeoutMs: 10_000 };
    await initializeCluster(ctx);
    await createSet(ctx, "s", {
      database: { dsn: db.dsn },
      tables: options.tables.map((name) => ({
        name,
        schema: "public",
        ...(options.capture ? { capture: options.capture } : {}),
      })),
    });
    return { db, cluster, set: "s", queue: dbNames.queue(cluster, "s"), zkHosts, ctx, close };
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
}

/** The tables pgbench makes. */
export const PGBENCH_TABLES = [
  "pgbench_accounts",
  "pgbench_branches",
  "pgbench_tellers",
  "pgbench_history",
];

/** Runs pgbench against `db`. */
export async function pgbench(db: TestDatabase, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(
    join(PG_BIN, "pgbench"),
    ["-h", db.server.host, "-p", String(db.server.port), "-U", db.server.user, ...args, db.name],
    { maxBuffer: 16 << 20 },
  );
  return stdout;
}

/** pgbench's tables at scale 1, with the primary key that pgbench_history lacks. */
export async function preparePgbench(db: TestDatabase): Promise<void> {
  await pgbench(db, ["-i", "-q", "-s", "1"]);
  await db.query("ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY");
}

/** pgbench's tables (scale 1), captured by a set. */
export function setupPgbenchSet(
  options: { zkHosts?: string; server?: PgServer } = {},
): Promise<SetFixture> {
  return setupSet({ ...options, tables: PGBENCH_TABLES, prepare: preparePgbench });
}

/** How a relay process ended. */
export interface RelayExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A spawned relay program (the launchers exec node: `pid` is the relay's own). */
export interface RelayProcess {
  child: ChildProcess;
  pid: number;
  /** Its stderr so far (the log); past 8 MiB only the last 4 MiB are kept. */
  stderr(): string;
  /** Resolves when the process exits. */
  exited: Promise<RelayExit>;
  /** True once the process has exited and its stderr has been read to the end. */
  ended(): boolean;
}

/** Options of {@link startRelay}. */
export interface StartRelayOptions {
  /** Write a V8 CPU profile of the relay into this directory when it exits. */
  profileDir?: string | undefined;
}

const STDERR_LIMIT = 8 << 20;

/**
 * Starts `bin/<entry>` for the fixture's set with extra arguments: `pgshovel relay SET …`,
 * or `pgshovel-stream-relay SET …` / `pgshovel-kafka-relay SET …`. Logs are JSON at level info.
 */
export function startRelay(
  fixture: Pick<SetFixture, "cluster" | "set" | "zkHosts">,
  args: string[],
  entry = "pgshovel",
  options: StartRelayOptions = {},
): RelayProcess {
  const argv = entry === "pgshovel" ? ["relay", fixture.set, ...args] : [fixture.set, ...args];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PGSHOVEL_CLUSTER: fixture.cluster,
    PGSHOVEL_ZOOKEEPER_HOSTS: fixture.zkHosts,
    PGSHOVEL_LOG_FORMAT: "json",
    PGSHOVEL_LOG_LEVEL: "info",
  };
  if (options.profileDir) {
    env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ""} --cpu-prof --cpu-prof-dir=${options.profileDir}`;
  }
  const child = spawn(join(repoRoot, "bin", entry), argv, {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (child.pid === undefined) throw new Error(`could not spawn bin/${entry}`);
  let stderr = "";
  let ended = false;
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    stderr += chunk;
    if (stderr.length > STDERR_LIMIT) stderr = stderr.slice(-(STDERR_LIMIT / 2));
  });
  child.once("close", () => {
    ended = true;
  });
  const exited = new Promise<RelayExit>((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }));
  });
  return { child, pid: child.pid, stderr: () => stderr, exited, ended: () => ended };
}

/** A bound for stopping a relay that has no reason to linger (the benchmarks use it). */
export const RELAY_KILL_AFTER_MS = 15_000;

/**
 * Stops a relay with SIGTERM if it still runs; returns its exit. With `killAfterMs`, a relay
 * still running by then gets SIGKILL.
 */
export async function stopRelay(relay: RelayProcess, killAfterMs?: number): Promise<RelayExit> {
  if (relay.child.exitCode === null && relay.child.signalCode === null) relay.child.kill("SIGTERM");
  if (killAfterMs === undefined) return relay.exited;
  const killer = setTimeout(() => relay.child.kill("SIGKILL"), killAfterMs);
  try {
    return await relay.exited;
  } finally {
    clearTimeout(killer);
  }
}

/**
 * Reads a stream relay's stdout until `count` mutation lines have arrived, then stops reading
 * it: the pipe fills and the relay blocks mid-batch. Resolves with the text read.
 */
export async function readUntilMutations(relay: RelayProcess, count: number): Promise<string> {
  let seen = "";
  let mutationLines = 0;
  relay.child.stdout!.on("data", (chunk: Buffer) => {
    if (mutationLines >= count) return;
    const text = chunk.toString("utf8");
    seen += text;
    mutationLines += (text.match(/"mutation"/g) ?? []).length;
    if (mutationLines >= count) relay.child.stdout!.pause();
  });
  await waitFor(() => mutationLines >= count, {
    description: `${count} mutations on stdout (stderr: ${relay.stderr()})`,
  });
  return seen;
}

/** Waits until the relay's stderr contains `text`; fails at once when the relay has ended. */
export async function waitForLog(
  relay: RelayProcess,
  text: string,
  timeoutMs = 30_000,
): Promise<void> {
  await waitFor(() => relay.stderr().includes(text), {
    timeoutMs,
    abandonWhen: () => (relay.ended() ? "the relay exited" : undefined),
    get description() {
      return `relay log "${text}" (its stderr, last 2000 characters: ${relay.stderr().slice(-2000)})`;
    },
  });
}

/** Runs SQL; both a TestDatabase and a pg.Client qualify. */
export interface SqlRunner {
  query(sql: string, params?: unknown[]): Promise<unknown>;
}

/**
 * Makes a tick of `queue` that follows every transaction committed so far. A plain
 * `pgq.ticker` may make none: a tick taken (by pgqd or a relay) while a change was in
 * flight already counted its event, so the ticker sees no new events, though that tick's
 * snapshot does not hold the change. `pgq.force_tick` advances the queue's event count,
 * so the ticker ticks.
 */
export async function forceTick(db: SqlRunner, queue: string): Promise<void> {
  await db.query("SELECT pgq.force_tick($1)", [queue]);
  await db.query("SELECT pgq.ticker($1)", [queue]);
}

/** Options of {@link startPgshovel}. */
export interface StartPgshovelOptions {
  /** Extra environment variables (test hooks, say). */
  env?: Record<string, string>;
  /** The log level (default info). */
  logLevel?: string;
}

/**
 * Starts `bin/pgshovel ARGV…` (any command: `replicate SET …`, say) in the fixture's cluster,
 * with JSON logs on stderr; the handle is the one {@link startRelay} returns.
 */
export function startPgshovel(
  fixture: Pick<SetFixture, "cluster" | "zkHosts">,
  argv: string[],
  options: StartPgshovelOptions = {},
): RelayProcess {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PGSHOVEL_CLUSTER: fixture.cluster,
    PGSHOVEL_ZOOKEEPER_HOSTS: fixture.zkHosts,
    PGSHOVEL_LOG_FORMAT: "json",
    PGSHOVEL_LOG_LEVEL: options.logLevel ?? "info",
    ...options.env,
  };
  const child = spawn(join(repoRoot, "bin", "pgshovel"), argv, {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (child.pid === undefined) throw new Error("could not spawn bin/pgshovel");
  let stderr = "";
  let ended = false;
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    stderr += chunk;
    if (stderr.length > STDERR_LIMIT) stderr = stderr.slice(-(STDERR_LIMIT / 2));
  });
  child.stdout!.resume();
  child.once("close", () => {
    ended = true;
  });
  const exited = new Promise<RelayExit>((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }));
  });
  return { child, pid: child.pid, stderr: () => stderr, exited, ended: () => ended };
}

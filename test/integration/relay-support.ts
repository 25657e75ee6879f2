/** Fixtures for relay tests: a set over real tables, a relay process, the stream it wrote. */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { promisify } from "node:util";
import { createSet, initializeCluster } from "../../src/cluster/admin.js";
import type { AdminContext } from "../../src/cluster/context.js";
import { ZooKeeper } from "../../src/cluster/zookeeper.js";
import { isPgshovelError } from "../../src/errors.js";
import { silentLogger } from "../../src/log.js";
import { BatchAssembler, type CommittedBatch } from "../../src/stream/assembler.js";
import { codecByName } from "../../src/stream/codec.js";
import { messagesOf, readStreamFile as readStream } from "../../src/stream/reader.js";
import type { Message } from "../../src/stream/types.js";
import { repoRoot, stackEnv, uniqueName } from "../support/env.js";
import { createTestDatabase, type PgServer, type TestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const execFileAsync = promisify(execFile);
const PG_BIN = "/usr/lib/postgresql/15/bin";

/** A database with a replication set over some of its tables, in a fresh cluster. */
export interface SetFixture {
  db: TestDatabase;
  cluster: string;
  set: string;
  zkHosts: string;
  ctx: AdminContext;
  close(): Promise<void>;
}

/** Creates a database (`prepare` makes its tables), a cluster and a set "s" over `tables`. */
export async function setupSet(options: {
  prepare: (db: TestDatabase) => Promise<void>;
  tables: string[];
  zkHosts?: string;
  server?: PgServer;
}): Promise<SetFixture> {
  const db = await createTestDatabase("relay", options.server ? { server: options.server } : {});
  await options.prepare(db);
  const zkHosts = options.zkHosts ?? stackEnv().zookeeperHosts;
  const zk = await ZooKeeper.connect({
    hosts: zkHosts,
    timeoutMs: 10_000,
    operationTimeoutMs: 10_000,
  });
  const cluster = uniqueName("r").slice(0, 16);
  const ctx: AdminContext = { zk, cluster, logger: silentLogger, zookeeperTimeoutMs: 10_000 };
  await initializeCluster(ctx);
  await createSet(ctx, "s", {
    database: { dsn: db.dsn },
    tables: options.tables.map((name) => ({ name, schema: "public" })),
  });
  return {
    db,
    cluster,
    set: "s",
    zkHosts,
    ctx,
    async close() {
      await zk.removeRecursive(`/${cluster}`).catch(() => {});
      zk.close();
      await db.drop();
    },
  };
}

/** The tables pgbench makes. */
export const PGBENCH_TABLES = [
  "pgbench_accounts",
  "pgbench_branches",
  "pgbench_tellers",
  "pgbench_history",
];

/** pgbench's tables (scale 1) with a primary key on pgbench_history, captured by a set. */
export function setupPgbenchSet(
  options: { zkHosts?: string; server?: PgServer } = {},
): Promise<SetFixture> {
  return setupSet({
    ...options,
    tables: PGBENCH_TABLES,
    prepare: async (db) => {
      await pgbench(db, ["-i", "-q", "-s", "1"]);
      await db.query("ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY");
    },
  });
}

/** Runs pgbench's tpcb-like workload against `db`. */
export async function pgbench(db: TestDatabase, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(
    join(PG_BIN, "pgbench"),
    ["-h", db.server.host, "-p", String(db.server.port), "-U", db.server.user, ...args, db.name],
    { maxBuffer: 16 << 20 },
  );
  return stdout;
}

/** A running `pgshovel relay` process. */
export interface RelayProcess {
  child: ChildProcess;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `bin/pgshovel relay SET` for a fixture with extra arguments. */
export function startRelay(
  fixture: Pick<SetFixture, "cluster" | "set" | "zkHosts">,
  args: string[],
  entry = "pgshovel",
): RelayProcess {
  const argv = entry === "pgshovel" ? ["relay", fixture.set, ...args] : [fixture.set, ...args];
  const child = spawn(join(repoRoot, "bin", entry), argv, {
    env: {
      ...process.env,
      PGSHOVEL_CLUSTER: fixture.cluster,
      PGSHOVEL_ZOOKEEPER_HOSTS: fixture.zkHosts,
      PGSHOVEL_LOG_FORMAT: "json",
      PGSHOVEL_LOG_LEVEL: "info",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }));
  });
  return { child, stderr: () => stderr, exited };
}

/** Stops a relay with SIGTERM if it still runs; returns its exit. */
export async function stopRelay(
  relay: RelayProcess,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (relay.child.exitCode === null && relay.child.signalCode === null) relay.child.kill("SIGTERM");
  return relay.exited;
}

/** Every message of a stream file. */
export async function readStreamFile(path: string, codec = "json"): Promise<Message[]> {
  const messages: Message[] = [];
  try {
    for await (const m of messagesOf(readStream(path, { codec: codecByName(codec) }))) {
      messages.push(m);
    }
  } catch (error) {
    if (isPgshovelError(error, "NOT_FOUND")) return []; // not written yet
    throw error;
  }
  return messages;
}

/** Validates a stream and assembles its committed batches (throws on a contract breach). */
export function assemble(messages: Message[]): {
  batches: CommittedBatch[];
  assembler: BatchAssembler;
} {
  const assembler = new BatchAssembler();
  const batches: CommittedBatch[] = [];
  for (const message of messages) {
    const batch = assembler.push(message);
    if (batch) batches.push(batch);
  }
  return { batches, assembler };
}

/** Waits until the committed batches of a stream file hold `count` mutations matching `predicate`. */
export async function waitForMutations(
  path: string,
  count: number,
  predicate: (m: CommittedBatch["mutations"][number]) => boolean = () => true,
  timeoutMs = 60_000,
  relay?: RelayProcess,
): Promise<CommittedBatch[]> {
  return waitFor(
    async () => {
      const { batches } = assemble(await readStreamFile(path));
      const seen = batches.reduce((n, b) => n + b.mutations.filter(predicate).length, 0);
      return seen >= count ? batches : undefined;
    },
    {
      timeoutMs,
      intervalMs: 200,
      get description() {
        return `${count} mutations in ${path}${relay ? ` (relay stderr: ${relay.stderr()})` : ""}`;
      },
    },
  );
}

/** Waits until the relay's stderr contains `text`. */
export async function waitForLog(
  relay: RelayProcess,
  text: string,
  timeoutMs = 30_000,
): Promise<void> {
  await waitFor(() => relay.stderr().includes(text), {
    timeoutMs,
    get description() {
      return `relay log "${text}" (its stderr, last 2000 characters: ${relay.stderr().slice(-2000)})`;
    },
  });
}

/** A temporary directory for the calling test file, made before its tests and removed after. */
export function tempDirFor(prefix: string): () => string {
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  return () => dir;
}

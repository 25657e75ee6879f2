/**
 * Private throwaway service instances for disruptive tests (kill, restart, partition...), so that
 * those tests never disturb the shared stack. Each instance runs the same binaries, jars and
 * configuration as scripts/services.sh (which is driven with its own state directory under
 * .services/private/<unique> and free loopback ports).
 */
import { execFile, spawnSync } from "node:child_process";
import { readdir, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { repoRoot, uniqueName } from "./env.js";
import { dsnFor, type PgServer } from "./postgres.js";
import { waitFor } from "./wait.js";

const execFileAsync = promisify(execFile);
const SCRIPT = join(repoRoot, "scripts", "services.sh");

type ServiceName = "postgres" | "pgqd" | "zookeeper" | "kafka";

export interface PrivateService {
  /** The instance's state directory (data, configs, logs/). */
  dir: string;
  /** Starts the instance again (after stop or kill), reusing its data; waits until ready. */
  start(): Promise<void>;
  /** Stops gracefully and waits until the process is gone. */
  stop(): Promise<void>;
  /** SIGKILL: simulates a crash. */
  kill(): Promise<void>;
  /** Stops and deletes the data directory. Idempotent. */
  destroy(): Promise<void>;
}

export interface PrivateZooKeeper extends PrivateService {
  port: number;
  /** Connection string for clients: 127.0.0.1:<port>. */
  hosts: string;
  /**
   * SIGSTOP: the server stops answering while its connections stay open, as a frozen or
   * overloaded machine would. Resolves once the process is stopped.
   */
  freeze(): Promise<void>;
  /** SIGCONT after {@link freeze}; resolves once the process runs again. Idempotent. */
  thaw(): Promise<void>;
}

export interface PrivatePostgres extends PrivateService {
  host: string;
  port: number;
  user: string;
  server: PgServer;
  /** libpq URL for DATABASE (default postgres) as the superuser. */
  dsn(database?: string): string;
  /** Start/stop/kill the instance's own pgqd (when started with {pgqd: true}). */
  pgqd?: { start(): Promise<void>; stop(): Promise<void>; kill(): Promise<void> };
}

export interface PrivateKafka extends PrivateService {
  port: number;
  controllerPort: number;
  brokers: string[];
}

/** A free TCP port on 127.0.0.1 (asked from the kernel, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error("no free port"))));
    });
  });
}

function privateRoot(): string {
  return join(repoRoot, ".services", "private");
}

interface Instance {
  dir: string;
  env: NodeJS.ProcessEnv;
  services: ServiceName[];
}

const live = new Set<Instance>();

// A test process that ends without destroy() must not leave servers behind.
process.once("exit", () => {
  for (const instance of live) {
    for (const name of [...instance.services].reverse()) {
      spawnSync(SCRIPT, ["kill", name], { env: instance.env, stdio: "ignore", timeout: 30_000 });
    }
  }
});

async function run(instance: Instance, command: string, name: ServiceName): Promise<void> {
  try {
    await execFileAsync(SCRIPT, [command, name], {
      env: instance.env,
      timeout: 180_000,
      maxBuffer: 4 * 1024 * 1024,
    });
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(
      `private ${name} (${instance.dir}): services.sh ${command} failed: ${(e.stderr ?? "").trim() || e.message}`,
    );
  }
}

function makeInstance(prefix: string, ports: Record<string, number>, services: ServiceName[]) {
  const dir = join(privateRoot(), uniqueName(prefix));
  const env: NodeJS.ProcessEnv = { ...process.env, PGSHOVEL_STACK_DIR: dir };
  for (const [key, value] of Object.entries(ports)) env[key] = String(value);
  return { dir, env, services } satisfies Instance;
}

function lifecycle(instance: Instance): PrivateService {
  let destroyed = false;
  const each = async (command: string, order: ServiceName[]) => {
    for (const name of order) await run(instance, command, name);
  };
  return {
    dir: instance.dir,
    async start() {
      if (destroyed) throw new Error(`private instance ${instance.dir} was destroyed`);
      live.add(instance);
      try {
        await each("start", instance.services);
      } catch (error) {
        const tails = await logTails(instance.dir);
        throw new Error(`${error instanceof Error ? error.message : String(error)}\n${tails}`, {
          cause: error,
        });
      }
    },
    async stop() {
      await each("stop", [...instance.services].reverse());
    },
    async kill() {
      await each("kill", [...instance.services].reverse());
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      try {
        await each("stop", [...instance.services].reverse());
      } finally {
        live.delete(instance);
        await rm(instance.dir, { recursive: true, force: true });
      }
    },
  };
}

/** The last lines of each log of a private instance (for error messages). */
async function logTails(dir: string, lines = 15): Promise<string> {
  const logs = join(dir, "logs");
  const names = await readdir(logs).catch(() => [] as string[]);
  const parts: string[] = [];
  for (const name of names) {
    const text = await readFile(join(logs, name), "utf8").catch(() => "");
    parts.push(
      `--- ${name} (last ${lines} lines)\n${text.trimEnd().split("\n").slice(-lines).join("\n")}`,
    );
  }
  return parts.join("\n");
}

async function started<T extends PrivateService>(service: T): Promise<T> {
  try {
    await service.start(); // a failure carries the tails of the logs deleted below
  } catch (error) {
    await service.destroy().catch(() => {});
    throw error;
  }
  return service;
}

/** The process state letter of PID from /proc (R, S, T for stopped…), or undefined when gone. */
async function processState(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  // The command name (field 2) is in parentheses and may hold spaces: the state follows it.
  return stat?.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
}

/** Sends SIGSTOP or SIGCONT to the pid in PIDFILE and waits until the process is in that state. */
async function signalAndWait(pidFile: string, signal: "SIGSTOP" | "SIGCONT"): Promise<void> {
  const pid = Number((await readFile(pidFile, "utf8")).trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no pid in ${pidFile}`);
  process.kill(pid, signal);
  const stopped = signal === "SIGSTOP";
  await waitFor(
    async () => {
      const state = await processState(pid);
      return state === undefined || (state === "T") === stopped;
    },
    { description: `pid ${pid} to be ${stopped ? "stopped" : "running"}`, intervalMs: 20 },
  );
}

/** A private standalone ZooKeeper on a free loopback port; ready when returned. */
async function startPrivateZooKeeperOnce(): Promise<PrivateZooKeeper> {
  const port = await freePort();
  const instance = makeInstance("zk", { PGSHOVEL_STACK_ZK_PORT: port }, ["zookeeper"]);
  const base = lifecycle(instance);
  const pidFile = join(instance.dir, "zookeeper", "zookeeper.pid");
  let frozen = false;
  const thaw = async () => {
    if (!frozen) return;
    await signalAndWait(pidFile, "SIGCONT");
    frozen = false;
  };
  return started({
    ...base,
    port,
    hosts: `127.0.0.1:${port}`,
    async freeze() {
      await signalAndWait(pidFile, "SIGSTOP");
      frozen = true;
    },
    thaw,
    // A stopped process would not act on SIGTERM: thaw it first.
    async stop() {
      await thaw();
      await base.stop();
    },
    async destroy() {
      await thaw().catch(() => {});
      await base.destroy();
    },
  });
}

/**
 * A private PostgreSQL 15 cluster (PgQ available, max_prepared_transactions = 50, same
 * pg_hba rules as the stack) on a free loopback port; ready when returned. With {pgqd: true}
 * its own pgqd ticks its databases.
 */
async function startPrivatePostgresOnce(
  options: { pgqd?: boolean } = {},
): Promise<PrivatePostgres> {
  const port = await freePort();
  const services: ServiceName[] = options.pgqd ? ["postgres", "pgqd"] : ["postgres"];
  const instance = makeInstance("pg", { PGSHOVEL_STACK_PG_PORT: port }, services);
  const server: PgServer = { host: "127.0.0.1", port, user: "postgres" };
  const pgqd = options.pgqd
    ? {
        start: () => run(instance, "start", "pgqd"),
        stop: () => run(instance, "stop", "pgqd"),
        kill: () => run(instance, "kill", "pgqd"),
      }
    : undefined;
  return started({
    ...lifecycle(instance),
    host: server.host,
    port,
    user: server.user,
    server,
    dsn: (database = "postgres") => dsnFor(server, database),
    ...(pgqd ? { pgqd } : {}),
  });
}

/** A private single-node KRaft Kafka on free loopback ports; ready when returned (~5-10 s). */
async function startPrivateKafkaOnce(): Promise<PrivateKafka> {
  const port = await freePort();
  let controllerPort = await freePort();
  while (controllerPort === port) controllerPort = await freePort();
  const instance = makeInstance(
    "kafka",
    { PGSHOVEL_STACK_KAFKA_PORT: port, PGSHOVEL_STACK_KAFKA_CONTROLLER_PORT: controllerPort },
    ["kafka"],
  );
  return started({
    ...lifecycle(instance),
    port,
    controllerPort,
    brokers: [`127.0.0.1:${port}`],
  });
}

/**
 * Starting a throwaway JVM or cluster on a port just found free can lose a race with
 * another process on a busy machine: each start is tried up to three times, each on
 * fresh ports, before the error (with the logs' tails) is reported.
 */
async function withAttempts<T>(start: () => Promise<T>, attempts = 3): Promise<T> {
  let last: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      return await start();
    } catch (error) {
      last = error;
    }
  }
  throw last;
}

/** A private standalone ZooKeeper on a free loopback port; ready when returned. */
export function startPrivateZooKeeper(): Promise<PrivateZooKeeper> {
  return withAttempts(() => startPrivateZooKeeperOnce());
}

/** A private PostgreSQL 15 cluster (see startPrivatePostgresOnce); ready when returned. */
export function startPrivatePostgres(options: { pgqd?: boolean } = {}): Promise<PrivatePostgres> {
  return withAttempts(() => startPrivatePostgresOnce(options));
}

/** A private single-node KRaft Kafka on free loopback ports; ready when returned. */
export function startPrivateKafka(): Promise<PrivateKafka> {
  return withAttempts(() => startPrivateKafkaOnce());
}

/**
 * Fixtures for tests of `pgshovel set verify`: a source with set "s", a replica kept by a
 * running `pgshovel replicate` worker, the verify command run against them, writes by hand
 * on the target that nothing captures, and a pgbench load that runs until stopped.
 */
import { execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { repoRoot } from "../support/env.js";
import { type RelayProcess, stopRelay, waitForLog } from "../support/fixtures.js";
import type { TestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";
import { type ReplicateFixture, replicateFixture, startReplicate } from "./replicate-support.js";

const PGSHOVEL = join(repoRoot, "bin", "pgshovel");
const PG_BIN = "/usr/lib/postgresql/15/bin";

/** A source, its replica and the worker that keeps it. */
export interface VerifyFixture extends ReplicateFixture {
  worker: RelayProcess;
  /** Starts the worker again after {@link stopWorker}. */
  startWorker(): Promise<void>;
  stopWorker(): Promise<void>;
}

/** Creates the source and target (see replicateFixture) and runs a worker until it applies. */
export async function verifyFixture(
  options: Parameters<typeof replicateFixture>[0] & {
    /** Extra arguments of the worker (`--from file:PATH`, say); called once the set exists. */
    workerArgs?: (fixture: ReplicateFixture) => string[];
    /** Runs before the worker first starts (a relay that writes its stream, say). */
    beforeWorker?: (fixture: ReplicateFixture) => Promise<void>;
  } = {},
): Promise<VerifyFixture> {
  const base = await replicateFixture(options);
  const fixture = base as VerifyFixture;
  fixture.startWorker = async () => {
    const extra = options.workerArgs?.(base) ?? [];
    fixture.worker = startReplicate(base, ["--create-tables", ...extra]);
    await waitForLog(fixture.worker, "applying the stream", 60_000);
  };
  fixture.stopWorker = async () => {
    await stopRelay(fixture.worker, 15_000);
  };
  const close = base.close;
  fixture.close = async () => {
    if (fixture.worker) await stopRelay(fixture.worker, 15_000);
    await close();
  };
  try {
    await options.beforeWorker?.(base);
    await fixture.startWorker();
    // The first batch stores the replica's position: from then on it is a replica.
    await waitFor(
      async () => {
        const rows = await base.target.query(
          `SELECT 1 FROM ${`pgshovel_${base.cluster}`}.replica_position WHERE set_name = 's'`,
        );
        return rows.length === 1;
      },
      { timeoutMs: 60_000, description: "the replica's first position" },
    );
  } catch (error) {
    await fixture.close();
    throw error;
  }
  return fixture;
}

/** How a verify ended. */
export interface VerifyRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `pgshovel set verify s --target <target> ARGS…` to its end. */
export function runVerify(
  fixture: Pick<ReplicateFixture, "cluster" | "zkHosts" | "target">,
  args: string[] = [],
  set = "s",
): Promise<VerifyRun> {
  const env = {
    ...process.env,
    PGSHOVEL_CLUSTER: fixture.cluster,
    PGSHOVEL_ZOOKEEPER_HOSTS: fixture.zkHosts,
    PGSHOVEL_LOG_FORMAT: "json",
  };
  return new Promise((resolve) => {
    execFile(
      PGSHOVEL,
      ["set", "verify", set, "--target", fixture.target.dsn, ...args],
      { env, maxBuffer: 64 << 20, timeout: 240_000 },
      (error, stdout, stderr) => {
        const code = error ? Number((error as { code?: unknown }).code ?? -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Runs statements on the target in one transaction that nothing captures or replays. */
export async function editTarget(target: TestDatabase, statements: string[]): Promise<void> {
  const client = await target.connect();
  try {
    await client.query("BEGIN");
    await client.query("SET LOCAL session_replication_role = replica");
    for (const statement of statements) await client.query(statement);
    await client.query("COMMIT");
  } finally {
    await client.end();
  }
}

/** A pgbench run that goes on until stopped. */
export interface Load {
  /** Stops pgbench (SIGINT) and waits for it to exit. */
  stop(): Promise<void>;
}

/** Starts pgbench (`clients` clients, TPC-B) against `db`; waits until it commits. */
export async function startLoad(db: TestDatabase, clients = 4): Promise<Load> {
  const [before] = await db.query<{ n: string }>("SELECT count(*) AS n FROM pgbench_history");
  const child = spawn(
    join(PG_BIN, "pgbench"),
    ["-h", db.server.host, "-p", String(db.server.port), "-U", db.server.user].concat([
      "-n",
      "-c",
      String(clients),
      "-T",
      "600",
      db.name,
    ]),
    { stdio: "ignore" },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await waitFor(
    async () => {
      const [now] = await db.query<{ n: string }>("SELECT count(*) AS n FROM pgbench_history");
      return Number(now!.n) >= Number(before!.n) + 50;
    },
    { timeoutMs: 60_000, description: "pgbench to commit transactions" },
  );
  return {
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
      await exited;
    },
  };
}

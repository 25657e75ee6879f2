/** Fixtures for the switchover and failover tests: pgshovel commands run to their end, pgbench, waits for equality. */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { repoRoot } from "../support/env.js";
import { pgbench, type SetFixture } from "../support/fixtures.js";
import type { TestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";
import { type ComparedTable, PGBENCH_COMPARED } from "./replicate-support.js";
import { checksum } from "./replication-support.js";

const execFileAsync = promisify(execFile);
const PG_BIN = "/usr/lib/postgresql/15/bin";

/** How a command ended, with what it printed. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `bin/pgshovel ARGS…` in the fixture's cluster to its end. */
export async function pgshovel(
  fixture: Pick<SetFixture, "cluster" | "zkHosts">,
  args: string[],
): Promise<CommandResult> {
  const env = {
    ...process.env,
    PGSHOVEL_CLUSTER: fixture.cluster,
    PGSHOVEL_ZOOKEEPER_HOSTS: fixture.zkHosts,
    PGSHOVEL_LOG_FORMAT: "json",
  };
  try {
    const { stdout, stderr } = await execFileAsync(join(repoRoot, "bin", "pgshovel"), args, {
      env,
      timeout: 120_000,
      maxBuffer: 32 << 20,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== "number") throw error;
    return { code: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

/** pgbench's tables without rows (and the key pgbench_history lacks): a target that has its own sequences. */
export async function prepareEmptyPgbench(db: TestDatabase): Promise<void> {
  await pgbench(db, ["-i", "-q", "-I", "dtp", "-s", "1"]);
  await db.query("ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY");
}

/** A pgbench run in the background: its end, with its stderr. */
export interface PgbenchRun {
  child: ChildProcess;
  done: Promise<{ code: number | null; stderr: string }>;
}

/** Starts pgbench against `db` (no vacuum) with `args`. */
export function startPgbench(db: TestDatabase, args: string[]): PgbenchRun {
  const { server, name } = db;
  const child = spawn(
    join(PG_BIN, "pgbench"),
    ["-h", server.host, "-p", String(server.port), "-U", server.user, "-n", ...args, name],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    stderr += chunk;
  });
  const done = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.once("close", (code) => resolve({ code, stderr })),
  );
  return { child, done };
}

/** Waits until every table has the same rows in `to` as in `from`. */
export async function waitForEqual(
  from: TestDatabase,
  to: TestDatabase,
  tables: ComparedTable[] = PGBENCH_COMPARED,
  timeoutMs = 60_000,
): Promise<void> {
  await waitFor(
    async () => {
      for (const table of tables) {
        const a = await checksum(from, table.name, table.columns, table.key);
        const b = await checksum(to, table.name, table.columns, table.key);
        if (a.count !== b.count || a.md5 !== b.md5) return false;
      }
      return true;
    },
    { timeoutMs, intervalMs: 250, description: `${to.name} to hold the rows of ${from.name}` },
  );
}

/** The SQLSTATE a statement fails with, or undefined when it succeeds. */
export async function failureCode(db: TestDatabase, sql: string): Promise<string | undefined> {
  try {
    await db.query(sql);
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
}

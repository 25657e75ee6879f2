/**
 * Fixtures for tests of `pgshovel replicate`: a source with a set, an empty target, the
 * command spawned against them, and row-for-row comparisons of both sides.
 */
import assert from "node:assert/strict";
import {
  preparePgbench,
  type RelayExit,
  type RelayProcess,
  type SetFixture,
  type StartPgshovelOptions,
  setupSet,
  startPgshovel,
} from "../support/fixtures.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import { withTimeout } from "../support/wait.js";
import { checksum } from "./replication-support.js";

/** A source database with set "s" and an empty target database. */
export interface ReplicateFixture extends SetFixture {
  target: TestDatabase;
}

/** A table compared between source and target: its key and the columns captured. */
export interface ComparedTable {
  name: string;
  key: string[];
  columns: string[];
}

/** pgbench's tables with their keys and columns. */
export const PGBENCH_COMPARED: ComparedTable[] = [
  { name: "pgbench_accounts", key: ["aid"], columns: ["aid", "bid", "abalance", "filler"] },
  { name: "pgbench_branches", key: ["bid"], columns: ["bid", "bbalance", "filler"] },
  { name: "pgbench_tellers", key: ["tid"], columns: ["tid", "bid", "tbalance", "filler"] },
  {
    name: "pgbench_history",
    key: ["id"],
    columns: ["id", "tid", "bid", "aid", "delta", "mtime", "filler"],
  },
];

/** Creates the source (`prepare` makes its tables, pgbench's by default), set "s" and a target. */
export async function replicateFixture(
  options: {
    prepare?: (db: TestDatabase) => Promise<void>;
    tables?: string[];
    prepareTarget?: (db: TestDatabase) => Promise<void>;
  } = {},
): Promise<ReplicateFixture> {
  const target = await createTestDatabase("repl_dst", { pgq: false });
  try {
    await options.prepareTarget?.(target);
    const source = await setupSet({
      prefix: "repl_src",
      prepare: options.prepare ?? preparePgbench,
      tables: options.tables ?? PGBENCH_COMPARED.map((t) => t.name),
    });
    return {
      ...source,
      target,
      close: async () => {
        await source.close();
        await target.drop();
      },
    };
  } catch (error) {
    await target.drop();
    throw error;
  }
}

/** Starts `pgshovel replicate s --target <target> ARGS…`. */
export function startReplicate(
  fixture: ReplicateFixture,
  args: string[] = [],
  options: StartPgshovelOptions = {},
): RelayProcess {
  return startPgshovel(
    fixture,
    ["replicate", fixture.set, "--target", fixture.target.dsn, ...args],
    options,
  );
}

/** Runs `replicate` to its end (a bound of `timeoutMs`); returns its exit and log. */
export async function runReplicate(
  fixture: ReplicateFixture,
  args: string[] = [],
  options: StartPgshovelOptions & { timeoutMs?: number } = {},
): Promise<RelayExit & { stderr: string }> {
  const worker = startReplicate(fixture, args, options);
  try {
    const exit = await withTimeout(
      worker.exited,
      options.timeoutMs ?? 120_000,
      `replicate ${args.join(" ")} to exit`,
    );
    await withTimeout(
      new Promise<void>((resolve) => {
        if (worker.ended()) resolve();
        else worker.child.once("close", () => resolve());
      }),
      10_000,
      "replicate's stderr to close",
    );
    return { ...exit, stderr: worker.stderr() };
  } catch (error) {
    worker.child.kill("SIGKILL");
    throw new Error(`${(error as Error).message}; stderr: ${worker.stderr().slice(-3000)}`);
  }
}

/** Asserts that every table has the same rows on both sides. */
export async function assertReplicaEqual(
  fixture: ReplicateFixture,
  tables: ComparedTable[] = PGBENCH_COMPARED,
): Promise<void> {
  for (const table of tables) {
    const source = await checksum(fixture.db, table.name, table.columns, table.key);
    const target = await checksum(fixture.target, table.name, table.columns, table.key);
    assert.deepEqual(target, source, `${table.name}: the replica differs from the source`);
  }
}

/** The JSON log lines of a process whose `msg` is `message`. */
export function logLines(stderr: string, message: string): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  for (const line of stderr.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const record = JSON.parse(line) as Record<string, unknown>;
      if (record.msg === message) lines.push(record);
    } catch {
      // a line torn by a kill
    }
  }
  return lines;
}

/** The ids of the batches a worker's log (at level debug) shows applied, in order. */
export function appliedBatchIds(stderr: string): string[] {
  return logLines(stderr, "batch applied").map((line) => String(line.batch));
}

/**
 * Bringing the target's copies in line with the set's tables: at start, and between
 * batches when the set changes. Tables that left the set are forgotten; tables not copied
 * yet are copied from one snapshot, after the stream's mark when the replica is new.
 */
import type { WriteGuard } from "../sinks/sink.js";
import type { Snapshot } from "../stream/types.js";
import type { ReplicaFeed } from "./feed.js";
import type { StoredReplica } from "./target.js";
import type { ReplicaTable } from "./target-schema.js";
import { display } from "./target-state.js";
import type { WorkerOptions, WorkerState } from "./worker-options.js";

/** What a worker knows of its replica while it runs: the set as configured and as stored. */
export interface ReplicaRun extends StoredReplica {
  /** The set's database. */
  dsn: string;
  /** The set's configuration version the tables come from. */
  version: number;
  tables: ReplicaTable[];
}

/** The copy snapshots of every table of the run; empty while one of them is not copied. */
export function copySnapshots(run: ReplicaRun): Snapshot[] {
  const snapshots: Snapshot[] = [];
  for (const table of run.tables) {
    const copy = run.copied.get(display(table));
    if (!copy) return [];
    snapshots.push(copy.snapshot);
  }
  return snapshots;
}

/**
 * Forgets the copies of tables no longer in the set, and copies the tables not copied yet.
 * A replica without a stored position or mark takes its mark first (`feed.mark()`, stored
 * in the target) — before the copy's snapshot, so nothing the copy misses is behind it. A
 * resumed bootstrap keeps the first mark. No batch is applied while the copy runs.
 */
export async function settleTables(
  run: ReplicaRun,
  options: Pick<WorkerOptions, "target" | "logger" | "jobs" | "progress" | "observer" | "noCopy">,
  feed: ReplicaFeed,
  onState: (state: WorkerState) => void,
  guard?: WriteGuard,
): Promise<void> {
  const { target, logger } = options;
  const names = new Set(run.tables.map(display));
  const gone = [...run.copied.values()].filter((table) => !names.has(display(table)));
  if (gone.length > 0) {
    guard?.check();
    await target.forget(gone);
    for (const table of gone) run.copied.delete(display(table));
    logger.info(
      { tables: gone.map(display) },
      "tables left the set: no longer applied (their rows stay on the target)",
    );
  }
  const missing = run.tables.filter((table) => !run.copied.has(display(table)));
  if (missing.length === 0) return;
  // Only a new replica starts without a copy: a table added later is copied as always.
  const withoutCopy = options.noCopy === true && !run.position && run.copied.size === 0;
  if (!run.position && !run.mark) {
    run.mark = { stream: await feed.mark(), feed: feed.description };
    guard?.check();
    await target.storeMark(run.mark);
    logger.info(
      { feed: feed.description, position: run.mark.stream?.toString() ?? null },
      "stream position marked before the bootstrap snapshot",
    );
  }
  onState("bootstrapping");
  const list = missing.map(display);
  logger.info(
    { tables: list, jobs: options.jobs },
    withoutCopy
      ? "taking the target's tables as they are, without a copy"
      : "copying tables from one snapshot of the source",
  );
  const reporter = options.progress?.(list);
  try {
    const result = await target.copy(run.dsn, missing, {
      jobs: options.jobs,
      ...(reporter ? { onProgress: (progress) => reporter.update(progress) } : {}),
      ...(guard ? { guard } : {}),
      ...(withoutCopy ? { withoutCopy } : {}),
    });
    for (const { table, rows } of result.copied) {
      logger.info({ table: display(table), rows: rows.toString() }, "table copied");
      options.observer?.copied?.(display(table), rows);
    }
  } finally {
    reporter?.stop();
  }
  run.copied = (await target.stored()).copied;
}

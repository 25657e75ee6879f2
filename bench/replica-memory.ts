/**
 * Replica figure 3, memory: the peak resident size (VmHWM) of `replicate`
 * applying one batch of a single transaction of N inserted rows, against its
 * resident size once bootstrapped and idle.
 */
import { setTimeout as delay } from "node:timers/promises";
import { RELAY_KILL_AFTER_MS, setupSet, stopRelay, waitForLog } from "../test/support/fixtures.js";
import { createTestDatabase } from "../test/support/postgres.js";
import { waitFor } from "../test/support/wait.js";
import { fillBacklog, ROWS_DDL, ROWS_TABLE } from "./backlog.js";
import { peakResidentMB, replicateUntilCaughtUp, startReplicate } from "./replica-support.js";
import { type FigureResult, fmt, target } from "./report.js";
import { nowMs, round } from "./stats.js";

/** Options of the replica memory figure. */
export interface ReplicaMemoryOptions {
  rows: number;
  log: (line: string) => void;
}

/** Runs the memory figure on the shared stack. */
export async function runReplicaMemory(options: ReplicaMemoryOptions): Promise<FigureResult> {
  const fixture = await setupSet({
    prefix: "bench_rmem",
    tables: [ROWS_TABLE],
    prepare: async (db) => {
      await db.query(ROWS_DDL);
    },
  });
  const replica = await createTestDatabase("bench_rmem_t", { pgq: false });
  try {
    await replicateUntilCaughtUp(fixture, replica.dsn, ["--create-tables"]);
    const worker = startReplicate(fixture, replica.dsn);
    const control = await fixture.db.connect();
    try {
      await waitForLog(worker, "caught up with the feed", 120_000);
      let idleMB = 0;
      for (let i = 0; i < 10; i++) {
        await delay(100);
        idleMB = Math.max(idleMB, await peakResidentMB(worker.pid));
      }
      const fill = await fillBacklog(control, fixture.queue, 1, options.rows, options.rows);
      options.log(
        `replica memory: ${fmt(options.rows)} rows in one transaction (${fill.seconds.toFixed(1)} s)`,
      );
      const started = nowMs();
      await waitFor(
        async () => {
          const rows = await replica.query<{ n: string }>(
            `SELECT count(*)::text AS n FROM ${ROWS_TABLE}`,
          );
          return Number(rows[0]!.n) >= options.rows;
        },
        {
          timeoutMs: 600_000,
          intervalMs: 100,
          description: "the replica to hold the big transaction",
          abandonWhen: () => (worker.ended() ? "replicate exited" : undefined),
        },
      );
      const applySeconds = (nowMs() - started) / 1000;
      const peakMB = round(await peakResidentMB(worker.pid), 1);
      options.log(`replica memory: idle ${round(idleMB, 1)} MB, peak ${peakMB} MB`);
      const check = target("replica peak RSS MB", peakMB, "<", 250);
      return {
        id: "replica-memory",
        title: "replica memory",
        measuredAt: new Date().toISOString(),
        parameters: {
          rows: options.rows,
          transaction: "one INSERT … SELECT generate_series: one PgQ batch",
          peak: "VmHWM of /proc/<pid>/status once the target holds every row",
          idle: "largest VmHWM of 10 samples over 1 s after `caught up with the feed`",
        },
        values: { peakMB, idleMB: round(idleMB, 1), applySeconds: round(applySeconds, 2) },
        ratios: { peakToIdle: round(peakMB / idleMB, 2) },
        runs: [{ peakMB, idleMB: round(idleMB, 1), applySeconds: round(applySeconds, 2) }],
        targets: [check],
        rows: [
          {
            figure: `replica memory, one batch of ${fmt(options.rows)} inserted rows (applied in ${applySeconds.toFixed(1)} s)`,
            measured: `peak RSS ${peakMB} MB`,
            baseline: `${round(idleMB, 1)} MB idle`,
            ratio: (peakMB / idleMB).toFixed(2),
            target: "< 250 MB",
            met: check.met,
          },
        ],
      };
    } finally {
      await control.end().catch(() => {});
      await stopRelay(worker, RELAY_KILL_AFTER_MS);
    }
  } finally {
    await replica.drop().catch(() => {});
    await fixture.close();
  }
}

/**
 * How the bootstrap copy shows its progress: a bar per table on a terminal, otherwise a
 * log line per table every few seconds with its rows, rate and estimated time left.
 */
import cliProgress from "cli-progress";
import type { Logger } from "../log.js";
import type { CopyProgress } from "./bootstrap.js";
import type { CopyReporter } from "./worker-options.js";

/** Options of {@link copyReporter}. */
export interface CopyReporterOptions {
  /** Draw bars on this terminal stream (stderr); without it, log lines. */
  terminal?: NodeJS.WriteStream | undefined;
  /** Least time between two log lines of one table (default 5 s). */
  logIntervalMs?: number;
}

/** Seconds left at `rate` for the rows between `rows` and the estimate; undefined when unknown. */
export function etaSeconds(progress: CopyProgress): number | undefined {
  const { totalEstimate, rows, rowsPerSecond } = progress;
  if (totalEstimate === undefined || rowsPerSecond <= 0) return undefined;
  return Math.max(0, (totalEstimate - rows) / rowsPerSecond);
}

function bars(terminal: NodeJS.WriteStream, tables: string[]): CopyReporter {
  const width = Math.max(...tables.map((t) => t.length));
  const multi = new cliProgress.MultiBar(
    {
      stream: terminal,
      format: "{table} [{bar}] {percentage}% | {value} rows | {rate} rows/s | ETA {eta_formatted}",
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  const byTable = new Map(
    tables.map((table) => [table, multi.create(1, 0, { table: table.padEnd(width), rate: 0 })]),
  );
  return {
    update(progress) {
      const bar = byTable.get(progress.table);
      if (!bar) return;
      // An estimate below the rows seen (stale statistics) grows with them.
      const total = progress.done
        ? progress.rows
        : Math.max(progress.totalEstimate ?? 0, progress.rows + 1);
      bar.setTotal(Math.max(1, total));
      bar.update(progress.rows, { rate: Math.round(progress.rowsPerSecond) });
    },
    stop() {
      multi.stop();
    },
  };
}

function logLines(logger: Logger, intervalMs: number): CopyReporter {
  const loggedAt = new Map<string, number>();
  return {
    update(progress) {
      const now = Date.now();
      const last = loggedAt.get(progress.table);
      // The first report only sets the clock: a table copied within the interval logs once.
      if (last === undefined) loggedAt.set(progress.table, now);
      if (!progress.done && (last === undefined || now - last < intervalMs)) return;
      loggedAt.set(progress.table, now);
      const eta = etaSeconds(progress);
      logger.info(
        {
          table: progress.table,
          rows: progress.rows,
          ...(progress.totalEstimate === undefined ? {} : { estimate: progress.totalEstimate }),
          rowsPerSecond: Math.round(progress.rowsPerSecond),
          ...(eta === undefined || progress.done ? {} : { etaSeconds: Math.round(eta) }),
        },
        progress.done ? "copy of the table done" : "copying",
      );
    },
    stop() {},
  };
}

/** The reporter factory the worker calls for each round of copies. */
export function copyReporter(
  logger: Logger,
  options: CopyReporterOptions = {},
): (tables: string[]) => CopyReporter {
  const { terminal } = options;
  return (tables) =>
    terminal ? bars(terminal, tables) : logLines(logger, options.logIntervalMs ?? 5_000);
}

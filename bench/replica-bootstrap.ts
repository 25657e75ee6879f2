/**
 * Replica figure 2, bootstrap: rows/s of `replicate --until-caught-up` copying
 * pgbench's tables into an empty target (jobs 1 and 2), against
 * `pg_dump --data-only -t … | psql` of the same tables into empty tables.
 */
import { spawn } from "node:child_process";
import { PGBENCH_TABLES, pgbench, setupSet } from "../test/support/fixtures.js";
import { createTestDatabase, type TestDatabase } from "../test/support/postgres.js";
import { loadAverage, replicateUntilCaughtUp } from "./replica-support.js";
import { type FigureResult, fmt, type target } from "./report.js";
import { median, nowMs, round } from "./stats.js";

/** Options of the replica bootstrap figure. */
export interface ReplicaBootstrapOptions {
  scale: number;
  rounds: number;
  log: (line: string) => void;
}

const PG_BIN = "/usr/lib/postgresql/15/bin";

/** `pg_dump --data-only -t …` of the source piped into `psql` on the target; seconds. */
function dumpAndRestore(source: TestDatabase, into: TestDatabase): Promise<number> {
  const started = nowMs();
  const conn = (db: TestDatabase) => [
    "-h",
    db.server.host,
    "-p",
    String(db.server.port),
    "-U",
    db.server.user,
  ];
  return new Promise((resolve, reject) => {
    const dump = spawn(
      `${PG_BIN}/pg_dump`,
      [...conn(source), "--data-only", ...PGBENCH_TABLES.flatMap((t) => ["-t", t]), source.name],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const psql = spawn(
      `${PG_BIN}/psql`,
      [...conn(into), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", into.name],
      { stdio: ["pipe", "ignore", "inherit"] },
    );
    dump.stdout.pipe(psql.stdin);
    let dumpCode: number | null = null;
    dump.on("exit", (code) => {
      dumpCode = code;
    });
    psql.on("exit", (code) => {
      if (code === 0 && dumpCode === 0) resolve((nowMs() - started) / 1000);
      else reject(new Error(`pg_dump | psql failed (pg_dump ${dumpCode}, psql ${code})`));
    });
  });
}

/** pgbench's empty tables with their keys (the history's id as on the source). */
async function emptyPgbenchTables(db: TestDatabase): Promise<void> {
  await pgbench(db, ["-i", "-q", "-I", "dtp", "-s", "1"]);
  await db.query("ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY");
}

/** Runs the bootstrap figure on the shared stack. */
export async function runReplicaBootstrap(options: ReplicaBootstrapOptions): Promise<FigureResult> {
  const loadBefore = await loadAverage();
  const initStarted = nowMs();
  const fixture = await setupSet({
    prefix: "bench_rboot",
    tables: PGBENCH_TABLES,
    prepare: async (db) => {
      await pgbench(db, ["-i", "-q", "-s", String(options.scale)]);
      await db.query("ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY");
    },
  });
  try {
    const counted = await fixture.db.query<{ n: string }>(
      `SELECT (${PGBENCH_TABLES.map((t) => `(SELECT count(*) FROM ${t})`).join(" + ")})::text AS n`,
    );
    const rows = Number(counted[0]!.n);
    options.log(
      `replica bootstrap: pgbench scale ${options.scale}, ${fmt(rows)} rows, made in ${((nowMs() - initStarted) / 1000).toFixed(0)} s`,
    );
    const runs: Record<string, number>[] = [];
    for (let r = 0; r < options.rounds; r++) {
      const order = r % 2 === 0 ? ["jobs1", "dump", "jobs2"] : ["jobs2", "dump", "jobs1"];
      const run: Record<string, number> = { round: r + 1, rows };
      for (const what of order) {
        const target = await createTestDatabase("bench_rboot_t", { pgq: false });
        try {
          if (what === "dump") {
            await emptyPgbenchTables(target);
            run.dumpSeconds = round(await dumpAndRestore(fixture.db, target), 2);
          } else {
            const jobs = what === "jobs1" ? "1" : "2";
            run[`${what}Seconds`] = round(
              await replicateUntilCaughtUp(fixture, target.dsn, [
                "--create-tables",
                "--jobs",
                jobs,
              ]),
              2,
            );
          }
        } finally {
          await target.drop();
        }
        run[`${what}RowsPerSecond`] = Math.round(rows / run[`${what}Seconds`]!);
      }
      options.log(
        `replica bootstrap round ${r + 1}: jobs 1 ${fmt(run.jobs1RowsPerSecond!)}, jobs 2 ${fmt(run.jobs2RowsPerSecond!)}, pg_dump | psql ${fmt(run.dumpRowsPerSecond!)} rows/s`,
      );
      runs.push(run);
    }
    const pick = (key: string) => Math.round(median(runs.map((x) => x[key]!)));
    const ratio = (key: string) =>
      round(median(runs.map((x) => x[`${key}RowsPerSecond`]! / x.dumpRowsPerSecond!)), 2);
    const dump = pick("dumpRowsPerSecond");
    const loadAfter = await loadAverage();
    const row = (jobs: 1 | 2) => ({
      figure: `replica bootstrap, pgbench scale ${options.scale} (${fmt(rows)} rows), --jobs ${jobs}`,
      measured: `${fmt(pick(`jobs${jobs}RowsPerSecond`))} rows/s`,
      baseline: `pg_dump --data-only | psql ${fmt(dump)} rows/s`,
      ratio: ratio(`jobs${jobs}`).toFixed(2),
      target: "–",
      met: null,
    });
    return {
      id: "replica-bootstrap",
      title: "replica bootstrap",
      measuredAt: new Date().toISOString(),
      parameters: {
        scale: options.scale,
        rows,
        rounds: options.rounds,
        pgshovel:
          "spawn to exit of `replicate --create-tables --until-caught-up` into an empty database",
        baseline:
          "pg_dump --data-only -t <the 4 tables> | psql into pgbench's empty tables with keys",
        loadAverage: [loadBefore, loadAfter],
      },
      values: {
        jobs1RowsPerSecond: pick("jobs1RowsPerSecond"),
        jobs2RowsPerSecond: pick("jobs2RowsPerSecond"),
        dumpRowsPerSecond: dump,
      },
      ratios: { jobs1ToDump: ratio("jobs1"), jobs2ToDump: ratio("jobs2") },
      runs,
      targets: [] as ReturnType<typeof target>[],
      rows: [row(1), row(2)],
    };
  } finally {
    await fixture.close();
  }
}

/**
 * Replica figure 1, apply: rows/s of `replicate --from queue --until-caught-up`
 * applying a backlog of pgbench mutations, against PostgreSQL's logical
 * replication applying the same backlog and a plain COPY of as many rows, all
 * on one private server (logical replication needs `wal_level = logical`,
 * which the shared stack does not run with).
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { stackEnv } from "../test/support/env.js";
import { PGBENCH_TABLES, pgbench, preparePgbench, setupSet } from "../test/support/fixtures.js";
import { adminQuery, createTestDatabase, type TestDatabase } from "../test/support/postgres.js";
import { startPrivatePostgres } from "../test/support/private-services.js";
import { waitFor } from "../test/support/wait.js";
import { loadAverage, replicateUntilCaughtUp } from "./replica-support.js";
import { type FigureResult, fmt, target } from "./report.js";
import { median, nowMs, round } from "./stats.js";

/** Options of the replica apply figure. */
export interface ReplicaApplyOptions {
  /** Mutations per backlog (pgbench's default script: 4 per transaction). */
  mutations: number;
  rounds: number;
  log: (line: string) => void;
}

/** pgbench's default (TPC-B like) transaction: three UPDATEs and one INSERT. */
const MUTATIONS_PER_TRANSACTION = 4;
const CLIENTS = 2;

async function historyCount(db: TestDatabase): Promise<number> {
  const rows = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM pgbench_history");
  return Number(rows[0]!.n);
}

/** Enables the subscription and times until the target holds every row and the slot is flushed. */
async function nativeApply(
  source: TestDatabase,
  native: TestDatabase,
  slot: string,
  endLsn: string,
): Promise<{ seconds: number; flushSeconds: number }> {
  const expected = await historyCount(source);
  const started = nowMs();
  await native.query("ALTER SUBSCRIPTION bench_sub ENABLE");
  let visibleAt: number | undefined;
  let flushedAt: number | undefined;
  await waitFor(
    async () => {
      if (visibleAt === undefined && (await historyCount(native)) === expected) visibleAt = nowMs();
      if (flushedAt === undefined) {
        const rows = await source.query<{ done: boolean }>(
          "SELECT confirmed_flush_lsn >= $2::pg_lsn AS done FROM pg_replication_slots WHERE slot_name = $1",
          [slot, endLsn],
        );
        if (rows[0]?.done) flushedAt = nowMs();
      }
      return visibleAt !== undefined && flushedAt !== undefined;
    },
    { timeoutMs: 900_000, intervalMs: 50, description: "logical replication to catch up" },
  );
  await native.query("ALTER SUBSCRIPTION bench_sub DISABLE");
  return {
    seconds: (visibleAt! - started) / 1000,
    flushSeconds: (flushedAt! - started) / 1000,
  };
}

/** COPY of `rows` pgbench_history-shaped rows into an empty table of `db`. */
async function plainCopy(db: TestDatabase, rows: number): Promise<number> {
  await db.query(
    "CREATE TABLE IF NOT EXISTS copy_sink (id int8 PRIMARY KEY, tid int4, bid int4, aid int4, delta int4, mtime timestamp, filler char(22))",
  );
  await db.query("TRUNCATE copy_sink");
  const client: pg.Client = await db.connect();
  try {
    const lines = function* () {
      for (let i = 1; i <= rows; i++) {
        yield `${i}\t${i % 10}\t1\t${i % 100_000}\t${(i % 10_000) - 5000}\t2026-01-01 00:00:00\t\\N\n`;
      }
    };
    const started = nowMs();
    await pipeline(Readable.from(lines()), client.query(copyFrom("COPY copy_sink FROM STDIN")));
    return (nowMs() - started) / 1000;
  } finally {
    await client.end();
  }
}

/** Runs the apply figure on a private PostgreSQL with wal_level = logical. */
export async function runReplicaApply(options: ReplicaApplyOptions): Promise<FigureResult> {
  const server = await startPrivatePostgres({ pgqd: true });
  const loadBefore = await loadAverage();
  try {
    await adminQuery("ALTER SYSTEM SET wal_level = logical", [], { server: server.server });
    await server.stop();
    await server.start();
    const fixture = await setupSet({
      prefix: "bench_rapply",
      tables: PGBENCH_TABLES,
      prepare: preparePgbench,
      server: server.server,
      zkHosts: stackEnv().zookeeperHosts,
    });
    const replica = await createTestDatabase("bench_rapply_replica", {
      server: server.server,
      pgq: false,
    });
    const native = await createTestDatabase("bench_rapply_native", {
      server: server.server,
      pgq: false,
    });
    const slot = "bench_slot";
    try {
      // Both replicas start from the state pgbench -i leaves (deterministic data).
      await replicateUntilCaughtUp(fixture, replica.dsn, ["--create-tables"]);
      await preparePgbench(native);
      await fixture.db.query(`CREATE PUBLICATION bench_pub FOR TABLE ${PGBENCH_TABLES.join(", ")}`);
      await fixture.db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
      const conninfo = `host=${server.host} port=${server.port} user=${server.user} dbname=${fixture.db.name}`;
      await native.query(
        `CREATE SUBSCRIPTION bench_sub CONNECTION '${conninfo}' PUBLICATION bench_pub
           WITH (create_slot = false, slot_name = '${slot}', copy_data = false, enabled = false)`,
      );
      const perClient = Math.ceil(options.mutations / MUTATIONS_PER_TRANSACTION / CLIENTS);
      const mutations = perClient * CLIENTS * MUTATIONS_PER_TRANSACTION;
      const runs: Record<string, unknown>[] = [];
      for (let r = 0; r < options.rounds; r++) {
        const built = nowMs();
        await pgbench(fixture.db, [
          "-n",
          "-c",
          String(CLIENTS),
          "-j",
          "2",
          "-t",
          String(perClient),
        ]);
        const buildSeconds = (nowMs() - built) / 1000;
        const lsn = await fixture.db.query<{ lsn: string }>(
          "SELECT pg_current_wal_lsn()::text AS lsn",
        );
        const endLsn = lsn[0]!.lsn;
        options.log(
          `replica apply round ${r + 1}: backlog of ${fmt(mutations)} mutations built in ${buildSeconds.toFixed(1)} s`,
        );
        const run: Record<string, number> = { round: r + 1, mutations, buildSeconds };
        const order = r % 2 === 0 ? ["pgshovel", "native", "copy"] : ["copy", "native", "pgshovel"];
        for (const what of order) {
          if (what === "pgshovel") {
            run.pgshovelSeconds = round(await replicateUntilCaughtUp(fixture, replica.dsn), 2);
            // The same run with nothing to apply: start-up, election and the caught-up rule.
            run.pgshovelIdleSeconds = round(await replicateUntilCaughtUp(fixture, replica.dsn), 2);
          } else if (what === "native") {
            const n = await nativeApply(fixture.db, native, slot, endLsn);
            run.nativeSeconds = round(n.seconds, 2);
            run.nativeFlushSeconds = round(n.flushSeconds, 2);
          } else {
            run.copySeconds = round(await plainCopy(native, mutations), 2);
          }
        }
        run.pgshovelRowsPerSecond = Math.round(mutations / run.pgshovelSeconds!);
        run.pgshovelNetRowsPerSecond = Math.round(
          mutations / Math.max(0.01, run.pgshovelSeconds! - run.pgshovelIdleSeconds!),
        );
        run.nativeRowsPerSecond = Math.round(mutations / run.nativeSeconds!);
        run.copyRowsPerSecond = Math.round(mutations / run.copySeconds!);
        options.log(
          `replica apply round ${r + 1}: pgshovel ${fmt(run.pgshovelRowsPerSecond)} (${fmt(run.pgshovelNetRowsPerSecond)} without its ${run.pgshovelIdleSeconds} s idle run), logical replication ${fmt(run.nativeRowsPerSecond)}, COPY ${fmt(run.copyRowsPerSecond)} rows/s`,
        );
        runs.push(run);
      }
      const pick = (key: string) => median(runs.map((x) => x[key] as number));
      const ratioNative = median(
        runs.map((x) => (x.pgshovelRowsPerSecond as number) / (x.nativeRowsPerSecond as number)),
      );
      const ratioCopy = median(
        runs.map((x) => (x.pgshovelRowsPerSecond as number) / (x.copyRowsPerSecond as number)),
      );
      const rate = Math.round(pick("pgshovelRowsPerSecond"));
      const nativeRate = Math.round(pick("nativeRowsPerSecond"));
      const copyRate = Math.round(pick("copyRowsPerSecond"));
      const spread = (key: string) =>
        `${fmt(Math.min(...runs.map((x) => x[key] as number)))}–${fmt(Math.max(...runs.map((x) => x[key] as number)))}`;
      const checks = [
        target("replica apply rows/s", rate, ">=", 30_000),
        target("ratio to logical replication", round(ratioNative, 2), ">=", 0.8),
      ];
      const loadAfter = await loadAverage();
      return {
        id: "replica-apply",
        title: "replica apply",
        measuredAt: new Date().toISOString(),
        parameters: {
          mutations,
          rounds: options.rounds,
          workload: `pgbench default script, -c ${CLIENTS}, ${perClient} transactions per client, scale 1`,
          server:
            "private PostgreSQL 15, wal_level = logical, fsync off; source and targets in one cluster",
          pgshovel:
            "spawn to exit of `replicate --from queue --until-caught-up` (start-up included)",
          native: "ALTER SUBSCRIPTION ENABLE until the target holds every pgbench_history row",
          copy: "COPY of as many pgbench_history-shaped rows into an empty table",
          loadAverage: [loadBefore, loadAfter],
        },
        values: {
          rowsPerSecond: rate,
          nativeRowsPerSecond: nativeRate,
          copyRowsPerSecond: copyRate,
          netRowsPerSecond: Math.round(pick("pgshovelNetRowsPerSecond")),
          idleRunSeconds: pick("pgshovelIdleSeconds"),
        },
        ratios: { toNative: round(ratioNative, 2), toCopy: round(ratioCopy, 2) },
        runs,
        targets: checks,
        rows: [
          {
            figure: `replica apply, ${fmt(mutations)} pgbench mutations from the queue (${options.rounds} rounds, pgshovel ${spread("pgshovelRowsPerSecond")})`,
            measured: `${fmt(rate)} rows/s`,
            baseline: `logical replication ${fmt(nativeRate)} rows/s (${spread("nativeRowsPerSecond")})`,
            ratio: ratioNative.toFixed(2),
            target: "≥ 30,000 rows/s, ≥ 0.8×",
            met: checks.every((c) => c.met),
          },
          {
            figure: `replica apply against a plain COPY of as many rows (a run with nothing to apply takes ${pick("pgshovelIdleSeconds")} s; without it pgshovel applies ${fmt(Math.round(pick("pgshovelNetRowsPerSecond")))} rows/s)`,
            measured: `${fmt(rate)} rows/s`,
            baseline: `COPY ${fmt(copyRate)} rows/s (${spread("copyRowsPerSecond")})`,
            ratio: ratioCopy.toFixed(2),
            target: "–",
            met: null,
          },
        ],
      };
    } finally {
      await native.query("ALTER SUBSCRIPTION bench_sub DISABLE").catch(() => {});
      await native.query("ALTER SUBSCRIPTION bench_sub SET (slot_name = NONE)").catch(() => {});
      await native.query("DROP SUBSCRIPTION IF EXISTS bench_sub").catch(() => {});
      await fixture.db.query("SELECT pg_drop_replication_slot($1)", [slot]).catch(() => {});
      await native.drop().catch(() => {});
      await replica.drop().catch(() => {});
      await fixture.close().catch(() => {});
    }
  } finally {
    await server.destroy();
  }
}

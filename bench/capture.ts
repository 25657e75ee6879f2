/**
 * Figure 1, capture overhead: pgbench's tpcb-like workload (scale 10) with the set's
 * triggers on its four tables — the default (statement mode on the C function of
 * ext/pgshovel_capture), row mode and statement mode in PL/pgSQL — and, in the default mode,
 * on three (pgbench_history, append-only, left out), against the same workload without
 * triggers and with PgQ's C trigger pgq.jsontriga, alternating, median of each.
 */
import pg from "pg";
import { resolveTables } from "../src/capture/catalog.js";
import { installTableCapture } from "../src/capture/install.js";
import { nativeCaptureAvailable } from "../src/capture/native.js";
import { dbNames, ident } from "../src/config/names.js";
import { PGBENCH_TABLES, pgbench, setupSet } from "../test/support/fixtures.js";
import type { PgServer, TestDatabase } from "../test/support/postgres.js";
import { startPrivatePostgres } from "../test/support/private-services.js";
import { type FigureResult, fmt, target } from "./report.js";
import { median, round } from "./stats.js";

const JSONTRIGA_QUEUE = "bench_jsontriga";
const JSONTRIGA_TRIGGER = "bench_jsontriga";

/**
 * The trigger configurations compared: pgshovel's default where the C function is installed
 * (statement mode on it) on 4 and 3 tables, row mode and statement mode in PL/pgSQL on 4.
 */
const MODES = [
  "none",
  "pgshovel",
  "pgshovel-3",
  "pgshovel-row",
  "pgshovel-statement-plpgsql",
  "jsontriga",
] as const;
type Mode = (typeof MODES)[number];
const SCALE = 10;
const THREADS = 2;

/** Options of the capture figure. */
export interface CaptureOptions {
  seconds: number;
  clients: number;
  rounds: number;
  /**
   * Measure on a private PostgreSQL with durable commits (fsync and synchronous_commit
   * on, as on a production primary) instead of the development stack, which has both off.
   */
  durable?: boolean;
  log: (line: string) => void;
}

/** Enables exactly the triggers of `mode` on pgbench's tables (pgshovel's reinstalled in that mode). */
async function useMode(db: TestDatabase, cluster: string, mode: Mode): Promise<void> {
  const ours = mode.startsWith("pgshovel");
  if (ours) {
    const client = await db.connect();
    try {
      const tables = await resolveTables(
        client,
        PGBENCH_TABLES.map((name) => ({ name, schema: "public" })),
      );
      const native = mode === "pgshovel" || mode === "pgshovel-3";
      if (native) {
        await client.query("BEGIN");
        const { available, failed } = await nativeCaptureAvailable(client);
        await client.query("COMMIT");
        if (!available) throw new Error(`the pgshovel_capture extension is needed: ${failed}`);
      }
      for (const table of tables) {
        await installTableCapture(client, {
          cluster,
          set: "s",
          table,
          configVersion: 0,
          mode: mode === "pgshovel-row" ? "row" : "statement",
          native,
        });
      }
    } finally {
      await client.end();
    }
  }
  const prefix = dbNames.trigger(cluster, "s");
  for (const table of PGBENCH_TABLES) {
    const triggers = await db.query<{ name: string }>(
      "SELECT tgname AS name FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal",
      [table],
    );
    const action = (on: boolean) => (on ? "ENABLE" : "DISABLE");
    const statements = triggers.map(({ name }) => {
      const on = name.startsWith(prefix)
        ? ours && !(mode === "pgshovel-3" && table === "pgbench_history")
        : mode === "jsontriga";
      return `ALTER TABLE ${table} ${action(on)} TRIGGER ${ident(name)}`;
    });
    await db.query(statements.join("; "));
  }
}

/** Runs the capture overhead figure. */
export async function runCapture(options: CaptureOptions): Promise<FigureResult> {
  if (!options.durable) return measureCapture(options);
  const server = await startPrivatePostgres();
  try {
    const admin = new pg.Client({ connectionString: server.dsn() });
    await admin.connect();
    try {
      await admin.query("ALTER SYSTEM SET fsync = on");
      await admin.query("ALTER SYSTEM SET synchronous_commit = on");
      await admin.query("SELECT pg_reload_conf()");
    } finally {
      await admin.end();
    }
    return await measureCapture(options, server.server);
  } finally {
    await server.destroy();
  }
}

async function measureCapture(options: CaptureOptions, server?: PgServer): Promise<FigureResult> {
  const fixture = await setupSet({
    ...(server ? { server } : {}),
    prefix: "bench_capture",
    tables: PGBENCH_TABLES,
    prepare: async (db) => {
      await pgbench(db, ["-i", "-q", "-s", String(SCALE)]);
      await db.query("ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY");
      await db.query("SELECT pgq.create_queue($1)", [JSONTRIGA_QUEUE]);
      for (const table of PGBENCH_TABLES) {
        await db.query(
          `CREATE TRIGGER ${JSONTRIGA_TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON ${table}
             FOR EACH ROW EXECUTE PROCEDURE pgq.jsontriga('${JSONTRIGA_QUEUE}')`,
        );
      }
    },
  });
  try {
    const perMode = () =>
      Object.fromEntries(MODES.map((m) => [m, [] as number[]])) as Record<Mode, number[]>;
    const tps = perMode();
    // WAL bytes per transaction, the pgbench run alone
    const wal = perMode();
    const runs: Record<string, unknown>[] = [];
    for (let round = 0; round < options.rounds; round++) {
      // Rotate the order so that no mode always runs first (or right after a vacuum of the others' garbage).
      const order = MODES.map((_, i) => MODES[(i + round) % MODES.length]!);
      for (const mode of order) {
        await useMode(fixture.db, fixture.cluster, mode);
        // Vacuum every pgbench table first (what -v does), so each run starts from the same
        // state, and outside the WAL measured.
        await fixture.db.query(`VACUUM ${PGBENCH_TABLES.join(", ")}`);
        const [before] = await fixture.db.query<{ lsn: string }>(
          "SELECT pg_current_wal_insert_lsn()::text AS lsn",
        );
        const out = await pgbench(fixture.db, [
          "-b",
          "tpcb-like",
          "-n",
          "-c",
          String(options.clients),
          "-j",
          String(Math.min(THREADS, options.clients)),
          "-T",
          String(options.seconds),
        ]);
        const match = /tps = ([\d.]+) \(without initial connection time\)/.exec(out);
        if (!match) throw new Error(`cannot read the TPS in pgbench's output:\n${out}`);
        const value = Number(match[1]);
        tps[mode].push(value);
        const processed = /number of transactions actually processed: (\d+)/.exec(out);
        const [after] = await fixture.db.query<{ bytes: string }>(
          "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)::text AS bytes",
          [before!.lsn],
        );
        wal[mode].push(Number(after!.bytes) / Number(processed?.[1] ?? Number.NaN));
        runs.push({ round, mode, tps: value, walPerTransaction: wal[mode].at(-1) });
        options.log(
          `capture${options.durable ? " (durable)" : ""} round ${round + 1}/${options.rounds} ${mode}: ${fmt(value)} TPS`,
        );
      }
    }
    const none = median(tps.none);
    const ours = median(tps.pgshovel);
    const jsontriga = median(tps.jsontriga);
    const rowMode = median(tps["pgshovel-row"]);
    const statementModePlpgsql = median(tps["pgshovel-statement-plpgsql"]);
    const threeTables = median(tps["pgshovel-3"]);
    // WAL the capture adds per captured row (four rows per transaction, three without
    // history), shown only on a private server: the stack's WAL is shared with whatever else
    // runs on it.
    const walPerRow = (mode: Mode) => {
      if (!server) return "";
      const rows = mode === "pgshovel-3" ? 3 : 4;
      const bytes = (median(wal[mode]) - median(wal.none)) / rows;
      return `, +${fmt(Math.round(bytes))} B WAL per captured row`;
    };
    const ratio = ours / none;
    const jsontrigaRatio = jsontriga / none;
    const checks = [target("pgshovel TPS / no-trigger TPS", round(ratio, 3), ">=", 0.66)];
    const settings = await fixture.db.query<{ fsync: string; sync: string }>(
      "SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sync",
    );
    const durability = `fsync ${settings[0]!.fsync}, synchronous_commit ${settings[0]!.sync}`;
    if (options.durable && (settings[0]!.fsync !== "on" || settings[0]!.sync !== "on"))
      throw new Error(`the durable capture figure runs with ${durability}`);
    const how = `pgbench tpcb-like, -c ${options.clients} -j ${Math.min(THREADS, options.clients)}, ${options.seconds} s, scale ${SCALE}, ${durability}, median of ${options.rounds}`;
    const label = options.durable ? "capture overhead, durable commits" : "capture overhead";
    return {
      id: options.durable ? "capture-durable" : "capture",
      title: label,
      measuredAt: new Date().toISOString(),
      parameters: {
        ...options,
        log: undefined,
        scale: SCALE,
        builtin: "tpcb-like",
        vacuum: "VACUUM of the pgbench tables before each run (as -v), then -n",
        durability,
      },
      values: {
        tpsNoTriggers: round(none, 1),
        tpsPgshovel: round(ours, 1),
        tpsJsontriga: round(jsontriga, 1),
        tpsPgshovelThreeTables: round(threeTables, 1),
        tpsPgshovelRowMode: round(rowMode, 1),
        tpsPgshovelStatementModePlpgsql: round(statementModePlpgsql, 1),
        ...Object.fromEntries(
          MODES.map((m) => [`walBytesPerTransaction:${m}`, round(median(wal[m]), 0)]),
        ),
      },
      ratios: {
        pgshovel: round(ratio, 3),
        pgshovelThreeTables: round(threeTables / none, 3),
        pgshovelRowMode: round(rowMode / none, 3),
        pgshovelStatementModePlpgsql: round(statementModePlpgsql / none, 3),
        jsontriga: round(jsontrigaRatio, 3),
      },
      runs,
      targets: checks,
      rows: [
        {
          figure: `${label}, pgshovel triggers on 4 tables, the default: statement mode on the C function (${how})`,
          measured: `${fmt(ours)} TPS${walPerRow("pgshovel")}`,
          baseline: `${fmt(none)} TPS without triggers`,
          ratio: ratio.toFixed(2),
          target: "≥ 0.66",
          met: checks[0]!.met,
        },
        {
          figure: `${label}, pgshovel on 3 tables (pgbench_history not captured)`,
          measured: `${fmt(threeTables)} TPS${walPerRow("pgshovel-3")}`,
          baseline: `${fmt(none)} TPS without triggers`,
          ratio: (threeTables / none).toFixed(2),
          target: "–",
          met: null,
        },
        {
          figure: `${label}, pgshovel with \`capture: row\` on 4 tables (reference)`,
          measured: `${fmt(rowMode)} TPS${walPerRow("pgshovel-row")}`,
          baseline: `${fmt(none)} TPS without triggers`,
          ratio: (rowMode / none).toFixed(2),
          target: "–",
          met: null,
        },
        {
          figure: `${label}, pgshovel in statement mode by the PL/pgSQL function on 4 tables (reference: servers without the C function)`,
          measured: `${fmt(statementModePlpgsql)} TPS${walPerRow("pgshovel-statement-plpgsql")}`,
          baseline: `${fmt(none)} TPS without triggers`,
          ratio: (statementModePlpgsql / none).toFixed(2),
          target: "–",
          met: null,
        },
        {
          figure: `${label}, \`pgq.jsontriga\` (reference)`,
          measured: `${fmt(jsontriga)} TPS${walPerRow("jsontriga")}`,
          baseline: `${fmt(none)} TPS without triggers`,
          ratio: jsontrigaRatio.toFixed(2),
          target: "–",
          met: null,
        },
      ],
    };
  } finally {
    await fixture.close();
  }
}

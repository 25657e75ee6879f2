/**
 * Measures what capture costs the writing statements, on identical pgbench_accounts-shaped
 * tables of one database on a private PostgreSQL (so that the WAL it measures is its own):
 * no trigger, pgshovel in statement mode (with `old: full` and `old: key`, by the generated
 * PL/pgSQL and by the C function of ext/pgshovel_capture), pgshovel in row mode. Bulk statements (INSERT …
 * SELECT generate_series, UPDATE and DELETE of many rows) and runs of single-row statements;
 * time and WAL bytes per row, median of alternating rounds. Run it by hand (the figures are
 * recorded in docs/benchmarks.md):
 *
 *   set -a; source .services/env; set +a
 *   node dist/bench/capture-bulk.js [ROWS] [ROUNDS] [SINGLE]
 */
import { resolveTables } from "../src/capture/catalog.js";
import { installTableCapture } from "../src/capture/install.js";
import { nativeCaptureAvailable } from "../src/capture/native.js";
import { setupSet } from "../test/support/fixtures.js";
import { startPrivatePostgres } from "../test/support/private-services.js";
import { median } from "./stats.js";

const rows = Number(process.argv[2] ?? 200_000);
const rounds = Number(process.argv[3] ?? 5);
const single = Number(process.argv[4] ?? 5_000);
/** The measured tables: how each is captured (none: no trigger). */
const CONFIGS = [
  { table: "plain", mode: undefined, old: undefined, native: false, label: "none" },
  { table: "stmt", mode: "statement", old: "full", native: false, label: "stmt" },
  { table: "stmtkey", mode: "statement", old: "key", native: false, label: "stmt key" },
  { table: "stmtc", mode: "statement", old: "full", native: true, label: "stmt C" },
  { table: "stmtckey", mode: "statement", old: "key", native: true, label: "stmt C key" },
  { table: "row", mode: "row", old: "full", native: false, label: "row" },
] as const;
const TABLES = CONFIGS.map((c) => c.table);
const columns = "aid int PRIMARY KEY, bid int, abalance int, filler char(84)";

/** One measured statement: its time and the WAL it wrote, per row. */
interface Sample {
  ms: number;
  walBytes: number;
}

const server = await startPrivatePostgres();
const fixture = await setupSet({
  server: server.server,
  prefix: "capture_bulk",
  tables: CONFIGS.filter((c) => c.mode).map((c) => c.table),
  prepare: async (db) => {
    for (const table of TABLES) await db.query(`CREATE TABLE ${table} (${columns})`);
  },
});
const { db } = fixture;
try {
  const client = await db.connect();
  await client.query("BEGIN");
  const { available, failed } = await nativeCaptureAvailable(client);
  await client.query("COMMIT");
  if (!available)
    throw new Error(`the pgshovel_capture extension is needed (make services): ${failed}`);
  for (const { table: name, mode, old, native } of CONFIGS) {
    if (!mode) continue;
    const [table] = await resolveTables(client, [{ name, schema: "public", old }]);
    await installTableCapture(client, {
      cluster: fixture.cluster,
      set: fixture.set,
      table: table!,
      configVersion: 0,
      mode,
      native,
    });
  }
  const measure = async (sql: string, count: number): Promise<Sample> => {
    const [before] = (await client.query("SELECT pg_current_wal_insert_lsn() AS lsn")).rows;
    const started = process.hrtime.bigint();
    await client.query(sql);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const [after] = (
      await client.query("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1)::int8 AS d", [
        before.lsn,
      ])
    ).rows;
    return { ms, walBytes: Number(after.d) / count };
  };
  const workloads: Record<string, (t: string) => [string, number]> = {
    "INSERT bulk": (t) => [
      `INSERT INTO ${t} SELECT g, 1 + g / 100000, 0, '' FROM generate_series(1, ${rows}) g`,
      rows,
    ],
    "UPDATE bulk": (t) => [`UPDATE ${t} SET abalance = abalance + 1 WHERE aid <= ${rows}`, rows],
    "DELETE bulk": (t) => [`DELETE FROM ${t} WHERE aid > ${rows / 2}`, rows / 2],
    "UPDATE single": (t) => [
      `DO $$ BEGIN FOR i IN 1..${single} LOOP UPDATE ${t} SET abalance = abalance + 1 WHERE aid = i; END LOOP; END $$`,
      single,
    ],
    "INSERT single": (t) => [
      `DO $$ BEGIN FOR i IN 1..${single} LOOP INSERT INTO ${t} VALUES (${rows} + i, 1, 0, ''); END LOOP; END $$`,
      single,
    ],
    "DELETE single": (t) => [
      `DO $$ BEGIN FOR i IN 1..${single} LOOP DELETE FROM ${t} WHERE aid = ${rows} + i; END LOOP; END $$`,
      single,
    ],
  };
  const samples = new Map<string, Sample[]>();
  for (let round = 0; round < rounds; round++) {
    // Alternate which table goes first, so none always runs right after the others' garbage.
    const order = TABLES.map((_, i) => TABLES[(i + round) % TABLES.length]!);
    for (const table of order) {
      await client.query(`TRUNCATE ${table}`);
      await client.query(`VACUUM ANALYZE ${table}`);
      for (const [name, workload] of Object.entries(workloads)) {
        const [sql, count] = workload(table);
        const key = `${table}:${name}`;
        samples.set(key, [...(samples.get(key) ?? []), await measure(sql, count)]);
      }
    }
    // The events are not read: drop them so that the queue's tables do not grow from round to round.
    await client.query("TRUNCATE pgq.event_template");
    process.stderr.write(`round ${round + 1}/${rounds} done\n`);
  }
  await client.end();
  console.log(
    `rows: bulk ${rows} (DELETE ${rows / 2}), single ${single}; ${rounds} rounds, median; µs and WAL bytes per row`,
  );
  const labels = CONFIGS.map((c) => c.label);
  console.log(
    `workload        | ${labels.map((l) => `${l} µs (ratio)`).join(" | ")} | ${labels.map((l) => `WAL ${l}`).join(" | ")} | spread ${labels.join("/")}`,
  );
  for (const name of Object.keys(workloads)) {
    const stat = (table: string) => {
      const s = samples.get(`${table}:${name}`)!;
      const count = name === "DELETE bulk" ? rows / 2 : name.endsWith("single") ? single : rows;
      const times = s.map((x) => (x.ms * 1000) / count);
      const spread = (Math.max(...times) - Math.min(...times)) / median(times);
      return { us: median(times), wal: median(s.map((x) => x.walBytes)), spread };
    };
    const stats = TABLES.map(stat);
    const none = stats[0]!;
    console.log(
      `${name.padEnd(15)} | ${stats.map((x) => `${x.us.toFixed(2).padStart(7)} (${(none.us / x.us).toFixed(2)})`).join(" | ")} | ${stats.map((x) => x.wal.toFixed(0).padStart(6)).join(" | ")} | ${stats.map((x) => `${(x.spread * 100).toFixed(0)}%`).join("/")}`,
    );
  }
} finally {
  await fixture.close();
  await server.destroy();
}

/**
 * Measures the cost of capture on bulk writes: pgshovel's generated plpgsql capture function
 * against PgQ's C trigger pgq.jsontriga and against no trigger at all, on identical tables of one
 * fresh database. Not part of `make bench`: run it by hand (the figures are recorded in
 * docs/capture.md):
 *
 *   set -a; source .services/env; set +a
 *   node dist/bench/capture-bulk.js [ROWS] [ROUNDS]
 */
import { setupSet } from "../test/support/fixtures.js";

const rows = Number(process.argv[2] ?? 100_000);
const rounds = Number(process.argv[3] ?? 3);
const columns = "id int8 PRIMARY KEY, account int4, owner text, balance numeric, at timestamptz";

const fixture = await setupSet({
  prefix: "capture_bench",
  tables: ["own"],
  prepare: async (db) => {
    for (const table of ["plain", "own", "jsontriga"]) {
      await db.query(`CREATE TABLE ${table} (${columns})`);
    }
    await db.query("SELECT pgq.create_queue('bench_jsontriga')");
    await db.query(
      `CREATE TRIGGER capture AFTER INSERT OR UPDATE OR DELETE ON jsontriga
         FOR EACH ROW EXECUTE PROCEDURE pgq.jsontriga('bench_jsontriga')`,
    );
  },
});
const { db } = fixture;
try {
  const client = await db.connect();
  const time = async (sql: string): Promise<number> => {
    const started = process.hrtime.bigint();
    await client.query(sql);
    return Number(process.hrtime.bigint() - started) / 1e6;
  };
  const results: Record<string, Record<string, number[]>> = {};
  for (let round = 0; round < rounds; round++) {
    for (const table of ["plain", "own", "jsontriga"]) {
      const byOp = results[table] ?? { insert: [], update: [], delete: [] };
      results[table] = byOp;
      byOp.insert!.push(
        await time(
          `INSERT INTO ${table} SELECT g, g % 1000, 'owner ' || g, g * 1.25, now() FROM generate_series(1, ${rows}) g`,
        ),
      );
      byOp.update!.push(await time(`UPDATE ${table} SET balance = balance + 1`));
      byOp.delete!.push(await time(`DELETE FROM ${table}`));
    }
  }
  // events of both queues (PgQ's event tables inherit from pgq.event_template)
  const sizes = await db.query<{ ev_type: string; events: string; bytes: number }>(
    "SELECT ev_type, count(*)::text AS events, avg(length(ev_data))::int AS bytes FROM pgq.event_template GROUP BY 1 ORDER BY 1",
  );
  await client.end();
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`rows per statement: ${rows}, rounds: ${rounds} (median ms)`);
  console.log("trigger     insert   update   delete   (per row µs: insert/update/delete)");
  for (const [table, byOp] of Object.entries(results)) {
    const [i, u, d] = [median(byOp.insert!), median(byOp.update!), median(byOp.delete!)];
    console.log(
      `${table.padEnd(10)} ${i.toFixed(0).padStart(7)}  ${u.toFixed(0).padStart(7)}  ${d.toFixed(0).padStart(7)}   (${((i * 1000) / rows).toFixed(1)}/${((u * 1000) / rows).toFixed(1)}/${((d * 1000) / rows).toFixed(1)})`,
    );
  }
  console.log("event type  events  avg ev_data bytes");
  for (const { ev_type, events, bytes } of sizes) {
    console.log(`${ev_type.padEnd(10)} ${events.padStart(7)}  ${bytes}`);
  }
} finally {
  await fixture.close();
}

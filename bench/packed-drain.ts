/**
 * What packed events (statement mode) cost the relay: the same backlog of bulk INSERTs
 * captured by a row-mode set and by a statement-mode set, each drained by a spawned
 * `bin/pgshovel relay` into a file; events per second, alternating rounds. Run it by hand
 * (the figures are recorded in docs/benchmarks.md):
 *
 *   set -a; source .services/env; set +a
 *   node dist/bench/packed-drain.js [EVENTS] [ROUNDS]
 */
import { setupSet } from "../test/support/fixtures.js";
import { fillBacklog, ROWS_DDL, ROWS_TABLE, registerConsumers } from "./backlog.js";
import { median } from "./stats.js";
import { type Drain, drainWithRelay } from "./throughput.js";

const events = Number(process.argv[2] ?? 200_000);
const rounds = Number(process.argv[3] ?? 3);
const MODES = ["row", "statement"] as const;

const fixtures = await Promise.all(
  MODES.map((capture) =>
    setupSet({
      prefix: `bench_drain_${capture}`,
      tables: [ROWS_TABLE],
      capture,
      prepare: async (db) => {
        await db.query(ROWS_DDL);
      },
    }),
  ),
);
try {
  const drains: Record<(typeof MODES)[number], Drain[]> = { row: [], statement: [] };
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? [0, 1] : [1, 0];
    for (const i of order) {
      const fixture = fixtures[i]!;
      const mode = MODES[i]!;
      const control = await fixture.db.connect();
      try {
        await registerConsumers(control, fixture.queue, ["bench_file"]);
        const fill = await fillBacklog(control, fixture.queue, r * events + 1, events);
        const drain = await drainWithRelay(fixture, control, "file", fill.tick, events, r, {
          events,
          rounds,
          sinks: ["file"],
          log: (line) => console.log(line),
        });
        drains[mode].push(drain);
        await control.query("SELECT pgq.unregister_consumer($1, 'bench_file')", [fixture.queue]);
        console.log(
          `round ${r + 1}/${rounds} ${mode}: filled in ${fill.seconds.toFixed(2)} s, drained ${Math.round(drain.rate)} events/s`,
        );
      } finally {
        await control.end();
      }
    }
  }
  const rate = (mode: (typeof MODES)[number]) => median(drains[mode].map((d) => d.rate));
  const ratios = drains.statement.map((d, i) => d.rate / drains.row[i]!.rate);
  console.log(
    `file relay, ${events} events: row mode ${Math.round(rate("row"))} events/s, statement mode (packed) ${Math.round(rate("statement"))} events/s; ratio per round ${ratios.map((x) => x.toFixed(2)).join(", ")}`,
  );
} finally {
  for (const fixture of fixtures) await fixture.close();
}

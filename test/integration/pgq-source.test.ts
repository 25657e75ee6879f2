/**
 * The relay's reading of a batch: the runs of mutations it hands to the encoder stay small
 * whatever the events hold. A packed event of statement mode is up to 1 000 mutations, so
 * runs are counted in mutations, not events (500 events at a time would be 500 000).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PACK_ROWS } from "../../src/capture/packed.js";
import { PgqSource } from "../../src/relay/pgq-source.js";
import { forceTick, setupSet } from "../support/fixtures.js";
import { waitFor } from "../support/wait.js";

const ROWS = 12_000;

describe("PgQ source", () => {
  for (const capture of ["row", "statement"] as const) {
    test(`capture: ${capture}: ${ROWS} rows of one statement come in small runs, in id order`, async () => {
      const fixture = await setupSet({
        prepare: async (db) => {
          await db.query("CREATE TABLE t (id int8 PRIMARY KEY, note text)");
        },
        tables: ["t"],
        capture,
      });
      const source = new PgqSource(fixture.db.dsn, {
        cluster: fixture.cluster,
        set: fixture.set,
        consumer: "runs",
        fetchSize: 5000,
      });
      try {
        await source.open();
        await fixture.db.query(
          `INSERT INTO t SELECT g, repeat('x', 50) FROM generate_series(1, ${ROWS}) g`,
        );
        await forceTick(fixture.db, fixture.queue);
        const batch = await waitFor(async () => source.nextBatch(), {
          description: "a batch with the statement's rows",
        });
        const runs: number[] = [];
        const ids: bigint[] = [];
        for await (const run of source.events(batch.id)) {
          runs.push(run.length);
          for (const m of run) ids.push(m.id);
        }
        assert.equal(ids.length, ROWS);
        assert.deepEqual(
          ids,
          [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
        );
        assert.ok(runs.length >= ROWS / (500 + PACK_ROWS), `${runs.length} runs`);
        assert.ok(Math.max(...runs) < 500 + PACK_ROWS, `largest run ${Math.max(...runs)}`);
        await source.finish(batch.id);
      } finally {
        await source.close();
        await fixture.close();
      }
    });
  }
});

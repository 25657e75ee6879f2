/**
 * A replica bootstrapped while pgbench writes, then caught up from the queue, equals its
 * source row for row (invariant 9): each transaction arrives through the copy or the
 * stream, never both, never neither.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { bootstrapFromQueue } from "../../src/replication/queue-replica.js";
import { PGBENCH_TABLES, pgbench } from "../support/fixtures.js";
import { waitFor } from "../support/wait.js";
import { catchUp, checksum, replicaFixture, totals } from "./replication-support.js";

const KEYS: Record<string, string[]> = {
  pgbench_accounts: ["aid"],
  pgbench_branches: ["bid"],
  pgbench_tellers: ["tid"],
  pgbench_history: ["id"],
};
const COLUMNS: Record<string, string[]> = {
  pgbench_accounts: ["aid", "bid", "abalance", "filler"],
  pgbench_branches: ["bid", "bbalance", "filler"],
  pgbench_tellers: ["tid", "bid", "tbalance", "filler"],
  pgbench_history: ["id", "tid", "bid", "aid", "delta", "mtime", "filler"],
};

async function bootstrapUnderLoad(jobs: number): Promise<void> {
  const fixture = await replicaFixture({
    tables: PGBENCH_TABLES,
    prepare: async (db) => {
      await pgbench(db, ["-i", "-q", "-s", "1"]);
      await db.query("ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY");
    },
  });
  try {
    const load = pgbench(fixture.source, ["-n", "-c", "4", "-T", "5"]);
    load.catch(() => {});
    // The copy starts while transactions are committing.
    await waitFor(
      async () => {
        const [row] = await fixture.source.query<{ n: string }>(
          "SELECT count(*) AS n FROM pgbench_history",
        );
        return Number(row!.n) >= 100;
      },
      { description: "pgbench to be running" },
    );
    const progress: string[] = [];
    const bootstrap = await bootstrapFromQueue({
      ...fixture.replica,
      jobs,
      createTables: true,
      onProgress: (p) => {
        if (p.done) progress.push(p.table);
      },
    });
    assert.equal(bootstrap.copied.length, 4);
    assert.deepEqual(progress.sort(), PGBENCH_TABLES.map((t) => `public.${t}`).sort());
    // Batches applied while pgbench still writes, then the rest.
    const during = await catchUp(fixture);
    await load;
    // and some more once the load is over, so that the stream surely carries changes
    await pgbench(fixture.source, ["-n", "-c", "2", "-t", "50"]);
    const after = await catchUp(fixture);
    const sums = totals([...during, ...after]);
    assert.ok(sums.applied! > 0, "the stream carried changes after the snapshot");
    for (const table of PGBENCH_TABLES) {
      const [src, dst] = await Promise.all(
        [fixture.source, fixture.target].map((db) =>
          checksum(db, table, COLUMNS[table]!, KEYS[table]!),
        ),
      );
      assert.deepEqual(dst, src, `${table} equal on source and target`);
    }
  } finally {
    await fixture.close();
  }
}

describe("replica of a pgbench workload", () => {
  test("bootstrapped under load with one job, caught up: equal row for row", async () => {
    await bootstrapUnderLoad(1);
  });

  test("bootstrapped under load with two jobs sharing one snapshot: equal row for row", async () => {
    await bootstrapUnderLoad(2);
  });
});

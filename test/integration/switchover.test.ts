/**
 * A planned switchover end to end under pgbench: the set fenced (pgbench's writes refused
 * with the fence's error), the replica caught up and proven equal by set verify, promoted,
 * a reversed set on the new primary replicated to the old one without a copy, pgbench on the
 * new primary (its bigserial keys do not collide with the old ones), the old primary equal
 * (set verify in the new direction) and still fenced for ordinary writers; then unfenced.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createSet } from "../../src/cluster/admin.js";
import { PGBENCH_TABLES, startPgshovel, stopRelay, waitForLog } from "../support/fixtures.js";
import { waitFor } from "../support/wait.js";
import {
  assertReplicaEqual,
  type ReplicateFixture,
  replicateFixture,
  runReplicate,
} from "./replicate-support.js";
import {
  failureCode,
  pgshovel,
  prepareEmptyPgbench,
  startPgbench,
  waitForEqual,
} from "./switchover-support.js";

const HISTORY_INSERT =
  "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, 1, now())";

describe("planned switchover", () => {
  let fixture: ReplicateFixture;
  before(async () => {
    fixture = await replicateFixture({ prepareTarget: prepareEmptyPgbench });
  });
  after(async () => {
    await fixture?.close();
  });

  test("fence, catch up, promote, reverse without a copy, write on the new primary", async () => {
    const old = fixture.db;
    const next = fixture.target;
    const first = await runReplicate(fixture, ["--until-caught-up"]);
    assert.equal(first.code, 0, first.stderr.slice(-3000));

    // Load on the old primary, fenced while it runs: its clients stop at the fence's error.
    const load = startPgbench(old, ["-c", "2", "-T", "120"]);
    await waitFor(
      async () =>
        Number(
          (await old.query<{ n: string }>("SELECT count(*) AS n FROM pgbench_history"))[0]!.n,
        ) >= 50,
      { timeoutMs: 60_000, description: "pgbench to have written on the old primary" },
    );
    const fence = await pgshovel(fixture, ["set", "fence", fixture.set]);
    assert.equal(fence.code, 0, fence.stderr);
    const tick = /up to tick (\d+)/.exec(fence.stdout)?.[1];
    assert.ok(tick, fence.stdout);
    const stopped = await load.done;
    assert.notEqual(stopped.code, 0, "pgbench went on writing through the fence");
    assert.match(stopped.stderr, /fenced by pgshovel set s/);
    assert.equal(await failureCode(old, HISTORY_INSERT), "25006");

    // The replica catches up past the fence, and set verify proves it equal there; then its
    // worker stops, since a promotion refuses while one stands.
    const worker = startPgshovel(fixture, ["replicate", fixture.set, "--target", next.dsn]);
    try {
      const verified = await pgshovel(fixture, [
        "set",
        "verify",
        fixture.set,
        "--target",
        next.dsn,
      ]);
      assert.equal(verified.code, 0, verified.stdout + verified.stderr);
      assert.match(verified.stdout, /OK: 4 table\(s\) equal/);
    } finally {
      await stopRelay(worker, 15_000);
    }
    await assertReplicaEqual(fixture);
    const [position] = await next.query<{ tick: string }>(
      `SELECT end_tick_id::text AS tick FROM pgshovel_${fixture.cluster}.replica_position WHERE set_name = 's'`,
    );
    assert.ok(
      BigInt(position!.tick) >= BigInt(tick),
      `replica at tick ${position!.tick}, fence at ${tick}`,
    );

    const promoted = await pgshovel(fixture, ["set", "promote", fixture.set, "--target", next.dsn]);
    assert.equal(promoted.code, 0, promoted.stderr);
    assert.match(promoted.stdout, /promoted .*no longer replicates set s/);
    assert.match(promoted.stdout, /sequence public\.pgbench_history_id_seq .* set to \d+/);
    const again = await pgshovel(fixture, ["set", "promote", fixture.set, "--target", next.dsn]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already/);
    // A worker for the old direction refuses the promoted target.
    const refused = await runReplicate(fixture, ["--until-caught-up"]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /was promoted to primary/);

    // The reverse direction: a set on the new primary, replicated to the old one without a copy.
    await createSet(fixture.ctx, "r", {
      database: { dsn: next.dsn },
      tables: PGBENCH_TABLES.map((name) => ({ schema: "public", name })),
    });
    const reverse = startPgshovel(fixture, ["replicate", "r", "--target", old.dsn, "--no-copy"]);
    try {
      await waitForLog(reverse, "applying the stream", 60_000);
      assert.match(reverse.stderr(), /without a copy/);
      const onNew = startPgbench(next, ["-c", "2", "-t", "100"]);
      const ran = await onNew.done;
      assert.equal(ran.code, 0, `pgbench on the new primary failed: ${ran.stderr.slice(-2000)}`);
      await waitForEqual(next, old);
      const back = await pgshovel(fixture, ["set", "verify", "r", "--target", old.dsn]);
      assert.equal(back.code, 0, back.stdout + back.stderr);
      assert.match(back.stdout, /OK: 4 table\(s\) equal/);
      // The old primary still refuses ordinary writers while it follows the new one.
      assert.equal(await failureCode(old, HISTORY_INSERT), "25006");
    } finally {
      await stopRelay(reverse, 15_000);
    }

    const unfenced = await pgshovel(fixture, ["set", "unfence", fixture.set]);
    assert.equal(unfenced.code, 0, unfenced.stderr);
    assert.match(unfenced.stdout, /unfenced set s/);
    assert.equal(await failureCode(old, HISTORY_INSERT), undefined);
    const twice = await pgshovel(fixture, ["set", "unfence", fixture.set]);
    assert.equal(twice.code, 0, twice.stderr);
    assert.match(twice.stdout, /not fenced/);
  });
});

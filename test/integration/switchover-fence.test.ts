/**
 * The fence's edges and the no-copy start's refusal: a fence waits for the writes in flight
 * and gives up after its lock timeout with nothing changed; fencing twice changes nothing;
 * TRUNCATE is refused too while a replica-role session still writes; a replica started
 * without a copy is refused once the set's queue has captured anything.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createSet } from "../../src/cluster/admin.js";
import { fencePaths } from "../../src/promotion/names.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";
import { type ReplicateFixture, replicateFixture, runReplicate } from "./replicate-support.js";
import { failureCode, pgshovel } from "./switchover-support.js";

const INSERT = "INSERT INTO pgbench_branches (bid, bbalance) VALUES (1000, 0)";

describe("set fence and replicate --no-copy", () => {
  let fixture: ReplicateFixture;
  let other: TestDatabase | undefined;
  before(async () => {
    fixture = await replicateFixture();
  });
  after(async () => {
    await fixture?.close();
    await other?.drop();
  });

  test("a fence waits for writes in flight, up to its lock timeout, and changes nothing when it gives up", async () => {
    const holder = await fixture.db.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("UPDATE pgbench_branches SET bbalance = bbalance + 1 WHERE bid = 1");
      const refused = await pgshovel(fixture, ["set", "fence", "s", "--lock-timeout", "300ms"]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /transactions in flight held its tables/);
      assert.equal(await fixture.ctx.zk.exists(fencePaths.fence(fixture.cluster, "s")), undefined);
      assert.deepEqual(
        await fixture.db.query("SELECT 1 FROM pg_trigger WHERE tgname LIKE 'pgf_%'"),
        [],
      );
      // A fence that waits sees the write in flight commit, and holds after it.
      const fencing = pgshovel(fixture, ["set", "fence", "s", "--lock-timeout", "60s"]);
      await waitFor(
        async () =>
          (
            await fixture.db.query(
              "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
          ).length > 0,
        { timeoutMs: 60_000, description: "the fence to wait for the write in flight" },
      );
      await holder.query("COMMIT");
      const fenced = await fencing;
      assert.equal(fenced.code, 0, fenced.stderr);
      assert.match(fenced.stdout, /^fenced: set s, 4 table\(s\)/);
    } finally {
      await holder.end();
    }
    assert.equal(await failureCode(fixture.db, INSERT), "25006");
    assert.equal(await failureCode(fixture.db, "TRUNCATE pgbench_history"), "25006");
    const replicaRole = await fixture.db.connect();
    try {
      await replicaRole.query("SET session_replication_role = replica");
      await replicaRole.query(INSERT);
    } finally {
      await replicaRole.end();
    }
    const again = await pgshovel(fixture, ["set", "fence", "s"]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^already fenced: set s/);
    // status shows the fence, in its text and its JSON.
    const shown = await pgshovel(fixture, ["status", "s"]);
    assert.match(
      shown.stdout,
      /WARN\s+the set is fenced since \S+: writes to its tables are refused/,
    );
    assert.match(shown.stdout, /^ {2}fence {6}since \S+, every change before it by tick \d+$/m);
    const json = await pgshovel(fixture, ["status", "s", "--json"]);
    const report = JSON.parse(json.stdout) as {
      sets: { fence: { fencedAt: string; tick: string | null } | null }[];
    };
    assert.match(report.sets[0]!.fence!.tick ?? "", /^\d+$/);
    const unfenced = await pgshovel(fixture, ["set", "unfence", "s"]);
    assert.equal(unfenced.code, 0, unfenced.stderr);
    const after = JSON.parse((await pgshovel(fixture, ["status", "s", "--json"])).stdout) as {
      sets: { fence: unknown }[];
    };
    assert.equal(after.sets[0]!.fence, null);
    assert.equal(
      await failureCode(fixture.db, "DELETE FROM pgbench_branches WHERE bid = 1000"),
      undefined,
    );
  });

  test("replicate --no-copy is refused once the set's queue has captured something", async () => {
    other = await createTestDatabase("nocopy_dst", { pgq: false });
    await other.query("CREATE TABLE t (id int PRIMARY KEY, v text)");
    await fixture.db.query("CREATE TABLE t (id int PRIMARY KEY, v text)");
    await createSet(fixture.ctx, "fresh", {
      database: { dsn: fixture.db.dsn },
      tables: [{ schema: "public", name: "t" }],
    });
    await fixture.db.query("INSERT INTO t VALUES (1, 'captured before any replica')");
    const target = { ...fixture, set: "fresh", target: other };
    const refused = await runReplicate(target, ["--no-copy", "--until-caught-up"]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /without a copy: its queue .* has captured changes already/);
    assert.match(refused.stderr, /bootstrap the target instead/);
    assert.deepEqual(await other.query("SELECT * FROM t"), []);
  });
});

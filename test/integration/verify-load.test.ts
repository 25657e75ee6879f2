/**
 * `pgshovel set verify` on a pgbench replica kept by a running worker (`--from queue`):
 * no false difference while the source is written to, every changed, deleted or inserted
 * row named, and a repair that makes the replica equal — applied under load as well.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { assertReplicaEqual } from "./replicate-support.js";
import {
  editTarget,
  runVerify,
  startLoad,
  type VerifyFixture,
  verifyFixture,
} from "./verify-support.js";

describe("pgshovel set verify: a pgbench replica", () => {
  let fixture: VerifyFixture;
  before(async () => {
    fixture = await verifyFixture();
  });
  after(async () => {
    await fixture?.close();
  });

  test("OK five times in a row under concurrent pgbench load", async () => {
    const load = await startLoad(fixture.db, 4);
    try {
      for (let i = 0; i < 5; i++) {
        const run = await runVerify(fixture);
        assert.equal(run.code, 0, `verify ${i + 1}: ${run.stdout}${run.stderr}`);
        assert.match(run.stdout, /^OK {4}public\.pgbench_accounts {2}100000 rows$/m);
        assert.match(run.stdout, /^OK: 4 table\(s\) equal$/m);
      }
    } finally {
      await load.stop();
    }
  });

  test("a row changed, one deleted and one inserted on the target: DIFF naming each key", async () => {
    await editTarget(fixture.target, [
      "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 7",
      "DELETE FROM pgbench_history WHERE id = (SELECT min(id) FROM pgbench_history)",
      "INSERT INTO pgbench_branches (bid, bbalance) VALUES (99, 0)",
    ]);
    const [{ id }] = (await fixture.db.query<{ id: string }>(
      "SELECT min(id)::text AS id FROM pgbench_history",
    )) as [{ id: string }];
    const run = await runVerify(fixture);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(
      run.stdout,
      /^DIFF {2}public\.pgbench_accounts .*0 missing on target, 0 extra on target, 1 different$/m,
    );
    assert.match(run.stdout, /^ +different +\(aid\)=\(7\)$/m);
    assert.match(run.stdout, new RegExp(`^ +missing +\\(id\\)=\\(${id}\\)$`, "m"));
    assert.match(run.stdout, /^ +extra +\(bid\)=\(99\)$/m);
    assert.match(run.stdout, /^OK {4}public\.pgbench_tellers /m);
    assert.match(run.stdout, /^DIFF: 3 of 4 table\(s\) differ$/m);

    const json = await runVerify(fixture, [
      "--json",
      "--table",
      "pgbench_accounts,public.pgbench_branches",
    ]);
    assert.equal(json.code, 1, json.stderr);
    const report = JSON.parse(json.stdout) as {
      set: string;
      equal: boolean;
      point: { tick: string; targetTick: string };
      tables: {
        schema: string;
        name: string;
        equal: boolean;
        missing: number;
        extra: number;
        different: number;
        keys: { kind: string; key: Record<string, string> }[];
      }[];
    };
    assert.equal(report.set, "s");
    assert.equal(report.equal, false);
    assert.ok(BigInt(report.point.targetTick) >= BigInt(report.point.tick));
    assert.deepEqual(
      report.tables.map((t) => [t.name, t.equal, t.missing, t.extra, t.different, t.keys]),
      [
        ["pgbench_accounts", false, 0, 0, 1, [{ kind: "different", key: { aid: "7" } }]],
        ["pgbench_branches", false, 0, 1, 0, [{ kind: "extra", key: { bid: "99" } }]],
      ],
    );

    const repair = await runVerify(fixture, ["--repair"]);
    assert.equal(repair.code, 1, repair.stderr);
    assert.match(repair.stderr, /^DIFF: 3 of 4 table\(s\) differ$/m);
    const sql = repair.stdout;
    assert.match(sql, /^BEGIN;$/m);
    assert.match(sql, /^SET LOCAL session_replication_role = replica;$/m);
    assert.match(
      sql,
      /^DELETE FROM "public"\."pgbench_branches" WHERE "bid" = CAST\('99' AS integer\);$/m,
    );
    assert.match(
      sql,
      /^UPDATE "public"\."pgbench_accounts" SET .* WHERE "aid" = CAST\('7' AS integer\);$/m,
    );
    assert.match(
      sql,
      new RegExp(
        `^INSERT INTO "public"\\."pgbench_history" \\(.*\\) VALUES \\(.*CAST\\('${id}' AS bigint\\).*\\);$`,
        "m",
      ),
    );
    assert.match(sql, /^COMMIT;$/m);
    // Printing changes nothing.
    assert.equal((await runVerify(fixture, ["--table", "pgbench_branches"])).code, 1);

    const applied = await runVerify(fixture, ["--repair", "--apply"]);
    assert.equal(applied.code, 1, applied.stderr);
    assert.match(
      applied.stdout,
      /^repaired in one transaction: 1 deleted, 1 updated, 1 inserted$/m,
    );
    const again = await runVerify(fixture);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    await assertReplicaEqual(fixture);
  });

  test("--repair --apply under load, then OK", async () => {
    // pgbench only inserts into its history: rows changed there by hand stay changed.
    await editTarget(fixture.target, [
      "UPDATE pgbench_history SET delta = delta + 1 WHERE id IN (SELECT id FROM pgbench_history ORDER BY id LIMIT 3)",
      "DELETE FROM pgbench_history WHERE id IN (SELECT id FROM pgbench_history ORDER BY id DESC LIMIT 2)",
      "INSERT INTO pgbench_history (id, tid, bid, aid, delta, mtime) VALUES (900000001, 1, 1, 1, 5, now())",
    ]);
    const load = await startLoad(fixture.db, 4);
    try {
      const applied = await runVerify(fixture, ["--repair", "--apply"]);
      assert.equal(applied.code, 1, applied.stdout + applied.stderr);
      assert.match(
        applied.stdout,
        /^DIFF {2}public\.pgbench_history .*2 missing on target, 1 extra on target, 3 different$/m,
      );
      assert.match(
        applied.stdout,
        /^repaired in one transaction: 1 deleted, 3 updated, 2 inserted$/m,
      );
      for (let i = 0; i < 2; i++) {
        const run = await runVerify(fixture);
        assert.equal(run.code, 0, `verify ${i + 1} after the repair: ${run.stdout}${run.stderr}`);
      }
    } finally {
      await load.stop();
    }
  });
});

/**
 * `pgshovel set verify` that cannot decide exits 2 with a message that names the cause —
 * an unknown set or table, a database that is not a replica, an unreachable one, a
 * replica that does not reach the point in time — and leaves nothing locked.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createTestDatabase } from "../support/postgres.js";
import { runVerify, type VerifyFixture, verifyFixture } from "./verify-support.js";

describe("pgshovel set verify: errors", () => {
  let fixture: VerifyFixture;
  before(async () => {
    fixture = await verifyFixture({
      tables: ["t"],
      prepare: async (db) => {
        await db.query("CREATE TABLE t (id int PRIMARY KEY, v text)");
        await db.query("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g");
      },
    });
  });
  after(async () => {
    await fixture?.close();
  });

  test("usage errors exit 2: an unknown set, an unknown table, --apply alone, a target that is no DSN", async () => {
    const unknownSet = await runVerify(fixture, [], "nope");
    assert.equal(unknownSet.code, 2, unknownSet.stderr);
    assert.match(unknownSet.stderr, /set "nope" does not exist/);
    const unknownTable = await runVerify(fixture, ["--table", "public.nope"]);
    assert.equal(unknownTable.code, 2, unknownTable.stderr);
    assert.match(
      unknownTable.stderr,
      /table public\.nope is not in set s\nhint: the set's tables: public\.t/,
    );
    const apply = await runVerify(fixture, ["--apply"]);
    assert.equal(apply.code, 2, apply.stderr);
    assert.match(apply.stderr, /--apply needs --repair/);
    const dsn = await runVerify({ ...fixture, target: { ...fixture.target, dsn: "host=nowhere" } });
    assert.equal(dsn.code, 2, dsn.stderr);
    assert.match(dsn.stderr, /is not a DSN/);
  });

  test("a target that is not a replica of the set, or unreachable: exit 2 naming it", async () => {
    const other = await createTestDatabase("verify_other", { pgq: false });
    try {
      await other.query("CREATE TABLE t (id int PRIMARY KEY, v text)");
      const run = await runVerify({ ...fixture, target: other });
      assert.equal(run.code, 2, run.stderr);
      assert.match(
        run.stderr,
        /is not a replica of set s: pgshovel_\w+\.replica_position has no row for it/,
      );
    } finally {
      await other.drop();
    }
    const down = await runVerify({
      ...fixture,
      target: { ...fixture.target, dsn: "postgresql://postgres@127.0.0.1:1/none" },
    });
    assert.equal(down.code, 2, down.stderr);
    assert.match(down.stderr, /connecting to postgresql:\/\/postgres@127\.0\.0\.1:1\/none/);
  });

  test("a replica whose worker is stopped: exit 2 saying how far it is; the source is not left locked", async () => {
    await fixture.stopWorker();
    try {
      await fixture.db.query("UPDATE t SET v = 'later' WHERE id = 1");
      const run = await runVerify(fixture, ["--wait-timeout", "2s"]);
      assert.equal(run.code, 2, run.stderr);
      assert.match(
        run.stderr,
        /the replica of set s did not reach tick (\d+) within 2000 ms: it stands at tick \d+ \(batch \d+, which ended at [^)]+\), \d+ tick\(s\) short/,
      );
      // Right after: a write that would wait for a lock fails at once instead.
      const writer = await fixture.db.connect();
      try {
        await writer.query("SET lock_timeout = '1s'");
        await writer.query("UPDATE t SET v = 'after the verify' WHERE id = 2");
      } finally {
        await writer.end();
      }
      const sessions = await fixture.db.query(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'pgshovel verify%'",
      );
      assert.deepEqual(sessions, [], "no verify session is left on the source");
    } finally {
      await fixture.startWorker();
    }
    const run = await runVerify(fixture);
    assert.equal(run.code, 0, run.stdout + run.stderr);
  });
});

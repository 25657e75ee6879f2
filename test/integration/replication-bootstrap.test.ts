/**
 * The bootstrap refuses a target that does not fit before writing anything, never copies
 * over rows, and survives an interrupted copy: the table that failed holds nothing, and
 * a resumed bootstrap copies only what is missing.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { dbNames } from "../../src/config/names.js";
import { isPgshovelError } from "../../src/errors.js";
import type { CopyProgress } from "../../src/replication/bootstrap.js";
import { bootstrapFromQueue } from "../../src/replication/queue-replica.js";
import { waitFor } from "../support/wait.js";
import {
  catchUp,
  checksum,
  type ReplicaFixture,
  replicaFixture,
  totals,
} from "./replication-support.js";

async function copiedTables(fixture: ReplicaFixture): Promise<string[]> {
  const schema = dbNames.schema(fixture.cluster);
  const [exists] = await fixture.target.query<{ present: boolean }>(
    "SELECT to_regclass($1) IS NOT NULL AS present",
    [`${schema}.${dbNames.replicaTables}`],
  );
  if (!exists!.present) return [];
  const rows = await fixture.target.query<{ name: string }>(
    `SELECT table_name AS name FROM ${schema}.${dbNames.replicaTables} ORDER BY 1`,
  );
  return rows.map((row) => row.name);
}

async function assertEqual(fixture: ReplicaFixture, tables: string[]): Promise<void> {
  for (const table of tables) {
    const [src, dst] = await Promise.all(
      [fixture.source, fixture.target].map((db) => checksum(db, table, ["id", "v"], ["id"])),
    );
    assert.deepEqual(dst, src, `${table} equal`);
  }
}

describe("replica bootstrap", () => {
  test("a missing table, a missing column, another type: a clear error and nothing written", async () => {
    const fixture = await replicaFixture({
      tables: ["t1"],
      prepare: async (db) => {
        await db.query("CREATE TABLE t1 (id int8 PRIMARY KEY, name varchar(20), qty int4)");
        await db.query("INSERT INTO t1 VALUES (1, 'a', 1)");
      },
    });
    try {
      const attempt = async (code: string, pattern: RegExp) => {
        await assert.rejects(bootstrapFromQueue(fixture.replica), (error: unknown) => {
          assert.ok(isPgshovelError(error), String(error));
          assert.equal(error.code, code);
          assert.match(error.message, pattern);
          return true;
        });
        const [schema] = await fixture.target.query<{ n: string }>(
          "SELECT count(*) AS n FROM pg_namespace WHERE nspname = $1",
          [dbNames.schema(fixture.cluster)],
        );
        assert.equal(schema!.n, "0", "no replica state on the target");
        const consumers = await fixture.source.query<{ name: string }>(
          "SELECT consumer_name AS name FROM pgq.get_consumer_info($1)",
          [fixture.queue],
        );
        assert.deepEqual(
          consumers.map((c) => c.name),
          ["pgshovel"],
          "no replica consumer on the source",
        );
      };
      await attempt("NOT_FOUND", /target table public\.t1 does not exist/);
      await fixture.target.query("CREATE TABLE t1 (id int8 PRIMARY KEY, name varchar(20))");
      await attempt("NOT_FOUND", /public\.t1 has no column "qty" \(integer on the source\)/);
      await fixture.target.query("ALTER TABLE t1 ADD COLUMN qty int8, ALTER COLUMN name TYPE text");
      await attempt(
        "INVALID_CONFIGURATION",
        /column "name" is text, the source's is character varying\(20\); .*column "qty" is bigint, the source's is integer/,
      );
      await fixture.target.query(
        "ALTER TABLE t1 ALTER COLUMN qty TYPE int4, ALTER COLUMN name TYPE varchar(20), DROP CONSTRAINT t1_pkey",
      );
      await attempt("INVALID_CONFIGURATION", /no primary key or unique index on \(id\)/);
      await fixture.target.query("ALTER TABLE t1 ADD PRIMARY KEY (id)");
      const [count] = await fixture.target.query<{ n: string }>("SELECT count(*) AS n FROM t1");
      assert.equal(count!.n, "0");
      // fits now
      const result = await bootstrapFromQueue(fixture.replica);
      assert.deepEqual(result.copied, [{ table: { schema: "public", name: "t1" }, rows: 1n }]);
    } finally {
      await fixture.close();
    }
  });

  test("a target table with rows and no state is refused, not copied over", async () => {
    const fixture = await replicaFixture({
      tables: ["t1", "t2"],
      prepare: async (db) => {
        await db.query("CREATE TABLE t1 (id int PRIMARY KEY, v text)");
        await db.query("CREATE TABLE t2 (id int PRIMARY KEY, v text)");
        await db.query("INSERT INTO t1 VALUES (1, 'source')");
      },
      prepareTarget: async (db) => {
        await db.query("CREATE TABLE t1 (id int PRIMARY KEY, v text)");
        await db.query("CREATE TABLE t2 (id int PRIMARY KEY, v text)");
        await db.query("INSERT INTO t2 VALUES (1, 'already here')");
      },
    });
    try {
      await assert.rejects(bootstrapFromQueue(fixture.replica), (error: unknown) => {
        assert.ok(isPgshovelError(error, "INVALID_CONFIGURATION"), String(error));
        assert.match(error.message, /public\.t2 has rows but the replica has not copied it/);
        assert.match(error.hint ?? "", /truncate public\.t2/);
        return true;
      });
      assert.deepEqual(await copiedTables(fixture), []);
      const [t1] = await fixture.target.query<{ n: string }>("SELECT count(*) AS n FROM t1");
      assert.equal(t1!.n, "0", "no table copied when one is refused");
    } finally {
      await fixture.close();
    }
  });

  test("a table whose copy fails holds nothing; the resumed bootstrap copies it alone, exactly", async () => {
    const fixture = await replicaFixture({
      tables: ["good1", "good2", "bad"],
      prepare: async (db) => {
        for (const table of ["good1", "good2", "bad"]) {
          await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v int)`);
          await db.query(`INSERT INTO ${table} SELECT g, g FROM generate_series(1, 1000) g`);
        }
      },
      prepareTarget: async (db) => {
        await db.query("CREATE TABLE good1 (id int PRIMARY KEY, v int)");
        await db.query("CREATE TABLE good2 (id int PRIMARY KEY, v int)");
        // row 1000 of the source breaks this constraint: the copy fails at its end
        await db.query(
          "CREATE TABLE bad (id int PRIMARY KEY, v int CONSTRAINT small CHECK (v < 1000))",
        );
      },
    });
    try {
      await assert.rejects(
        bootstrapFromQueue({ ...fixture.replica, jobs: 2 }),
        (error: unknown) => {
          assert.ok(isPgshovelError(error, "DATABASE_ERROR"), String(error));
          assert.match(error.message, /bootstrap copy of public\.bad/);
          return true;
        },
      );
      assert.deepEqual(await copiedTables(fixture), ["good1", "good2"]);
      const [bad] = await fixture.target.query<{ n: string }>("SELECT count(*) AS n FROM bad");
      assert.equal(bad!.n, "0");

      // the stream goes on meanwhile: bad's changes wait for its copy, which will hold them
      await fixture.source.query(
        "UPDATE good1 SET v = -v WHERE id <= 10; UPDATE bad SET v = 1 WHERE id = 1000",
      );
      assert.equal(totals(await catchUp(fixture)).notCopied, 1);
      await fixture.target.query("ALTER TABLE bad DROP CONSTRAINT small");
      const resumed = await bootstrapFromQueue(fixture.replica);
      assert.deepEqual(resumed.copied, [{ table: { schema: "public", name: "bad" }, rows: 1000n }]);
      assert.deepEqual(
        resumed.alreadyCopied.map((t) => t.name),
        ["good1", "good2"],
      );
      await fixture.source.query(
        "UPDATE bad SET v = 2 WHERE id = 1000; DELETE FROM good2 WHERE id > 500",
      );
      await catchUp(fixture);
      await assertEqual(fixture, ["good1", "good2", "bad"]);
    } finally {
      await fixture.close();
    }
  });

  test("a connection killed mid-COPY leaves the table empty and unrecorded; resuming copies it", async () => {
    const fixture = await replicaFixture({
      tables: ["big", "small"],
      prepare: async (db) => {
        await db.query("CREATE TABLE big (id int PRIMARY KEY, v text)");
        await db.query(
          "INSERT INTO big SELECT g, repeat('x', 50) FROM generate_series(1, 200000) g",
        );
        await db.query("ANALYZE big");
        await db.query("CREATE TABLE small (id int PRIMARY KEY, v text)");
        await db.query("INSERT INTO small SELECT g, 's' FROM generate_series(1, 10) g");
      },
      prepareTarget: async (db) => {
        await db.query("CREATE TABLE big (id int PRIMARY KEY, v text)");
        await db.query("CREATE TABLE small (id int PRIMARY KEY, v text)");
        // Halfway through, the copy waits on a lock the test holds: it is surely mid-COPY
        // when the test kills it. ALWAYS: it fires under session_replication_role = replica.
        await db.query(`CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN
            IF NEW.id = 100000 THEN PERFORM pg_advisory_xact_lock_shared(4242); END IF;
            RETURN NEW;
          END $$`);
        await db.query(
          "CREATE TRIGGER stall BEFORE INSERT ON big FOR EACH ROW EXECUTE FUNCTION stall()",
        );
        await db.query("ALTER TABLE big ENABLE ALWAYS TRIGGER stall");
      },
    });
    const holder = await fixture.target.connect();
    try {
      await holder.query("SELECT pg_advisory_lock(4242)");
      const reports: CopyProgress[] = [];
      const bootstrap = bootstrapFromQueue({
        ...fixture.replica,
        jobs: 2,
        progressIntervalMs: 0,
        onProgress: (p) => reports.push(p),
      });
      bootstrap.catch(() => {});
      const stalled = await waitFor(
        async () => {
          const rows = await fixture.target.query<{ pid: number }>(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
          );
          return rows[0];
        },
        { description: "the copy of big to wait on the test's lock" },
      );
      await fixture.target.query("SELECT pg_terminate_backend($1)", [stalled.pid]);
      await assert.rejects(bootstrap, (error: unknown) => {
        assert.ok(isPgshovelError(error), String(error));
        assert.match(error.message, /bootstrap copy of public\.big/);
        return true;
      });
      const big = reports.filter((r) => r.table === "public.big");
      assert.ok(
        big.some((r) => r.rows > 0 && !r.done),
        "progress was reported mid-copy",
      );
      assert.equal(big[0]!.totalEstimate, 200000);
      assert.ok(!big.some((r) => r.done));
      assert.deepEqual(await copiedTables(fixture), ["small"]);
      const [count] = await fixture.target.query<{ n: string }>("SELECT count(*) AS n FROM big");
      assert.equal(count!.n, "0");

      await holder.query("SELECT pg_advisory_unlock(4242)");
      await fixture.target.query("DROP TRIGGER stall ON big");
      const resumed = await bootstrapFromQueue(fixture.replica);
      assert.deepEqual(resumed.copied, [
        { table: { schema: "public", name: "big" }, rows: 200000n },
      ]);
      await catchUp(fixture);
      await assertEqual(fixture, ["big", "small"]);
    } finally {
      await holder.end().catch(() => {});
      await fixture.close();
    }
  });
});

/**
 * `pgshovel replicate` against what does not fit: a target that is down (retried), a target
 * table or column missing, a column of another type, a PgQ consumer dropped (a gap). Each
 * stops with a message that names the cause, and writes nothing it should not.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { dbNames } from "../../src/config/names.js";
import { waitForLog } from "../support/fixtures.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import { type PrivatePostgres, startPrivatePostgres } from "../support/private-services.js";
import {
  assertReplicaEqual,
  type ComparedTable,
  type ReplicateFixture,
  replicateFixture,
  runReplicate,
  startReplicate,
} from "./replicate-support.js";
import { checksum } from "./replication-support.js";

const T: ComparedTable[] = [{ name: "t", key: ["id"], columns: ["id", "v"] }];

async function prepare(db: TestDatabase): Promise<void> {
  await db.query("CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)");
  await db.query("INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 100) g");
}

/** The target's tables and schemas, to show that nothing was written. */
async function targetObjects(target: TestDatabase): Promise<string[]> {
  const rows = await target.query<{ name: string }>(
    `SELECT n.nspname || '.' || c.relname AS name FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND c.relkind = 'r'
      ORDER BY 1`,
  );
  return rows.map((row) => row.name);
}

describe("pgshovel replicate: a target that does not fit changes nothing", () => {
  let fixture: ReplicateFixture;
  before(async () => {
    fixture = await replicateFixture({ prepare, tables: ["t"] });
  });
  after(async () => {
    await fixture?.close();
  });

  const cases = [
    { name: "a missing table", ddl: [], message: /target table public\.t does not exist/ },
    {
      name: "a missing column",
      ddl: ["CREATE TABLE t (id int PRIMARY KEY)"],
      message: /target table public\.t has no column "v" \(text on the source\)/,
    },
    {
      name: "a column of another type",
      ddl: ["CREATE TABLE t (id int PRIMARY KEY, v varchar(10) NOT NULL)"],
      message: /column "v" is character varying\(10\), the source's is text/,
    },
  ];
  for (const each of cases) {
    test(`${each.name}: exit 1, the table and column named, nothing written`, async () => {
      await fixture.target.query("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
      for (const statement of each.ddl) await fixture.target.query(statement);
      const before = await targetObjects(fixture.target);
      const run = await runReplicate(fixture, ["--until-caught-up"]);
      assert.equal(run.code, 1, run.stderr.slice(-2000));
      assert.match(run.stderr, each.message);
      assert.deepEqual(await targetObjects(fixture.target), before, "nothing created");
    });
  }
});

describe("pgshovel replicate: a dropped PgQ consumer is a gap", () => {
  let fixture: ReplicateFixture;
  before(async () => {
    fixture = await replicateFixture({ prepare, tables: ["t"] });
  });
  after(async () => {
    await fixture?.close();
  });

  test("unregistered, or unregistered and registered again: exit 1, POSITION_LOST, nothing applied", async () => {
    const first = await runReplicate(fixture, ["--create-tables", "--until-caught-up"]);
    assert.equal(first.code, 0, first.stderr.slice(-2000));
    await assertReplicaEqual(fixture, T);
    const [node] = await fixture.target.query<{ id: string }>(
      `SELECT id::text FROM pgshovel_${fixture.cluster}.node`,
    );
    const consumer = dbNames.replicaConsumer(node!.id);
    const replica = await checksum(fixture.target, "t", ["id", "v"], ["id"]);

    await fixture.db.query("SELECT pgq.unregister_consumer($1, $2)", [fixture.queue, consumer]);
    await fixture.db.query("INSERT INTO t VALUES (1000, 'lost')");
    const lost = await runReplicate(fixture, ["--until-caught-up"]);
    assert.equal(lost.code, 1, lost.stderr.slice(-2000));
    assert.match(lost.stderr, new RegExp(`consumer ${consumer} is not registered`));
    assert.match(lost.stderr, /hint: .*rebuild the replica/);

    // Registered again by hand, it starts at the latest tick — after the one that holds
    // row 1000: the batches between are gone.
    await fixture.db.query("SELECT pgq.force_tick($1)", [fixture.queue]);
    await fixture.db.query("SELECT pgq.ticker($1)", [fixture.queue]);
    await fixture.db.query("SELECT pgq.register_consumer($1, $2)", [fixture.queue, consumer]);
    await fixture.db.query("INSERT INTO t VALUES (1001, 'after')");
    const gap = await runReplicate(fixture, ["--until-caught-up"]);
    assert.equal(gap.code, 1, gap.stderr.slice(-2000));
    assert.match(gap.stderr, /starts at tick \d+, but the replica stands at tick \d+/);
    assert.deepEqual(await checksum(fixture.target, "t", ["id", "v"], ["id"]), replica);
  });
});

describe("pgshovel replicate: a target that is down", () => {
  let fixture: ReplicateFixture;
  let server: PrivatePostgres;
  let target: TestDatabase;
  before(async () => {
    fixture = await replicateFixture({ prepare, tables: ["t"] });
    server = await startPrivatePostgres();
    target = await createTestDatabase("repl_dst", { pgq: false, server: server.server });
  });
  after(async () => {
    await target?.drop().catch(() => {});
    await server?.destroy();
    await fixture?.close();
  });

  test("is retried with backoff and logged; once it is up the replica catches up", async () => {
    await server.stop();
    const replica = { ...fixture, target };
    const worker = startReplicate(replica, ["--create-tables", "--until-caught-up"]);
    await waitForLog(worker, "recoverable failure: retrying", 60_000);
    await waitForLog(worker, '"retryInMs":400', 60_000);
    await fixture.db.query("INSERT INTO t VALUES (500, 'while the target was down')");
    await server.start();
    const exit = await worker.exited;
    assert.equal(exit.code, 0, worker.stderr().slice(-2000));
    await assertReplicaEqual(replica, T);
  });
});

/**
 * An unplanned failover end to end: a replica fed from the queue of a source on a private
 * server, its worker killed with SIGKILL mid-load, the source killed too; the replica
 * promoted with the source unreachable (refused while a worker stands for it); then, once
 * the old source is back, `set missing` lists exactly the transactions committed after the
 * replica's last batch, with their changes, and none that rolled back.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type pg from "pg";
import { type SetFixture, setupSet, startPgshovel } from "../support/fixtures.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import { type PrivatePostgres, startPrivatePostgres } from "../support/private-services.js";
import { waitFor } from "../support/wait.js";
import { pgshovel } from "./switchover-support.js";

const DDL = [
  "CREATE TABLE t (id bigserial PRIMARY KEY, txid bigint NOT NULL, v text NOT NULL)",
  "CREATE TABLE c (id int PRIMARY KEY, n bigint NOT NULL)",
  "INSERT INTO c VALUES (1, 0)",
];

/** One transaction of the load: a row of t naming its txid, and the counter. */
async function writeOne(
  client: pg.Client,
  i: number,
  commit: boolean,
): Promise<{ id: string; txid: string }> {
  await client.query("BEGIN");
  const [row] = (
    await client.query<{ id: string; txid: string }>(
      "INSERT INTO t (txid, v) VALUES (txid_current(), $1) RETURNING id::text, txid::text",
      [`row ${i}`],
    )
  ).rows;
  await client.query("UPDATE c SET n = n + 1 WHERE id = 1");
  await client.query(commit ? "COMMIT" : "ROLLBACK");
  return row!;
}

interface MissingJson {
  complete: boolean;
  transactions: {
    txid: string;
    changes: { operation: string; table: string; new: Record<string, unknown> | null }[];
  }[];
}

describe("unplanned failover", () => {
  let server: PrivatePostgres;
  let fixture: SetFixture;
  let target: TestDatabase;
  before(async () => {
    server = await startPrivatePostgres();
    fixture = await setupSet({
      server: server.server,
      prefix: "fo_src",
      tables: ["t", "c"],
      prepare: async (db) => {
        for (const statement of DDL) await db.query(statement);
      },
    });
    target = await createTestDatabase("fo_dst", { pgq: false });
    for (const statement of DDL.slice(0, 2)) await target.query(statement);
  });
  after(async () => {
    await fixture?.close().catch(() => {});
    await target?.drop();
    await server?.destroy();
  });

  test("promote with the source gone, then list what the replica lacks", async () => {
    const env = { PGSHOVEL_ZOOKEEPER_TIMEOUT: "4s" };
    const worker = startPgshovel(fixture, ["replicate", "s", "--target", target.dsn], { env });
    const committed: { id: string; txid: string }[] = [];
    const rolledBack: string[] = [];
    const client = await fixture.db.connect();
    try {
      let i = 0;
      const writeSome = async (n: number) => {
        for (let k = 0; k < n; k++, i++) {
          const commit = i % 10 !== 9;
          const row = await writeOne(client, i, commit);
          if (commit) committed.push(row);
          else rolledBack.push(row.txid);
        }
      };
      // The load runs throughout: the worker is killed while it writes, then 50 more follow.
      let killedAt: number | undefined;
      const load = (async () => {
        while (killedAt === undefined || i < killedAt + 50) await writeSome(1);
      })();
      load.catch(() => {});
      await waitFor(
        async () =>
          Number((await target.query<{ n: string }>("SELECT count(*) AS n FROM t"))[0]!.n) >= 100,
        { timeoutMs: 60_000, intervalMs: 20, description: "the replica to apply 100 rows" },
      );
      const busy = await pgshovel(fixture, ["set", "promote", "s", "--target", target.dsn]);
      assert.equal(busy.code, 1);
      assert.match(busy.stderr, /replica worker\(s\) stand for set s/);
      worker.child.kill("SIGKILL");
      await worker.exited;
      killedAt = i;
      await load;
    } finally {
      await client.end();
    }
    // Stopped, not killed: the private server commits asynchronously, and a crash would lose
    // the last commits from the source itself.
    await server.stop();

    // Promoted once the dead worker's ZooKeeper session has expired; the source is unreachable.
    const promoted = await waitFor(
      async () => {
        const run = await pgshovel(fixture, [
          "set",
          "promote",
          "s",
          "--target",
          target.dsn,
          "--source-timeout",
          "2s",
        ]);
        return run.code === 0 ? run : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, description: "the promotion to go through" },
    );
    assert.match(promoted.stdout, /the source could not be reached/);
    const [seq] = await target.query<{ next: string; max: string }>(
      "SELECT nextval('t_id_seq')::text AS next, (SELECT max(id) FROM t)::text AS max",
    );
    assert.ok(BigInt(seq!.next) > BigInt(seq!.max) + 1000n, `next ${seq!.next}, max ${seq!.max}`);

    await server.start();
    const listed = await pgshovel(fixture, [
      "set",
      "missing",
      "s",
      "--target",
      target.dsn,
      "--json",
    ]);
    assert.equal(listed.code, 0, listed.stderr);
    const report = JSON.parse(listed.stdout) as MissingJson;
    assert.equal(report.complete, true);
    const onReplica = new Set(
      (await target.query<{ txid: string }>("SELECT txid::text AS txid FROM t")).map((r) => r.txid),
    );
    const expected = committed.filter((row) => !onReplica.has(row.txid));
    assert.ok(
      expected.length >= 45,
      `only ${expected.length} transactions after the replica's last batch`,
    );
    assert.deepEqual(
      report.transactions.map((t) => t.txid).sort(),
      expected.map((row) => row.txid).sort(),
    );
    for (const transaction of report.transactions) {
      assert.ok(!rolledBack.includes(transaction.txid));
      const row = expected.find((r) => r.txid === transaction.txid)!;
      assert.deepEqual(
        transaction.changes.map(
          (c) => `${c.operation} ${c.table} ${c.table === "t" ? String(c.new?.id) : ""}`,
        ),
        [`INSERT t ${row.id}`, "UPDATE c "],
      );
    }
    const human = await pgshovel(fixture, ["set", "missing", "s", "--target", target.dsn]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, new RegExp(`holds ${expected.length} transaction\\(s\\) it lacks`));
    assert.match(human.stdout, new RegExp(`transaction ${expected[0]!.txid} \\(2 change\\(s\\)`));
  });
});

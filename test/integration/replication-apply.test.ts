/**
 * The applier on real changes: every operation, key changes, TRUNCATE, rolled-back work,
 * column filters; and its crash safety: a batch applied twice counts once, an aborted or
 * diverging batch leaves nothing.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { dbNames } from "../../src/config/names.js";
import { isPgshovelError } from "../../src/errors.js";
import { BatchApplier } from "../../src/replication/apply.js";
import { bootstrapFromQueue } from "../../src/replication/queue-replica.js";
import { describeSourceTables } from "../../src/replication/target-schema.js";
import { readPosition } from "../../src/replication/target-state.js";
import { parseSnapshot } from "../../src/stream/snapshot.js";
import type { Mutation } from "../../src/stream/types.js";
import {
  catchUp,
  checksum,
  type ReplicaFixture,
  replicaFixture,
  totals,
} from "./replication-support.js";

async function assertEqualTables(
  fixture: ReplicaFixture,
  tables: [string, string[]][],
): Promise<void> {
  for (const [table, columns] of tables) {
    const [src, dst] = await Promise.all(
      [fixture.source, fixture.target].map((db) => checksum(db, table, columns, ["id"])),
    );
    assert.deepEqual(dst, src, `${table} equal`);
  }
}

async function positionOf(fixture: ReplicaFixture) {
  const client = await fixture.target.connect();
  try {
    return await readPosition(client, fixture.cluster, fixture.set);
  } finally {
    await client.end();
  }
}

describe("replica apply", () => {
  test("big UPDATE and DELETE runs go through a staging table, in order, and a missing row is named", async () => {
    const fixture = await replicaFixture({
      tables: ["items"],
      prepare: async (db) => {
        await db.query("CREATE TABLE items (id int8 PRIMARY KEY, name text, qty int4)");
        await db.query("INSERT INTO items SELECT g, 'n' || g, g FROM generate_series(1, 3000) g");
      },
    });
    try {
      await bootstrapFromQueue({ ...fixture.replica, createTables: true });
      const db = fixture.source;
      const same = await db.connect();
      try {
        // One transaction, one batch: runs of hundreds of rows, a key moved twice.
        await same.query("BEGIN");
        await same.query("UPDATE items SET qty = qty * 2, name = E'a\\tb' WHERE id <= 1000");
        await same.query("UPDATE items SET id = id + 10000 WHERE id BETWEEN 1001 AND 1500");
        await same.query("UPDATE items SET id = id + 10000 WHERE id BETWEEN 11001 AND 11200");
        await same.query("DELETE FROM items WHERE id BETWEEN 2001 AND 2600");
        await same.query(
          "INSERT INTO items SELECT g, 'again', g FROM generate_series(2001, 2100) g",
        );
        await same.query("UPDATE items SET qty = -1 WHERE id BETWEEN 2001 AND 2100");
        await same.query("COMMIT");
      } finally {
        await same.end();
      }
      const results = await catchUp(fixture);
      const statements = results.reduce(
        (n, r) => n + (r.kind === "applied" ? r.stats.statements : 0),
        0,
      );
      assert.ok(statements < 20, `statements: ${statements}`);
      await assertEqualTables(fixture, [["items", ["id", "name", "qty"]]]);

      await fixture.target.query("DELETE FROM items WHERE id = 2900");
      await db.query("UPDATE items SET qty = 0 WHERE id > 2700");
      await assert.rejects(catchUp(fixture), (error: unknown) => {
        assert.ok(isPgshovelError(error, "CONFLICT"), String(error));
        assert.match(
          error.message,
          /diverged.*UPDATE of 800 rows of public\.items: 799 matched; no row has key \(id\)=\(2900\)/,
        );
        return true;
      });
      await fixture.target.query("INSERT INTO items VALUES (2900, 'n2900', 2900)");
      await catchUp(fixture);
      await assertEqualTables(fixture, [["items", ["id", "name", "qty"]]]);
    } finally {
      await fixture.close();
    }
  });

  test("inserts, updates, deletes, key changes, truncates, rollbacks and column filters arrive exactly", async () => {
    const fixture = await replicaFixture({
      tables: [
        "items",
        { name: "filtered", schema: "public", columns: ["a", "b"] },
        "scratch",
        "gone",
      ],
      prepare: async (db) => {
        await db.query("CREATE TABLE items (id int8 PRIMARY KEY, name text, qty int4)");
        await db.query("CREATE TABLE filtered (id int PRIMARY KEY, a text, b text, secret text)");
        await db.query("CREATE TABLE scratch (id int PRIMARY KEY, v text)");
        await db.query("CREATE TABLE gone (id int PRIMARY KEY)");
        await db.query("INSERT INTO items SELECT g, 'n' || g, g FROM generate_series(1, 2000) g");
        await db.query(
          "INSERT INTO filtered SELECT g, 'a' || g, 'b' || g, 's' FROM generate_series(1, 10) g",
        );
        await db.query("INSERT INTO scratch SELECT g, 'v' FROM generate_series(1, 5) g");
      },
    });
    try {
      // the replica leaves "gone" out of its set: its changes are skipped
      const tables = fixture.replica.tables.filter((t) => t.name !== "gone");
      const replica = { ...fixture.replica, tables };
      await bootstrapFromQueue({ ...replica, createTables: true });
      const [columns] = await fixture.target.query<{ names: string[] }>(
        "SELECT array_agg(attname::text ORDER BY attnum) AS names FROM pg_attribute WHERE attrelid = 'filtered'::regclass AND attnum > 0",
      );
      assert.deepEqual(columns!.names, ["id", "a", "b"], "only the captured columns");

      const db = fixture.source;
      await db.query("INSERT INTO items SELECT g, 'n' || g, g FROM generate_series(2001, 3000) g");
      await db.query("UPDATE items SET id = id + 1000000 WHERE id <= 500"); // 500 key changes
      await db.query("UPDATE items SET qty = qty + 1 WHERE id % 2 = 0");
      const same = await db.connect();
      try {
        // one key, many changes in one transaction: their order must hold
        await same.query("BEGIN");
        await same.query("INSERT INTO items VALUES (42, 'a', 1)");
        await same.query("UPDATE items SET qty = 2 WHERE id = 42");
        await same.query("UPDATE items SET id = 43 WHERE id = 42");
        await same.query("DELETE FROM items WHERE id = 43");
        await same.query("INSERT INTO items VALUES (43, 'b', 3)");
        await same.query("UPDATE items SET id = 42, name = 'c' WHERE id = 43");
        await same.query("COMMIT");
        await same.query("BEGIN");
        await same.query("INSERT INTO items VALUES (999999, 'rolled back', 0)");
        await same.query("UPDATE items SET name = 'rolled back' WHERE id = 1000001");
        await same.query("ROLLBACK");
      } finally {
        await same.end();
      }
      await db.query("DELETE FROM items WHERE id % 3 = 0");
      await db.query("UPDATE filtered SET secret = 'not captured'");
      await db.query("UPDATE filtered SET a = 'A' || id, secret = 's2' WHERE id <= 5");
      await db.query("INSERT INTO filtered VALUES (11, 'a11', 'b11', 'sec')");
      await db.query("DELETE FROM filtered WHERE id = 10");
      await db.query("INSERT INTO scratch VALUES (6, 'x')");
      await db.query("TRUNCATE scratch");
      await db.query("INSERT INTO scratch VALUES (1, 'after the truncate')");
      await db.query("INSERT INTO gone SELECT generate_series(1, 3)");

      // small runs: many statements per batch, cut by size and by keys seen again
      const results = await catchUp(fixture, { tables, limits: { rows: 64, chars: 1 << 20 } });
      const sums = totals(results);
      assert.equal(sums.notInSet, 3);
      assert.equal(sums.inCopy, 0);
      await assertEqualTables(fixture, [
        ["items", ["id", "name", "qty"]],
        ["filtered", ["id", "a", "b"]],
        ["scratch", ["id", "v"]],
      ]);
      const [absent] = await fixture.target.query<{ n: string }>(
        "SELECT count(*) AS n FROM items WHERE id = 999999 OR name = 'rolled back'",
      );
      assert.equal(absent!.n, "0");
      const [moved] = await fixture.target.query<{ n: string }>(
        "SELECT count(*) AS n FROM items WHERE id > 1000000",
      );
      assert.ok(Number(moved!.n) > 300, "key changes applied");
    } finally {
      await fixture.close();
    }
  });

  test("a batch applied again after a crash before finish_batch is skipped; an aborted or diverging batch leaves nothing", async () => {
    const fixture = await replicaFixture({
      tables: ["items"],
      prepare: async (db) => {
        await db.query("CREATE TABLE items (id int8 PRIMARY KEY, name text, qty int4)");
      },
    });
    try {
      const bootstrap = await bootstrapFromQueue({ ...fixture.replica, createTables: true });
      await fixture.source.query(
        "INSERT INTO items SELECT g, 'n', g FROM generate_series(1, 100) g",
      );

      // committed on the target, then "crashed" before finish_batch
      const first = await catchUp(fixture, { finish: false });
      assert.equal(first.length, 1);
      assert.equal(first[0]!.kind, "applied");
      const again = await catchUp(fixture);
      assert.equal(again[0]!.kind, "skipped");
      assert.equal(again[0]!.id, first[0]!.id);
      await assertEqualTables(fixture, [["items", ["id", "name", "qty"]]]);
      const stored = await fixture.target.query<{ n: string; batch: string }>(
        `SELECT count(*) AS n, max(batch_id)::text AS batch FROM ${dbNames.schema(fixture.cluster)}.${dbNames.replicaPosition} WHERE set_name = 's'`,
      );
      assert.equal(stored[0]!.n, "1");
      assert.equal(stored[0]!.batch, again.at(-1)!.id.toString());
      const position = (await positionOf(fixture))!;

      // the caller's stream fails mid-batch: nothing of it stays
      const source = await fixture.source.connect();
      const target = await fixture.target.connect();
      try {
        const tables = await describeSourceTables(source, fixture.replica.tables);
        const applier = new BatchApplier(target, { cluster: fixture.cluster, set: "s", tables });
        const tick = {
          id: 1n,
          snapshot: parseSnapshot("1:1:"),
          time: "2026-01-01T00:00:00.000000Z",
        };
        async function* failing(): AsyncGenerator<Mutation> {
          yield {
            id: 1n,
            schema: "public",
            table: "items",
            operation: "INSERT",
            identity: ["id"],
            old: null,
            new: { id: "777777", name: "x", qty: 1 },
            transaction: 1n << 62n,
            time: tick.time,
          };
          throw new Error("the stream broke");
        }
        await assert.rejects(
          applier.apply({
            node: position.node,
            id: position.batch + 1000n,
            begin: { start: tick, end: tick },
            mutations: failing(),
          }),
          /the stream broke/,
        );
      } finally {
        await source.end();
        await target.end();
      }
      assert.deepEqual(await positionOf(fixture), position);

      // the target diverged: an UPDATE finds no row; the whole batch is refused
      await fixture.target.query("DELETE FROM items WHERE id = 7");
      await fixture.source.query(
        "BEGIN; INSERT INTO items VALUES (101, 'new', 1); UPDATE items SET qty = 0 WHERE id = 7; COMMIT",
      );
      await assert.rejects(catchUp(fixture), (error: unknown) => {
        assert.ok(isPgshovelError(error, "CONFLICT"), String(error));
        assert.match(error.message, /diverged.*public\.items.*\(id\)=\(7\)/);
        return true;
      });
      assert.deepEqual(await positionOf(fixture), position);
      const [row] = await fixture.target.query<{ n: string }>(
        "SELECT count(*) AS n FROM items WHERE id IN (101, 777777)",
      );
      assert.equal(row!.n, "0");
      assert.equal(bootstrap.copied.length, 1);

      // healed, it goes on; a duplicate key in an INSERT run written with COPY is refused too
      await fixture.target.query("INSERT INTO items VALUES (7, 'n', 7)");
      await catchUp(fixture);
      await assertEqualTables(fixture, [["items", ["id", "name", "qty"]]]);
      await fixture.target.query("INSERT INTO items VALUES (300, 'behind its back', 0)");
      await fixture.source.query(
        "INSERT INTO items SELECT g, 'n', g FROM generate_series(201, 400) g",
      );
      await assert.rejects(catchUp(fixture), (error: unknown) => {
        assert.ok(isPgshovelError(error, "CONFLICT"), String(error));
        assert.match(
          error.message,
          /diverged from the source: INSERT of 200 rows of public\.items: a key already exists.*\(id\)=\(300\)/,
        );
        return true;
      });
    } finally {
      await fixture.close();
    }
  });
});

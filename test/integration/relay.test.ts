import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { dropSet, updateSet } from "../../src/cluster/admin.js";
import type { Mutation, Snapshot } from "../../src/stream/types.js";
import {
  pgbench,
  setupPgbenchSet,
  setupSet,
  startRelay,
  stopRelay,
  waitForLog,
} from "../support/fixtures.js";
import { waitFor } from "../support/wait.js";
import { assemble, readStreamFile, tempDirFor, waitForMutations } from "./relay-support.js";

const dir = tempDirFor("pgshovel-relay-");

/** Whether a transaction had committed when `snapshot` was taken (`pg_visible_in_snapshot`). */
function visibleIn(txid: bigint, snapshot: Snapshot): boolean {
  return txid < snapshot.xmin || (txid < snapshot.xmax && !snapshot.xip.includes(txid));
}

const isHistoryInsert = (m: Mutation) => m.table === "pgbench_history" && m.operation === "INSERT";

describe("relay to a file", () => {
  test("a pgbench workload arrives whole, transaction-exact, in order; rolled back work is absent", async () => {
    const fixture = await setupPgbenchSet();
    const path = join(dir(), "pgbench.jsonl");
    const relay = startRelay(fixture, ["--sink", `file:${path}`]);
    try {
      await pgbench(fixture.db, ["-n", "-c", "2", "-t", "250"]);
      // A transaction that rolls back leaves nothing in the stream.
      const client = await fixture.db.connect();
      await client.query("BEGIN");
      await client.query("UPDATE pgbench_branches SET bbalance = 424242");
      await client.query(
        "INSERT INTO pgbench_history (tid, bid, aid, delta) VALUES (1, 1, 1, 424242)",
      );
      await client.query("ROLLBACK");
      await client.end();
      const [history] = await fixture.db.query<{ count: string }>(
        "SELECT count(*) FROM pgbench_history",
      );
      assert.equal(Number(history!.count), 500);
      const batches = await waitForMutations(path, 500, isHistoryInsert);

      // Diagnostics on SIGUSR1, on stderr.
      relay.child.kill("SIGUSR1");
      await waitForLog(relay, '"diagnostics"');
      assert.match(relay.stderr(), /"set":"s","consumer":"pgshovel"/);

      const exit = await stopRelay(relay);
      assert.deepEqual(exit, { code: 0, signal: null });

      const messages = await readStreamFile(path);
      const { assembler } = assemble(messages); // validates contiguity and bracketing
      assert.equal(
        assembler.stats.duplicates + assembler.stats.rolledBack + assembler.stats.abandoned,
        0,
      );
      const mutations = batches.flatMap((b) => b.mutations);
      assert.equal(mutations.filter(isHistoryInsert).length, 500);
      // An UPDATE that leaves its row unchanged yields no event: pgbench's delta is sometimes 0.
      const [changed] = await fixture.db.query<{ count: string }>(
        "SELECT count(*) FROM pgbench_history WHERE delta <> 0",
      );
      assert.equal(
        mutations.length,
        500 + 3 * Number(changed!.count),
        "3 updates per changing transaction",
      );
      assert.ok(
        !mutations.some((m) => m.new?.bbalance === 424242 || m.new?.delta === 424242),
        "rolled back work is absent",
      );

      // Each transaction lies in exactly one batch; batches follow each other tick by tick.
      const batchOfTransaction = new Map<bigint, bigint>();
      for (const batch of batches) {
        for (const m of batch.mutations) {
          const seen = batchOfTransaction.get(m.transaction);
          assert.ok(
            seen === undefined || seen === batch.id,
            `transaction ${m.transaction} spans batches ${seen} and ${batch.id}`,
          );
          batchOfTransaction.set(m.transaction, batch.id);
        }
      }
      for (let i = 1; i < batches.length; i++) {
        assert.ok(batches[i]!.id > batches[i - 1]!.id);
        assert.equal(batches[i]!.begin.start.id, batches[i - 1]!.begin.end.id, "tick chain");
      }
      // Within a batch, events follow PgQ's event order. Across batches they need not: an
      // event id is drawn when the row changes, but the batch is chosen by commit time, so a
      // transaction that wrote first and committed later lands in a later batch.
      const byId = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);
      for (const batch of batches) {
        const ids = batch.mutations.map((m) => m.id);
        assert.deepEqual(ids, [...ids].sort(byId), `event order in batch ${batch.id}`);
        // Each transaction committed between the batch's two ticks: visible in the end
        // tick's snapshot, not in the start tick's.
        for (const m of batch.mutations) {
          assert.ok(
            visibleIn(m.transaction, batch.begin.end.snapshot),
            `transaction ${m.transaction} visible at the end tick of batch ${batch.id}`,
          );
          assert.ok(
            !visibleIn(m.transaction, batch.begin.start.snapshot),
            `transaction ${m.transaction} not visible at the start tick of batch ${batch.id}`,
          );
        }
      }
      assert.equal(new Set(mutations.map((m) => m.id)).size, mutations.length, "no event twice");
      const historyIds = new Set(mutations.filter(isHistoryInsert).map((m) => m.new!.id));
      assert.equal(historyIds.size, 500);

      // Replaying the stream's account updates gives the database's balances.
      const balances = new Map<string, number>();
      for (const m of mutations)
        if (m.table === "pgbench_accounts")
          balances.set(String(m.new!.aid), Number(m.new!.abalance));
      const rows = await fixture.db.query<{ aid: number; abalance: number }>(
        "SELECT aid, abalance FROM pgbench_accounts WHERE aid = ANY($1::int[])",
        [[...balances.keys()].map(Number)],
      );
      assert.equal(rows.length, balances.size);
      for (const row of rows)
        assert.equal(balances.get(String(row.aid)), row.abalance, `account ${row.aid}`);
    } finally {
      await stopRelay(relay);
      await fixture.close();
    }
  });

  test("protobuf frames in a file decode to the same stream", async () => {
    const fixture = await setupSet({
      prepare: async (db) => {
        await db.query("CREATE TABLE t (id int8 PRIMARY KEY, n numeric, doc jsonb, b bytea)");
      },
      tables: ["t"],
    });
    const path = join(dir(), "proto.bin");
    const relay = startRelay(fixture, ["--sink", `file:${path}`, "--codec", "protobuf"]);
    try {
      await fixture.db.query(
        "INSERT INTO t VALUES (9223372036854775807, 1234567890123456789012345678901234567890.5, 'null', '\\x00ff'), (1, NULL, NULL, NULL)",
      );
      const batches = await waitFor(
        async () => {
          const { batches } = assemble(await readStreamFile(path, "protobuf"));
          return batches.some((b) => b.mutations.length === 2) ? batches : undefined;
        },
        { description: "two inserts in the protobuf stream" },
      );
      const [big, small] = batches.flatMap((b) => b.mutations);
      assert.deepEqual(big!.new, {
        id: "9223372036854775807",
        n: "1234567890123456789012345678901234567890.5",
        doc: "null",
        b: "\\x00ff",
      });
      assert.deepEqual(small!.new, { id: "1", n: null, doc: null, b: null });
    } finally {
      assert.equal((await stopRelay(relay)).code, 0);
      await fixture.close();
    }
  });

  test("capture: statement: packed events arrive one mutation per row, in id order, in JSON and protobuf alike", async () => {
    const fixture = await setupSet({
      prepare: async (db) => {
        await db.query("CREATE TABLE t (id int8 PRIMARY KEY, ok bool, n int4, note text)");
      },
      tables: ["t"],
      capture: "statement",
    });
    const json = join(dir(), "packed.jsonl");
    const proto = join(dir(), "packed.bin");
    // The second relay's consumer exists before the writes (a relay registers its own as it
    // starts, which may come after them; the default consumer exists since set create).
    await fixture.db.query("SELECT pgq.register_consumer($1, 'p')", [fixture.queue]);
    const relays = [
      startRelay(fixture, ["--sink", `file:${json}`]),
      startRelay(fixture, ["--sink", `file:${proto}`, "--codec", "protobuf", "--consumer-id", "p"]),
    ];
    try {
      const client = await fixture.db.connect();
      await client.query("BEGIN");
      // 2 500 rows: three packed events, with quoting, NULLs and empty strings in them
      await client.query(
        `INSERT INTO t SELECT g, g % 2 = 0, g, CASE g % 4 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'a "q", (b)' || E'\\n' ELSE 'x' || g END FROM generate_series(1, 2500) g`,
      );
      await client.query("UPDATE t SET n = -n WHERE id <= 1200");
      await client.query("COMMIT");
      await client.query("DELETE FROM t WHERE id > 1800");
      await client.end();
      const total = 2500 + 1200 + 700;
      const [fromJson, fromProto] = await Promise.all([
        waitForMutations(json, total),
        waitFor(
          async () => {
            const { batches } = assemble(await readStreamFile(proto, "protobuf"));
            const n = batches.reduce((k, b) => k + b.mutations.length, 0);
            return n >= total ? batches : undefined;
          },
          { description: `${total} mutations in the protobuf stream` },
        ),
      ]);
      const mutations = fromJson.flatMap((b) => b.mutations);
      assert.equal(mutations.length, total);
      assert.deepEqual(
        fromProto.flatMap((b) => b.mutations),
        mutations,
        "both codecs carry the same mutations",
      );
      const ids = mutations.map((m) => m.id);
      assert.deepEqual(
        ids,
        [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
      );
      assert.equal(new Set(ids).size, total, "one id per row");
      const [first, second] = [...new Set(mutations.map((m) => m.transaction))];
      const ops = (txid: bigint | undefined) =>
        mutations.filter((m) => m.transaction === txid).map((m) => m.operation);
      assert.deepEqual(ops(first), [
        ...Array<string>(2500).fill("INSERT"),
        ...Array<string>(1200).fill("UPDATE"),
      ]);
      assert.deepEqual(ops(second), Array<string>(700).fill("DELETE"));
      const byKey = (op: string, id: string) =>
        mutations.find((m) => m.operation === op && (m.new ?? m.old)!.id === id)!;
      assert.deepEqual(byKey("INSERT", "6").new, { id: "6", ok: true, n: 6, note: 'a "q", (b)\n' });
      assert.deepEqual(byKey("INSERT", "5").new, { id: "5", ok: false, n: 5, note: "" });
      assert.deepEqual(byKey("UPDATE", "4").old, { id: "4", ok: true, n: 4, note: null });
      assert.deepEqual(byKey("UPDATE", "4").new, { id: "4", ok: true, n: -4, note: null });
      assert.deepEqual(byKey("DELETE", "2500").old, { id: "2500", ok: true, n: 2500, note: null });
    } finally {
      for (const relay of relays) assert.equal((await stopRelay(relay)).code, 0);
      await fixture.close();
    }
  });

  test("follows ZooKeeper: a table added while running is relayed; a dropped set stops the relay with exit 0", async () => {
    const fixture = await setupSet({
      prepare: async (db) => {
        await db.query("CREATE TABLE a (id int PRIMARY KEY, v text)");
        await db.query("CREATE TABLE b (id int PRIMARY KEY, v text)");
      },
      tables: ["a"],
    });
    const path = join(dir(), "follow.jsonl");
    const relay = startRelay(fixture, ["--sink", `file:${path}`]);
    try {
      await fixture.db.query("INSERT INTO a VALUES (1, 'one')");
      await waitForMutations(path, 1, (m) => m.table === "a");
      await updateSet(fixture.ctx, "s", {
        database: { dsn: fixture.db.dsn },
        tables: [
          { name: "a", schema: "public" },
          { name: "b", schema: "public" },
        ],
      });
      await fixture.db.query("INSERT INTO b VALUES (2, 'two')");
      await waitForMutations(path, 1, (m) => m.table === "b");
      const publishers = new Set((await readStreamFile(path)).map((m) => m.header.publisher));
      assert.equal(publishers.size, 1, "the same relay process published both");

      await dropSet(fixture.ctx, "s");
      const exit = await relay.exited;
      assert.deepEqual(exit, { code: 0, signal: null }, relay.stderr());
      assert.match(relay.stderr(), /set s was dropped/);
    } finally {
      await stopRelay(relay);
      await fixture.close();
    }
  });

  test("changes committed before the first relay run are delivered, even past a tick", async () => {
    const fixture = await setupSet({
      prepare: async (db) => {
        await db.query("CREATE TABLE early (id int PRIMARY KEY)");
      },
      tables: ["early"],
    });
    try {
      await fixture.db.query("INSERT INTO early VALUES (1), (2)");
      // A tick now puts the rows behind the queue's latest tick before any relay runs.
      await fixture.db.query("SELECT pgq.force_tick($1)", [`pgshovel_${fixture.cluster}_s`]);
      await fixture.db.query("SELECT pgq.ticker($1)", [`pgshovel_${fixture.cluster}_s`]);
      const path = join(dir(), "early.jsonl");
      const relay = startRelay(fixture, ["--sink", `file:${path}`]);
      try {
        const batches = await waitForMutations(path, 2, undefined, 30_000, relay);
        assert.deepEqual(
          batches.flatMap((b) => b.mutations).map((m) => m.new!.id),
          [1, 2],
        );
      } finally {
        assert.equal((await stopRelay(relay)).code, 0, relay.stderr());
      }
    } finally {
      await fixture.close();
    }
  });

  test("a relay for a set that does not exist fails with a clear message", async () => {
    const fixture = await setupSet({
      prepare: async (db) => {
        await db.query("CREATE TABLE a (id int PRIMARY KEY)");
      },
      tables: ["a"],
    });
    try {
      const relay = startRelay({ ...fixture, set: "nosuchset" }, [
        "--sink",
        `file:${join(dir(), "none.jsonl")}`,
      ]);
      const exit = await relay.exited;
      assert.equal(exit.code, 1);
      assert.match(relay.stderr(), /set "nosuchset" does not exist/);
    } finally {
      await fixture.close();
    }
  });
});

describe("relay to stdout", () => {
  test("pgshovel-stream-relay writes JSON lines to stdout and logs only to stderr", async () => {
    const fixture = await setupSet({
      prepare: async (db) => {
        await db.query("CREATE TABLE a (id int PRIMARY KEY, v text)");
      },
      tables: ["a"],
    });
    const relay = startRelay(fixture, [], "pgshovel-stream-relay");
    let stdout = "";
    relay.child.stdout!.setEncoding("utf8");
    relay.child.stdout!.on("data", (chunk: string) => {
      stdout += chunk;
    });
    try {
      await fixture.db.query("INSERT INTO a VALUES (1, 'héllo 👋')");
      await waitFor(() => stdout.includes('"commit"') && stdout.includes("👋"), {
        description: "the insert on stdout",
      });
      const lines = stdout.trim().split("\n");
      for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), line);
      assert.ok(lines.some((l) => JSON.parse(l).mutation?.new?.v === "héllo 👋"));
      const started = Date.now();
      const exit = await stopRelay(relay);
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.ok(Date.now() - started < 10_000, "stops within 10 s");
    } finally {
      await stopRelay(relay);
      await fixture.close();
    }
  });
});

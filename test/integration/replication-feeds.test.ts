/**
 * The replica's stream feeds against a real relay: from Kafka and from a file, a replica
 * bootstrapped after the feed's mark under concurrent writes equals its source; batches
 * come whole, in order, each once; a stored position resumes with exactly the batches
 * after it; a relay killed mid-batch leaves a partial batch that the target never sees;
 * stdin reads a recorded stream to its end.
 */
import assert from "node:assert/strict";
import { createReadStream } from "node:fs";
import { appendFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { closeQuietly, connect } from "../../src/database/postgres.js";
import { isPgshovelError, type PgshovelError } from "../../src/errors.js";
import { silentLogger } from "../../src/log.js";
import { BatchApplier } from "../../src/replication/apply.js";
import { bootstrapCopy } from "../../src/replication/bootstrap.js";
import type { ReplicaFeed } from "../../src/replication/feed.js";
import { fileFeed, openStreamFeed, stdinFeed } from "../../src/replication/feeds/index.js";
import type { ReplicaTable } from "../../src/replication/target-schema.js";
import { describeSourceTables, prepareTargetTables } from "../../src/replication/target-schema.js";
import { installReplicaState } from "../../src/replication/target-state.js";
import { jsonCodec, protobufCodec } from "../../src/stream/codec.js";
import { stackEnv, uniqueName } from "../support/env.js";
import {
  forceTick,
  type RelayProcess,
  readUntilMutations,
  startRelay,
  stopRelay,
} from "../support/fixtures.js";
import type { TestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";
import { tempDirFor } from "./relay-support.js";
import { checksum, type ReplicaFixture, replicaFixture } from "./replication-support.js";

const dir = tempDirFor("pgshovel-feeds-");

const oneTable = {
  tables: ["t"],
  prepare: async (db: TestDatabase) => {
    await db.query("CREATE TABLE t (id int PRIMARY KEY, v text)");
    await db.query("INSERT INTO t SELECT g, 'initial ' || g FROM generate_series(1, 1000) g");
  },
};

/** The target's tables (created like the source's), its replica state and an applier on it. */
async function prepareTarget(fixture: ReplicaFixture) {
  const source = await connect(fixture.source.dsn);
  let tables: ReplicaTable[];
  try {
    tables = await describeSourceTables(source, fixture.replica.tables);
  } finally {
    await closeQuietly(source);
  }
  const target = await connect(fixture.target.dsn);
  await prepareTargetTables(target, tables, { createTables: true });
  await installReplicaState(target, fixture.cluster);
  const applier = new BatchApplier(target, { cluster: fixture.cluster, set: fixture.set, tables });
  return { tables, target, applier };
}

/** One batch as the test's apply loop met it. */
interface Seen {
  id: bigint;
  kind: "applied" | "skipped";
  /** Set for applied batches (a skipped one's mutations are never read). */
  position: bigint | undefined;
  applied: number;
}

/**
 * What a replication worker does, reduced to its loop: apply each batch, call done();
 * a retryable error (the stream rolled the batch back) is recorded and reading goes on.
 */
function applyLoop(feed: ReplicaFeed, from: bigint | null, applier: BatchApplier) {
  const controller = new AbortController();
  const seen: Seen[] = [];
  const retried: PgshovelError[] = [];
  let failure: unknown;
  const running = (async () => {
    for await (const batch of feed.batches(from, controller.signal)) {
      try {
        const result = await applier.apply(batch);
        await batch.done();
        seen.push({
          id: batch.id,
          kind: result.kind,
          position: result.kind === "applied" ? batch.position! : undefined,
          applied: result.kind === "applied" ? result.stats.applied : 0,
        });
      } catch (error) {
        if (controller.signal.aborted) return;
        if (isPgshovelError(error) && error.retryable) retried.push(error);
        else throw error;
      }
    }
  })().catch((error: unknown) => {
    failure = error;
  });
  return {
    seen,
    retried,
    failed: () => (failure === undefined ? undefined : `the apply loop failed: ${String(failure)}`),
    async stop(): Promise<void> {
      controller.abort();
      await running;
      if (failure !== undefined) throw failure;
    },
  };
}

/** Two writers committing small transactions of inserts, updates and deletes. */
function writeConcurrently(db: TestDatabase, transactions: number, offset = 0) {
  const progress = { committed: 0 };
  const writer = async (first: number) => {
    const client = await db.connect();
    try {
      for (let i = 0; i < transactions; i++) {
        const base = first + i * 10;
        await client.query(
          `BEGIN;
           INSERT INTO t SELECT g, 'w' || g FROM generate_series(${base}, ${base + 4}) g;
           UPDATE t SET v = v || '+' WHERE id IN (${((i * 7) % 1000) + 1}, ${base - 9});
           DELETE FROM t WHERE id = ${base - 8};
           COMMIT`,
        );
        progress.committed++;
      }
    } finally {
      await client.end();
    }
  };
  const done = Promise.all([writer(100_000 + offset), writer(500_000 + offset)]);
  done.catch(() => {});
  return { progress, done };
}

async function equalTables(fixture: ReplicaFixture): Promise<boolean> {
  const [src, dst] = await Promise.all(
    [fixture.source, fixture.target].map((db) => checksum(db, "t", ["id", "v"], ["id"])),
  );
  return src!.count === dst!.count && src!.md5 === dst!.md5;
}

/** The ids of the batches `feed` hands out from `from` up to and including `last`, unread. */
async function idsUpTo(feed: ReplicaFeed, from: bigint, last: bigint): Promise<bigint[]> {
  const controller = new AbortController();
  const ids: bigint[] = [];
  for await (const batch of feed.batches(from, controller.signal)) {
    ids.push(batch.id);
    await batch.done(); // passed over: the feed drains it
    if (batch.id >= last) break;
  }
  return ids;
}

/**
 * The whole exercise for one feed: writes run while the feed is marked and the copy is
 * taken; then the stream is applied until the target equals the source.
 */
async function replicateUnderLoad(
  fixture: ReplicaFixture,
  feed: ReplicaFeed,
  relay: RelayProcess,
): Promise<Seen[]> {
  const { tables, target, applier } = await prepareTarget(fixture);
  try {
    const load = writeConcurrently(fixture.source, 150);
    await waitFor(() => load.progress.committed >= 40, { description: "writes under way" });
    // The topic or file exists once the relay published: take the mark when it answers.
    const mark = await waitFor(
      async () => {
        const position = await feed.mark();
        return position !== null && position > 0n ? { position } : undefined;
      },
      {
        description: `a mark on ${feed.description}`,
        abandonWhen: () => (relay.ended() ? "the relay exited" : undefined),
      },
    );
    const copy = await bootstrapCopy({
      sourceDsn: fixture.source.dsn,
      targetDsn: fixture.target.dsn,
      cluster: fixture.cluster,
      set: fixture.set,
      tables,
    });
    assert.equal(copy.copied.length, 1);
    const loop = applyLoop(feed, mark.position, applier);
    await load.done;
    // More rounds once the copy is taken, each waited for: several batches after the mark.
    for (let round = 0; round < 3; round++) {
      const before = loop.seen.length;
      const more = writeConcurrently(fixture.source, 10, 900_000 + round * 1_000);
      await more.done;
      await forceTick(fixture.source, fixture.queue);
      await waitFor(() => loop.seen.length > before, {
        description: `a batch of round ${round}`,
        abandonWhen: () => loop.failed() ?? (relay.ended() ? "the relay exited" : undefined),
      });
    }
    await forceTick(fixture.source, fixture.queue);
    await waitFor(() => equalTables(fixture), {
      timeoutMs: 90_000,
      description: "the target to equal the source",
      abandonWhen: () => loop.failed() ?? (relay.ended() ? "the relay exited" : undefined),
    });
    await loop.stop();
    assert.deepEqual(loop.retried, [], "no batch rolled back");
    const ids = loop.seen.map((s) => s.id);
    assert.ok(ids.length > 2, `several batches (${ids.length})`);
    ids.forEach((id, i) => {
      if (i > 0) assert.ok(id > ids[i - 1]!, `batch ${id} after ${ids[i - 1]}: in order, once`);
    });
    assert.ok(loop.seen.every((s) => s.kind === "applied"));
    assert.ok(
      loop.seen.reduce((n, s) => n + s.applied, 0) > 0,
      "the stream carried changes the copy did not hold",
    );
    // Resuming at a batch's position yields exactly the batches after it.
    const k = Math.floor(ids.length / 2);
    const last = ids[ids.length - 1]!;
    const resumed = await idsUpTo(feed, loop.seen[k]!.position!, last);
    assert.deepEqual(resumed, ids.slice(k + 1));
    return loop.seen;
  } finally {
    await closeQuietly(target);
  }
}

describe("replica stream feeds", () => {
  test("Kafka: bootstrapped after the mark under writes, the target equals the source; a position resumes exactly", async () => {
    const fixture = await replicaFixture(oneTable);
    const brokers = stackEnv().kafkaBrokers;
    const topic = uniqueName("feeds");
    const relay = startRelay({ ...fixture, zkHosts: stackEnv().zookeeperHosts }, [
      "--sink",
      "kafka",
      "--kafka-brokers",
      brokers.join(","),
      "--topic",
      topic,
    ]);
    const feed = openStreamFeed(
      { kind: "kafka", kafka: { brokers, topic } },
      { cluster: fixture.cluster, set: fixture.set, codec: protobufCodec, logger: silentLogger },
    );
    try {
      assert.equal(feed.description, `kafka topic ${topic}`);
      await replicateUnderLoad(fixture, feed, relay);
      await assert.rejects(
        idsUpTo(feed, 1_000_000_000n, 0n),
        (error: unknown) => isPgshovelError(error, "POSITION_LOST"),
        "a position past the topic's end",
      );
    } finally {
      await feed.close();
      assert.equal((await stopRelay(relay)).code, 0, relay.stderr());
      await fixture.close();
    }
  });

  test("file: the same from a followed file; a torn tail is waited for; stdin reads the recording to its end", async (t) => {
    const fixture = await replicaFixture(oneTable);
    const path = join(dir(), "feed.jsonl");
    const relay = startRelay({ ...fixture, zkHosts: stackEnv().zookeeperHosts }, [
      "--sink",
      `file:${path}`,
    ]);
    const feed = openStreamFeed(
      { kind: "file", path },
      { cluster: fixture.cluster, set: fixture.set, codec: jsonCodec, logger: silentLogger },
    );
    try {
      assert.equal(feed.description, `file ${path}`);
      await replicateUnderLoad(fixture, feed, relay);
    } finally {
      await feed.close();
      assert.equal((await stopRelay(relay)).code, 0, relay.stderr());
      await fixture.close();
    }
    const recorded = await readFile(path);
    const whole = await batchesOf(fileFeed(path, { codec: jsonCodec }), null);
    assert.ok(whole.length > 2);

    await t.test("a torn tail is waited for, then read whole", async () => {
      const copy = join(dir(), "torn.jsonl");
      // Cut inside a mutation line of a batch in the middle.
      const cut = recorded.indexOf('"mutation"', Math.floor(recorded.length / 2)) + 5;
      await writeFile(copy, recorded.subarray(0, cut));
      const controller = new AbortController();
      const following = fileFeed(copy, { codec: jsonCodec, follow: true, pollIntervalMs: 50 });
      const got: [bigint, bigint[]][] = [];
      const reading = (async () => {
        for await (const batch of following.batches(0n, controller.signal)) {
          const ids: bigint[] = [];
          for await (const m of batch.mutations) ids.push(m.id);
          got.push([batch.id, ids]);
          await batch.done();
        }
      })();
      const before = whole.filter(([, , end]) => end <= BigInt(cut)).length;
      await waitFor(() => got.length >= before, { description: `${before} whole batches` });
      await appendFile(copy, recorded.subarray(cut));
      await waitFor(() => got.length >= whole.length, { description: "every batch" });
      controller.abort();
      await reading;
      assert.deepEqual(
        got,
        whole.map(([id, ids]) => [id, ids]),
      );
    });

    await t.test("stdin: a Readable of the recording, read to its end", async () => {
      const fromStdin = await batchesOf(
        stdinFeed({ codec: jsonCodec, input: createReadStream(path) }),
        0n,
      );
      assert.deepEqual(fromStdin, whole);
    });
  });

  test("file: a relay killed mid-batch leaves a partial batch, then the re-send; the target gets the batch once", async () => {
    const fixture = await replicaFixture({
      tables: ["t"],
      prepare: async (db) => {
        await db.query("CREATE TABLE t (id int PRIMARY KEY, v text)");
      },
    });
    const path = join(dir(), "killed.jsonl");
    await writeFile(path, "");
    const feed = fileFeed(path, { codec: jsonCodec, follow: true, pollIntervalMs: 50 });
    const { tables, target, applier } = await prepareTarget(fixture);
    let second: RelayProcess | undefined;
    try {
      const mark = await feed.mark();
      assert.equal(mark, 0n, "an empty file is marked at its start");
      await bootstrapCopy({
        sourceDsn: fixture.source.dsn,
        targetDsn: fixture.target.dsn,
        cluster: fixture.cluster,
        set: fixture.set,
        tables,
      });
      await fixture.source.query(
        "INSERT INTO t SELECT g, repeat('x', 200) || g FROM generate_series(1, 20000) g",
      );
      // stdout is a pipe the test stops reading: the relay blocks mid-batch.
      const first = startRelay(
        { ...fixture, zkHosts: stackEnv().zookeeperHosts },
        ["--fetch-size", "100"],
        "pgshovel-stream-relay",
      );
      const written = await readUntilMutations(first, 200);
      first.child.kill("SIGKILL");
      await first.exited;
      const whole = written.slice(0, written.lastIndexOf("\n"));
      const messages = whole.split("\n").map((line) => jsonCodec.decode(Buffer.from(line)));
      const cutBatch = messages.find((m) => m.body.kind === "mutation")!.batch.id;
      assert.ok(
        !messages.some((m) => m.body.kind === "commit" && m.batch.id === cutBatch),
        `batch ${cutBatch} was cut off before its commit`,
      );
      // What the dead relay wrote, a torn last line included, as a file sink would hold it.
      await writeFile(path, written);
      const loop = applyLoop(feed, mark, applier);
      second = startRelay({ ...fixture, zkHosts: stackEnv().zookeeperHosts }, [
        "--sink",
        `file:${path}`,
      ]);
      const relay = second;
      await waitFor(() => equalTables(fixture), {
        timeoutMs: 90_000,
        description: "the target to equal the source",
        abandonWhen: () => loop.failed() ?? (relay.ended() ? "the relay exited" : undefined),
      });
      await loop.stop();
      const [count] = await fixture.target.query<{ n: string }>("SELECT count(*) AS n FROM t");
      assert.equal(count!.n, "20000");
      assert.equal(loop.retried.length, 1, "the partial batch was rolled back once");
      assert.match(loop.retried[0]!.message, /abandoned/);
      const applied = loop.seen.filter((s) => s.applied > 0);
      assert.equal(applied.length, 1, "one batch carried the rows");
      assert.equal(applied[0]!.applied, 20000);
    } finally {
      await feed.close();
      if (second !== undefined) assert.equal((await stopRelay(second)).code, 0, second.stderr());
      await closeQuietly(target);
      await fixture.close();
    }
  });
});

/** Each batch of a finite feed: its id, its mutations' ids and its position. */
async function batchesOf(feed: ReplicaFeed, from: bigint | null) {
  const batches: [bigint, bigint[], bigint][] = [];
  try {
    for await (const batch of feed.batches(from, new AbortController().signal)) {
      const ids: bigint[] = [];
      for await (const m of batch.mutations) ids.push(m.id);
      batches.push([batch.id, ids, batch.position!]);
      await batch.done();
    }
  } finally {
    await feed.close();
  }
  return batches;
}

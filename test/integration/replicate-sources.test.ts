/**
 * `pgshovel replicate` end to end from each stream a relay publishes: a Kafka topic and a
 * stream file (bootstrapped under pgbench while the relay runs, caught up, then resumed
 * from the stored position; the file relay killed with SIGKILL mid-batch and restarted),
 * stdin in a real shell pipeline, and rolled-back work that must never reach the target.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { appendFile, open, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { jsonCodec } from "../../src/stream/codec.js";
import type { Message } from "../../src/stream/types.js";
import { repoRoot } from "../support/env.js";
import {
  forceTick,
  pgbench,
  type RelayProcess,
  startRelay,
  stopRelay,
  waitForLog,
} from "../support/fixtures.js";
import { waitFor, withTimeout } from "../support/wait.js";
import { tempDirFor } from "./relay-support.js";
import {
  assertReplicaEqual,
  logLines,
  type ReplicateFixture,
  replicateFixture,
  runReplicate,
} from "./replicate-support.js";

const dir = tempDirFor("pgshovel-replicate-sources-");
const RELAY_READY = "reading the set's queue";

/**
 * Where the target says a stream feed resumes for set "s": after the last applied batch,
 * or at the mark when the copy alone caught up; with that batch's id, if any.
 */
async function storedPosition(
  fixture: ReplicateFixture,
): Promise<{ stream: string | null; batch: bigint | undefined }> {
  const schema = `pgshovel_${fixture.cluster}`;
  const [row] = await fixture.target.query<{ stream: string | null; batch: string | null }>(
    `SELECT coalesce(p.stream_position, m.stream_position)::text AS stream, p.batch_id::text AS batch
       FROM ${schema}.replica_mark m LEFT JOIN ${schema}.replica_position p USING (set_name)
      WHERE m.set_name = 's'`,
  );
  assert.ok(row !== undefined, "the target stores a mark");
  return { stream: row.stream, batch: row.batch === null ? undefined : BigInt(row.batch) };
}

/** The first run bootstraps under pgbench while the relay runs and catches up: exit 0, four tables copied. */
async function bootstrapUnderLoad(fixture: ReplicateFixture, from: string): Promise<void> {
  const load = pgbench(fixture.db, ["-n", "-c", "4", "-T", "5"]);
  try {
    const first = await runReplicate(
      fixture,
      ["--from", from, "--create-tables", "--until-caught-up"],
      { timeoutMs: 180_000 },
    );
    assert.equal(first.code, 0, first.stderr.slice(-3000));
    assert.equal(logLines(first.stderr, "table copied").length, 4);
  } finally {
    await load;
  }
}

/**
 * A run after more writes: it reads from the position the first stored, copies nothing
 * again, applies only batches after the stored one, and leaves both sides equal.
 */
async function resumeAndCompare(fixture: ReplicateFixture, from: string): Promise<void> {
  const stored = await storedPosition(fixture);
  const second = await runReplicate(fixture, ["--from", from, "--until-caught-up"], {
    logLevel: "debug",
    timeoutMs: 180_000,
  });
  assert.equal(second.code, 0, second.stderr.slice(-3000));
  assert.equal(logLines(second.stderr, "table copied").length, 0, "nothing copied again");
  const applying = logLines(second.stderr, "applying the stream");
  assert.equal(applying[0]?.from, stored.stream, "reading resumes at the stored position");
  const applied = logLines(second.stderr, "batch applied").map((l) => BigInt(String(l.batch)));
  assert.ok(applied.length > 0, "the writes since came in batches");
  if (stored.batch !== undefined) {
    assert.ok(applied[0]! > stored.batch, "the first batch follows the stored one");
  }
  assert.equal(logLines(second.stderr, "batch applied before: skipped").length, 0);
  await assertReplicaEqual(fixture);
}

describe("pgshovel replicate --from kafka", () => {
  test("bootstraps while a Kafka relay runs under pgbench, catches up, resumes from the stored offset", async () => {
    const fixture = await replicateFixture();
    const relay = startRelay(fixture, ["--sink", "kafka"]);
    try {
      await waitForLog(relay, RELAY_READY, 60_000);
      await bootstrapUnderLoad(fixture, "kafka");
      await pgbench(fixture.db, ["-n", "-c", "2", "-t", "200"]);
      await resumeAndCompare(fixture, "kafka");
    } finally {
      assert.equal((await stopRelay(relay, 30_000)).code, 0, relay.stderr().slice(-3000));
      await fixture.close();
    }
  });
});

/** The batches of a stream file from byte `from` on that have a begin but no commit or rollback. */
async function openBatchesFrom(path: string, from: number): Promise<bigint[]> {
  const handle = await open(path, "r");
  try {
    const { size } = await handle.stat();
    const bytes = Buffer.alloc(size - from);
    await handle.read(bytes, 0, bytes.length, from);
    const text = bytes.toString("utf8");
    const open_ = new Set<bigint>();
    for (const line of text.slice(0, text.lastIndexOf("\n")).split("\n")) {
      if (line === "") continue;
      const message = jsonCodec.decode(Buffer.from(line));
      if (message.body.kind === "begin") open_.add(message.batch.id);
      else if (message.body.kind !== "mutation") open_.delete(message.batch.id);
    }
    return [...open_];
  } finally {
    await handle.close();
  }
}

/**
 * Kills the file relay with SIGKILL while it writes a batch of 50,000 updates, so that
 * the file ends inside that batch; tries again with another such batch should the kill
 * land after its commit. Returns the id of the batch cut off.
 */
async function killMidBatch(fixture: ReplicateFixture, relay: RelayProcess, path: string) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const before = (await stat(path)).size;
    await fixture.db.query(
      "UPDATE pgbench_accounts SET filler = md5(random()::text) WHERE aid <= 50000",
    );
    await waitFor(async () => (await stat(path)).size > before + (2 << 20), {
      timeoutMs: 60_000,
      intervalMs: 10,
      abandonWhen: () => (relay.ended() ? "the relay exited" : undefined),
      description: "the relay to write 2 MiB of the large batch",
    });
    relay.child.kill("SIGKILL");
    await relay.exited;
    const cut = await openBatchesFrom(path, before);
    if (cut.length > 0) return cut;
    // The batch was whole before the kill landed: start the relay again and retry.
    relay = startRelay(fixture, ["--sink", `file:${path}`, "--fetch-size", "100"]);
    await waitForLog(relay, RELAY_READY, 60_000);
  }
  throw new Error("the relay finished every large batch before it was killed");
}

describe("pgshovel replicate --from file:PATH", () => {
  test("bootstraps while a file relay runs, follows a relay killed mid-batch and restarted, resumes", async () => {
    const fixture = await replicateFixture();
    const path = join(dir(), `${fixture.cluster}.jsonl`);
    let relay = startRelay(fixture, ["--sink", `file:${path}`]);
    try {
      await waitForLog(relay, RELAY_READY, 60_000);
      await bootstrapUnderLoad(fixture, `file:${path}`);

      const cut = await killMidBatch(fixture, relay, path);
      relay = startRelay(fixture, ["--sink", `file:${path}`]);
      await waitForLog(relay, RELAY_READY, 60_000);
      await pgbench(fixture.db, ["-n", "-c", "2", "-t", "200"]);
      // The file holds the partial batch, then the batch whole from the new relay.
      await waitFor(
        async () => {
          const commits = (await jsonLines(path)).filter(
            (m) => m.body.kind === "commit" && cut.includes(m.batch.id),
          );
          return commits.length === cut.length;
        },
        {
          timeoutMs: 120_000,
          intervalMs: 500,
          description: `batches ${cut.join(", ")} sent again whole after the partial copy`,
        },
      );
      await resumeAndCompare(fixture, `file:${path}`);
    } finally {
      assert.equal((await stopRelay(relay, 30_000)).code, 0, relay.stderr().slice(-3000));
      await fixture.close();
    }
  });
});

describe("pgshovel replicate --from -", () => {
  test("pgshovel relay | pgshovel replicate --from -: equal once the writes stop; SIGTERM stops both cleanly", async () => {
    const fixture = await replicateFixture();
    const bin = join(repoRoot, "bin", "pgshovel");
    // The trap keeps the shell alive through the pipeline's SIGTERM, to report both exits.
    const script = [
      "set -o pipefail",
      "trap : TERM",
      `"${bin}" relay s | "${bin}" replicate s --target "${fixture.target.dsn}" --from - --create-tables`,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: bash expands it
      'echo "pipeline exit: ${PIPESTATUS[*]}" >&2',
    ].join("\n");
    const shell = spawn("bash", ["-c", script], {
      detached: true,
      stdio: ["ignore", "ignore", "pipe"],
      env: {
        ...process.env,
        PGSHOVEL_CLUSTER: fixture.cluster,
        PGSHOVEL_ZOOKEEPER_HOSTS: fixture.zkHosts,
        PGSHOVEL_LOG_FORMAT: "json",
        PGSHOVEL_LOG_LEVEL: "info",
      },
    });
    let stderr = "";
    shell.stderr!.setEncoding("utf8");
    shell.stderr!.on("data", (chunk: string) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) =>
      shell.on("close", (code) => resolve(code)),
    );
    let ended = false;
    void exited.then(() => {
      ended = true;
    });
    const abandonWhen = () => (ended ? "the pipeline exited" : undefined);
    try {
      // Both started: the relay reads the queue, the replica has copied and applies.
      for (const text of [RELAY_READY, "applying the stream"]) {
        await waitFor(() => stderr.includes(text), {
          timeoutMs: 90_000,
          abandonWhen,
          get description() {
            return `"${text}" in the pipeline's log (${stderr.slice(-2000)})`;
          },
        });
      }
      await pgbench(fixture.db, ["-n", "-c", "4", "-T", "4"]);
      await waitFor(() => assertReplicaEqual(fixture).then(() => true), {
        timeoutMs: 120_000,
        intervalMs: 500,
        abandonWhen,
        description: "the replica fed through the pipe to equal the source",
      });
    } finally {
      if (!ended) process.kill(-shell.pid!, "SIGTERM");
      const code = await withTimeout(exited, 60_000, "the pipeline to stop").catch((error) => {
        process.kill(-shell.pid!, "SIGKILL");
        throw error;
      });
      await fixture.close();
      assert.match(stderr, /pipeline exit: 0 0/, stderr.slice(-3000));
      assert.equal(code, 0);
    }
  });
});

/** The source's PgQ view of the batch the relay's consumer gets next, as a Begin message's ticks. */
async function nextRelayBatch(fixture: ReplicateFixture) {
  const [info] = await fixture.db.query<{
    batch_id: string;
    prev_tick_id: string;
    cur_tick_id: string;
  }>(
    "SELECT batch_id::text, prev_tick_id::text, cur_tick_id::text FROM pgq.next_batch_info($1, 'pgshovel')",
    [fixture.queue],
  );
  assert.ok(info?.batch_id, "a batch waits for the relay");
  const tick = async (id: string) => {
    const [row] = await fixture.db.query<{ snapshot: string; time: string }>(
      `SELECT tick_snapshot::text AS snapshot,
              to_char(tick_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS time
         FROM pgq.tick t JOIN pgq.queue q ON q.queue_id = t.tick_queue
        WHERE q.queue_name = $1 AND t.tick_id = $2`,
      [fixture.queue, id],
    );
    const [xmin, xmax, xip] = row!.snapshot.split(":");
    return {
      id: BigInt(id),
      snapshot: {
        xmin: BigInt(xmin!),
        xmax: BigInt(xmax!),
        xip: xip ? xip.split(",").map(BigInt) : [],
      },
      time: row!.time,
    };
  };
  return {
    id: BigInt(info.batch_id),
    start: await tick(info.prev_tick_id),
    end: await tick(info.cur_tick_id),
  };
}

describe("pgshovel replicate: rolled-back work", () => {
  test("a rollback message in a file stream and a rolled-back source transaction never reach the target", async () => {
    const fixture = await replicateFixture({
      tables: ["t"],
      prepare: async (db) => {
        await db.query("CREATE TABLE t (id int PRIMARY KEY, v text)");
        await db.query("INSERT INTO t SELECT g, 'initial ' || g FROM generate_series(1, 100) g");
      },
    });
    const compared = [{ name: "t", key: ["id"], columns: ["id", "v"] }];
    const path = join(dir(), `${fixture.cluster}.jsonl`);
    await writeFile(path, "");
    let relay = startRelay(fixture, ["--sink", `file:${path}`]);
    try {
      await waitForLog(relay, RELAY_READY, 60_000);
      const first = await runReplicate(fixture, [
        "--from",
        `file:${path}`,
        "--create-tables",
        "--until-caught-up",
      ]);
      assert.equal(first.code, 0, first.stderr.slice(-3000));
      await fixture.db.query("INSERT INTO t VALUES (101, 'committed before the pause')");
      await waitFor(async () => (await jsonLines(path)).some((m) => m.body.kind === "mutation"), {
        description: "the first insert in the file",
      });
      assert.equal((await stopRelay(relay, 30_000)).code, 0, relay.stderr());

      // While no relay runs: one committed insert, one rolled back; then a tick to batch them.
      await fixture.db.query("INSERT INTO t VALUES (102, 'committed')");
      await fixture.db.query("BEGIN; INSERT INTO t VALUES (103, 'rolled back'); ROLLBACK");
      await forceTick(fixture.db, fixture.queue);
      // A relay that gave that batch up: its begin, a mutation the source never had, a rollback.
      const batch = await nextRelayBatch(fixture);
      const node = (await jsonLines(path)).at(-1)!.batch.node;
      const publisher = randomUUID();
      const header = (sequence: bigint) => ({ publisher, sequence, timestamp: batch.end.time });
      const ref = { node, id: batch.id };
      const given: Message[] = [
        {
          header: header(0n),
          batch: ref,
          body: { kind: "begin", begin: { start: batch.start, end: batch.end } },
        },
        {
          header: header(1n),
          batch: ref,
          body: {
            kind: "mutation",
            mutation: {
              id: 1n,
              schema: "public",
              table: "t",
              operation: "INSERT",
              identity: ["id"],
              old: null,
              new: { id: 104, v: "given up" },
              transaction: batch.end.snapshot.xmin,
              time: batch.end.time,
            },
          },
        },
        { header: header(2n), batch: ref, body: { kind: "rollback" } },
      ];
      await appendFile(path, given.map((m) => `${jsonCodec.encodeText!(m)}\n`).join(""));
      relay = startRelay(fixture, ["--sink", `file:${path}`]);
      await waitForLog(relay, RELAY_READY, 60_000);

      const second = await runReplicate(fixture, ["--from", `file:${path}`, "--until-caught-up"]);
      assert.equal(second.code, 0, second.stderr.slice(-3000));
      assert.equal(
        logLines(second.stderr, "batch rolled back by the stream: reading on").length,
        1,
      );
      await assertReplicaEqual(fixture, compared);
      const ids = await fixture.target.query<{ id: number }>(
        "SELECT id FROM t WHERE id > 100 ORDER BY id",
      );
      assert.deepEqual(
        ids.map((r) => r.id),
        [101, 102],
      );
    } finally {
      assert.equal((await stopRelay(relay, 30_000)).code, 0, relay.stderr().slice(-3000));
      await fixture.close();
    }
  });
});

/** The whole messages of a JSON-lines stream file. */
async function jsonLines(path: string): Promise<Message[]> {
  const text = await readFile(path, "utf8");
  return text
    .slice(0, text.lastIndexOf("\n") + 1)
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => jsonCodec.decode(Buffer.from(line)));
}

import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { zkPaths } from "../../src/config/names.js";
import type { CommittedBatch } from "../../src/stream/assembler.js";
import { messagesOf, readStreamBytes } from "../../src/stream/reader.js";
import type { Message } from "../../src/stream/types.js";
import {
  readUntilMutations,
  setupSet,
  startRelay,
  stopRelay,
  waitForLog,
} from "../support/fixtures.js";
import { startPrivatePostgres, startPrivateZooKeeper } from "../support/private-services.js";
import { waitFor } from "../support/wait.js";
import { assemble, readStreamFile, tempDirFor, waitForMutations } from "./relay-support.js";

const dir = tempDirFor("pgshovel-faults-");

/** The values of the rows in the streams, in batch order, each batch counted once (by its id). */
async function deduplicatedValues(...paths: string[]): Promise<unknown[]> {
  const byId = new Map<bigint, CommittedBatch>();
  for (const path of paths) {
    for (const batch of assemble(await readStreamFile(path)).batches) {
      const seen = byId.get(batch.id);
      if (seen)
        assert.deepEqual(batch.mutations, seen.mutations, `batch ${batch.id} sent twice alike`);
      else byId.set(batch.id, batch);
    }
  }
  return [...byId.values()]
    .sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0))
    .flatMap((b) => b.mutations.map((m) => m.new!.v));
}

const oneTable = async (db: { query(sql: string): Promise<unknown> }) => {
  await db.query("CREATE TABLE t (id int PRIMARY KEY, v text)");
};

describe("relay faults", () => {
  for (const capture of ["row", "statement"] as const) {
    test(`kill -9 mid-batch (capture: ${capture}): the batch is sent again whole, same id and content, nothing lost`, async () => {
      const fixture = await setupSet({ prepare: oneTable, tables: ["t"], capture });
      try {
        await fixture.db.query(
          "INSERT INTO t SELECT g, repeat('x', 200) || g FROM generate_series(1, 20000) g",
        );
        // stdout is a pipe the test stops reading: the relay blocks mid-batch.
        const first = startRelay(fixture, ["--fetch-size", "100"], "pgshovel-stream-relay");
        const seen = await readUntilMutations(first, 200);
        first.child.kill("SIGKILL");
        await first.exited;
        const partial: Message[] = [];
        const whole = Buffer.from(seen.slice(0, seen.lastIndexOf("\n") + 1));
        for await (const m of messagesOf(readStreamBytes([whole], { codec: "json" })))
          partial.push(m);
        assert.ok(
          !partial.some(
            (m) =>
              m.body.kind === "commit" &&
              partial.some((p) => p.body.kind === "mutation" && p.batch.id === m.batch.id),
          ),
        );
        const partialMutations = partial.filter((m) => m.body.kind === "mutation");
        const batchId = partialMutations[0]!.batch.id;

        const path = join(dir(), `resent-${capture}.jsonl`);
        const second = startRelay(fixture, ["--sink", `file:${path}`]);
        try {
          const batches = await waitForMutations(path, 20000);
          const resent = batches.find((b) => b.id === batchId);
          assert.ok(resent, `batch ${batchId} sent again`);
          assert.equal(resent.mutations.length, 20000);
          // What the killed relay had sent is exactly the start of the re-sent batch.
          partialMutations.forEach((m, i) => {
            assert.ok(m.body.kind === "mutation");
            assert.deepEqual(resent.mutations[i], m.body.mutation);
          });
          assert.equal(batches.flatMap((b) => b.mutations).length, 20000, "each row once");
        } finally {
          assert.equal((await stopRelay(second)).code, 0, second.stderr());
        }
      } finally {
        await fixture.close();
      }
    });
  }

  test("PostgreSQL restarted while running: the relay reconnects, nothing lost or duplicated", async () => {
    const server = await startPrivatePostgres();
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"], server: server.server });
    const path = join(dir(), "pg-restart.jsonl");
    const relay = startRelay(fixture, ["--sink", `file:${path}`]);
    try {
      await fixture.db.query("INSERT INTO t SELECT g, 'before' FROM generate_series(1, 100) g");
      await waitForMutations(path, 100);
      await server.stop();
      await waitForLog(relay, "recoverable failure");
      await server.start();
      await fixture.db.query("INSERT INTO t SELECT g, 'after' FROM generate_series(101, 200) g");
      const batches = await waitForMutations(path, 200);
      const ids = batches.flatMap((b) => b.mutations).map((m) => m.new!.id);
      assert.equal(ids.length, 200);
      assert.equal(new Set(ids).size, 200);
      assert.equal(relay.child.exitCode, null, "still running");
    } finally {
      assert.equal((await stopRelay(relay)).code, 0, relay.stderr());
      await fixture.close();
      await server.destroy();
    }
  });

  test("ZooKeeper stopped and started while running: the relay pauses, then resumes", async () => {
    const zk = await startPrivateZooKeeper();
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"], zkHosts: zk.hosts });
    const path = join(dir(), "zk-restart.jsonl");
    // A long session (the server caps it at 40 s) rides out a slow restart on a busy machine.
    const relay = startRelay(fixture, ["--sink", `file:${path}`, "--zookeeper-timeout", "40s"]);
    try {
      await fixture.db.query("INSERT INTO t VALUES (1, 'before')");
      await waitForMutations(path, 1);
      await zk.stop();
      await waitForLog(relay, "pausing until it is back");
      await fixture.db.query("INSERT INTO t VALUES (2, 'while ZooKeeper is down')");
      await zk.start();
      // Back in the same session ("resuming"), or, when the relay had to give the session
      // up (cut off past its timeout on a slow machine), in a new one.
      await waitFor(() => /resuming|new ZooKeeper session open/.test(relay.stderr()), {
        timeoutMs: 90_000,
        get description() {
          return `the relay resuming (its stderr: ${relay.stderr().slice(-2000)})`;
        },
      });
      const batches = await waitForMutations(path, 2);
      assert.deepEqual(
        batches.flatMap((b) => b.mutations).map((m) => m.new!.v),
        ["before", "while ZooKeeper is down"],
      );
      assert.equal(relay.child.exitCode, null, "still running");
    } finally {
      assert.equal((await stopRelay(relay)).code, 0, relay.stderr());
      await fixture.close();
      await zk.destroy();
    }
  });

  test("ZooKeeper down past the session timeout: the relay gives the session up, opens a new one when ZooKeeper is back, and carries on", async () => {
    const zk = await startPrivateZooKeeper();
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"], zkHosts: zk.hosts });
    const path = join(dir(), "zk-expiry.jsonl");
    const relay = startRelay(fixture, ["--sink", `file:${path}`, "--zookeeper-timeout", "4s"]);
    try {
      await fixture.db.query("INSERT INTO t VALUES (1, 'before')");
      await waitForMutations(path, 1);
      await zk.stop();
      await waitForLog(relay, "pausing until it is back");
      // Nothing answers: past the 4 s session (and a margin) the relay gives the session up
      // and keeps trying to open a new one, within --max-zookeeper-pause (60 s).
      await waitForLog(relay, "the ZooKeeper session expired", 60_000);
      await fixture.db.query("INSERT INTO t VALUES (2, 'while ZooKeeper is down')");
      await zk.start();
      await waitForLog(relay, "new ZooKeeper session open", 60_000);
      const batches = await waitForMutations(path, 2, undefined, 60_000, relay);
      assert.deepEqual(
        batches.flatMap((b) => b.mutations).map((m) => m.new!.v),
        ["before", "while ZooKeeper is down"],
      );
      assert.equal(relay.child.exitCode, null, "still running");
    } finally {
      assert.equal((await stopRelay(relay)).code, 0, relay.stderr());
      await fixture.close();
      await zk.destroy();
    }
  });

  test("a cluster at another software version stops the relay with a non-zero exit", async () => {
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
    const path = join(dir(), "version.jsonl");
    const relay = startRelay(fixture, ["--sink", `file:${path}`]);
    try {
      await fixture.db.query("INSERT INTO t VALUES (1, 'x')");
      await waitForMutations(path, 1, undefined, 60_000, relay);
      const node = await fixture.ctx.zk.get(zkPaths.cluster(fixture.cluster));
      const record = JSON.parse(node!.data.toString("utf8"));
      await fixture.ctx.zk.multi(
        [
          {
            op: "setData",
            path: zkPaths.cluster(fixture.cluster),
            data: Buffer.from(JSON.stringify({ ...record, version: "99.0.0" })),
            version: node!.stat.version,
          },
        ],
        "test",
      );
      const exit = await relay.exited;
      assert.equal(exit.code, 1);
      assert.match(relay.stderr(), /cluster is at version 99\.0\.0/);
      assert.equal(assemble(await readStreamFile(path)).batches.length >= 1, true);
    } finally {
      await stopRelay(relay);
      await fixture.close();
    }
  });

  test("two relays of one set: one publishes, the standby takes over when it is killed", async () => {
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
    const pathA = join(dir(), "leader-a.jsonl");
    const pathB = join(dir(), "leader-b.jsonl");
    const a = startRelay(fixture, ["--sink", `file:${pathA}`, "--zookeeper-timeout", "4s"]);
    await waitForLog(a, "leading");
    const b = startRelay(fixture, ["--sink", `file:${pathB}`, "--zookeeper-timeout", "4s"]);
    try {
      await waitForLog(b, "standing by");
      await fixture.db.query("INSERT INTO t VALUES (1, 'to a')");
      await waitForMutations(pathA, 1);
      a.child.kill("SIGKILL");
      await a.exited;
      await waitForLog(b, "leading", 30_000);
      await fixture.db.query("INSERT INTO t VALUES (2, 'to b')");
      await waitForMutations(pathB, 1, (m) => m.new?.v === "to b");
      // A may have been killed after its commit reached the file but before PgQ heard that
      // the batch was finished: B then sends that batch again, under the same batch id, and
      // a consumer of both files, deduplicating by batch, sees each change once.
      assert.deepEqual(await deduplicatedValues(pathA, pathB), ["to a", "to b"]);
    } finally {
      await stopRelay(a);
      assert.equal((await stopRelay(b)).code, 0, b.stderr());
      await fixture.close();
    }
  });
  test("a relay whose ZooKeeper session expired stops publishing, stands by in a new session, and leads again later", async () => {
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
    const pathA = join(dir(), "expired-a.jsonl");
    const pathB = join(dir(), "expired-b.jsonl");
    const a = startRelay(fixture, ["--sink", `file:${pathA}`, "--zookeeper-timeout", "4s"]);
    await waitForLog(a, "leading");
    const b = startRelay(fixture, ["--sink", `file:${pathB}`, "--zookeeper-timeout", "4s"]);
    const count = (relay: typeof a, text: string) => relay.stderr().split(text).length - 1;
    const values = async (path: string) =>
      assemble(await readStreamFile(path)).batches.flatMap((x) => x.mutations.map((m) => m.new!.v));
    try {
      await waitForLog(b, "standing by");
      await fixture.db.query("INSERT INTO t VALUES (1, 'a before')");
      await waitForMutations(pathA, 1);

      // Frozen past its session timeout, A loses its session; B leads.
      a.child.kill("SIGSTOP");
      await waitForLog(b, "leading", 60_000);
      await fixture.db.query("INSERT INTO t VALUES (2, 'b while a is frozen')");
      await waitForMutations(pathB, 1, (m) => m.new?.v === "b while a is frozen");

      // Thawed, A learns that its session expired, opens a new one and stands by.
      a.child.kill("SIGCONT");
      await waitForLog(a, "new ZooKeeper session open", 60_000);
      await waitFor(() => count(a, "standing by") >= 1, {
        timeoutMs: 30_000,
        description: `relay A standing by again (its stderr: ${a.stderr().slice(-2000)})`,
      });
      await fixture.db.query("INSERT INTO t VALUES (3, 'b while a stands by')");
      await waitForMutations(pathB, 1, (m) => m.new?.v === "b while a stands by");
      assert.deepEqual(await values(pathA), ["a before"], "A published nothing after its expiry");
      assert.equal(a.child.exitCode, null, "A kept running");

      // B stops: A leads again in its new session and carries on from where B left off.
      assert.equal((await stopRelay(b)).code, 0, b.stderr());
      await waitFor(() => count(a, "leading: this relay is the active one") >= 2, {
        timeoutMs: 30_000,
        description: `relay A leading again (its stderr: ${a.stderr().slice(-2000)})`,
      });
      await fixture.db.query("INSERT INTO t VALUES (4, 'a again')");
      await waitForMutations(pathA, 1, (m) => m.new?.v === "a again");
      // A relay stopped or frozen between a commit and finishing its batch leaves that
      // batch to the next leader, which sends it again under the same batch id.
      assert.deepEqual(await deduplicatedValues(pathA, pathB), [
        "a before",
        "b while a is frozen",
        "b while a stands by",
        "a again",
      ]);
    } finally {
      a.child.kill("SIGCONT");
      assert.equal((await stopRelay(a)).code, 0, a.stderr());
      await stopRelay(b);
      await fixture.close();
    }
  });
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PgshovelError } from "../../../src/errors.js";
import type { Message } from "../../../src/stream/types.js";
import { StreamValidator } from "../../../src/stream/validator.js";
import {
  active,
  outage,
  ScriptedElection,
  ScriptedFollower,
  ScriptedQueue,
  ScriptedSink,
  scriptedRelay,
  stopWhen,
  type Trace,
} from "./scripted.js";

const DSN = "postgresql://db1";

/** The stream as "kind batch #sequence" words, mutations with their row id. */
function words(messages: Message[]): string[] {
  return messages.map((m) => {
    const what = m.body.kind === "mutation" ? `mutation ${m.body.mutation.id}` : m.body.kind;
    return `${what} b${m.batch.id} #${m.header.sequence}`;
  });
}

/** Throws unless the messages form a well-formed stream (contiguous sequences, bracketing). */
function validate(messages: Message[]): void {
  const validator = new StreamValidator();
  for (const message of messages) validator.accept(message);
}

function setup(options: { transactional?: boolean; election?: boolean } = {}) {
  const trace: Trace = [];
  const queue = new ScriptedQueue("node-1", trace);
  const follower = new ScriptedFollower(DSN);
  const sink = new ScriptedSink(trace, options.transactional ?? false);
  const election = options.election ? new ScriptedElection(trace) : undefined;
  const { relay, sources } = scriptedRelay({ queues: { [DSN]: queue }, follower, sink, election });
  const controller = new AbortController();
  // By default a run ends once the queue is drained.
  stopWhen(follower, controller, () => queue.batches.length === 0);
  return { trace, queue, follower, sink, election, relay, sources, controller };
}

describe("relay loop over a scripted source", () => {
  test("each batch is begin, its mutations in order, commit; finished after the sink's ack", async () => {
    const { trace, queue, sink, relay, controller } = setup();
    queue.add(1, 1, 2, 3).add(2, 4);
    assert.deepEqual(await relay.run(controller.signal), { kind: "stopped" });
    assert.deepEqual(words(sink.received), [
      "begin b1 #0",
      "mutation 1 b1 #1",
      "mutation 2 b1 #2",
      "mutation 3 b1 #3",
      "commit b1 #4",
      "begin b2 #5",
      "mutation 4 b2 #6",
      "commit b2 #7",
    ]);
    assert.ok(sink.received.every((m) => m.header.publisher === relay.publisher));
    assert.deepEqual(trace, [
      `open ${DSN}`,
      "sink begin 1",
      "events 1",
      "sink mutation 1",
      "sink mutation 1",
      "sink mutation 1",
      "sink commit 1",
      "sink ack 1",
      "finish 1",
      "sink begin 2",
      "events 2",
      "sink mutation 2",
      "sink commit 2",
      "sink ack 2",
      "finish 2",
      `close ${DSN}`,
    ]);
    const report = await relay.diagnostics();
    assert.equal(report.state, "stopped");
    assert.equal(report.batchesPublished, 2);
    assert.equal(report.mutationsPublished, 4);
    assert.equal(report.lastSequence, "7");
  });

  test("a batch whose acknowledgement is held is not finished until the sink acknowledges", async () => {
    const { trace, queue, sink, relay, controller } = setup();
    queue.add(1, 1, 2);
    let release: () => void = () => {};
    let committed: () => void = () => {};
    const commitReached = new Promise<void>((resolve) => {
      committed = resolve;
    });
    sink.ack = () => {
      committed();
      return new Promise<void>((resolve) => {
        release = resolve;
      });
    };
    const run = relay.run(controller.signal);
    await commitReached;
    // The relay is blocked in the sink, with the whole batch handed over.
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(trace.at(-1), "sink commit 1");
    assert.ok(!trace.includes("finish 1"), "not finished before the ack");
    assert.equal((await relay.diagnostics()).currentBatch, "1");
    release();
    await run;
    assert.deepEqual(trace.slice(-3), ["sink ack 1", "finish 1", `close ${DSN}`]);
  });

  test("a failed publish to a plain sink is rolled back and the whole batch sent again", async () => {
    const { trace, queue, sink, follower, relay, controller } = setup();
    queue.add(1, 1, 2, 3);
    let failures = 1;
    sink.failOn = (m) =>
      m.body.kind === "mutation" && m.body.mutation.id === 2n && failures-- > 0
        ? outage()
        : undefined;
    await relay.run(controller.signal);
    assert.deepEqual(words(sink.received), [
      "begin b1 #0",
      "mutation 1 b1 #1",
      "mutation 2 b1 #2",
      "rollback b1 #3",
      "begin b1 #4",
      "mutation 1 b1 #5",
      "mutation 2 b1 #6",
      "mutation 3 b1 #7",
      "commit b1 #8",
    ]);
    validate(sink.received);
    assert.equal(trace.filter((t) => t === "finish 1").length, 1);
    assert.equal(follower.sleeps[0], 1, "one backoff of retryInitialMs before the retry");
  });

  test("a failed publish to a transactional sink reuses the batch's sequence numbers", async () => {
    const { queue, sink, relay, controller } = setup({ transactional: true });
    queue.add(1, 1, 2, 3).add(2, 4);
    let failures = 1;
    sink.failOn = (m) => (m.body.kind === "commit" && failures-- > 0 ? outage() : undefined);
    await relay.run(controller.signal);
    assert.ok(!sink.received.some((m) => m.body.kind === "rollback"), "no rollback message");
    assert.deepEqual(words(sink.committed), [
      "begin b1 #0",
      "mutation 1 b1 #1",
      "mutation 2 b1 #2",
      "mutation 3 b1 #3",
      "commit b1 #4",
      "begin b2 #5",
      "mutation 4 b2 #6",
      "commit b2 #7",
    ]);
    validate(sink.committed);
  });

  test("a batch the sink already holds is finished without being published again", async () => {
    const { trace, queue, sink, relay, controller } = setup();
    queue.add(7, 1, 2).add(8, 3);
    // Our own commit of batch 7 landed, though the publish was not seen to succeed.
    sink.holds = {
      batch: { node: "node-1", id: 7n },
      header: {
        publisher: relay.publisher,
        sequence: 41n,
        timestamp: "2026-11-24T03:45:27.000000Z",
      },
    };
    await relay.run(controller.signal);
    assert.deepEqual(trace.slice(0, 3), [`open ${DSN}`, "finish 7", "sink begin 8"]);
    assert.deepEqual(words(sink.received), ["begin b8 #42", "mutation 3 b8 #43", "commit b8 #44"]);
  });

  test("a batch held by another publisher's commit is not published again either", async () => {
    const { trace, queue, sink, relay, controller } = setup();
    queue.add(7, 1);
    sink.holds = {
      batch: { node: "node-1", id: 7n },
      header: { publisher: "another", sequence: 9n, timestamp: "2026-11-24T03:45:27.000000Z" },
    };
    await relay.run(controller.signal);
    assert.ok(trace.includes("finish 7"));
    assert.deepEqual(sink.received, []);
  });

  test("a non-retryable failure ends the run with it; the batch stays unfinished", async () => {
    const { trace, queue, sink, relay, controller } = setup();
    queue.add(1, 1, 2);
    const broken = new PgshovelError("SINK_ERROR", "disk full");
    sink.failOn = (m) => (m.body.kind === "commit" ? broken : undefined);
    await assert.rejects(relay.run(controller.signal), (error) => error === broken);
    assert.ok(!trace.includes("finish 1"));
    assert.equal(words(sink.received).at(-1), "rollback b1 #4");
    assert.equal(trace.at(-1), `close ${DSN}`);
    assert.equal(sink.closed, 1);
    assert.equal(queue.batches.length, 1);
  });

  test("a retryable source failure reopens the source and backs off, doubling up to the bound", async () => {
    const { trace, queue, follower, relay, controller } = setup();
    queue.add(1, 1);
    const failures = ["nextBatch", "open", "open", "open"] as const;
    const script = [...failures];
    queue.failNext = {
      call: script.shift()!,
      error: new PgshovelError("DATABASE_UNAVAILABLE", "down", { retryable: true }),
    };
    follower.onSleep = () => {
      const call = script.shift();
      if (call)
        queue.failNext = {
          call,
          error: new PgshovelError("DATABASE_UNAVAILABLE", "down", { retryable: true }),
        };
      else if (queue.batches.length === 0) controller.abort();
    };
    await relay.run(controller.signal);
    assert.deepEqual(follower.sleeps.slice(0, 4), [1, 2, 4, 4]);
    assert.equal(trace.filter((t) => t === `open ${DSN}`).length, 5);
    assert.ok(trace.includes("finish 1"));
  });

  test("a set moved to another database: the old source closes and a new one opens", async () => {
    const trace: Trace = [];
    const first = new ScriptedQueue("node-1", trace).add(1, 1);
    const second = new ScriptedQueue("node-2", trace).add(5, 2);
    const follower = new ScriptedFollower("postgresql://db1");
    const sink = new ScriptedSink(trace);
    const queues = { "postgresql://db1": first, "postgresql://db2": second };
    const { relay } = scriptedRelay({ queues, follower, sink });
    const controller = new AbortController();
    follower.onSleep = () => {
      if (first.batches.length === 0) follower.state = active("postgresql://db2", 2);
      if (second.batches.length === 0) controller.abort();
    };
    await relay.run(controller.signal);
    assert.deepEqual(
      trace.filter((t) => /^(open|close|finish)/.test(t)),
      [
        "open postgresql://db1",
        "finish 1",
        "close postgresql://db1",
        "open postgresql://db2",
        "finish 5",
        "close postgresql://db2",
      ],
    );
    assert.deepEqual(
      sink.received.map((m) => `${m.batch.node}/${m.batch.id}`),
      ["node-1/1", "node-1/1", "node-1/1", "node-2/5", "node-2/5", "node-2/5"],
    );
  });

  test("a dropped set ends the run with outcome dropped", async () => {
    const { follower, relay, controller } = setup();
    follower.onSleep = () => {
      follower.state = { kind: "dropped", what: "set" };
    };
    assert.deepEqual(await relay.run(controller.signal), { kind: "dropped" });
  });

  test("a set missing at start, or a cluster of another version, fails the run", async () => {
    const missing = setup();
    missing.follower.state = { kind: "dropped", what: "set" };
    await assert.rejects(missing.relay.run(missing.controller.signal), (error) => {
      return error instanceof PgshovelError && error.code === "NOT_FOUND";
    });
    const other = setup();
    other.follower.state = { kind: "version-mismatch", clusterVersion: "99.0.0" };
    await assert.rejects(other.relay.run(other.controller.signal), (error) => {
      return error instanceof PgshovelError && error.code === "VERSION_MISMATCH";
    });
  });

  test("a leader that loses its candidacy mid-batch abandons the batch and stands again", async () => {
    const { trace, queue, sink, election, relay, controller } = setup({ election: true });
    queue.add(1, 1, 2, 3);
    let deposed = false;
    sink.failOn = (m) => {
      if (m.body.kind === "mutation" && !deposed) {
        deposed = true;
        election!.isLeading = false;
      }
      return undefined;
    };
    await relay.run(controller.signal);
    assert.equal(election!.acquired, 2);
    assert.deepEqual(
      words(sink.received).map((w) => w.replace(/ #\d+$/, "")),
      [
        "begin b1",
        "mutation 1 b1",
        "rollback b1",
        "begin b1",
        "mutation 1 b1",
        "mutation 2 b1",
        "mutation 3 b1",
        "commit b1",
      ],
    );
    validate(sink.received);
    assert.equal(trace.filter((t) => t === "leading").length, 2);
    assert.equal(sink.opened, 2, "the sink opened again once leading");
  });

  test("an expired session is replaced: the relay stands again in the new one and carries on", async () => {
    const trace: Trace = [];
    const queue = new ScriptedQueue("node-1", trace).add(1, 1).add(2, 2, 3);
    const follower = new ScriptedFollower(DSN);
    const election = new ScriptedElection(trace);
    const renewed = { follower: new ScriptedFollower(DSN), election: new ScriptedElection(trace) };
    const sink = new ScriptedSink(trace);
    const { relay, sessions } = scriptedRelay({
      queues: { [DSN]: queue },
      follower,
      election,
      sink,
      renewed: [renewed],
    });
    const controller = new AbortController();
    stopWhen(renewed.follower, controller, () => queue.batches.length === 0);
    sink.failOn = (m) => {
      if (m.body.kind === "mutation" && m.body.mutation.id === 2n && !follower.hasExpired) {
        follower.isConnected = false;
        follower.hasExpired = true;
      }
      return undefined;
    };
    await relay.run(controller.signal);
    assert.equal(sessions(), 2, "one new session");
    assert.equal(renewed.election.acquired, 1);
    assert.deepEqual(
      words(sink.received).map((w) => w.replace(/ #\d+$/, "")),
      [
        ...["begin b1", "mutation 1 b1", "commit b1"],
        ...["begin b2", "mutation 2 b2", "rollback b2"],
        ...["begin b2", "mutation 2 b2", "mutation 3 b2", "commit b2"],
      ],
    );
    validate(sink.received);
    assert.equal(sink.opened, 2, "the sink opened again in the new session");
    assert.equal(trace.filter((t) => t === "leading").length, 2);
  });
});

describe("relay loop: ZooKeeper silent for the bound", () => {
  function silentSetup() {
    const trace: Trace = [];
    const queue = new ScriptedQueue("node-1", trace).add(1, 1, 2).add(2, 3);
    const follower = new ScriptedFollower(DSN);
    const renewed = { follower: new ScriptedFollower(DSN), election: new ScriptedElection(trace) };
    const sink = new ScriptedSink(trace);
    const scripted = scriptedRelay({
      queues: { [DSN]: queue },
      follower,
      election: new ScriptedElection(trace),
      sink,
      renewed: [renewed],
    });
    const controller = new AbortController();
    stopWhen(renewed.follower, controller, () => queue.batches.length === 0);
    return { ...scripted, trace, queue, sink, controller };
  }

  test("mid-batch: nothing more reaches the sink; the rollback waits for the new session", async () => {
    const { relay, sink, controller, zookeepers, sessions } = silentSetup();
    sink.failOn = (m) => {
      if (m.body.kind === "mutation" && m.body.mutation.id === 1n && sessions() === 1) {
        zookeepers[0]!.silence();
      }
      return undefined;
    };
    await relay.run(controller.signal);
    assert.equal(sessions(), 2, "a new session, as after an expiry");
    assert.deepEqual(
      words(sink.received).map((w) => w.replace(/ #\d+$/, "")),
      [
        ...["begin b1", "mutation 1 b1"],
        // Written only once the relay leads again, in its new session.
        "rollback b1",
        ...["begin b1", "mutation 1 b1", "mutation 2 b1", "commit b1"],
        ...["begin b2", "mutation 3 b2", "commit b2"],
      ],
    );
    validate(sink.received);
    assert.equal(sink.opened, 2, "the sink opened again in the new session");
  });

  test("while the sink waits for its commit to be durable: the wait is abandoned at once, the batch sent again", async () => {
    const { relay, sink, controller, zookeepers, sessions, trace } = silentSetup();
    // The first acknowledgement never comes: the sink is stuck in an fsync.
    sink.ack = (batch) => {
      if (sessions() > 1 || batch.id !== 1n) return Promise.resolve();
      zookeepers[0]!.silence();
      return new Promise<void>(() => {});
    };
    await relay.run(controller.signal);
    assert.equal(sessions(), 2);
    assert.deepEqual(
      words(sink.received).map((w) => w.replace(/ #\d+$/, "")),
      [
        // The commit reached the sink: no rollback follows it; the batch comes again whole.
        ...["begin b1", "mutation 1 b1", "mutation 2 b1", "commit b1"],
        ...["begin b1", "mutation 1 b1", "mutation 2 b1", "commit b1"],
        ...["begin b2", "mutation 3 b2", "commit b2"],
      ],
    );
    validate(sink.received);
    assert.equal(trace.filter((t) => t === "finish 1").length, 1, "finished after its ack only");
  });
});

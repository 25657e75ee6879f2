import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PgshovelError } from "../../../src/errors.js";
import {
  mutation,
  ScriptedProbe,
  SOURCE,
  scriptedWorker,
  setState,
  unavailable,
  until,
} from "./scripted-replica.js";

/** The trace entries that come from the feed's and target's work (not closing). */
const work = (trace: string[]) => trace.filter((entry) => !entry.endsWith("close"));

const copied = (name: string) => ({
  schema: "public",
  name,
  snapshot: { xmin: 5n, xmax: 5n, xip: [] },
  rows: 0n,
});

/** A stored position after batch `id` of the scripted feed (end tick 10 id + 10). */
const after = (id: bigint) => ({
  node: SOURCE,
  batch: id,
  endTick: id * 10n + 10n,
  endSnapshot: { xmin: id * 10n + 10n, xmax: id * 10n + 10n, xip: [] },
  endTime: "2026-11-24 03:45:27+00",
  stream: id * 100n,
});

describe("replication worker over scripted parts", () => {
  test("leads, marks the stream, copies, then applies each batch and calls done() after its commit", async () => {
    const { trace, feed, target, worker, controller } = scriptedWorker();
    feed.add(1, 1, 2).add(2, 3);
    feed.onIdle = () => controller.abort();
    assert.deepEqual(await worker.run(controller.signal), { kind: "stopped" });
    assert.deepEqual(work(trace), [
      "leading",
      "feed open 1",
      "mark",
      "store mark 7",
      "copy public.t",
      "read from 7",
      "apply 1: public.t",
      "commit 1",
      "done 1",
      "apply 2: public.t",
      "commit 2",
      "done 2",
    ]);
    assert.deepEqual(target.rows.get("public.t"), [1, 2, 3]);
    assert.equal(target.stored_.position?.stream, 200n, "the stream position is stored");
  });

  test("a batch the target holds already is skipped, and done() is still called", async () => {
    const { trace, feed, target, worker, controller } = scriptedWorker();
    target.stored_.copied.set("public.t", copied("t"));
    target.stored_.position = after(2n);
    feed.add(2, 3).add(3, 4);
    feed.onIdle = () => controller.abort();
    await worker.run(controller.signal);
    assert.deepEqual(work(trace), [
      "leading",
      "feed open 1",
      "read from 200",
      "skip 2",
      "done 2",
      "apply 3: public.t",
      "commit 3",
      "done 3",
    ]);
  });

  test("a retryable failure rolls the batch back, backs off, and the batch comes again", async () => {
    const { trace, feed, target, follower, worker, controller } = scriptedWorker();
    feed.add(1, 1).add(2, 2);
    target.failApply = { batch: 2n, error: unavailable() };
    feed.onIdle = () => {
      if (trace.includes("done 2")) controller.abort();
    };
    await worker.run(controller.signal);
    const entries = work(trace);
    const failed = entries.indexOf("rollback 2");
    assert.ok(failed > 0);
    assert.ok(!entries.slice(0, failed).includes("done 2"), "done() only after a commit");
    assert.deepEqual(entries.slice(failed + 1), [
      "feed open 2",
      "read from 100",
      "skip 1",
      "done 1",
      "apply 2: public.t",
      "commit 2",
      "done 2",
    ]);
    assert.ok(follower.sleeps.includes(200), "backed off first");
    assert.deepEqual(target.rows.get("public.t"), [1, 2]);
  });

  test("a divergence ends the run with CONFLICT, the batch not done", async () => {
    const { trace, feed, target, worker, controller } = scriptedWorker();
    feed.add(1, 1);
    target.failApply = {
      batch: 1n,
      error: new PgshovelError("CONFLICT", "the target has diverged from the source"),
    };
    await assert.rejects(worker.run(controller.signal), { code: "CONFLICT" });
    assert.ok(!trace.includes("done 1"));
  });

  test("a table added between batches is copied alone, then applied with the others", async () => {
    const { trace, feed, target, follower, worker, controller } = scriptedWorker();
    feed.add(1, 1);
    const running = worker.run(controller.signal);
    await until(() => trace.includes("done 1"), "batch 1 done");
    follower.state = setState(2, ["t", "u"]);
    await until(() => trace.includes("copy public.u"), "the copy of u");
    feed.add(2, 2, mutation(3, "u"));
    await until(() => trace.includes("done 2"), "batch 2 done");
    controller.abort();
    await running;
    const entries = work(trace);
    assert.deepEqual(entries.slice(entries.indexOf("done 1") + 1), [
      "copy public.u",
      "apply 2: public.t,public.u",
      "commit 2",
      "done 2",
    ]);
    assert.equal(entries.filter((e) => e === "mark").length, 1, "one mark, at the start");
    assert.deepEqual(target.rows.get("public.u"), [3]);
  });

  test("a table removed is forgotten and no longer applied", async () => {
    const { trace, feed, target, follower, worker, controller } = scriptedWorker();
    follower.state = setState(1, ["t", "u"]);
    target.stored_.copied.set("public.t", copied("t"));
    target.stored_.copied.set("public.u", copied("u"));
    target.stored_.position = after(0n);
    feed.add(1, 1, mutation(2, "u"));
    const running = worker.run(controller.signal);
    await until(() => trace.includes("done 1"), "batch 1 done");
    follower.state = setState(2, ["t"]);
    await until(() => trace.includes("forget public.u"), "u forgotten");
    feed.add(2, 3, mutation(4, "u"));
    await until(() => trace.includes("done 2"), "batch 2 done");
    controller.abort();
    await running;
    assert.ok(trace.includes("apply 2: public.t"));
    assert.deepEqual(target.rows.get("public.u"), [2]);
    assert.deepEqual(target.rows.get("public.t"), [1, 3]);
  });

  test("a resumed bootstrap keeps the first mark and copies only what is missing", async () => {
    const { trace, feed, target, follower, worker, controller } = scriptedWorker();
    follower.state = setState(1, ["t", "u"]);
    target.stored_.mark = { stream: 3n, feed: "scripted feed" };
    target.stored_.copied.set("public.t", copied("t"));
    feed.onIdle = () => controller.abort();
    await worker.run(controller.signal);
    assert.deepEqual(work(trace), ["leading", "feed open 1", "copy public.u", "read from 3"]);
  });

  test("a batch that does not start where the replica stands is a gap: POSITION_LOST", async () => {
    const { trace, feed, target, worker, controller } = scriptedWorker();
    target.stored_.copied.set("public.t", copied("t"));
    target.stored_.position = after(2n);
    feed.add(4, 1);
    await assert.rejects(worker.run(controller.signal), { code: "POSITION_LOST" });
    assert.ok(!trace.some((entry) => entry.startsWith("apply")));
  });

  test("with a caught-up probe, the run ends once a batch's end tick reaches the horizon", async () => {
    const { trace, feed, worker, controller } = scriptedWorker({
      untilCaughtUp: () => new ScriptedProbe(35n),
    });
    feed.add(1, 1).add(2, 2).add(3, 3).add(4, 4);
    assert.deepEqual(await worker.run(controller.signal), { kind: "caught-up" });
    assert.ok(trace.includes("done 3"));
    assert.ok(!trace.includes("apply 4: public.t"), "batch 3 ends at tick 40 >= 35");
  });

  test("a finite feed's end ends the run", async () => {
    const { feed, worker, controller } = scriptedWorker();
    feed.finite = true;
    feed.add(1, 1);
    assert.deepEqual(await worker.run(controller.signal), { kind: "ended" });
  });

  test("leadership lost mid-batch: nothing of the batch is committed, and the worker stands again", async () => {
    const { trace, feed, election, worker, controller } = scriptedWorker();
    feed.add(1, 1, 2);
    let taken = false;
    feed.onMutation = () => {
      if (taken) return;
      taken = true;
      election.isLeading = false;
    };
    feed.onIdle = () => {
      if (trace.includes("done 1")) controller.abort();
    };
    await worker.run(controller.signal);
    assert.equal(election.acquired, 2, "stood for election again");
    assert.equal(trace.filter((e) => e === "commit 1").length, 1);
  });
});

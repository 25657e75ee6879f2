import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { RelayObserver } from "../../../src/relay/observer.js";
import {
  outage,
  ScriptedElection,
  ScriptedFollower,
  ScriptedQueue,
  ScriptedSink,
  scriptedRelay,
  stopWhen,
  type Trace,
} from "../relay/scripted.js";

const DSN = "postgresql://db1";

describe("relay observer", () => {
  test("the loop reports states, finished batches and retries, and carries on when an observer throws", async () => {
    const trace: Trace = [];
    const queue = new ScriptedQueue("node-1", trace);
    queue.add(1, 1, 2, 3).add(2, 4);
    queue.failNext = { call: "events", error: outage() };
    const follower = new ScriptedFollower(DSN);
    const sink = new ScriptedSink(trace, false);
    const seen: string[] = [];
    const observer: RelayObserver = {
      stateChanged: (state) => {
        seen.push(`state ${state}`);
        if (state === "opening sink") throw new Error("a broken observer");
      },
      batchFinished: (batch) => seen.push(`finished ${batch.id} with ${batch.mutations}`),
      retrying: (failure) => seen.push(`retrying ${failure.code} in ${failure.delayMs} ms`),
    };
    const { relay } = scriptedRelay({
      queues: { [DSN]: queue },
      follower,
      sink,
      election: new ScriptedElection(trace),
      observer,
    });
    const controller = new AbortController();
    stopWhen(follower, controller, () => queue.batches.length === 0);
    assert.deepEqual(await relay.run(controller.signal), { kind: "stopped" });
    assert.deepEqual(seen, [
      "state standby",
      "state opening sink",
      "state polling",
      "state publishing",
      "retrying SINK_ERROR in 1 ms",
      "state backing off",
      "state polling",
      "state publishing",
      "finished 1 with 3",
      "state polling",
      "state publishing",
      "finished 2 with 1",
      "state polling",
      "state stopped",
    ]);
  });
});

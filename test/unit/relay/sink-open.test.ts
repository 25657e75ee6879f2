import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isPgshovelError, PgshovelError } from "../../../src/errors.js";
import {
  outage,
  ScriptedFollower,
  ScriptedQueue,
  ScriptedSink,
  scriptedRelay,
  stopWhen,
  type Trace,
} from "./scripted.js";

const DSN = "postgresql://db1";

/** A sink whose first opens fail with `failure` (every one, by default). */
class SinkThatWillNotOpen extends ScriptedSink {
  constructor(
    trace: Trace,
    private readonly failure: () => Error,
    private failures = Number.POSITIVE_INFINITY,
  ) {
    super(trace);
  }

  override async open(): Promise<void> {
    this.opened++;
    if (this.failures-- > 0) throw this.failure();
  }
}

function setup(sink: (trace: Trace) => ScriptedSink, maxSinkWaitMs?: number) {
  const trace: Trace = [];
  const queue = new ScriptedQueue("node-1", trace);
  const follower = new ScriptedFollower(DSN);
  const built = sink(trace);
  const { relay } = scriptedRelay({
    queues: { [DSN]: queue },
    follower,
    sink: built,
    ...(maxSinkWaitMs === undefined ? {} : { maxSinkWaitMs }),
  });
  const controller = new AbortController();
  stopWhen(follower, controller, () => queue.batches.length === 0);
  return { queue, sink: built, relay, controller };
}

describe("opening the relay's sink", () => {
  test("retryable failures to open are retried; then the batches flow", async () => {
    const { queue, sink, relay, controller } = setup(
      (trace) => new SinkThatWillNotOpen(trace, outage, 3),
    );
    queue.add(1, 1, 2);
    assert.deepEqual(await relay.run(controller.signal), { kind: "stopped" });
    assert.equal(sink.opened, 4);
    assert.deepEqual(
      sink.committed.map((m) => m.body.kind),
      ["begin", "mutation", "mutation", "commit"],
    );
  });

  test("a sink still failing past maxSinkWaitMs ends the run, naming the bound and the cause", async () => {
    const { sink, relay, controller } = setup(
      (trace) => new SinkThatWillNotOpen(trace, outage),
      50,
    );
    await assert.rejects(relay.run(controller.signal), (error: unknown) => {
      assert.ok(isPgshovelError(error, "SINK_ERROR"), String(error));
      assert.equal(error.retryable, false);
      assert.match(
        error.message,
        /^the sink \(scripted sink\) did not open within 50 ms \(--max-sink-wait\): scripted outage$/,
      );
      return true;
    });
    assert.ok(sink.opened >= 2, `opened ${sink.opened} times`);
  });

  test("a failure that is not retryable ends the run at once", async () => {
    const refused = () => new PgshovelError("KAFKA_ERROR", "scripted refusal");
    const { sink, relay, controller } = setup((trace) => new SinkThatWillNotOpen(trace, refused));
    await assert.rejects(relay.run(controller.signal), /scripted refusal/);
    assert.equal(sink.opened, 1);
  });

  test("a stop while the sink will not open ends the run as stopped", async () => {
    const { sink, relay, controller } = setup((trace) => new SinkThatWillNotOpen(trace, outage));
    const run = relay.run(controller.signal);
    while (sink.opened < 2) await new Promise((resolve) => setImmediate(resolve));
    controller.abort();
    assert.deepEqual(await run, { kind: "stopped" });
  });
});

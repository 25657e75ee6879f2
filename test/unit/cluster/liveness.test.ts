/**
 * The silence tracker of a ZooKeeper session, driven by a scripted probe and mocked timers:
 * silence is reported at the bound, not before, and answers end it.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, mock, test } from "node:test";
import { Liveness, probeIntervalMs, silenceBoundMs } from "../../../src/cluster/liveness.js";

const SESSION_MS = 6000;

/** A tracker whose probe answers only while `answering` is true; counts the probes sent. */
function tracker() {
  const state = { answering: true, probes: 0, silent: [] as number[], resumed: 0 };
  const liveness = new Liveness({
    sessionTimeoutMs: () => SESSION_MS,
    now: () => Date.now(),
    probe: (done) => {
      state.probes++;
      // An unanswered probe stays outstanding, as a request to a frozen server does.
      if (state.answering) setTimeout(() => done(true), 5);
    },
  });
  liveness.on("silent", (ms) => state.silent.push(ms));
  liveness.on("answering", () => state.resumed++);
  return { liveness, state };
}

/**
 * Advances the mocked clock one millisecond at a time: a timer set by a callback fires
 * within the same call, as it would in real time.
 */
function advance(ms: number): void {
  for (let i = 0; i < ms; i++) mock.timers.tick(1);
}

describe("ZooKeeper liveness", () => {
  beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 }));
  afterEach(() => mock.timers.reset());

  test("the bound leaves a third of the session timeout; probes come six times per timeout", () => {
    assert.equal(silenceBoundMs(10_000), 6666);
    assert.equal(silenceBoundMs(4000), 2666);
    assert.equal(probeIntervalMs(6000), 1000);
    assert.ok(silenceBoundMs(SESSION_MS) < SESSION_MS);
  });

  test("a server that answers its probes is never silent", () => {
    const { liveness, state } = tracker();
    liveness.start();
    advance(SESSION_MS * 10);
    assert.deepEqual(state.silent, []);
    assert.ok(state.probes >= 55, `${state.probes} probes in ten session timeouts`);
    assert.ok(Date.now() - liveness.lastAnsweredAt <= probeIntervalMs(SESSION_MS) + 10);
    liveness.stop();
  });

  test("a busy session needs no probe: its own answers count", () => {
    const { liveness, state } = tracker();
    liveness.start();
    for (let i = 0; i < 100; i++) {
      advance(SESSION_MS / 20);
      liveness.answered();
    }
    assert.equal(state.probes, 0);
    assert.deepEqual(state.silent, []);
    liveness.stop();
  });

  test("silence is reported at the bound, not before, then ends with the next answer", () => {
    const { liveness, state } = tracker();
    liveness.start();
    advance(2500);
    state.answering = false;
    // The last answer came with the probe sent at 2000 ms (+5 ms).
    const lastAnswer = liveness.lastAnsweredAt;
    const bound = silenceBoundMs(SESSION_MS);
    advance(lastAnswer + bound - Date.now() - 1);
    assert.deepEqual(state.silent, [], "not silent one millisecond before the bound");
    assert.equal(liveness.isSilent, false);
    advance(1);
    assert.equal(state.silent.length, 1);
    assert.ok(state.silent[0]! >= bound, `silent for ${state.silent[0]} ms`);
    assert.equal(liveness.isSilent, true);
    // Still silent: reported once, not again.
    advance(SESSION_MS);
    assert.equal(state.silent.length, 1);
    liveness.answered();
    assert.equal(liveness.isSilent, false);
    assert.equal(state.resumed, 1);
    assert.equal(liveness.lastAnsweredAt, Date.now());
    liveness.stop();
  });

  test("a probe the client fails at once is not sent again before an interval", () => {
    let probes = 0;
    const liveness = new Liveness({
      sessionTimeoutMs: () => SESSION_MS,
      now: () => Date.now(),
      probe: (done) => {
        probes++;
        done(false);
      },
    });
    liveness.start();
    advance(SESSION_MS);
    assert.ok(
      probes <= SESSION_MS / probeIntervalMs(SESSION_MS),
      `${probes} probes in one timeout`,
    );
    assert.equal(liveness.isSilent, true);
    liveness.stop();
  });

  test("a stopped tracker sends nothing and reports nothing", () => {
    const { liveness, state } = tracker();
    liveness.start();
    state.answering = false;
    liveness.stop();
    advance(SESSION_MS * 3);
    assert.equal(state.probes, 0);
    assert.deepEqual(state.silent, []);
  });
});

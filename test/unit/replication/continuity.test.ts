import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { holdsHorizon } from "../../../src/replication/caught-up.js";
import { checkContinuity, lagSeconds, positionAfter } from "../../../src/replication/continuity.js";
import { etaSeconds } from "../../../src/replication/progress.js";
import type { Tick } from "../../../src/stream/types.js";

const tick = (id: bigint, xmin = id): Tick => ({
  id,
  snapshot: { xmin, xmax: xmin + 1n, xip: [] },
  time: "2026-11-24T03:45:27.250000Z",
});
const batch = (id: bigint, start: bigint, end: bigint, node = "n1") => ({
  node,
  id,
  begin: { start: tick(start), end: tick(end) },
});
const position = positionAfter({ ...batch(5n, 40n, 50n), position: 9n });

describe("continuity of a replica's batches", () => {
  test("the position after a batch: its id, end tick and stream position", () => {
    assert.equal(position.batch, 5n);
    assert.equal(position.endTick, 50n);
    assert.equal(position.stream, 9n);
  });

  test("the next batch starts at the stored end tick; one applied before may come again", () => {
    checkContinuity(undefined, batch(1n, 0n, 10n));
    checkContinuity(position, batch(6n, 50n, 60n));
    checkContinuity(position, batch(5n, 40n, 50n));
    checkContinuity(position, batch(4n, 30n, 40n));
  });

  test("a batch starting later is a gap; another source node too", () => {
    assert.throws(() => checkContinuity(position, batch(7n, 70n, 80n)), {
      code: "POSITION_LOST",
      message: /starts at tick 70, but the replica stands at tick 50/,
    });
    assert.throws(() => checkContinuity(position, batch(6n, 50n, 60n, "n2")), {
      code: "POSITION_LOST",
    });
  });

  test("lag: seconds from the end tick's time, never negative", () => {
    assert.equal(
      lagSeconds("2026-11-24T03:45:27.250000Z", Date.UTC(2026, 10, 24, 3, 45, 29)),
      1.75,
    );
    assert.equal(lagSeconds("2026-11-24T03:45:27.250000Z", 0), 0);
  });
});

describe("the caught-up rule", () => {
  const snapshot = (xmin: bigint) => ({ xmin, xmax: xmin + 3n, xip: [] });
  test("an applied end tick with xmin at or past the horizon holds it", () => {
    assert.ok(holdsHorizon(100n, { endSnapshot: snapshot(100n) }, []));
    assert.ok(!holdsHorizon(100n, { endSnapshot: snapshot(99n) }, []));
  });
  test("without such a batch, every table's copy snapshot must", () => {
    assert.ok(holdsHorizon(100n, undefined, [snapshot(100n), snapshot(120n)]));
    assert.ok(!holdsHorizon(100n, undefined, [snapshot(100n), snapshot(90n)]));
    assert.ok(!holdsHorizon(100n, undefined, []));
    assert.ok(holdsHorizon(100n, { endSnapshot: snapshot(90n) }, [snapshot(101n)]));
  });
});

describe("copy progress", () => {
  test("time left from the estimate and the rate; unknown without either", () => {
    const at = { table: "public.t", rows: 400, rowsPerSecond: 100, done: false };
    assert.equal(etaSeconds({ ...at, totalEstimate: 1000 }), 6);
    assert.equal(etaSeconds({ ...at, totalEstimate: 300 }), 0);
    assert.equal(etaSeconds({ ...at, totalEstimate: undefined }), undefined);
    assert.equal(etaSeconds({ ...at, totalEstimate: 1000, rowsPerSecond: 0 }), undefined);
  });
});

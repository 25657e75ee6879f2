import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isPgshovelError } from "../../../src/errors.js";
import {
  formatSnapshot,
  parseSnapshot,
  pastSnapshot,
  visible,
} from "../../../src/stream/snapshot.js";

describe("snapshots", () => {
  test("parse PostgreSQL's text form into bigints and print it back", () => {
    assert.deepEqual(parseSnapshot("100:100:"), { xmin: 100n, xmax: 100n, xip: [] });
    const big = "9223372036854775000:9223372036854775807:9223372036854775001,9223372036854775806";
    assert.deepEqual(parseSnapshot(big), {
      xmin: 9223372036854775000n,
      xmax: 9223372036854775807n,
      xip: [9223372036854775001n, 9223372036854775806n],
    });
    assert.equal(formatSnapshot(parseSnapshot(big)), big);
    assert.equal(formatSnapshot(parseSnapshot("5:9:")), "5:9:");
  });

  test("refuse text that is not a consistent snapshot", () => {
    for (const text of ["", "1:2", "a:b:", "1:2:3", "5:4:", "5:9:4", "1:9:2,,3", " 1:2:"]) {
      assert.throws(
        () => parseSnapshot(text),
        (error: unknown) => isPgshovelError(error, "INVALID_ARGUMENT"),
        text,
      );
    }
  });

  test("visible: below xmin, or below xmax and not running", () => {
    const s = parseSnapshot("10:20:12,15");
    const seen = (txid: bigint) => visible(txid, s);
    assert.equal(seen(1n), true);
    assert.equal(seen(9n), true);
    assert.equal(seen(10n), true);
    assert.equal(seen(11n), true);
    assert.equal(seen(12n), false);
    assert.equal(seen(15n), false);
    assert.equal(seen(19n), true);
    assert.equal(seen(20n), false);
    assert.equal(seen(1000n), false);
    // xmin itself is always running in a real snapshot; listed here, it is not visible
    assert.equal(visible(10n, parseSnapshot("10:20:10")), false);
  });

  test("past a snapshot once a batch's start tick has xmin >= its xmax", () => {
    const copy = parseSnapshot("100:110:105");
    assert.equal(pastSnapshot(parseSnapshot("109:120:"), copy), false);
    assert.equal(pastSnapshot(parseSnapshot("110:120:"), copy), true);
    // every txid a batch can hold (>= start.xmin) is then invisible in the copy
    const start = parseSnapshot("110:130:111");
    for (let txid = start.xmin; txid < 140n; txid++) assert.equal(visible(txid, copy), false);
  });
});

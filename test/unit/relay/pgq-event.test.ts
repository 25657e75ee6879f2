import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseSnapshot, toTimestamp } from "../../../src/relay/pgq-source.js";
import { toMutation } from "../../../src/relay/relay.js";

describe("PgQ rows to stream values", () => {
  test("timestamps keep their microseconds, padded to six digits", () => {
    assert.equal(toTimestamp("2026-11-24 03:45:27.123456+00"), "2026-11-24T03:45:27.123456Z");
    assert.equal(toTimestamp("2026-11-24 03:45:27.1+00"), "2026-11-24T03:45:27.100000Z");
    assert.equal(toTimestamp("2026-11-24 03:45:27+00"), "2026-11-24T03:45:27.000000Z");
    assert.throws(() => toTimestamp("2026-11-24 03:45:27+02"), /unexpected timestamp/);
  });

  test("snapshots parse into 64-bit txids", () => {
    assert.deepEqual(parseSnapshot("100:105:"), { xmin: 100n, xmax: 105n, xip: [] });
    assert.deepEqual(
      parseSnapshot(
        "9223372036854775800:9223372036854775807:9223372036854775801,9223372036854775803",
      ),
      {
        xmin: 9223372036854775800n,
        xmax: 9223372036854775807n,
        xip: [9223372036854775801n, 9223372036854775803n],
      },
    );
  });

  test("a capture event becomes a mutation with exact values", () => {
    const cache = new Map<string, string[]>();
    const event = {
      id: "42",
      time: "2026-11-24 03:45:27.5+00",
      txid: "9007199254740993",
      type: "UPDATE",
      data: '{"old" : {"id" : 1, "big" : "9223372036854775807", "doc" : "null", "gone" : null}, "new" : {"id" : 2, "big" : "1", "doc" : null, "gone" : null}}',
      schema: "public",
      table: "t",
      configVersion: "3",
      identity: '["id"]',
    };
    const mutation = toMutation(event, cache);
    assert.deepEqual(mutation, {
      id: 42n,
      schema: "public",
      table: "t",
      operation: "UPDATE",
      identity: ["id"],
      old: { id: 1, big: "9223372036854775807", doc: "null", gone: null },
      new: { id: 2, big: "1", doc: null, gone: null },
      transaction: 9007199254740993n,
      time: "2026-11-24T03:45:27.500000Z",
    });
    assert.equal(
      toMutation({ ...event, type: "DELETE", data: '{"old":{"id":1}}' }, cache).identity,
      mutation.identity,
      "identity lists are shared",
    );
    assert.throws(() => toMutation({ ...event, type: "UPSERT" }, cache), /unknown type "UPSERT"/);
  });
});

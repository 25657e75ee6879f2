import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type QueueEvent, toMutations, toTimestamp } from "../../../src/relay/pgq-event.js";
import { decodeJson, encodeJson } from "../../../src/stream/codec-json.js";
import { parseSnapshot } from "../../../src/stream/snapshot.js";
import { type Message, type Mutation, ROWS_JSON } from "../../../src/stream/types.js";

/** The one mutation of a one-row event. */
function toMutation(event: QueueEvent, cache: Map<string, string[]>): Mutation {
  const mutations = toMutations(event, cache);
  assert.equal(mutations.length, 1);
  return mutations[0]!;
}

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
      ev_id: "42",
      ev_time: "2026-11-24 03:45:27.5+00",
      ev_txid: "9007199254740993",
      ev_type: "UPDATE",
      ev_data:
        '{"old" : {"id" : 1, "big" : "9223372036854775807", "doc" : "null", "gone" : null}, "new" : {"id" : 2, "big" : "1", "doc" : null, "gone" : null}}',
      ev_extra1: "public",
      ev_extra2: "t",
      ev_extra3: "3",
      ev_extra4: '["id"]',
    };
    const mutation = toMutation(event, cache);
    assert.deepEqual(plain(mutation), {
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
      toMutation({ ...event, ev_type: "DELETE", ev_data: '{"old":{"id":1}}' }, cache).identity,
      mutation.identity,
      "identity lists are shared",
    );
    assert.throws(
      () => toMutation({ ...event, ev_type: "UPSERT" }, cache),
      /unknown type "UPSERT"/,
    );
  });

  test("a packed event becomes one mutation per row, in id order, with the event's transaction and time", () => {
    const cache = new Map<string, string[]>();
    const header =
      '{"old":[["id","n"],["ok","b"],["note","t"]],"new":[["id","n"],["ok","b"],["note","t"]]}';
    const event = {
      ev_id: "10",
      ev_time: "2026-11-24 03:45:27.5+00",
      ev_txid: "77",
      ev_type: "UPDATE packed",
      ev_data: `${header}\n12 (2,f,,2,t,"")\n10 (1,t,"a ""b"",\\\\c\nd",1,t,x)`,
      ev_extra1: "public",
      ev_extra2: "t",
      ev_extra3: "1",
      ev_extra4: '["id"]',
    };
    const mutations = toMutations(event, cache);
    assert.deepEqual(mutations.map(plain), [
      {
        id: 10n,
        schema: "public",
        table: "t",
        operation: "UPDATE",
        identity: ["id"],
        old: { id: 1, ok: true, note: 'a "b",\\c\nd' },
        new: { id: 1, ok: true, note: "x" },
        transaction: 77n,
        time: "2026-11-24T03:45:27.500000Z",
      },
      {
        id: 12n,
        schema: "public",
        table: "t",
        operation: "UPDATE",
        identity: ["id"],
        old: { id: 2, ok: false, note: null },
        new: { id: 2, ok: true, note: "" },
        transaction: 77n,
        time: "2026-11-24T03:45:27.500000Z",
      },
    ]);
    for (const mutation of mutations) {
      // the JSON codec takes the rows' JSON text, built without rows, and it says what they say
      const line = encodeJson(message(mutation));
      assert.ok(mutation[ROWS_JSON] !== undefined && line.includes(mutation[ROWS_JSON]));
      assert.equal(line, encodeJson(message(plain(mutation))));
    }
    const edited = toMutations(event, cache)[0]!;
    edited.new = { id: 1, ok: false, note: "changed" };
    assert.equal(edited[ROWS_JSON], undefined, "a changed row drops the JSON text");
    assert.throws(
      () => toMutations({ ...event, ev_type: "UPSERT packed" }, cache),
      /unknown type "UPSERT packed"/,
    );
    assert.throws(
      () => toMutations({ ...event, ev_data: `${header}\n12 (2,f,,2,t)` }, cache),
      /record of 5 fields, not 6/,
    );
  });

  test("a packed UPDATE under old: key keeps the old fields its mask marks; a DELETE its key", () => {
    const cache = new Map<string, string[]>();
    const base = {
      ev_id: "5",
      ev_time: "2026-11-24 03:45:27.5+00",
      ev_txid: "8",
      ev_extra1: "public",
      ev_extra2: "t",
      ev_extra3: "1",
      ev_extra4: '["id"]',
    };
    const fields = '[["id","n"],["a","t"],["b","t"]]';
    const update = toMutations(
      {
        ...base,
        ev_type: "UPDATE packed",
        ev_data: `{"old":${fields},"new":${fields},"mask":true}\n5 (101,1,,,1,x,y)\n6 (110,2,old,,2,new,z)`,
      },
      cache,
    );
    assert.deepEqual(
      update.map((m) => [m.id, m.old, m.new]),
      [
        [5n, { id: 1, b: null }, { id: 1, a: "x", b: "y" }],
        [6n, { id: 2, a: "old" }, { id: 2, a: "new", b: "z" }],
      ],
    );
    const deleted = toMutations(
      {
        ...base,
        ev_type: "DELETE packed",
        ev_data: '{"old":[["id","n"]],"new":null}\n5 (1)\n7 (3)',
      },
      cache,
    );
    assert.deepEqual(
      deleted.map((m) => [m.operation, m.id, m.old, m.new]),
      [
        ["DELETE", 5n, { id: 1 }, null],
        ["DELETE", 7n, { id: 3 }, null],
      ],
    );
    for (const mutation of [...update, ...deleted]) {
      assert.equal(
        encodeJson(message(mutation)),
        encodeJson(message(plain(mutation))),
        "the JSON text leaves out what the mask leaves out",
      );
    }
  });

  test("the JSON codec copies the trigger's row text, and the result decodes like an encoded copy", () => {
    const cache = new Map<string, string[]>();
    const base = {
      ev_id: "7",
      ev_time: "2026-11-24 03:45:27.5+00",
      ev_txid: "12",
      ev_extra1: "public",
      ev_extra2: "t",
      ev_extra3: "1",
      ev_extra4: '["id"]',
    };
    const events = [
      { type: "INSERT", data: '{"old" : null, "new" : {"id" : 1, "t" : "a\\nb \\"q\\" é 😀"}}' },
      {
        type: "UPDATE",
        data: '{"old" : {"id" : 1, "n" : "1.50"}, "new" : {"id" : 1, "n" : "2.00", "b" : true}}',
      },
      { type: "DELETE", data: '{"old" : {"id" : 1, "j" : "null", "x" : null}, "new" : null}' },
      // Wide tables are built with jsonb, which spaces its text differently.
      { type: "INSERT", data: '{"old" : null, "new" : {"a": 1, "bb": "x"}}' },
    ];
    for (const { type, data } of events) {
      const mutation = toMutation({ ...base, ev_type: type, ev_data: data }, cache);
      assert.equal(mutation[ROWS_JSON], data.slice(1, -1), `${type}: the text is kept`);
      const line = encodeJson(message(mutation));
      assert.ok(line.includes(data.slice(1, -1)), `${type}: the text is copied into the line`);
      assert.deepEqual(decodeJson(line), decodeJson(encodeJson(message(plain(mutation)))));
    }
  });

  test("events without both row members, and changed rows, are encoded from the rows", () => {
    const cache = new Map<string, string[]>();
    const event = {
      ev_id: "7",
      ev_time: "2026-11-24 03:45:27.5+00",
      ev_txid: "12",
      ev_type: "INSERT",
      ev_data: '{"new":{"id":1}}',
      ev_extra1: "public",
      ev_extra2: "t",
      ev_extra3: "1",
      ev_extra4: '["id"]',
    };
    const older = toMutation(event, cache);
    assert.equal(older[ROWS_JSON], undefined);
    assert.deepEqual(older.new, { id: 1 });
    assert.equal(older.old, null);
    const truncate = toMutation({ ...event, ev_type: "TRUNCATE", ev_data: "{}" }, cache);
    assert.equal(truncate[ROWS_JSON], undefined);
    assert.equal(truncate.old, null);

    const edited = toMutation({ ...event, ev_data: '{"old" : null, "new" : {"id" : 1}}' }, cache);
    edited.new = { id: 2 };
    assert.equal(edited[ROWS_JSON], undefined, "a changed row drops the copied text");
    const decoded = decodeJson(encodeJson(message(edited)));
    assert.equal(decoded.body.kind, "mutation");
    if (decoded.body.kind === "mutation") assert.deepEqual(decoded.body.mutation.new, { id: 2 });
  });
});

/** The mutation's fields as a plain object (what a decoder would give back). */
function plain(m: Mutation): Mutation {
  return {
    id: m.id,
    schema: m.schema,
    table: m.table,
    operation: m.operation,
    identity: m.identity,
    old: m.old,
    new: m.new,
    transaction: m.transaction,
    time: m.time,
  };
}

function message(mutation: Mutation): Message {
  return {
    header: {
      publisher: "4b0d5f0e-6a36-4c8f-9a57-2f1d6c2a9b10",
      sequence: 1n,
      timestamp: "2026-11-24T03:45:27.500000Z",
    },
    batch: { node: "0f7e2a43-8a1b-4c9e-b5d2-7c3e1f9a6b24", id: 3n },
    body: { kind: "mutation", mutation },
  };
}

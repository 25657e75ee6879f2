import assert from "node:assert/strict";
import { test } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { PgshovelError } from "../../../src/errors.js";
import {
  decodeJson,
  decodeProtobuf,
  encodeJson,
  encodeProtobuf,
  type Message,
  ProtobufMessageSchema,
  type Row,
  timestampFromDate,
  timestampFromParts,
  timestampToParts,
  type Value,
} from "../../../src/stream/index.js";
import { EVERY_SHAPE, NODE, PUBLISHER_A } from "./sample.js";

function insertOf(row: Row): Message {
  return {
    header: { publisher: PUBLISHER_A, sequence: 1n, timestamp: "2026-11-24T03:45:27.123456Z" },
    batch: { node: NODE, id: 1n },
    body: {
      kind: "mutation",
      mutation: {
        id: 1n,
        schema: "public",
        table: "t",
        operation: "INSERT",
        identity: ["id"],
        old: null,
        new: row,
        transaction: 2n,
        time: "2026-11-24T03:45:27.000000Z",
      },
    },
  };
}

function newRowOf(message: Message): Row | null {
  assert.equal(message.body.kind, "mutation");
  return message.body.kind === "mutation" ? message.body.mutation.new : null;
}

const SHAPES: Array<[string, Value]> = [
  ["int8 beyond 2^53", "9223372036854775807"],
  ["int8 minimum", "-9223372036854775808"],
  ["numeric with 40 digits", "1234567890123456789012345678901234567890"],
  ["float -0", "-0"],
  ["float NaN", "NaN"],
  ["float Infinity", "Infinity"],
  ["json null", "null"],
  ["SQL NULL", null],
  ["bool true", true],
  ["bool false", false],
  ["int4 maximum", 2147483647],
  ["int4 minimum", -2147483648],
  ["int2 zero", 0],
  ["emoji with skin tone", "👋🏽🇫🇷"],
  ["combining characters", "e\u0301 n\u0303 a\u030A"],
  ["control characters and quotes", '\t\r\n\u0001"\\/'],
  ["line and paragraph separators", "\u2028\u2029"],
  ["empty string", ""],
  ["bytea", "\\xdeadbeef"],
  ["array", "{{1,2},{3,NULL}}"],
  ["timestamptz", "1999-12-31 23:59:59.999999+00"],
];

for (const [name, value] of SHAPES) {
  test(`a ${name} value round-trips through both codecs`, () => {
    const message = insertOf({ v: value });
    assert.deepEqual(decodeJson(encodeJson(message)), message);
    assert.deepEqual(decodeProtobuf(encodeProtobuf(message)), message);
    assert.ok(Object.is(newRowOf(decodeJson(encodeJson(message)))?.v, value));
  });
}

test("every shape together round-trips, keeping column order", () => {
  const message = insertOf(EVERY_SHAPE);
  for (const decoded of [
    decodeJson(encodeJson(message)),
    decodeProtobuf(encodeProtobuf(message)),
  ]) {
    assert.deepEqual(decoded, message);
    assert.deepEqual(Object.keys(newRowOf(decoded) ?? {}), Object.keys(EVERY_SHAPE));
  }
});

test("JSON carries int2/int4 as numbers and every other non-bool type as a string", () => {
  const line = encodeJson(insertOf({ i: 7, big: "9007199254740993", j: "null", n: null }));
  const parsed = JSON.parse(line) as { mutation: { new: Record<string, unknown> } };
  assert.deepEqual(parsed.mutation.new, { i: 7, big: "9007199254740993", j: "null", n: null });
  assert.match(line, /"big":"9007199254740993"/);
});

test("protobuf tells SQL NULL from a JSON null", () => {
  const bytes = encodeProtobuf(insertOf({ sql: null, json: "null" }));
  const raw = fromBinary(ProtobufMessageSchema, bytes);
  assert.equal(raw.body.case, "mutation");
  if (raw.body.case !== "mutation") return;
  assert.equal(raw.body.value.new?.columns.sql?.kind.case, "null");
  assert.deepEqual(raw.body.value.new?.columns.json?.kind, { case: "text", value: "null" });
});

test("a column named __proto__ is kept as a column by both codecs", () => {
  const row: Row = {};
  Object.defineProperty(row, "__proto__", {
    value: "x",
    enumerable: true,
    writable: true,
    configurable: true,
  });
  row.other = 1;
  const message = insertOf(row);
  for (const decoded of [
    decodeJson(encodeJson(message)),
    decodeProtobuf(encodeProtobuf(message)),
  ]) {
    const got = newRowOf(decoded);
    assert.deepEqual(Object.keys(got ?? {}), ["__proto__", "other"]);
    assert.equal(Object.getOwnPropertyDescriptor(got, "__proto__")?.value, "x");
    assert.equal(Object.getPrototypeOf(got), Object.prototype);
  }
});

test("64-bit integers keep every bit in both codecs", () => {
  const message = insertOf({});
  message.header.sequence = 18446744073709551615n;
  message.batch.id = 9223372036854775807n;
  if (message.body.kind === "mutation") message.body.mutation.transaction = 18446744073709551615n;
  assert.deepEqual(decodeJson(encodeJson(message)), message);
  assert.deepEqual(decodeProtobuf(encodeProtobuf(message)), message);
});

test("encoders refuse numbers that are not int2/int4 values, naming the column", () => {
  for (const bad of [2 ** 31, 1.5, Number.NaN, 2 ** 53 + 2]) {
    const message = insertOf({ price: bad });
    for (const encode of [encodeJson, encodeProtobuf]) {
      assert.throws(
        () => encode(message),
        (e: unknown) =>
          e instanceof PgshovelError &&
          e.code === "INVALID_ARGUMENT" &&
          /mutation\.new\.price/.test(e.message),
      );
    }
  }
});

test("encoders refuse a bigint out of range and a time without microseconds", () => {
  const big = insertOf({});
  big.header.sequence = -1n;
  assert.throws(() => encodeJson(big), /header\.sequence: -1 is out of the uint64 range/);
  assert.throws(() => encodeProtobuf(big), /header\.sequence: -1 is out of the uint64 range/);
  const coarse = insertOf({});
  coarse.header.timestamp = "2026-11-24T03:45:27.123Z";
  assert.throws(() => encodeJson(coarse), /header\.timestamp/);
  assert.throws(() => encodeProtobuf(coarse), /header\.timestamp/);
});

test("timestamps keep the microsecond across the whole protobuf range", () => {
  for (const ts of [
    "0001-01-01T00:00:00.000000Z",
    "1969-12-31T23:59:59.999999Z",
    "1970-01-01T00:00:00.000000Z",
    "2000-02-29T12:34:56.000001Z",
    "2026-11-24T03:45:27.123456Z",
    "9999-12-31T23:59:59.999999Z",
  ]) {
    const { seconds, micros } = timestampToParts(ts);
    assert.equal(seconds * 1000 + Math.floor(micros / 1000), Date.parse(ts), ts);
    assert.equal(timestampFromParts(seconds, micros), ts);
    const message = insertOf({});
    message.header.timestamp = ts;
    assert.deepEqual(decodeProtobuf(encodeProtobuf(message)), message);
  }
  assert.equal(
    timestampFromDate(new Date("2026-11-24T03:45:27.123Z")),
    "2026-11-24T03:45:27.123000Z",
  );
  assert.equal(timestampFromDate(new Date(-1)), "1969-12-31T23:59:59.999000Z");
});

test("timestamp conversion agrees with Date on a spread of days", () => {
  for (let ms = -3e12; ms < 3e12; ms += 7_777_777_777) {
    const iso = new Date(ms).toISOString();
    const ts = `${iso.slice(0, 23)}000Z`;
    assert.equal(timestampFromDate(new Date(ms)), ts);
    assert.equal(timestampToParts(ts).seconds, Math.floor(ms / 1000));
  }
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { PgshovelError } from "../../../src/errors.js";
import { MutationSchema, Operation } from "../../../src/stream/gen/pgshovel/stream/v1/stream_pb.js";
import {
  codecByName,
  decodeJson,
  decodeProtobuf,
  encodeJson,
  encodeProtobuf,
  jsonCodec,
  ProtobufMessageSchema,
  splitDelimited,
} from "../../../src/stream/index.js";
import { SAMPLE_STREAM } from "./sample.js";

const MUTATION_LINE = encodeJson(SAMPLE_STREAM[1]!);
const COMMIT_LINE = encodeJson(SAMPLE_STREAM[4]!);

type RawMessage = ReturnType<typeof decodeRaw>;

function decodeRaw(bytes: Uint8Array) {
  return fromBinary(ProtobufMessageSchema, bytes);
}

/** Asserts that `run` throws DECODE_ERROR with a message matching `pattern`. */
function assertDecodeError(run: () => unknown, pattern: RegExp): void {
  assert.throws(run, (e: unknown) => {
    assert.ok(e instanceof PgshovelError, `expected a PgshovelError, got ${String(e)}`);
    assert.equal(e.code, "DECODE_ERROR");
    assert.match(e.message, pattern);
    return true;
  });
}

/** The mutation line with one field of the mutation replaced. */
function mutationWith(key: string, value: unknown): string {
  const parsed = JSON.parse(MUTATION_LINE) as { mutation: Record<string, unknown> };
  parsed.mutation[key] = value;
  return JSON.stringify(parsed);
}

test("JSON: bad JSON is reported as such", () => {
  assertDecodeError(() => decodeJson('{"header": '), /not valid JSON/);
  assertDecodeError(() => decodeJson("[1,2]"), /\(message\): expected an object, got an array/);
});

test("JSON: a missing header is named", () => {
  const parsed = JSON.parse(COMMIT_LINE) as Record<string, unknown>;
  delete parsed.header;
  assertDecodeError(() => decodeJson(JSON.stringify(parsed)), /header: missing/);
});

test("JSON: a missing header field is named with its path", () => {
  const parsed = JSON.parse(COMMIT_LINE) as { header: Record<string, unknown> };
  delete parsed.header.timestamp;
  assertDecodeError(() => decodeJson(JSON.stringify(parsed)), /header\.timestamp: missing/);
});

test("JSON: two bodies are refused, naming both", () => {
  const parsed = JSON.parse(COMMIT_LINE) as Record<string, unknown>;
  parsed.rollback = {};
  assertDecodeError(() => decodeJson(JSON.stringify(parsed)), /two bodies: commit and rollback/);
});

test("JSON: no body is refused", () => {
  const parsed = JSON.parse(COMMIT_LINE) as Record<string, unknown>;
  delete parsed.commit;
  assertDecodeError(() => decodeJson(JSON.stringify(parsed)), /\(body\): missing/);
});

test("JSON: an unknown operation is named", () => {
  assertDecodeError(
    () => decodeJson(mutationWith("operation", "UPSERT")),
    /mutation\.operation: unknown operation "UPSERT"/,
  );
});

test("JSON: a 64-bit integer that is not a string of digits is refused", () => {
  assertDecodeError(
    () => decodeJson(mutationWith("id", "12a")),
    /mutation\.id: expected a string of decimal digits, got "12a"/,
  );
  assertDecodeError(
    () => decodeJson(mutationWith("id", 12)),
    /mutation\.id: expected a string of decimal digits, got number 12/,
  );
  assertDecodeError(() => decodeJson(mutationWith("transaction", "-1")), /mutation\.transaction/);
  assertDecodeError(
    () => decodeJson(mutationWith("id", "9223372036854775808")),
    /mutation\.id: .* out of the int64 range/,
  );
  assertDecodeError(() => decodeJson(mutationWith("id", "007")), /mutation\.id/);
});

test("JSON: rows must be objects of scalar values or null, and present", () => {
  assertDecodeError(
    () => decodeJson(mutationWith("new", { price: [1] })),
    /mutation\.new\.price: expected null, a boolean/,
  );
  assertDecodeError(
    () => decodeJson(mutationWith("new", { price: 1.5 })),
    /mutation\.new\.price: 1\.5 is not an int2\/int4/,
  );
  assertDecodeError(() => decodeJson(mutationWith("new", { big: 2 ** 40 })), /mutation\.new\.big/);
  assertDecodeError(
    () => decodeJson(mutationWith("old", "x")),
    /mutation\.old: expected an object of columns or null/,
  );
  assertDecodeError(() => decodeJson(mutationWith("old", undefined)), /mutation\.old: missing/);
});

test("JSON: UUIDs and times are checked", () => {
  const parsed = JSON.parse(COMMIT_LINE) as {
    header: Record<string, unknown>;
    batch: Record<string, unknown>;
  };
  assertDecodeError(
    () => decodeJson(JSON.stringify({ ...parsed, batch: { ...parsed.batch, node: "not-a-uuid" } })),
    /batch\.node: expected a lowercase UUID, got "not-a-uuid"/,
  );
  for (const bad of [
    "2026-02-29T00:00:00.000000Z",
    "2026-11-24T24:00:00.000000Z",
    "2026-11-24 03:45:27.123456Z",
  ]) {
    assertDecodeError(
      () => decodeJson(JSON.stringify({ ...parsed, header: { ...parsed.header, timestamp: bad } })),
      /header\.timestamp: /,
    );
  }
  assertDecodeError(
    () => decodeJson(mutationWith("identity", ["id", 3])),
    /mutation\.identity\[1\]: expected a string/,
  );
});

test("JSON: unknown fields are ignored, so the format can grow", () => {
  const parsed = JSON.parse(COMMIT_LINE) as Record<string, unknown>;
  parsed.future = { anything: 1 };
  assert.deepEqual(decodeJson(JSON.stringify(parsed)), SAMPLE_STREAM[4]);
});

test("JSON codec: bytes that are not UTF-8 are refused", () => {
  assertDecodeError(() => jsonCodec.decode(new Uint8Array([0x7b, 0xff, 0x7d])), /not valid UTF-8/);
});

test("protobuf: garbage bytes are reported", () => {
  assertDecodeError(
    () => decodeProtobuf(new Uint8Array([0x0a, 0xff, 0xff, 0xff])),
    /not a valid protobuf message/,
  );
});

test("protobuf: a missing header, batch, body or time is named", () => {
  const full = encodeProtobuf(SAMPLE_STREAM[4]!);
  const without = (mutate: (m: RawMessage) => void) => {
    const raw = decodeRaw(full);
    mutate(raw);
    return toBinary(ProtobufMessageSchema, raw);
  };
  assertDecodeError(
    () =>
      decodeProtobuf(
        without((m) => {
          m.header = undefined;
        }),
      ),
    /header: missing/,
  );
  assertDecodeError(
    () =>
      decodeProtobuf(
        without((m) => {
          m.batch = undefined;
        }),
      ),
    /batch: missing/,
  );
  assertDecodeError(
    () =>
      decodeProtobuf(
        without((m) => {
          m.body = { case: undefined };
        }),
      ),
    /\(body\): missing/,
  );
  assertDecodeError(
    () =>
      decodeProtobuf(
        without((m) => {
          if (m.header) m.header.timestamp = undefined;
        }),
      ),
    /header\.timestamp: missing/,
  );
  assertDecodeError(
    () =>
      decodeProtobuf(
        without((m) => {
          if (m.header?.timestamp) m.header.timestamp.nanos = 1;
        }),
      ),
    /header\.timestamp: nanos 1 is not a whole number of microseconds/,
  );
});

test("protobuf: an unknown or unspecified operation and a value without kind are named", () => {
  const raw = decodeRaw(encodeProtobuf(SAMPLE_STREAM[1]!));
  assert.equal(raw.body.case, "mutation");
  if (raw.body.case !== "mutation") return;
  raw.body.value = create(MutationSchema, { ...raw.body.value, operation: Operation.UNSPECIFIED });
  assertDecodeError(
    () => decodeProtobuf(toBinary(ProtobufMessageSchema, raw)),
    /mutation\.operation: unknown operation 0/,
  );
  raw.body.value.operation = 9 as Operation;
  assertDecodeError(
    () => decodeProtobuf(toBinary(ProtobufMessageSchema, raw)),
    /mutation\.operation: unknown operation 9/,
  );
  raw.body.value.operation = Operation.INSERT;
  const value = raw.body.value.new?.columns.id;
  assert.ok(value);
  value.kind = { case: undefined };
  assertDecodeError(
    () => decodeProtobuf(toBinary(ProtobufMessageSchema, raw)),
    /mutation\.new\.id: value without a kind/,
  );
});

test("framing: a torn frame is reported", () => {
  assertDecodeError(() => splitDelimited(new Uint8Array([5, 1, 2])), /frame 0: truncated/);
  assertDecodeError(() => splitDelimited(new Uint8Array([0x80])), /frame 0: truncated length/);
  assert.deepEqual(splitDelimited(new Uint8Array([0, 1, 9])), [
    new Uint8Array([]),
    new Uint8Array([9]),
  ]);
});

test("codecByName knows json and protobuf and refuses anything else", () => {
  assert.equal(codecByName("json").name, "json");
  assert.equal(codecByName("protobuf").name, "protobuf");
  assert.throws(
    () => codecByName("avro"),
    (e: unknown) => e instanceof PgshovelError && e.code === "INVALID_ARGUMENT",
  );
});

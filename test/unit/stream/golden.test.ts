import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { jsonCodec, jsonLines, protobufCodec, splitDelimited } from "../../../src/stream/index.js";
import { FIXTURES, sampleJsonLines, sampleProtobufFrames } from "./fixtures.js";
import { SAMPLE_STREAM } from "./sample.js";

// The golden files are the contract in bytes: a change here is a format change.
// Regenerate them on purpose only (see regenerate-fixtures.ts) and review the diff.

const jsonGolden = readFileSync(new URL("stream.jsonl", FIXTURES));
const protobufGolden = readFileSync(new URL("stream.pb", FIXTURES));

test("the JSON codec encodes the sample stream byte-for-byte as the golden file", () => {
  assert.deepEqual(Buffer.from(sampleJsonLines()), jsonGolden);
});

test("the protobuf codec encodes the sample stream byte-for-byte as the golden file", () => {
  assert.deepEqual(Buffer.from(sampleProtobufFrames()), protobufGolden);
});

test("the JSON golden file decodes back to the sample stream", () => {
  const splitter = jsonLines.splitter();
  const lines = splitter.push(jsonGolden);
  assert.equal(splitter.torn(), undefined, "the file ends with a newline");
  const decoded = lines.map((line) => jsonCodec.decode(line.payload));
  assert.deepEqual(decoded, SAMPLE_STREAM);
});

test("the protobuf golden file decodes back to the sample stream", () => {
  const decoded = splitDelimited(protobufGolden).map((frame) => protobufCodec.decode(frame));
  assert.deepEqual(decoded, SAMPLE_STREAM);
});

test("each JSON line is one line: no raw newline inside, 64-bit integers as strings", () => {
  for (const message of SAMPLE_STREAM) {
    const line = Buffer.from(jsonCodec.encode(message)).toString("utf8");
    assert.ok(!line.includes("\n"), line);
    const parsed = JSON.parse(line) as { header: { sequence: unknown }; batch: { id: unknown } };
    assert.equal(typeof parsed.header.sequence, "string");
    assert.equal(typeof parsed.batch.id, "string");
  }
});

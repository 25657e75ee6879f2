import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { PgshovelError } from "../../../src/errors.js";
import {
  type ByteSource,
  type Frame,
  type Framing,
  frameDelimited,
  jsonLines,
  MAX_FRAME_BYTES,
  sizeDelimited,
} from "../../../src/stream/index.js";
import { FIXTURES } from "./fixtures.js";

const GOLDEN: [Framing, Buffer][] = [
  [jsonLines, readFileSync(new URL("stream.jsonl", FIXTURES))],
  [sizeDelimited, readFileSync(new URL("stream.pb", FIXTURES))],
];

/** Copies each frame, as a caller that keeps frames past the next push must. */
function pushAll(framing: Framing, chunks: Uint8Array[], start = 0) {
  const splitter = framing.splitter(start);
  const frames: Frame[] = [];
  for (const chunk of chunks) {
    for (const frame of splitter.push(chunk))
      frames.push({ ...frame, payload: new Uint8Array(frame.payload) });
  }
  return { frames, splitter };
}

function chunked(bytes: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size));
  return chunks;
}

function source(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.length,
    read: async (position, length) => bytes.subarray(position, position + length),
  };
}

/** A deterministic byte stream of size-delimited frames, some larger than the 1 MiB scan window. */
function manyFrames(): { bytes: Uint8Array; ends: number[] } {
  const sizes = [0, 1, 127, 128, 300, 16_383, 16_384, 1_500_000, 5, 70_000, 2_100_000, 9];
  for (let i = 0; i < 400; i++) sizes.push((i * 7919) % 3000);
  const parts = sizes.map((size, i) => frameDelimited(new Uint8Array(size).fill(i % 251)));
  const ends: number[] = [];
  let at = 0;
  for (const part of parts) {
    at += part.length;
    ends.push(at);
  }
  return { bytes: Buffer.concat(parts), ends };
}

for (const [framing, golden] of GOLDEN) {
  test(`${framing.name}: frames split the same whatever the chunk size`, () => {
    const whole = pushAll(framing, [golden]).frames;
    assert.equal(whole.length, 11);
    assert.equal(whole.at(-1)?.end, golden.length);
    assert.deepEqual(
      whole.map((f) => f.start),
      [0, ...whole.slice(0, -1).map((f) => f.end)],
    );
    for (const size of [1, 2, 3, 7, 64, 1000]) {
      assert.deepEqual(pushAll(framing, chunked(golden, size)).frames, whole, `chunks of ${size}`);
    }
    for (let cut = 1; cut < golden.length; cut++) {
      const split = [golden.subarray(0, cut), golden.subarray(cut)];
      assert.deepEqual(pushAll(framing, split).frames, whole, `cut at ${cut}`);
    }
  });

  test(`${framing.name}: writing a frame gives back the golden bytes`, () => {
    const payloads = pushAll(framing, [golden]).frames.map((f) => f.payload);
    assert.deepEqual(Buffer.concat(payloads.flatMap((p) => framing.frame(p))), golden);
  });

  test(`${framing.name}: an unfinished frame is held, copied, and reported`, () => {
    const cut = golden.length - 10;
    const chunk = Buffer.from(golden.subarray(0, cut));
    const splitter = framing.splitter(100);
    const frames = splitter.push(chunk);
    const torn = splitter.torn();
    assert.ok(torn);
    assert.equal(torn.start, frames.at(-1)!.end);
    assert.equal(torn.start + torn.bytes, 100 + cut);
    assert.equal(torn.index, 10);
    chunk.fill(0); // the caller reuses its buffer: the held bytes must not change
    const [last] = splitter.push(golden.subarray(cut));
    assert.deepEqual(new Uint8Array(last!.payload), pushAll(framing, [golden]).frames[10]!.payload);
    assert.equal(last?.end, 100 + golden.length);
    assert.equal(splitter.torn(), undefined);
    assert.equal(splitter.completeEnd, 100 + golden.length);
  });

  test(`${framing.name}: the end of the last whole frame of a file, at every truncation`, async () => {
    assert.equal(await framing.completeEnd(source(golden)), golden.length);
    assert.equal(await framing.completeEnd(source(new Uint8Array())), 0);
    for (let size = 0; size <= golden.length; size++) {
      const bytes = golden.subarray(0, size);
      const expected = pushAll(framing, [bytes]).splitter.completeEnd;
      assert.equal(await framing.completeEnd(source(bytes)), expected, `size ${size}`);
    }
  });
}

test("json-lines: blank lines are frames of their own, and \\r stays in the payload", () => {
  const { frames } = pushAll(jsonLines, [Buffer.from('\n{"a":1}\r\n\n')]);
  assert.deepEqual(
    frames.map((f) => Buffer.from(f.payload).toString()),
    ["", '{"a":1}\r', ""],
  );
  const splitter = jsonLines.splitter();
  splitter.push(Buffer.from("abc\nde"));
  assert.deepEqual(splitter.torn(), {
    start: 4,
    bytes: 2,
    index: 1,
    description: "2 bytes without a line end",
  });
});

test("json-lines: the last line end is found however long the torn line", async () => {
  const bytes = Buffer.concat([Buffer.from("x\n"), Buffer.alloc(3_000_000, 0x61)]);
  assert.equal(await jsonLines.completeEnd(source(bytes)), 2);
  assert.equal(await jsonLines.completeEnd(source(bytes.subarray(2))), 0);
});

test("size-delimited: large frames, across scan windows, at every kind of truncation", async () => {
  const { bytes, ends } = manyFrames();
  assert.deepEqual(
    pushAll(sizeDelimited, chunked(bytes, 65_536)).frames.map((f) => f.end),
    ends,
  );
  assert.equal(await sizeDelimited.completeEnd(source(bytes)), bytes.length);
  const cuts = new Set<number>();
  for (const end of ends.slice(0, 14)) for (const d of [-2, -1, 0, 1, 2, 3]) cuts.add(end + d);
  for (const window of [1 << 20, 2 << 20, 3 << 20])
    for (const d of [-3, -1, 0, 1]) cuts.add(window + d);
  for (const cut of cuts) {
    if (cut < 0 || cut > bytes.length) continue;
    const expected = [0, ...ends].filter((end) => end <= cut).at(-1);
    assert.equal(
      await sizeDelimited.completeEnd(source(bytes.subarray(0, cut))),
      expected,
      `${cut}`,
    );
  }
});

test("size-delimited: torn lengths and payloads are described", () => {
  const describe = (bytes: number[]) => {
    const splitter = sizeDelimited.splitter();
    splitter.push(Uint8Array.from(bytes));
    return splitter.torn()?.description;
  };
  assert.equal(describe([0x80]), "truncated length");
  assert.equal(describe([5, 1, 2]), "truncated: 5 bytes announced, 2 left");
  assert.equal(describe([0, 1, 9]), undefined);
});

test("size-delimited: a malformed or oversized length is a DECODE_ERROR", async () => {
  const isDecodeError = (pattern: RegExp) => (e: unknown) =>
    e instanceof PgshovelError && e.code === "DECODE_ERROR" && pattern.test(e.message);
  const malformed = Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
  assert.throws(() => sizeDelimited.splitter().push(malformed), isDecodeError(/varint too long/));
  await assert.rejects(sizeDelimited.completeEnd(source(malformed)), isDecodeError(/varint/));
  const huge = lengthOf(2 ** 31);
  assert.throws(
    () => sizeDelimited.splitter().push(Uint8Array.from(huge)),
    isDecodeError(new RegExp(`more than the ${MAX_FRAME_BYTES}-byte limit`)),
  );
  const splitter = sizeDelimited.splitter();
  splitter.push(Uint8Array.from(huge.slice(0, 2)));
  assert.throws(() => splitter.push(Uint8Array.from(huge.slice(2))), isDecodeError(/limit/));
});

function lengthOf(n: number): number[] {
  const bytes: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 0x80)) bytes.push((n & 0x7f) | 0x80);
  bytes.push(n);
  return bytes;
}

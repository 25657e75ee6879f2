import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { appendFile, mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { after, test } from "node:test";
import { PgshovelError } from "../../../src/errors.js";
import {
  type CodecName,
  framingOf,
  messagesOf,
  type PositionedMessage,
  readStreamBytes,
  readStreamFile,
  type TornTail,
} from "../../../src/stream/index.js";
import { waitFor } from "../../support/wait.js";
import { FIXTURES } from "./fixtures.js";
import { SAMPLE_STREAM } from "./sample.js";

const GOLDEN: [CodecName, Buffer][] = [
  ["json", readFileSync(new URL("stream.jsonl", FIXTURES))],
  ["protobuf", readFileSync(new URL("stream.pb", FIXTURES))],
];

const dir = await mkdtemp(join(tmpdir(), "pgshovel-reader-"));
after(() => rm(dir, { recursive: true, force: true }));
let files = 0;

async function fileWith(bytes: Uint8Array): Promise<string> {
  const path = join(dir, `stream-${files++}`);
  await writeFile(path, bytes);
  return path;
}

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of source) items.push(item);
  return items;
}

const isCode = (code: string, pattern?: RegExp) => (e: unknown) =>
  e instanceof PgshovelError &&
  e.code === code &&
  (pattern === undefined || pattern.test(e.message));

for (const [codec, golden] of GOLDEN) {
  test(`${codec}: a file reads back as the sample stream, each message with the position after it`, async () => {
    const read = await collect(readStreamFile(await fileWith(golden), { codec }));
    assert.deepEqual(
      read.map((p) => p.message),
      SAMPLE_STREAM,
    );
    assert.equal(read.at(-1)?.next, BigInt(golden.length));
    const positions = read.map((p) => p.next);
    assert.deepEqual(
      positions,
      [...positions].sort((x, y) => (x < y ? -1 : 1)),
    );
  });

  test(`${codec}: from a message's position, reading resumes with the next one`, async () => {
    const path = await fileWith(golden);
    const read = await collect(readStreamFile(path, { codec }));
    for (const [i, { next }] of read.entries()) {
      const rest = await collect(messagesOf(readStreamFile(path, { codec, from: next })));
      assert.deepEqual(rest, SAMPLE_STREAM.slice(i + 1));
    }
    await assert.rejects(
      collect(readStreamFile(path, { codec, from: BigInt(golden.length + 1) })),
      isCode("INVALID_ARGUMENT", /cannot resume at byte/),
    );
  });

  test(`${codec}: a torn last message is reported after every whole one`, async () => {
    const whole = Buffer.concat([golden, golden.subarray(0, 40)]);
    const path = await fileWith(whole);
    const tails: TornTail[] = [];
    const read = await collect(readStreamFile(path, { codec, onTornTail: (t) => tails.push(t) }));
    assert.deepEqual(
      read.map((p) => p.message),
      SAMPLE_STREAM,
    );
    assert.equal(tails.length, 1);
    assert.equal(tails[0]?.position, BigInt(golden.length));
    assert.equal(tails[0]?.bytes, 40);
    assert.match(tails[0]!.description, new RegExp(`cut off at byte ${golden.length}`));

    // Without a callback: every whole message first, then DECODE_ERROR.
    const seen: PositionedMessage[] = [];
    await assert.rejects(
      async () => {
        for await (const item of readStreamFile(path, { codec })) seen.push(item);
      },
      isCode("DECODE_ERROR", /the last message is cut off/),
    );
    assert.equal(seen.length, SAMPLE_STREAM.length);
  });

  test(`${codec}: any readable, in chunks of any size, reads the same`, async () => {
    for (const size of [1, 5, 64, 4096]) {
      const chunks: Buffer[] = [];
      for (let at = 0; at < golden.length; at += size) chunks.push(golden.subarray(at, at + size));
      const read = await collect(readStreamBytes(Readable.from(chunks), { codec }));
      assert.deepEqual(
        read.map((p) => p.message),
        SAMPLE_STREAM,
      );
      assert.equal(read.at(-1)?.next, BigInt(golden.length));
    }
  });

  test(`${codec}: following a file reads what is appended, a message at a time or in pieces`, async () => {
    const path = await fileWith(golden.subarray(0, 700));
    const controller = new AbortController();
    const read: PositionedMessage[] = [];
    const following = (async () => {
      for await (const item of readStreamFile(path, {
        codec,
        follow: true,
        signal: controller.signal,
        pollIntervalMs: 50,
      })) {
        read.push(item);
      }
    })();
    const whole = (offset: number) => framingOf(codec).splitter().push(golden.subarray(0, offset));
    await waitFor(() => read.length === whole(700).length, { description: "the first messages" });
    let written = 700;
    for (const end of [701, 1500, 1501, 2000, golden.length]) {
      await appendFile(path, golden.subarray(written, end));
      written = end;
      await waitFor(() => read.length === whole(end).length, {
        description: `messages up to ${end}`,
      });
    }
    controller.abort();
    await following; // ends, without an AbortError
    assert.deepEqual(
      read.map((p) => p.message),
      SAMPLE_STREAM,
    );
  });

  test(`${codec}: following, a torn fragment cut off and replaced by a restarted writer is read anew`, async () => {
    const cut = Number((await collect(readStreamFile(await fileWith(golden), { codec })))[4]!.next);
    // A writer died 30 bytes into another message.
    const path = await fileWith(Buffer.concat([golden.subarray(0, cut), golden.subarray(0, 30)]));
    const controller = new AbortController();
    const read: PositionedMessage[] = [];
    const following = (async () => {
      for await (const item of readStreamFile(path, {
        codec,
        follow: true,
        signal: controller.signal,
        pollIntervalMs: 50,
      })) {
        read.push(item);
      }
    })();
    await waitFor(() => read.length === 5, { description: "the five whole messages" });
    // The restarted writer cuts the fragment off and appends the rest at once.
    await truncate(path, cut);
    await appendFile(path, golden.subarray(cut));
    await waitFor(() => read.length === SAMPLE_STREAM.length, { description: "every message" });
    controller.abort();
    await following;
    assert.deepEqual(
      read.map((p) => p.message),
      SAMPLE_STREAM,
    );
  });
}

test("a bad message names its line and byte; a missing file is NOT_FOUND", async () => {
  const [, golden] = GOLDEN[0]!;
  const lines = golden.toString("utf8").split("\n");
  lines[2] = '{"header":{}}';
  const path = await fileWith(Buffer.from(lines.join("\n")));
  const read: PositionedMessage[] = [];
  await assert.rejects(
    async () => {
      for await (const item of readStreamFile(path, { codec: "json" })) read.push(item);
    },
    isCode(
      "DECODE_ERROR",
      new RegExp(`${path}: line 3 \\(byte ${Buffer.byteLength(`${lines[0]}\n${lines[1]}\n`)}\\)`),
    ),
  );
  assert.equal(read.length, 2);
  await assert.rejects(
    collect(readStreamFile(join(dir, "missing"), { codec: "json" })),
    isCode("NOT_FOUND"),
  );
});

test("json: a position that is not a line end is refused; blank lines are passed over", async () => {
  const [, golden] = GOLDEN[0]!;
  const path = await fileWith(Buffer.concat([Buffer.from("\n\n"), golden]));
  assert.deepEqual(
    await collect(messagesOf(readStreamFile(path, { codec: "json" }))),
    SAMPLE_STREAM,
  );
  await assert.rejects(
    collect(readStreamFile(path, { codec: "json", from: 5n })),
    isCode("INVALID_ARGUMENT", /not the end of a line/),
  );
});

test("aborting ends the iteration cleanly, even while waiting for input", async () => {
  const [, golden] = GOLDEN[0]!;
  const input = new PassThrough();
  input.write(golden.subarray(0, 500));
  const controller = new AbortController();
  const read: PositionedMessage[] = [];
  const reading = (async () => {
    for await (const item of readStreamBytes(input, { codec: "json", signal: controller.signal })) {
      read.push(item);
    }
  })();
  await waitFor(() => read.length === 1, { description: "the first message" });
  controller.abort();
  await reading;
  assert.ok(input.destroyed, "the input is stopped");

  const path = await fileWith(golden);
  const file = new AbortController();
  const some: PositionedMessage[] = [];
  for await (const item of readStreamFile(path, {
    codec: "json",
    follow: true,
    signal: file.signal,
  })) {
    some.push(item);
    if (some.length === 3) file.abort();
  }
  assert.equal(some.length, 3);
});

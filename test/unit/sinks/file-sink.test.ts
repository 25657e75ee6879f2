import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { PgshovelError } from "../../../src/errors.js";
import { FileSink } from "../../../src/sinks/file/file-sink.js";
import {
  type CodecName,
  codecByName,
  type Message,
  messagesOf,
  readStreamFile,
} from "../../../src/stream/index.js";
import { FIXTURES } from "../stream/fixtures.js";
import { SAMPLE_STREAM } from "../stream/sample.js";

const GOLDEN: Record<CodecName, Buffer> = {
  json: readFileSync(new URL("stream.jsonl", FIXTURES)),
  protobuf: readFileSync(new URL("stream.pb", FIXTURES)),
};

const dir = await mkdtemp(join(tmpdir(), "pgshovel-file-sink-"));
after(() => rm(dir, { recursive: true, force: true }));
let files = 0;

/** Batch 7 of the sample stream: its begin, three mutations and commit. */
const BATCH_7 = SAMPLE_STREAM.slice(0, 5);

async function* each(messages: Message[]): AsyncIterable<Message> {
  yield* messages;
}

/** Opens a file sink on a file holding `bytes`, appends batch 7, and returns the file's messages. */
async function appendAfter(codec: CodecName, bytes: Uint8Array): Promise<Message[]> {
  const path = join(dir, `stream-${files++}`);
  await writeFile(path, bytes);
  const sink = new FileSink(path, codecByName(codec));
  await sink.open();
  try {
    await sink.publishBatch(BATCH_7[0]!.batch, each(BATCH_7));
  } finally {
    await sink.close();
  }
  const messages: Message[] = [];
  for await (const m of messagesOf(readStreamFile(path, { codec }))) messages.push(m);
  return messages;
}

for (const codec of ["json", "protobuf"] as const) {
  const golden = GOLDEN[codec];
  // The ends of the sample stream's messages, and cut points inside the last one and the first one.
  const lastStart = golden.length - (codec === "json" ? 198 : 99);

  test(`${codec}: a file sink appends after whole messages, touching nothing`, async () => {
    assert.deepEqual(await appendAfter(codec, new Uint8Array()), BATCH_7);
    assert.deepEqual(await appendAfter(codec, golden), [...SAMPLE_STREAM, ...BATCH_7]);
  });

  test(`${codec}: a message torn by a crash is cut off before appending`, async () => {
    for (const torn of [1, 2, 20, 98]) {
      const bytes = golden.subarray(0, lastStart + torn);
      assert.deepEqual(
        await appendAfter(codec, bytes),
        [...SAMPLE_STREAM.slice(0, -1), ...BATCH_7],
        `${torn} bytes of the last message`,
      );
    }
    // Torn in the first message: nothing whole before it.
    assert.deepEqual(await appendAfter(codec, golden.subarray(0, 30)), BATCH_7);
  });

  test(`${codec}: a file that does not hold a ${codec} stream is refused, unchanged`, async () => {
    const other = codec === "json" ? GOLDEN.protobuf : GOLDEN.json;
    const bytes = other.subarray(0, other.length - 5);
    const path = join(dir, `stream-${files++}`);
    await writeFile(path, bytes);
    const sink = new FileSink(path, codecByName(codec));
    await assert.rejects(
      sink.open(),
      (e: unknown) => e instanceof PgshovelError && e.code === "SINK_ERROR" && !e.retryable,
    );
    assert.deepEqual(await readFile(path), Buffer.from(bytes));
  });
}

test("json: a torn line longer than the tail window is cut whole", async () => {
  const golden = GOLDEN.json;
  const torn = Buffer.concat([golden, Buffer.from('{"header":'), Buffer.alloc(3 << 20, 0x61)]);
  assert.deepEqual(await appendAfter("json", torn), [...SAMPLE_STREAM, ...BATCH_7]);
});

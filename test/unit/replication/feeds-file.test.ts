/** The file and stdin feeds over scripted streams: marks, positions, the end of the input. */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { isPgshovelError } from "../../../src/errors.js";
import { silentLogger } from "../../../src/log.js";
import type { ReplicaFeed } from "../../../src/replication/feed.js";
import { fileFeed, openStreamFeed, stdinFeed } from "../../../src/replication/feeds/index.js";
import { jsonCodec } from "../../../src/stream/codec.js";
import type { Message } from "../../../src/stream/types.js";
import { publisher } from "../stream/builders.js";
import { PUBLISHER_A } from "../stream/sample.js";

const lines = (messages: Message[]) =>
  messages.map((m) => `${jsonCodec.encodeText!(m)}\n`).join("");

const a = publisher(PUBLISHER_A);
const WHOLE = lines([a.begin(1n), a.insert(1n, 10n), a.commit(1n), a.begin(2n), a.commit(2n)]);
const PARTIAL = lines([a.begin(3n), a.insert(3n, 30n)]);

/** Every batch the feed hands out: id, mutation ids, position. */
async function read(feed: ReplicaFeed, from: bigint | null) {
  const got: [bigint, bigint[], bigint | null][] = [];
  for await (const batch of feed.batches(from, new AbortController().signal)) {
    const ids: bigint[] = [];
    for await (const m of batch.mutations) ids.push(m.id);
    got.push([batch.id, ids, batch.position]);
    await batch.done();
  }
  return got;
}

describe("file and stdin feeds", () => {
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "pgshovel-feeds-unit-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("a file's mark is the end of its last whole batch; reading from it starts at the next begin", async () => {
    const boundary = BigInt(Buffer.byteLength(WHOLE));
    const afterFirst = BigInt(WHOLE.split("\n").slice(0, 3).join("\n").length + 1);
    const partial = join(dir, "partial.jsonl");
    // an open batch, then a torn last line: a message being written
    await writeFile(partial, `${WHOLE}${PARTIAL}{"header":`);
    assert.equal(await fileFeed(partial, { codec: jsonCodec }).mark(), boundary);
    await writeFile(join(dir, "empty.jsonl"), "");
    assert.equal(await fileFeed(join(dir, "empty.jsonl"), { codec: jsonCodec }).mark(), 0n);

    const path = join(dir, "whole.jsonl");
    await writeFile(path, `${WHOLE}{"header":`);
    const feed = fileFeed(path, { codec: jsonCodec });
    assert.equal(await feed.mark(), boundary);
    assert.deepEqual(await read(feed, null), [
      [1n, [10n], afterFirst],
      [2n, [], boundary],
    ]);
    // resuming after batch 1 yields batch 2 alone
    assert.deepEqual(await read(feed, afterFirst), [[2n, [], boundary]]);
  });

  test("a file feed of a missing file fails with NOT_FOUND", async () => {
    const feed = openStreamFeed(
      { kind: "file", path: join(dir, "missing.jsonl") },
      { cluster: "c", set: "s", codec: jsonCodec, logger: silentLogger },
    );
    assert.equal(feed.description, `file ${join(dir, "missing.jsonl")}`);
    await assert.rejects(feed.mark(), (error: unknown) => isPgshovelError(error, "NOT_FOUND"));
  });

  test("stdin: mark 0, every batch to the end of the input, a batch cut off there is STOPPED", async () => {
    const input = Readable.from([Buffer.from(WHOLE.slice(0, 100)), Buffer.from(WHOLE.slice(100))]);
    const feed = stdinFeed({ codec: jsonCodec, input });
    assert.equal(await feed.mark(), 0n);
    const got = await read(feed, 12345n); // from is ignored: a pipe has no position
    assert.deepEqual(
      got.map(([id, ids]) => [id, ids]),
      [
        [1n, [10n]],
        [2n, []],
      ],
    );
    await feed.close();

    const cut = stdinFeed({ codec: jsonCodec, input: Readable.from([WHOLE + PARTIAL]) });
    await assert.rejects(read(cut, 0n), (error: unknown) => {
      assert.ok(isPgshovelError(error, "STOPPED"), String(error));
      assert.match(error.message, /ended inside batch 3/);
      return true;
    });
    await cut.close();
  });

  test("stdin refuses a stream that does not start at a relay's first message", async () => {
    const late = publisher(PUBLISHER_A, 7n);
    const input = Readable.from([lines([late.begin(4n), late.commit(4n)])]);
    const feed = stdinFeed({ codec: jsonCodec, input });
    await assert.rejects(read(feed, 0n), (error: unknown) =>
      isPgshovelError(error, "DECODE_ERROR"),
    );
    await feed.close();
  });

  test("a Kafka feed validates its options when it is made", () => {
    assert.throws(
      () =>
        openStreamFeed(
          { kind: "kafka", kafka: { brokers: ["no port"] } },
          { cluster: "c", set: "s", codec: jsonCodec, logger: silentLogger },
        ),
      (error: unknown) => {
        assert.ok(isPgshovelError(error, "INVALID_ARGUMENT"), String(error));
        assert.match(error.message, /brokers\.0: must be host:port/);
        return true;
      },
    );
    const feed = openStreamFeed(
      { kind: "kafka", kafka: { brokers: ["127.0.0.1:1"] } },
      { cluster: "c", set: "s", codec: jsonCodec, logger: silentLogger },
    );
    assert.equal(feed.description, "kafka topic c.s.mutations");
  });
});

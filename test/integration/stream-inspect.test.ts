/**
 * `pgshovel stream inspect` through bin/pgshovel, under the launcher's heap limit: a
 * one-million-row batch is streamed, not held; a torn last message is a warning shown after
 * everything valid; `-` reads stdin.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createReadStream, readFileSync } from "node:fs";
import { mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { jsonCodec, type Message, type Mutation } from "../../src/stream/index.js";
import { repoRoot } from "../support/env.js";

const PGSHOVEL = join(repoRoot, "bin", "pgshovel");
const GOLDEN = join(repoRoot, "test", "fixtures", "stream", "stream.jsonl");
const NODE = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
const PUBLISHER = "0b8e7a52-1c3d-4e5f-9a6b-7c8d9e0f1a2b";

const dir = await mkdtemp(join(tmpdir(), "pgshovel-inspect-"));
after(() => rm(dir, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command`; `stdin` is a file piped in. */
function run(command: string, args: string[], stdin?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: [stdin ? "pipe" : "ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
    });
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    if (stdin && child.stdin) createReadStream(stdin).pipe(child.stdin);
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs bin/pgshovel with `args`, its stdout and stderr apart. */
function pgshovel(args: string[], stdin?: string): Promise<Run> {
  return run(PGSHOVEL, args, stdin);
}

/** Runs bin/pgshovel with stderr and stdout on one pipe, to see what comes after what. */
function pgshovelMerged(args: string[]): Promise<Run> {
  return run("sh", ["-c", 'exec "$0" "$@" 2>&1', PGSHOVEL, ...args]);
}

/**
 * Writes one batch of `count` INSERTs, in transactions of `perTransaction` rows, to a
 * JSON-lines file, a megabyte at a time.
 */
async function writeBigBatch(path: string, count: number, perTransaction: number): Promise<void> {
  const handle = await open(path, "w");
  let sequence = 0n;
  const message = (body: Message["body"]): Message => ({
    header: {
      publisher: PUBLISHER,
      sequence: sequence++,
      timestamp: "2026-11-24T03:45:28.000000Z",
    },
    batch: { node: NODE, id: 1n },
    body,
  });
  const tick = (id: bigint) => ({
    id,
    snapshot: { xmin: 1000n, xmax: 1000n, xip: [] },
    time: "2026-11-24T03:45:27.000000Z",
  });
  let text = `${jsonCodec.encodeText!(message({ kind: "begin", begin: { start: tick(1n), end: tick(2n) } }))}\n`;
  for (let i = 0; i < count; i++) {
    const mutation: Mutation = {
      id: BigInt(i + 1),
      schema: "public",
      table: "accounts",
      operation: "INSERT",
      identity: ["aid"],
      old: null,
      new: { aid: i + 1, bid: 1, abalance: 0, filler: null },
      transaction: 1000n + BigInt(Math.floor(i / perTransaction)),
      time: "2026-11-24T03:45:27.123456Z",
    };
    text += `${jsonCodec.encodeText!(message({ kind: "mutation", mutation }))}\n`;
    if (text.length > 1 << 20) {
      await handle.write(text);
      text = "";
    }
  }
  text += `${jsonCodec.encodeText!(message({ kind: "commit" }))}\n`;
  await handle.write(text);
  await handle.close();
}

test("a one-million-row batch is inspected within the launcher's heap", async () => {
  const path = join(dir, "big.jsonl");
  await writeBigBatch(path, 1_000_000, 1000);
  const started = Date.now();
  const inspect = await pgshovel(["stream", "inspect", path]);
  assert.equal(inspect.code, 0, inspect.stderr);
  assert.equal(inspect.stderr, "");
  const lines = inspect.stdout.split("\n");
  assert.equal(lines[0], "BEGIN batch 1 (ticks 1→2, 1000000 mutations)");
  assert.equal(lines[1], "  transaction 1000");
  assert.match(lines[2]!, /^ {4}INSERT public\.accounts aid=1 bid=1 abalance=0 filler=NULL$/);
  // Each shown transaction: 100 mutations in full, then a count of the rest.
  assert.equal(lines[102], "    … and 900 more mutations");
  assert.equal(lines.filter((l) => l.startsWith("  transaction ")).length, 5);
  assert.ok(lines.includes("1 committed batches, 1000 transactions, 1000000 mutations"));
  assert.ok(lines.includes("  public.accounts INSERT  1000000"));
  process.stderr.write(`# inspected ${path} in ${Date.now() - started} ms\n`);
});

test("a torn last line is a warning after everything before it, with exit code 0", async () => {
  const golden = readFileSync(GOLDEN);
  const path = join(dir, "torn.jsonl");
  await writeFile(path, golden.subarray(0, 3000));
  const inspect = await pgshovel(["stream", "inspect", path]);
  assert.equal(inspect.code, 0, inspect.stderr);
  assert.match(inspect.stdout, /^1 committed batches, 1 transactions, 3 mutations$/m);
  assert.equal(
    inspect.stderr,
    `warning: ${path}: the last message is cut off at byte 2642 (358 bytes without a line end); everything before it is shown above\n`,
  );
  const merged = await pgshovelMerged(["stream", "inspect", path]);
  const lines = merged.stdout.trimEnd().split("\n");
  assert.match(lines.at(-1)!, /^warning: .* cut off at byte 2642/);
  assert.ok(lines.indexOf("COMMIT batch 7") < lines.length - 1);
});

test("a bad line in the middle fails with exit code 1, naming it", async () => {
  const lines = readFileSync(GOLDEN, "utf8").split("\n");
  lines[5] = "{not json";
  const path = join(dir, "bad.jsonl");
  await writeFile(path, lines.join("\n"));
  const inspect = await pgshovel(["stream", "inspect", path]);
  assert.equal(inspect.code, 1);
  assert.match(inspect.stderr, new RegExp(`^pgshovel: error: ${path}: line 6 \\(byte \\d+\\): `));
});

test("- reads the stream from stdin, in either codec", async () => {
  const fromFile = await pgshovel(["stream", "inspect", GOLDEN]);
  const fromStdin = await pgshovel(["stream", "inspect", "-"], GOLDEN);
  assert.equal(fromStdin.code, 0, fromStdin.stderr);
  assert.equal(fromStdin.stdout, fromFile.stdout);
  const protobuf = join(repoRoot, "test", "fixtures", "stream", "stream.pb");
  const binary = await pgshovel(["stream", "inspect", "--codec", "protobuf", "-"], protobuf);
  assert.equal(binary.code, 0, binary.stderr);
  assert.equal(binary.stdout, fromFile.stdout);
});

/**
 * Fixtures for relay tests: the stream a relay wrote (the set and the relay process come
 * from test/support/fixtures.ts).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { isPgshovelError } from "../../src/errors.js";
import { BatchAssembler, type CommittedBatch } from "../../src/stream/assembler.js";
import { codecByName } from "../../src/stream/codec.js";
import { messagesOf, readStreamFile as readStream } from "../../src/stream/reader.js";
import type { Message } from "../../src/stream/types.js";
import type { RelayProcess } from "../support/fixtures.js";
import { waitFor } from "../support/wait.js";

/** Every message of a stream file. */
export async function readStreamFile(path: string, codec = "json"): Promise<Message[]> {
  const messages: Message[] = [];
  try {
    for await (const m of messagesOf(readStream(path, { codec: codecByName(codec) }))) {
      messages.push(m);
    }
  } catch (error) {
    if (isPgshovelError(error, "NOT_FOUND")) return []; // not written yet
    throw error;
  }
  return messages;
}

/** Validates a stream and assembles its committed batches (throws on a contract breach). */
export function assemble(messages: Message[]): {
  batches: CommittedBatch[];
  assembler: BatchAssembler;
} {
  const assembler = new BatchAssembler();
  const batches: CommittedBatch[] = [];
  for (const message of messages) {
    const batch = assembler.push(message);
    if (batch) batches.push(batch);
  }
  return { batches, assembler };
}

/** Waits until the committed batches of a stream file hold `count` mutations matching `predicate`. */
export async function waitForMutations(
  path: string,
  count: number,
  predicate: (m: CommittedBatch["mutations"][number]) => boolean = () => true,
  timeoutMs = 60_000,
  relay?: RelayProcess,
): Promise<CommittedBatch[]> {
  return waitFor(
    async () => {
      const { batches } = assemble(await readStreamFile(path));
      const seen = batches.reduce((n, b) => n + b.mutations.filter(predicate).length, 0);
      return seen >= count ? batches : undefined;
    },
    {
      timeoutMs,
      intervalMs: 200,
      get description() {
        return `${count} mutations in ${path}${relay ? ` (relay stderr: ${relay.stderr()})` : ""}`;
      },
    },
  );
}

/** A temporary directory for the calling test file, made before its tests and removed after. */
export function tempDirFor(prefix: string): () => string {
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  return () => dir;
}

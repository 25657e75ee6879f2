import { setTimeout as delay } from "node:timers/promises";
/**
 * Reading a pgshovel topic from TypeScript: decoded messages from a
 * read_committed reader, or whole committed batches, each delivered once.
 */
import { PgshovelError, wrapError } from "../errors.js";
import { ABORTED, unlessAborted } from "../kafka/abort.js";
import { POSITION_LOST_HINT } from "../kafka/failure.js";
import { PartitionReader } from "../kafka/partition-reader.js";
import type { RetryPolicy } from "../retry.js";
import {
  BatchAssembler,
  type BatchAssemblerOptions,
  type Codec,
  type CommittedBatch,
  codecByName,
  type Message,
  type PositionedMessage,
} from "../stream/index.js";
import { GroupOffsets } from "./group-offsets.js";
import {
  parseReadStreamOptions,
  type ReadStreamConfig,
  type ReadStreamOptions,
} from "./options.js";

/** How long stopAtEnd waits for already-written transactions to be decided. */
const END_SETTLE_MS = 3_000;

/** The default retry of a long-running reader: rides over a broker restart. */
export const READER_RETRY: RetryPolicy = { attempts: 25, initialDelayMs: 200, maxDelayMs: 5_000 };

const GROUP_COMMIT_INTERVAL_MS = 1_000;

/**
 * The decoded messages of a pgshovel topic, in order, as a read_committed
 * consumer sees them: only messages of committed Kafka transactions.
 */
export async function* readStream(options: ReadStreamOptions): AsyncGenerator<Message> {
  for await (const { message } of readStreamPositioned(options)) yield message;
}

/**
 * {@link readStream}, each message with the position just after it (`next`): a
 * consumer that stores `next` with its own writes resumes exactly there with `from`.
 */
export async function* readStreamPositioned(
  options: ReadStreamOptions,
): AsyncGenerator<PositionedMessage> {
  const config = parseReadStreamOptions(options);
  const codec = typeof config.codec === "string" ? codecByName(config.codec) : config.codec;
  const { signal, topic } = config;
  const reader = new PartitionReader(config, topic, { retry: config.retry ?? READER_RETRY });
  const group = config.groupId === undefined ? undefined : new GroupOffsets(config, config.groupId);
  let boundary: bigint | undefined;
  let committedBoundary: bigint | undefined;
  try {
    const range = await unlessAborted(readRange(reader, group, config), signal);
    if (range === ABORTED || range === undefined) return;

    let committedAt = Date.now();
    for await (const record of reader.read(range.from, {
      ...(range.until === undefined ? {} : { until: range.until }),
      ...(signal === undefined ? {} : { signal }),
    })) {
      if (record.value === null) continue;
      const message = decode(codec, record.value, record.offset, topic);
      const next = record.offset + 1n;
      yield { message, next };
      // The caller came back: everything up to this record is handed over.
      if (message.body.kind === "commit" || message.body.kind === "rollback") {
        boundary = next;
        if (group !== undefined && Date.now() - committedAt >= GROUP_COMMIT_INTERVAL_MS) {
          await group.commit(topic, boundary);
          committedBoundary = boundary;
          committedAt = Date.now();
        }
      }
      if (signal?.aborted) return;
    }
  } finally {
    await reader.close().catch(() => {});
    if (group !== undefined) {
      // Also on break, abort or error: the batches before the boundary were handed over.
      if (boundary !== undefined && boundary !== committedBoundary) {
        await group.commit(topic, boundary).catch(() => {});
      }
      await group.close();
    }
  }
}

/**
 * Where reading starts (`from`, else the group's offset, else the first or the next
 * offset) and, with stopAtEnd, where it stops; undefined when there is nothing to read.
 */
async function readRange(
  reader: PartitionReader,
  group: GroupOffsets | undefined,
  config: ReadStreamConfig,
): Promise<{ from: bigint; until: bigint | undefined } | undefined> {
  const { signal, topic } = config;
  let bounds = await reader.bounds();
  if (config.stopAtEnd) {
    // A transaction whose commit just returned gets its markers (and so moves the
    // stable offset) a moment later: give what was already written a few seconds to
    // be decided, so that "the end" includes it.
    const deadline = Date.now() + END_SETTLE_MS;
    while (bounds.stable < bounds.end && Date.now() < deadline && !signal?.aborted) {
      await delay(50, undefined, signal === undefined ? undefined : { signal }).catch(() => {});
      bounds = await reader.bounds();
    }
  }
  let from: bigint;
  if (config.from !== undefined) {
    from = config.from;
    if (from < bounds.start) {
      throw new PgshovelError(
        "POSITION_LOST",
        `position ${from} of topic ${topic} is no longer held: the topic now starts at offset ${bounds.start}`,
        { hint: POSITION_LOST_HINT },
      );
    }
    if (from > bounds.end) {
      throw new PgshovelError(
        "POSITION_LOST",
        `position ${from} is past the end of topic ${topic} (offset ${bounds.end}): it belongs to another topic, or to this one before it was re-created`,
        { hint: POSITION_LOST_HINT },
      );
    }
  } else {
    const committed = await group?.committed(topic);
    from = committed ?? (config.fromBeginning === false ? bounds.stable : bounds.start);
    // A group's offset below the start: the group resumes at what is left (mid-stream).
    if (from < bounds.start) from = bounds.start;
  }
  if (config.stopAtEnd && from >= bounds.stable) return undefined;
  return { from, until: config.stopAtEnd ? bounds.stable : undefined };
}

function decode(codec: Codec, value: Buffer, offset: bigint, topic: string): Message {
  try {
    return codec.decode(value);
  } catch (error) {
    throw wrapError(error, `decoding offset ${offset} of topic ${topic}`, "DECODE_ERROR");
  }
}

/** Options of {@link readCommittedBatches}. */
export type ReadBatchesOptions = ReadStreamOptions & {
  /** Passed to the {@link BatchAssembler}: e.g. `delivered` from the consumer's own progress. */
  assembler?: BatchAssemblerOptions;
};

/**
 * The committed batches of a pgshovel topic, each once per (node, batch id):
 * {@link readStream} fed through the deduplicating {@link BatchAssembler}.
 * The assembler runs in mid-stream mode by default: a topic's first stored
 * message may be mid-batch once retention removed older ones.
 */
export async function* readCommittedBatches(
  options: ReadBatchesOptions,
): AsyncGenerator<CommittedBatch> {
  const { assembler: assemblerOptions, ...streamOptions } = options;
  const assembler = new BatchAssembler({ midStream: true, ...assemblerOptions });
  for await (const message of readStream(streamOptions)) {
    const batch = assembler.push(message);
    if (batch !== undefined) yield batch;
  }
}

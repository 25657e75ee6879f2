/**
 * The last batch a topic holds committed, read as a read_committed consumer sees it:
 * no producer, no transactional id, so reading it never fences the relay that writes
 * the topic. The Kafka sink asks it before publishing; a status command may ask it
 * at any time.
 */
import { z } from "zod";
import { type Codec, codecByName } from "../stream/codec.js";
import type { BatchRef, Header, Message } from "../stream/types.js";
import { kafkaFailure } from "./failure.js";
import {
  codecSchema,
  kafkaConnectionFields,
  parseKafkaOptions,
  topicNameSchema,
} from "./options.js";
import { PartitionReader } from "./partition-reader.js";
import { HEADERS } from "./record-format.js";

/** The last commit message of a topic: its batch, its header and its offset. */
export interface LastCommit {
  /** The batch that committed. */
  batch: BatchRef;
  /** The header the commit message was published with (publisher, sequence, time). */
  header: Header;
  /** The commit message's offset in partition 0. */
  offset: bigint;
}

/** How far back the search first looks, in offsets; it widens fourfold as needed. */
const TAIL_WINDOW = 256n;

/**
 * The last commit message below the partition's last stable offset, or undefined when
 * there is none. Reads only the tail: a small window below the stable offset, widened
 * backwards while it holds no commit. Records whose kind header says they are no commit
 * are skipped without decoding.
 */
export async function lastCommitIn(
  reader: PartitionReader,
  codec: Codec,
): Promise<LastCommit | undefined> {
  const { start, stable } = await reader.bounds();
  let until = stable;
  let window = TAIL_WINDOW;
  while (until > start) {
    let from = until - window;
    if (from < start) from = start;
    let last: LastCommit | undefined;
    for await (const record of reader.read(from, { until })) {
      const kind = record.headers.get(HEADERS.kind)?.toString("utf8");
      if (record.value === null || (kind !== undefined && kind !== "commit")) continue;
      let message: Message;
      try {
        message = codec.decode(record.value);
      } catch (error) {
        throw kafkaFailure(
          error,
          `decoding offset ${record.offset} of topic ${reader.topic} with codec ${codec.name}`,
        );
      }
      if (message.body.kind === "commit") {
        last = { batch: message.batch, header: message.header, offset: record.offset };
      }
    }
    if (last !== undefined) return last;
    until = from;
    window *= 4n;
  }
  return undefined;
}

/** The schema of {@link LastCommittedBatchOptions}. */
export const lastCommittedBatchOptionsSchema = z
  .object({
    ...kafkaConnectionFields,
    /** The set's topic, e.g. "<cluster>.<set>.mutations". */
    topic: topicNameSchema,
    /** The codec the relay writes with. */
    codec: codecSchema,
  })
  .strict();

/** Options of {@link readLastCommittedBatch}. */
export type LastCommittedBatchOptions = z.input<typeof lastCommittedBatchOptionsSchema>;

/**
 * The last batch committed in a set's topic, read-only: safe to call while a relay
 * publishes (it opens no producer, so it fences nobody). A transaction still being
 * decided is not seen until its markers are written, so the answer may lag the relay
 * by the batch in flight.
 */
export async function readLastCommittedBatch(
  options: LastCommittedBatchOptions,
): Promise<LastCommit | undefined> {
  const config = parseKafkaOptions(lastCommittedBatchOptionsSchema, options, "Kafka options");
  const codec = typeof config.codec === "string" ? codecByName(config.codec) : config.codec;
  const reader = new PartitionReader(config, config.topic);
  try {
    return await lastCommitIn(reader, codec);
  } finally {
    await reader.close().catch(() => {});
  }
}

import { setTimeout as delay } from "node:timers/promises";
/**
 * Reading a pgshovel topic from TypeScript: decoded messages from a
 * read_committed reader, or whole committed batches, each delivered once.
 */
import { Admin } from "@platformatic/kafka";
import type { RetryPolicy } from "../retry.js";
import {
  BatchAssembler,
  type BatchAssemblerOptions,
  type CommittedBatch,
} from "../stream/assembler.js";
import { type Codec, type CodecName, codecByName } from "../stream/codec.js";
import type { Message } from "../stream/types.js";
import { clientOptions, type KafkaConnectionOptions, kafkaFailure } from "./kafka-client.js";
import { PartitionReader } from "./partition-reader.js";

/** How long stopAtEnd waits for already-written transactions to be decided. */
const END_SETTLE_MS = 3_000;

/** Options of {@link readStream}. */
export interface ReadStreamOptions extends KafkaConnectionOptions {
  /** The topic, e.g. "<cluster>.<set>.mutations". */
  topic: string;
  /** The codec the relay wrote with (a name or a codec object). */
  codec: CodecName | Codec;
  /**
   * Where to start when the group has no committed offset (or without a group):
   * true (default) at the first stored message, false at the end (new batches only).
   */
  fromBeginning?: boolean;
  /**
   * A consumer group to resume from and to record progress in. The offset is
   * committed only at batch boundaries (after a commit or rollback message the
   * caller has taken and come back from), so a restart resumes at a begin.
   */
  groupId?: string;
  /** Stop once the end of the topic as of the start is reached, instead of following. */
  stopAtEnd?: boolean;
  /** Ends the stream (the iterator then throws the abort reason). */
  signal?: AbortSignal;
  /** How each fetch is retried while the brokers are unreachable (default: about 90 s). */
  retry?: RetryPolicy;
}

/** The default retry of a long-running reader: rides over a broker restart. */
export const READER_RETRY: RetryPolicy = { attempts: 25, initialDelayMs: 200, maxDelayMs: 5_000 };

const GROUP_COMMIT_INTERVAL_MS = 1_000;

/**
 * The decoded messages of a pgshovel topic, in order, as a read_committed
 * consumer sees them: only messages of committed Kafka transactions.
 */
export async function* readStream(options: ReadStreamOptions): AsyncGenerator<Message> {
  const codec = typeof options.codec === "string" ? codecByName(options.codec) : options.codec;
  const reader = new PartitionReader(options, options.topic, {
    retry: options.retry ?? READER_RETRY,
  });
  const group =
    options.groupId === undefined ? undefined : new GroupOffsets(options, options.groupId);
  let boundary: bigint | undefined;
  let committedBoundary: bigint | undefined;
  try {
    let bounds = await reader.bounds();
    if (options.stopAtEnd) {
      // A transaction whose commit just returned gets its markers (and so moves the
      // stable offset) a moment later: give what was already written a few seconds to
      // be decided, so that "the end" includes it.
      const deadline = Date.now() + END_SETTLE_MS;
      while (bounds.stable < bounds.end && Date.now() < deadline) {
        await delay(50);
        bounds = await reader.bounds();
      }
    }
    const committed = await group?.committed(options.topic);
    let from = committed ?? (options.fromBeginning === false ? bounds.stable : bounds.start);
    if (from < bounds.start) from = bounds.start;
    if (options.stopAtEnd && from >= bounds.stable) return;

    let committedAt = Date.now();
    for await (const record of reader.read(from, {
      ...(options.stopAtEnd ? { until: bounds.stable } : {}),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    })) {
      if (record.value === null) continue;
      const message = codec.decode(record.value);
      yield message;
      // The caller came back: everything up to this record is handed over.
      if (message.body.kind === "commit" || message.body.kind === "rollback") {
        boundary = record.offset + 1n;
        if (group !== undefined && Date.now() - committedAt >= GROUP_COMMIT_INTERVAL_MS) {
          await group.commit(options.topic, boundary);
          committedBoundary = boundary;
          committedAt = Date.now();
        }
      }
    }
  } finally {
    await reader.close().catch(() => {});
    if (group !== undefined) {
      // Also on break or error: the batches before the boundary were handed over.
      if (boundary !== undefined && boundary !== committedBoundary) {
        await group.commit(options.topic, boundary).catch(() => {});
      }
      await group.close();
    }
  }
}

/** Options of {@link readCommittedBatches}. */
export interface ReadBatchesOptions extends ReadStreamOptions {
  /** Passed to the {@link BatchAssembler}: e.g. `delivered` from the consumer's own progress. */
  assembler?: BatchAssemblerOptions;
}

/**
 * The committed batches of a pgshovel topic, each once per (node, batch id):
 * {@link readStream} fed through the deduplicating {@link BatchAssembler}.
 * The assembler runs in mid-stream mode by default: a topic's first stored
 * message may be mid-batch once retention removed older ones.
 */
export async function* readCommittedBatches(
  options: ReadBatchesOptions,
): AsyncGenerator<CommittedBatch> {
  const assembler = new BatchAssembler({ midStream: true, ...options.assembler });
  for await (const message of readStream(options)) {
    const batch = assembler.push(message);
    if (batch !== undefined) yield batch;
  }
}

/** A consumer group's committed offset of partition 0, kept through the admin API. */
class GroupOffsets {
  readonly #admin: Admin;
  readonly #groupId: string;

  constructor(connection: KafkaConnectionOptions, groupId: string) {
    this.#admin = new Admin(clientOptions(connection, "pgshovel-consumer"));
    this.#groupId = groupId;
  }

  async committed(topic: string): Promise<bigint | undefined> {
    try {
      const groups = await this.#admin.listConsumerGroupOffsets({
        groups: [{ groupId: this.#groupId, topics: [{ name: topic, partitionIndexes: [0] }] }],
      });
      for (const group of groups) {
        for (const t of group.topics) {
          const partition = t.partitions.find((p) => p.partitionIndex === 0);
          if (t.name === topic && partition !== undefined && partition.committedOffset >= 0n) {
            return partition.committedOffset;
          }
        }
      }
      return undefined;
    } catch (error) {
      throw kafkaFailure(error, `reading the offset of group ${this.#groupId} on topic ${topic}`);
    }
  }

  async commit(topic: string, offset: bigint): Promise<void> {
    try {
      await this.#admin.alterConsumerGroupOffsets({
        groupId: this.#groupId,
        topics: [{ name: topic, partitionOffsets: [{ partition: 0, offset }] }],
      });
    } catch (error) {
      throw kafkaFailure(error, `committing offset ${offset} of group ${this.#groupId}`);
    }
  }

  async close(): Promise<void> {
    await this.#admin.close().catch(() => {});
  }
}

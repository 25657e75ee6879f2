/**
 * A replica fed from the set's Kafka topic, read as a read_committed consumer: the mark
 * is the topic's last stable offset, the batches follow the topic from a position.
 * Positions are offsets (the `next` of a commit message).
 *
 * The Kafka client is loaded only when the feed first talks to the brokers, so that a
 * replica fed from the queue, a file or stdin does not pay for it.
 */
import { parseReadStreamOptions, type ReadStreamConfig } from "../../consumer/options.js";
import { PgshovelError } from "../../errors.js";
import type { KafkaConnectionOptions } from "../../kafka/options.js";
import type { RetryPolicy } from "../../retry.js";
import type { Codec } from "../../stream/codec.js";
import type { StreamPosition } from "../../stream/types.js";
import type { FeedBatch, ReplicaFeed } from "../feed.js";
import { FeedBridge } from "./bridge.js";

/** How a Kafka feed reaches its topic: the brokers, and optionally another topic than the set's. */
export type KafkaFeedConnection = KafkaConnectionOptions & {
  /** Default: the set's topic, `kafkaNames.topic(cluster, set)`. */
  topic?: string;
  /** How each fetch is retried while the brokers are unreachable (default: the reader's, about 90 s). */
  retry?: RetryPolicy;
};

/** Options of {@link kafkaFeed}. */
export type KafkaFeedOptions = KafkaFeedConnection & {
  topic: string;
  /** The codec the relay wrote with. */
  codec: Codec;
};

/**
 * A {@link ReplicaFeed} over a pgshovel topic. The options are validated here, once;
 * a bad one fails with INVALID_ARGUMENT naming it.
 */
export function kafkaFeed(options: KafkaFeedOptions): ReplicaFeed {
  const config: ReadStreamConfig = parseReadStreamOptions(options);
  const { topic } = config;
  const description = `kafka topic ${topic}`;
  return {
    description,

    /**
     * The last stable offset now: every record below it is decided, so each batch that
     * committed below it was published, and so ended its tick, before the snapshot that
     * follows the mark.
     */
    async mark(): Promise<StreamPosition> {
      const { PartitionReader } = await import("../../kafka/partition-reader.js");
      const reader = new PartitionReader(config, topic);
      try {
        return (await reader.bounds()).stable;
      } finally {
        await reader.close().catch(() => {});
      }
    },

    async *batches(from, signal): AsyncGenerator<FeedBatch> {
      if (from === null) {
        throw new PgshovelError(
          "INVALID_ARGUMENT",
          `${description}: a Kafka feed starts from a position: its mark, or the one stored with the last applied batch`,
        );
      }
      const { readStreamPositioned } = await import("../../consumer/kafka.js");
      const messages = readStreamPositioned({ ...config, from, signal });
      // In mid-stream mode, what comes before the first begin is passed over. When the
      // position is a mark inside a batch (its begin lies before the mark), that is
      // exact: the batch's end tick was taken before the relay published it, which was
      // before the mark, which was taken before the bootstrap snapshot; every transaction
      // of the batch committed before the snapshot and is in the copy. (A Kafka relay
      // writes each batch as one transaction, so its mark falls between batches anyway;
      // a stored position always follows a commit.)
      const bridge = new FeedBridge(messages, { description, midStream: true });
      try {
        yield* bridge.batches(signal);
      } finally {
        await bridge.close();
      }
    },

    async close(): Promise<void> {},
  };
}

/** Kafka record compressions; kept apart so that the CLI can list them without loading the Kafka client. */

/** The record compressions Kafka knows. */
export const COMPRESSIONS = ["none", "gzip", "snappy", "lz4", "zstd"] as const;

/** One of {@link COMPRESSIONS}. */
export type Compression = (typeof COMPRESSIONS)[number];

/**
 * The default compression: on this stream zstd gave both the smallest topic
 * and the highest throughput of the five (figures in docs/kafka.md).
 */
export const DEFAULT_COMPRESSION: Compression = "zstd";

import { z } from "zod";
import {
  codecSchema,
  kafkaConnectionFields,
  parseKafkaOptions,
  topicNameSchema,
} from "../../kafka/options.js";
import { COMPRESSIONS, DEFAULT_COMPRESSION } from "./compression.js";

export { COMPRESSIONS, type Compression, DEFAULT_COMPRESSION } from "./compression.js";

/** The schema of the Kafka sink's options: the connection fields and the producer's own. */
export const kafkaSinkOptionsSchema = z
  .object({
    ...kafkaConnectionFields,
    /** The set's topic; the CLI's default is `kafkaNames.topic(cluster, set)`. */
    topic: topicNameSchema,
    /** The codec the records' values are written with, by name or as a codec object. */
    codec: codecSchema,
    /** The record compression. */
    compression: z.enum(COMPRESSIONS).default(DEFAULT_COMPRESSION),
    /** The replication factor of a topic the sink creates. */
    replicationFactor: z.number().int().min(1).max(32_767).default(1),
    /**
     * `kafkaNames.transactionalId(cluster, set, consumer)`: a second relay with the
     * same id fences the first.
     */
    transactionalId: z.string().min(1, "must not be empty"),
    /**
     * How long one batch's Kafka transaction may stay open; the broker aborts it
     * after that. @platformatic/kafka also uses it as the produce acks timeout.
     */
    transactionTimeoutMs: z.number().int().min(1_000).max(900_000).default(60_000),
  })
  .strict();

/** The Kafka sink's options as a caller writes them (defaults may be left out). */
export type KafkaSinkOptionsInput = z.input<typeof kafkaSinkOptionsSchema>;

/** The Kafka sink's options, validated, defaults applied. */
export type KafkaSinkConfig = z.output<typeof kafkaSinkOptionsSchema>;

/** Validates `input`; throws PgshovelError("INVALID_ARGUMENT") naming the bad option. */
export function parseKafkaSinkOptions(input: unknown): KafkaSinkConfig {
  return parseKafkaOptions(kafkaSinkOptionsSchema, input, "Kafka sink options");
}

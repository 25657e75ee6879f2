/** The Kafka sink: one Kafka transaction per batch on a one-partition topic. */
export { KafkaSink, type KafkaSinkOptions } from "./kafka-sink.js";
export {
  COMPRESSIONS,
  type Compression,
  DEFAULT_COMPRESSION,
  type KafkaSinkConfig,
  type KafkaSinkOptionsInput,
  kafkaSinkOptionsSchema,
  parseKafkaSinkOptions,
} from "./options.js";

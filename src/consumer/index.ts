/** The consumer side of pgshovel over Kafka: read a set's topic from TypeScript. */

export {
  READER_RETRY,
  type ReadBatchesOptions,
  type ReadStreamOptions,
  readCommittedBatches,
  readStream,
} from "./kafka.js";
export { type KafkaConnectionOptions, kafkaFailure } from "./kafka-client.js";
export {
  type CommittedRecord,
  type PartitionBounds,
  PartitionReader,
  type ReadOptions,
} from "./partition-reader.js";

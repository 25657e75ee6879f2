/** What the Kafka sink and the Kafka readers share: options, errors, the partition reader. */

export { kafkaFailure } from "./failure.js";
export {
  type LastCommit,
  type LastCommittedBatchOptions,
  readLastCommittedBatch,
} from "./last-commit.js";
export {
  type KafkaConnectionOptions,
  kafkaConnectionSchema,
  SASL_MECHANISMS,
} from "./options.js";
export {
  type CommittedRecord,
  type PartitionBounds,
  PartitionReader,
  type ReadOptions,
} from "./partition-reader.js";
export { HEADERS, recordKey } from "./record-format.js";

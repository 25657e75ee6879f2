/** The consumer side of pgshovel over Kafka: read a set's topic from TypeScript. */

export {
  READER_RETRY,
  type ReadBatchesOptions,
  readCommittedBatches,
  readStream,
  readStreamPositioned,
} from "./kafka.js";
export { type ReadStreamOptions, readStreamOptionsSchema } from "./options.js";

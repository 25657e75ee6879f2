import { z } from "zod";
import {
  codecSchema,
  kafkaConnectionFields,
  parseKafkaOptions,
  topicNameSchema,
} from "../kafka/options.js";
import type { RetryPolicy } from "../retry.js";

const isRetryPolicy = (value: unknown): value is RetryPolicy =>
  typeof value === "object" &&
  value !== null &&
  "attempts" in value &&
  typeof value.attempts === "number" &&
  "initialDelayMs" in value &&
  typeof value.initialDelayMs === "number" &&
  "maxDelayMs" in value &&
  typeof value.maxDelayMs === "number";

/** The schema of {@link ReadStreamOptions}: the connection fields and the reader's own. */
export const readStreamOptionsSchema = z
  .object({
    ...kafkaConnectionFields,
    /** The topic, e.g. "<cluster>.<set>.mutations" (`kafkaNames.topic`). */
    topic: topicNameSchema,
    /** The codec the relay wrote with (a name or a codec object). */
    codec: codecSchema,
    /**
     * Where to start without `from` and without a committed group offset:
     * true (default) at the first stored message, false at the end (new batches only).
     */
    fromBeginning: z.boolean().optional(),
    /**
     * Resume here: the `next` of the last `PositionedMessage` the consumer
     * stored. Wins over the group's offset and `fromBeginning`. An offset the topic no
     * longer holds (removed by retention) fails with POSITION_LOST, never skips.
     */
    from: z.bigint().min(0n, "must not be negative").optional(),
    /**
     * A consumer group to resume from and to record progress in. The offset is
     * committed only at batch boundaries (after a commit or rollback message the
     * caller has taken and come back from), so a restart resumes at a begin.
     */
    groupId: z.string().min(1, "must not be empty").optional(),
    /** Stop once the end of the topic as of the start is reached, instead of following. */
    stopAtEnd: z.boolean().optional(),
    /** Ends the iteration: the loop over the messages simply finishes, nothing throws. */
    signal: z
      .custom<AbortSignal>((value) => value instanceof AbortSignal, "must be an AbortSignal")
      .optional(),
    /** How each fetch is retried while the brokers are unreachable (default: about 90 s). */
    retry: z.custom<RetryPolicy>(isRetryPolicy, "must be a retry policy").optional(),
  })
  .strict();

/** Options of `readStream` and `readStreamPositioned`. */
export type ReadStreamOptions = z.input<typeof readStreamOptionsSchema>;

/** {@link ReadStreamOptions}, validated. */
export type ReadStreamConfig = z.output<typeof readStreamOptionsSchema>;

/** Validates `input`; throws PgshovelError("INVALID_ARGUMENT") naming the bad option. */
export function parseReadStreamOptions(input: unknown): ReadStreamConfig {
  return parseKafkaOptions(readStreamOptionsSchema, input, "Kafka read options");
}

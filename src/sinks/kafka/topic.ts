import { setTimeout as delay } from "node:timers/promises";
import { type Admin, findErrorBy } from "@platformatic/kafka";
import { PgshovelError } from "../../errors.js";
import { kafkaFailure } from "../../kafka/failure.js";
import type { Logger } from "../../log.js";

const LEADER_WAIT_MS = 30_000;

/**
 * Makes sure `topic` exists with exactly one partition (the stream is totally
 * ordered, and Kafka orders only within a partition): creates it when missing,
 * refuses one with more partitions, waits until its partition has a leader.
 */
export async function ensureTopic(
  admin: Admin,
  topic: string,
  replicationFactor: number,
  logger: Logger,
): Promise<void> {
  const doing = `checking topic ${topic}`;
  let topics: string[];
  try {
    topics = await admin.listTopics();
  } catch (error) {
    throw kafkaFailure(error, doing);
  }
  if (!topics.includes(topic)) {
    try {
      await admin.createTopics({ topics: [topic], partitions: 1, replicas: replicationFactor });
      logger.info({ topic, replicationFactor }, "created Kafka topic");
    } catch (error) {
      // Another relay may have created it between our two calls.
      if (!(error instanceof Error && findErrorBy(error, "apiId", "TOPIC_ALREADY_EXISTS"))) {
        throw kafkaFailure(error, `creating topic ${topic}`);
      }
    }
  }

  const deadline = Date.now() + LEADER_WAIT_MS;
  for (;;) {
    let partitions: { leader: number }[] | undefined;
    try {
      const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
      partitions = metadata.topics.get(topic)?.partitions;
    } catch (error) {
      const failure = kafkaFailure(error, doing);
      if (!failure.retryable || Date.now() > deadline) throw failure;
    }
    if (partitions !== undefined && partitions.length > 1) {
      throw new PgshovelError(
        "INVALID_CONFIGURATION",
        `topic ${topic} has ${partitions.length} partitions; a pgshovel stream needs exactly one`,
        {
          hint: `a set's stream is totally ordered and Kafka orders records only within a partition: delete topic ${topic} or choose another topic name`,
        },
      );
    }
    if (partitions !== undefined && partitions.length === 1 && partitions[0]!.leader >= 0) return;
    if (Date.now() > deadline) {
      throw new PgshovelError("KAFKA_UNAVAILABLE", `topic ${topic} has no partition leader`, {
        retryable: true,
      });
    }
    await delay(100);
  }
}

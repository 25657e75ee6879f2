import { Admin } from "@platformatic/kafka";
import { kafkaFailure } from "../kafka/failure.js";
import { clientOptions, type KafkaConnectionOptions } from "../kafka/options.js";

/** A consumer group's committed offset of partition 0, kept through the admin API. */
export class GroupOffsets {
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

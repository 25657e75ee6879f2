/** Kafka helpers for integration tests, over @platformatic/kafka. */
import { Admin, Consumer, type Message, Producer } from "@platformatic/kafka";
import { stackEnv, uniqueName } from "./env.js";
import { waitFor } from "./wait.js";

export type KafkaRecord = Message<Buffer, Buffer, Buffer, Buffer>;

export interface RecordToProduce {
  key?: Buffer | string;
  value: Buffer | string;
  headers?: Record<string, Buffer | string>;
  partition?: number;
}

function brokersOr(brokers?: string[]): string[] {
  return brokers ?? stackEnv().kafkaBrokers;
}

function toBuffer(value: Buffer | string): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(value, "utf8");
}

/** Creates TOPIC and waits until every partition has a leader. */
export async function createTopic(
  topic: string,
  partitions = 1,
  options: { brokers?: string[]; timeoutMs?: number } = {},
): Promise<void> {
  const admin = new Admin({
    clientId: uniqueName("admin"),
    bootstrapBrokers: brokersOr(options.brokers),
  });
  try {
    await admin.createTopics({ topics: [topic], partitions, replicas: 1 });
    await waitFor(
      async () => {
        const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
        const t = metadata.topics.get(topic);
        return t && t.partitions.length === partitions && t.partitions.every((p) => p.leader >= 0);
      },
      {
        description: `leaders for the partitions of topic ${topic}`,
        timeoutMs: options.timeoutMs ?? 30_000,
      },
    );
  } finally {
    await admin.close();
  }
}

export async function deleteTopic(
  topic: string,
  options: { brokers?: string[] } = {},
): Promise<void> {
  const admin = new Admin({
    clientId: uniqueName("admin"),
    bootstrapBrokers: brokersOr(options.brokers),
  });
  try {
    await admin.deleteTopics({ topics: [topic] });
  } finally {
    await admin.close();
  }
}

/** Produces RECORDS to TOPIC (acks=all, idempotent); resolves once the broker acknowledged. */
export async function produce(
  topic: string,
  records: RecordToProduce[],
  options: { brokers?: string[] } = {},
): Promise<void> {
  const producer = new Producer({
    clientId: uniqueName("producer"),
    bootstrapBrokers: brokersOr(options.brokers),
  });
  try {
    await producer.send({
      messages: records.map((r) => ({
        topic,
        key: r.key === undefined ? undefined : toBuffer(r.key),
        value: toBuffer(r.value),
        partition: r.partition,
        headers: r.headers
          ? new Map(Object.entries(r.headers).map(([k, v]) => [Buffer.from(k), toBuffer(v)]))
          : undefined,
      })),
    });
  } finally {
    await producer.close();
  }
}

export interface ConsumeOptions {
  brokers?: string[];
  /** Give up after this long (default 30 000 ms). */
  timeoutMs?: number;
  /** Read only committed transactional records (default false: read_uncommitted). */
  readCommitted?: boolean;
}

/**
 * Reads TOPIC from the beginning (all partitions, fresh consumer group) until UNTIL returns true
 * for the records read so far; returns them. Throws after timeoutMs naming how many were read.
 */
export async function consumeUntil(
  topic: string,
  until: (records: KafkaRecord[]) => boolean,
  options: ConsumeOptions = {},
): Promise<KafkaRecord[]> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const consumer = new Consumer({
    clientId: uniqueName("consumer"),
    groupId: uniqueName("group"),
    bootstrapBrokers: brokersOr(options.brokers),
  });
  const records: KafkaRecord[] = [];
  try {
    const stream = await consumer.consume({
      topics: [topic],
      mode: "earliest",
      autocommit: false,
      maxWaitTime: 200,
      isolationLevel: options.readCommitted ? 1 : 0,
      sessionTimeout: 10_000,
      heartbeatInterval: 500,
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(
            new Error(
              `timed out after ${timeoutMs} ms consuming topic ${topic}: ${records.length} record(s) read, condition not met`,
            ),
          );
        }, timeoutMs);
        const finish = (error?: unknown) => {
          clearTimeout(timer);
          stream.removeAllListeners("data");
          if (error) reject(error);
          else resolve();
        };
        if (until(records)) return finish();
        stream.on("data", (message: KafkaRecord) => {
          records.push(message);
          try {
            if (until(records)) finish();
          } catch (error) {
            finish(error);
          }
        });
        stream.once("error", (error: unknown) => finish(error));
      });
    } finally {
      await stream.close().catch(() => {});
    }
  } finally {
    await consumer.close(true).catch(() => {});
  }
  return records;
}

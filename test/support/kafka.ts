/** Kafka helpers for integration tests, over @platformatic/kafka. */
import { randomBytes, randomUUID } from "node:crypto";
import { Admin, Consumer, type Message, Producer } from "@platformatic/kafka";
import { PgshovelError } from "../../src/errors.js";
import type { BatchRef, Mutation, Row, Message as StreamMessage } from "../../src/stream/types.js";
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

/**
 * Removes the records of partition 0 of TOPIC below OFFSET, as retention would;
 * returns the partition's new start offset.
 */
export async function deleteRecordsBefore(
  topic: string,
  offset: bigint,
  options: { brokers?: string[] } = {},
): Promise<bigint> {
  const admin = new Admin({
    clientId: uniqueName("admin"),
    bootstrapBrokers: brokersOr(options.brokers),
  });
  try {
    const [deleted] = await admin.deleteRecords({
      topics: [{ name: topic, partitions: [{ partition: 0, offset }] }],
    });
    return deleted!.partitions[0]!.lowWatermark;
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

/** The node id of every batch a {@link Publisher} builds. */
export const NODE = randomUUID();

const ROW: Row = {
  id: 7,
  big: "9223372036854775807",
  amount: "1234567890.0123456789",
  note: 'héllo 👋 "quoted" \\ line\nbreak',
  flag: true,
  missing: null,
  created: "2026-11-24 03:45:27.123456+00",
};

/** Builds the messages of batch `id` of node {@link NODE} from one publisher, sequences from `sequence`. */
export class Publisher {
  readonly id = randomUUID();
  sequence = 0n;

  batch(
    id: bigint,
    mutations: number,
    options: { end?: "commit" | "rollback"; pad?: number } = {},
  ) {
    const ref: BatchRef = { node: NODE, id };
    let sequence = this.sequence;
    const message = (body: StreamMessage["body"]): StreamMessage => ({
      header: {
        publisher: this.id,
        sequence: sequence++,
        timestamp: "2026-11-24T03:45:28.000001Z",
      },
      batch: ref,
      body,
    });
    const messages: StreamMessage[] = [
      message({
        kind: "begin",
        begin: {
          start: {
            id: id * 10n,
            snapshot: { xmin: 90n, xmax: 95n, xip: [91n, 93n] },
            time: "2026-11-24T03:45:26.000001Z",
          },
          end: {
            id: id * 10n + 1n,
            snapshot: { xmin: 99n, xmax: 99n, xip: [] },
            time: "2026-11-24T03:45:27.999999Z",
          },
        },
      }),
    ];
    const operations: Mutation["operation"][] = ["INSERT", "UPDATE", "DELETE", "TRUNCATE"];
    for (let i = 0; i < mutations; i++) {
      const operation = operations[i % operations.length]!;
      const row: Row = options.pad
        ? { ...ROW, id: i, pad: randomBytes(options.pad).toString("base64") }
        : { ...ROW, id: i };
      messages.push(
        message({
          kind: "mutation",
          mutation: {
            id: BigInt(i + 1) + (1n << 60n),
            schema: "public",
            table: `table_${i % 3}`,
            operation,
            identity: ["id"],
            old: operation === "UPDATE" || operation === "DELETE" ? { id: i } : null,
            new: operation === "INSERT" || operation === "UPDATE" ? row : null,
            transaction: 9_000_000_000n + id,
            time: "2026-11-24T03:45:27.123456Z",
          },
        }),
      );
    }
    messages.push(message({ kind: options.end ?? "commit" }));
    const commit = () => {
      this.sequence = sequence;
    };
    return { ref, messages, commit };
  }
}

/** The messages as a batch source hands them out; fails retryably after `failAfter`. */
export async function* iterate(
  messages: StreamMessage[],
  failAfter?: number,
): AsyncGenerator<StreamMessage> {
  let n = 0;
  for (const message of messages) {
    if (failAfter !== undefined && n === failAfter) {
      throw new PgshovelError("DATABASE_UNAVAILABLE", "source cursor lost", { retryable: true });
    }
    n++;
    yield message;
  }
}

import { Admin, Consumer, FetchIsolationLevels, ListOffsetTimestamps } from "@platformatic/kafka";
import { PgshovelError } from "../errors.js";
import { type RetryPolicy, withRetry } from "../retry.js";
import { ABORTED, unlessAborted } from "./abort.js";
import { kafkaFailure } from "./failure.js";
import { clientOptions, type KafkaConnectionOptions } from "./options.js";

/**
 * Reads one partition with isolation read_committed through plain Fetch
 * requests, filtering aborted transactions itself.
 *
 * Why not the client's consumer stream: @platformatic/kafka 2.12 drops an
 * aborted transaction's records only when its abort marker arrives in the same
 * fetch response; an aborted transaction larger than one response leaks into a
 * read_committed stream. Here the filter follows the Java client: a
 * transactional batch is skipped while its producer has an aborted transaction
 * open at that offset, for as long as the abort marker has not been passed.
 */

/** One committed record of the partition. */
export interface CommittedRecord {
  offset: bigint;
  key: Buffer | null;
  value: Buffer | null;
  headers: Map<string, Buffer>;
}

/** The readable range of the partition. */
export interface PartitionBounds {
  /** The first offset still stored (log start). */
  start: bigint;
  /** The last stable offset: everything below it is decided (committed or aborted). */
  stable: bigint;
  /** The high watermark: one past the last record written, decided or not. */
  end: bigint;
}

/** How {@link PartitionReader.read} proceeds. */
export interface ReadOptions {
  /** Stop before this offset; absent: follow the partition for ever. */
  until?: bigint;
  /**
   * Ends the read: the iteration returns (it does not throw), at once if a fetch or a
   * retry's wait is under way, otherwise before the next record.
   */
  signal?: AbortSignal;
  /** How long one fetch waits for new records when following (default 500 ms). */
  maxWaitMs?: number;
}

const IS_TRANSACTIONAL = 1 << 4;
const IS_CONTROL = 1 << 5;
const ABORT_MARKER = 0;
const PARTITION_MAX_BYTES = 4 * 1024 * 1024;

/** A read_committed reader of one partition of one topic. */
export class PartitionReader {
  readonly #connection: KafkaConnectionOptions;
  readonly #consumer: Consumer;
  readonly #topic: string;
  readonly #partition: number;
  readonly #retry: RetryPolicy;

  /**
   * `retry` governs each fetch (default: one attempt, the caller retries);
   * a long-running consumer passes a policy that outlasts a broker restart.
   */
  constructor(
    connection: KafkaConnectionOptions,
    topic: string,
    options: { partition?: number; retry?: RetryPolicy } = {},
  ) {
    this.#consumer = new Consumer({
      ...clientOptions(connection, "pgshovel-reader"),
      // Never joins: offsets live with the caller, the group only names the client.
      groupId: `pgshovel-reader-${topic}`,
      isolationLevel: FetchIsolationLevels.READ_COMMITTED,
    });
    this.#consumer.topics.track(topic);
    this.#connection = connection;
    this.#topic = topic;
    this.#partition = options.partition ?? 0;
    this.#retry = options.retry ?? { attempts: 1, initialDelayMs: 0, maxDelayMs: 0 };
  }

  /** The topic read. */
  get topic(): string {
    return this.#topic;
  }

  /**
   * The log start, the last stable offset and the high watermark of the partition.
   * A topic that does not exist fails with NOT_FOUND.
   */
  async bounds(): Promise<PartitionBounds> {
    const doing = `listing the offsets of topic ${this.#topic}`;
    try {
      const list = async (timestamp: bigint, committed = true) => {
        const offsets = await this.#consumer.listOffsets({
          topics: [this.#topic],
          partitions: { [this.#topic]: [this.#partition] },
          timestamp,
          isolationLevel: committed
            ? FetchIsolationLevels.READ_COMMITTED
            : FetchIsolationLevels.READ_UNCOMMITTED,
        });
        const offset = offsets.get(this.#topic)?.[this.#partition];
        if (offset === undefined) {
          throw new PgshovelError("KAFKA_ERROR", `no offset for partition ${this.#partition}`);
        }
        return offset;
      };
      const start = await list(ListOffsetTimestamps.EARLIEST);
      const stable = await list(ListOffsetTimestamps.LATEST);
      const end = await list(ListOffsetTimestamps.LATEST, false);
      return { start, stable, end };
    } catch (error) {
      const failure = kafkaFailure(error, doing);
      // The client reports an unknown topic as a plain user error: ask the brokers.
      if (failure.code === "KAFKA_ERROR" && (await this.#topicMissing())) {
        throw new PgshovelError("NOT_FOUND", `topic ${this.#topic} does not exist`, {
          cause: failure,
          hint: "a Kafka relay creates its set's topic when it starts; check the topic name",
        });
      }
      throw failure;
    }
  }

  /** True when the brokers answer and do not list the topic. */
  async #topicMissing(): Promise<boolean> {
    const admin = new Admin(clientOptions(this.#connection, "pgshovel-reader-admin"));
    try {
      return !(await admin.listTopics()).includes(this.#topic);
    } catch {
      return false;
    } finally {
      await admin.close().catch(() => {});
    }
  }

  /**
   * The committed records from offset `from` on, in offset order. An offset the
   * partition no longer holds (or never held) fails with POSITION_LOST.
   */
  async *read(from: bigint, options: ReadOptions = {}): AsyncGenerator<CommittedRecord> {
    let next = from;
    const { until, signal } = options;
    while (until === undefined || next < until) {
      if (signal?.aborted) return;
      const waitMs = until === undefined ? (options.maxWaitMs ?? 500) : 0;
      const batches = await unlessAborted(
        withRetry(() => this.#fetch(next, waitMs), {
          ...this.#retry,
          ...(signal === undefined ? {} : { signal }),
        }),
        signal,
      );
      if (batches === ABORTED) return;
      if (batches === undefined) continue;
      const { records, aborted } = batches;
      const pending = [...aborted].sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : 1));
      const abortedProducers = new Set<bigint>();
      for (const batch of records) {
        const last = batch.firstOffset + BigInt(batch.lastOffsetDelta);
        if (last < next) continue;
        while (pending.length > 0 && pending[0]!.firstOffset <= last) {
          abortedProducers.add(pending.shift()!.producerId);
        }
        const position = next;
        next = last + 1n;
        if ((batch.attributes & IS_CONTROL) !== 0) {
          const type = batch.records[0]?.key?.readInt16BE(2);
          if (type === ABORT_MARKER) abortedProducers.delete(batch.producerId);
          continue;
        }
        if ((batch.attributes & IS_TRANSACTIONAL) !== 0 && abortedProducers.has(batch.producerId)) {
          continue;
        }
        for (const record of batch.records) {
          const offset = batch.firstOffset + BigInt(record.offsetDelta);
          if (offset < position || (until !== undefined && offset >= until)) continue;
          if (signal?.aborted) return;
          const headers = new Map<string, Buffer>();
          for (const [name, value] of record.headers) {
            if (name !== null && value !== null) headers.set(name.toString("utf8"), value);
          }
          yield { offset, key: record.key, value: record.value, headers };
        }
      }
    }
  }

  async #fetch(offset: bigint, maxWaitMs: number) {
    const doing = `reading topic ${this.#topic} at offset ${offset}`;
    try {
      const metadata = await this.#consumer.metadata({ topics: [this.#topic] });
      const topic = metadata.topics.get(this.#topic);
      const leader = topic?.partitions[this.#partition]?.leader;
      if (topic === undefined || leader === undefined || leader < 0) {
        throw new PgshovelError("KAFKA_UNAVAILABLE", `no leader for partition ${this.#partition}`, {
          retryable: true,
        });
      }
      const response = await this.#consumer.fetch({
        node: leader,
        maxWaitTime: maxWaitMs,
        minBytes: 1,
        isolationLevel: FetchIsolationLevels.READ_COMMITTED,
        topics: [
          {
            topicId: topic.id,
            partitions: [
              {
                partition: this.#partition,
                fetchOffset: offset,
                currentLeaderEpoch: -1,
                lastFetchedEpoch: -1,
                partitionMaxBytes: PARTITION_MAX_BYTES,
              },
            ],
          },
        ],
      });
      for (const t of response.responses) {
        for (const p of t.partitions) {
          if (p.partitionIndex !== this.#partition) continue;
          return { records: p.records ?? [], aborted: p.abortedTransactions ?? [] };
        }
      }
      return undefined;
    } catch (error) {
      throw kafkaFailure(error, doing);
    }
  }

  /** Releases the connections. */
  async close(): Promise<void> {
    await this.#consumer.close(true);
  }
}

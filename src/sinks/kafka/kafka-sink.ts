import { Admin, Producer } from "@platformatic/kafka";
import { PgshovelError, wrapError } from "../../errors.js";
import { isProducerStateLost, kafkaFailure } from "../../kafka/failure.js";
import { lastCommitIn } from "../../kafka/last-commit.js";
import { clientOptions } from "../../kafka/options.js";
import { PartitionReader } from "../../kafka/partition-reader.js";
import { recordKey } from "../../kafka/record-format.js";
import { type Logger, silentLogger } from "../../log.js";
import { type Codec, codecByName } from "../../stream/codec.js";
import type { BatchRef, Message } from "../../stream/types.js";
import { type CommittedMark, type Sink, untilRevoked, type WriteGuard } from "../sink.js";
import {
  type KafkaSinkConfig,
  type KafkaSinkOptionsInput,
  parseKafkaSinkOptions,
} from "./options.js";
import { type KafkaRecordToProduce, RecordBuilder } from "./records.js";
import { ensureTopic } from "./topic.js";

/** The client's transaction handle (its class is not exported by name). */
type Transaction = Awaited<ReturnType<Producer["beginTransaction"]>>;

/** Options of {@link KafkaSink}: the validated options plus a logger. */
export type KafkaSinkOptions = KafkaSinkOptionsInput & { logger?: Logger };

/** A produce request carries at most this many records… */
const CHUNK_MAX_RECORDS = 4_096;
/** …or this many bytes of values, well under the broker's 1 MiB message.max.bytes. */
const CHUNK_MAX_BYTES = 512 * 1024;
/** Produce requests sent but not yet acknowledged; bounds memory with the two above. */
const MAX_IN_FLIGHT = 4;

/** An error thrown by the batch's message source rather than by Kafka. */
class SourceFailure extends Error {}

/** `messages`, with the source's own errors marked as such. */
async function* fromSource(messages: AsyncIterable<Message>): AsyncGenerator<Message> {
  try {
    yield* messages;
  } catch (error) {
    throw new SourceFailure("the message source failed", { cause: error });
  }
}

/** The guard's reason once it revoked the right to write, else undefined. */
function revokedBy(guard: WriteGuard | undefined): PgshovelError | undefined {
  if (!guard?.signal.aborted) return undefined;
  const reason: unknown = guard.signal.reason;
  return reason instanceof PgshovelError
    ? reason
    : new PgshovelError("STOPPED", "the writer may no longer publish", { cause: reason });
}

/**
 * Publishes each batch as one Kafka transaction of an idempotent, transactional
 * producer on a one-partition topic: a read_committed consumer sees a batch
 * whole, once, or not at all. A newer sink with the same transactional id
 * fences this one (FENCED); after a retryable failure the next publish starts
 * over with a fresh producer, which aborts whatever the old one left open.
 */
export class KafkaSink implements Sink {
  readonly description: string;
  readonly transactional = true;
  readonly #config: KafkaSinkConfig;
  readonly #codec: Codec;
  readonly #logger: Logger;
  readonly #records: RecordBuilder;
  #producer: Producer | undefined;
  #reader: PartitionReader | undefined;
  #fenced: PgshovelError | undefined;

  constructor(options: KafkaSinkOptions) {
    const { logger, ...rest } = options;
    this.#config = parseKafkaSinkOptions(rest);
    const codec = this.#config.codec;
    this.#codec = typeof codec === "string" ? codecByName(codec) : codec;
    this.#logger = (logger ?? silentLogger).child({ sink: "kafka", topic: this.#config.topic });
    this.#records = new RecordBuilder(this.#codec, this.#config.topic);
    this.description = `kafka topic ${this.#config.topic}`;
  }

  async open(): Promise<void> {
    // Opening again (after close) starts a new producer generation: a relay that lost
    // its leadership, and with it perhaps its producer epoch, opens once it leads again.
    this.#fenced = undefined;
    try {
      const admin = new Admin(clientOptions(this.#config, "pgshovel-relay-admin"));
      try {
        await ensureTopic(admin, this.#config.topic, this.#config.replicationFactor, this.#logger);
      } finally {
        await admin.close().catch(() => {});
      }
      await this.#ensureProducer();
    } catch (error) {
      throw this.#atBrokers(error);
    }
    this.#reader ??= new PartitionReader(this.#config, this.#config.topic);
  }

  /** A failure to open, naming the brokers; an unreachable cluster says what to check. */
  #atBrokers(error: unknown): PgshovelError {
    const brokers = this.#config.brokers.join(",");
    const failure = kafkaFailure(error, `opening the Kafka sink at brokers ${brokers}`);
    if (failure.code !== "KAFKA_UNAVAILABLE") return failure;
    return new PgshovelError(failure.code, failure.message, {
      retryable: failure.retryable,
      cause: failure.cause,
      hint: `check that the Kafka brokers ${brokers} are running and reachable from this host (--kafka-brokers, PGSHOVEL_KAFKA_BROKERS) and, if they require it, the TLS and SASL options`,
    });
  }

  async publishBatch(
    batch: BatchRef,
    messages: AsyncIterable<Message>,
    guard?: WriteGuard,
  ): Promise<void> {
    const doing = `publishing batch ${batch.id} of node ${batch.node} to topic ${this.#config.topic}`;
    guard?.check();
    const producer = await this.#ensureProducer();
    let transaction: Transaction | undefined;
    let sent = false;
    let committing = false;
    const inFlight = new Set<Promise<void>>();
    let sendFailure: { error: unknown } | undefined;
    try {
      transaction = await producer.beginTransaction();
      const tx = transaction;
      const send = async (records: KafkaRecordToProduce[]) => {
        guard?.check();
        const first = !sent;
        sent = true;
        const request = tx.send({ messages: records }).then(
          () => {
            inFlight.delete(request);
          },
          (error: unknown) => {
            sendFailure ??= { error };
            inFlight.delete(request);
          },
        );
        inFlight.add(request);
        // The first request adds the partition to the transaction: let it finish
        // so that the following ones go out strictly in order behind it.
        if (first || inFlight.size >= MAX_IN_FLIGHT)
          await untilRevoked(Promise.race(inFlight), guard);
        if (sendFailure !== undefined) throw sendFailure.error;
      };

      const key = Buffer.from(recordKey(batch), "utf8");
      let chunk: KafkaRecordToProduce[] = [];
      let chunkBytes = 0;
      for await (const message of fromSource(messages)) {
        if (message.batch.id !== batch.id || message.batch.node !== batch.node) {
          throw new PgshovelError(
            "INTERNAL",
            `a message of batch ${message.batch.id} of node ${message.batch.node} in the wrong batch`,
          );
        }
        const record = this.#records.build(message, key);
        chunk.push(record);
        chunkBytes += record.value!.length;
        if (chunk.length >= CHUNK_MAX_RECORDS || chunkBytes >= CHUNK_MAX_BYTES) {
          const full = chunk;
          chunk = [];
          chunkBytes = 0;
          await send(full);
        }
      }
      if (chunk.length > 0) await send(chunk);
      await untilRevoked(Promise.all(inFlight), guard);
      if (sendFailure !== undefined) throw sendFailure.error;
      // Past this check the commit is sent: it was allowed when it left.
      guard?.check();
      committing = sent;
      if (sent) await untilRevoked(transaction.commit(), guard);
      else await transaction.cancel();
    } catch (error) {
      await Promise.allSettled(inFlight);
      const fromSource = error instanceof SourceFailure;
      const revoked = revokedBy(guard);
      const failure =
        revoked ??
        (fromSource ? wrapError(error.cause, doing, "INTERNAL") : kafkaFailure(error, doing));
      if (committing && revoked) {
        // A commit was sent and its answer abandoned: aborting now would race it. A new
        // producer finishes whatever the broker holds (a commit that arrived completes);
        // the relay then asks the topic for its last committed batch.
        this.#logger.warn({ err: failure }, "stopped waiting for a commit; dropping the producer");
        await this.#dropProducer();
      } else {
        await this.#abandon(transaction, sent, failure, fromSource || revoked !== undefined);
      }
      throw failure;
    }
  }

  /** Ends a failed transaction; drops the producer when it cannot be trusted any more. */
  async #abandon(
    transaction: Transaction | undefined,
    sent: boolean,
    failure: PgshovelError,
    notFromKafka: boolean,
  ): Promise<void> {
    if (failure.code === "FENCED" && !notFromKafka) {
      this.#fenced = failure;
      this.#logger.error({ err: failure }, "fenced by a newer producer");
      await this.#dropProducer();
      return;
    }
    this.#logger.warn({ err: failure }, "batch not published; aborting its transaction");
    let clean = false;
    if (transaction !== undefined && !transaction.completed) {
      try {
        if (sent) await transaction.abort();
        else await transaction.cancel();
        clean = true;
      } catch (error) {
        this.#logger.warn({ err: error }, "abort failed; the next publish starts a new producer");
      }
    }
    // A transaction that failed to begin may still be registered in the client.
    // A new producer with the same transactional id makes the coordinator abort
    // whatever the old one left open, so the broker never keeps half a batch.
    if (!clean || isProducerStateLost(failure.cause)) await this.#dropProducer();
  }

  async #ensureProducer(): Promise<Producer> {
    if (this.#fenced !== undefined) {
      throw new PgshovelError("FENCED", this.#fenced.message, {
        cause: this.#fenced,
        hint: this.#fenced.hint,
      });
    }
    if (this.#producer !== undefined) return this.#producer;
    const producer = new Producer({
      ...clientOptions(this.#config, "pgshovel-relay"),
      idempotent: true,
      transactionalId: this.#config.transactionalId,
      compression: this.#config.compression,
      timeout: this.#config.transactionTimeoutMs,
      autocreateTopics: false,
    });
    try {
      // InitProducerId (done by the first beginTransaction) bumps the epoch of
      // the transactional id: from now on an older producer with it is fenced.
      // -1/-1 asks as a new producer; the client's default 0/0 would claim to be
      // producer 0 and be refused as fenced once the id has a history.
      const probe = await producer.beginTransaction({ producerId: -1n, producerEpoch: -1 });
      await probe.cancel();
    } catch (error) {
      await producer.close(true).catch(() => {});
      const failure = kafkaFailure(
        error,
        `initializing the transactional producer ${this.#config.transactionalId}`,
      );
      if (failure.code === "FENCED") this.#fenced = failure;
      throw failure;
    }
    this.#logger.debug(
      { producerId: producer.producerId, epoch: producer.producerEpoch },
      "transactional producer ready",
    );
    this.#producer = producer;
    return producer;
  }

  async #dropProducer(): Promise<void> {
    const producer = this.#producer;
    this.#producer = undefined;
    await producer?.close(true).catch(() => {});
  }

  /**
   * The batch of the last commit message a read_committed consumer sees, or
   * undefined when there is none (see {@link lastCommitIn}).
   */
  async lastCommittedBatch(): Promise<CommittedMark | undefined> {
    // Initializing the transactional producer first makes the broker finish whatever
    // transaction this transactional id left in flight (after a failed or interrupted
    // publish), so its commit markers, and with them the stable offset, are in place.
    // The read itself needs no producer (readLastCommittedBatch does without one).
    await this.#ensureProducer();
    this.#reader ??= new PartitionReader(this.#config, this.#config.topic);
    const last = await lastCommitIn(this.#reader, this.#codec);
    return last === undefined ? undefined : { batch: last.batch, header: last.header };
  }

  async close(): Promise<void> {
    const reader = this.#reader;
    this.#reader = undefined;
    await reader?.close().catch(() => {});
    await this.#dropProducer();
  }
}

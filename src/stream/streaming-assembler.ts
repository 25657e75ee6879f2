import {
  type BatchAssemblerOptions,
  type BatchAssemblerStats,
  DeliveredMarks,
} from "./assembler.js";
import type { Begin, Message, Mutation, PositionedMessage, StreamPosition, Uuid } from "./types.js";
import { StreamValidator } from "./validator.js";

/**
 * The streaming assembler hands a batch to its consumer one message at a time —
 * begin, each mutation as it arrives, then commit or rollback — so that a batch
 * of a million rows is applied without being held. Whether a batch is a
 * duplicate is decided at its begin, by the same rule as BatchAssembler's.
 */

/** A batch as a {@link BatchHandler} meets it at its begin. */
export interface OpenedBatch {
  /** The source database's node id. */
  node: Uuid;
  /** The PgQ batch id. */
  id: bigint;
  /** The batch's two ticks. */
  begin: Begin;
  /** The relay process sending it. */
  publisher: Uuid;
}

/** What a handler wants done with a batch: receive its mutations, or pass over it. */
export type BatchDecision = "apply" | "skip";

/** Why an open batch ends without a commit: its relay said so, or a new relay began it again. */
export type BatchDiscardReason = "rollback" | "abandoned";

/**
 * The consumer of a {@link StreamingAssembler}. Each method may return a promise, which the
 * assembler awaits before it takes the next message. A handler hears only batches that
 * were not delivered before; every batch it applies ends in exactly one `commit` or
 * `rollback`. Two batches are open at once only when two source nodes interleave in one
 * stream; the `batch` argument tells them apart.
 */
export interface BatchHandler {
  /**
   * A batch begins; "skip" (e.g. the target holds it already) passes over its mutations.
   * Always a promise: TypeScript infers an `async begin()` returning "apply" only against it.
   */
  begin(batch: OpenedBatch): Promise<BatchDecision>;
  /** The next mutation of an applied batch, in event order. */
  mutation(mutation: Mutation, batch: OpenedBatch): void | Promise<void>;
  /**
   * The batch is whole: make it durable. `position` is where a reader resumes after the
   * commit message, when the source reports positions: store it with the batch.
   */
  commit(batch: OpenedBatch, position: StreamPosition | undefined): void | Promise<void>;
  /** Forget what was received of the batch; it will come again whole if it was not rolled back for good. */
  rollback(batch: OpenedBatch, reason: BatchDiscardReason): void | Promise<void>;
}

/** What a {@link StreamingAssembler} has done so far; each batch is counted once, when it ends. */
export interface StreamingAssemblerStats extends BatchAssemblerStats {
  /** Batches the handler chose to skip at their begin (recorded as delivered at their commit). */
  skipped: number;
}

interface OpenState {
  batch: OpenedBatch;
  /** "duplicate": delivered before; the handler never hears of it. */
  state: BatchDecision | "duplicate";
}

/**
 * Validates a stream and passes each batch not delivered before to a {@link BatchHandler},
 * message by message; nothing of a batch is kept but its begin. A batch is recorded as
 * delivered once the handler's `commit` has resolved. If a handler method throws, the
 * batch it concerned is forgotten (not delivered) and the error propagates from
 * {@link push}; resume by reading again from a position before that batch's begin, with a
 * new assembler seeded with {@link lastDelivered}.
 */
export class StreamingAssembler {
  readonly #handler: BatchHandler;
  readonly #validator: StreamValidator;
  readonly #open = new Map<string, OpenState>();
  readonly #delivered: DeliveredMarks;
  readonly #stats: StreamingAssemblerStats = {
    delivered: 0,
    duplicates: 0,
    skipped: 0,
    rolledBack: 0,
    abandoned: 0,
  };

  constructor(handler: BatchHandler, options: BatchAssemblerOptions = {}) {
    this.#handler = handler;
    this.#validator = new StreamValidator(options);
    this.#delivered = new DeliveredMarks(options.delivered);
  }

  /**
   * Feeds the next message, with the position just after it if the source has one.
   * Resolves once the handler has dealt with it. Rejects with PgshovelError("DECODE_ERROR")
   * when the stream breaks its contract, or with whatever the handler threw.
   */
  async push(message: Message, position?: StreamPosition): Promise<void> {
    this.#validator.accept(message);
    const { publisher } = message.header;
    const body = message.body;
    if (body.kind === "begin") return this.#begin(message, body.begin);
    const open = this.#open.get(publisher);
    if (open === undefined) return; // mid-stream join: the begin was before us
    switch (body.kind) {
      case "mutation":
        if (open.state === "apply") {
          await this.#guard(publisher, () => this.#handler.mutation(body.mutation, open.batch));
        }
        return;
      case "rollback":
        this.#open.delete(publisher);
        this.#stats.rolledBack++;
        if (open.state === "apply") await this.#handler.rollback(open.batch, "rollback");
        return;
      case "commit":
        this.#open.delete(publisher);
        if (open.state === "duplicate") {
          this.#stats.duplicates++;
          return;
        }
        if (open.state === "apply") await this.#handler.commit(open.batch, position);
        this.#delivered.record(open.batch.node, open.batch.id);
        this.#stats[open.state === "apply" ? "delivered" : "skipped"]++;
        return;
    }
  }

  /** Feeds every message of `source` (plain or positioned) in order. */
  async consume(
    source: AsyncIterable<Message | PositionedMessage> | Iterable<Message | PositionedMessage>,
  ): Promise<void> {
    for await (const item of source) {
      if ("message" in item) await this.push(item.message, item.next);
      else await this.push(item);
    }
  }

  /** The highest batch id delivered for `node`, to store as the consumer's progress. */
  lastDelivered(node: string): bigint | undefined {
    return this.#delivered.last(node);
  }

  /** Counters of delivered and dropped batches. */
  get stats(): Readonly<StreamingAssemblerStats> {
    return { ...this.#stats };
  }

  async #begin(message: Message, begin: Begin): Promise<void> {
    const { publisher } = message.header;
    const { node, id } = message.batch;
    // A new relay re-sends from the begin whatever a dead one left open for the same node.
    for (const [other, open] of [...this.#open]) {
      if (other === publisher || open.batch.node !== node) continue;
      this.#open.delete(other);
      this.#stats.abandoned++;
      if (open.state === "apply") await this.#handler.rollback(open.batch, "abandoned");
    }
    const batch: OpenedBatch = { node, id, begin, publisher };
    const state = this.#delivered.seen(node, id) ? "duplicate" : await this.#handler.begin(batch);
    this.#open.set(publisher, { batch, state });
  }

  /** Runs a handler call for an open batch; if it throws, the batch is forgotten. */
  async #guard(publisher: string, call: () => void | Promise<void>): Promise<void> {
    try {
      await call();
    } catch (error) {
      this.#open.delete(publisher);
      throw error;
    }
  }
}

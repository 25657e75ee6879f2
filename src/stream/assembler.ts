import type { Begin, Message, Mutation } from "./types.js";
import { StreamValidator, type StreamValidatorOptions } from "./validator.js";

/**
 * Turns validated messages into committed batches, each delivered once per
 * (node, batch id): whole, in {@link BatchAssembler}, or one message at a time,
 * in the streaming assembler (streaming-assembler.ts). Both follow the rules
 * kept here: a batch counts as seen once a batch of its node with an id at
 * least as high was delivered.
 */

/**
 * The highest delivered batch id per node. PgQ batch ids grow with time, and a
 * stream carries one set's batches in tick order, so any batch at or below the
 * mark was seen.
 */
export class DeliveredMarks {
  readonly #marks = new Map<string, bigint>();

  constructor(delivered: Iterable<readonly [node: string, batchId: bigint]> = []) {
    for (const [node, id] of delivered) this.#marks.set(node, id);
  }

  /** True when batch `id` of `node` was delivered already. */
  seen(node: string, id: bigint): boolean {
    const last = this.#marks.get(node);
    return last !== undefined && id <= last;
  }

  /** Records the delivery of batch `id` of `node`. */
  record(node: string, id: bigint): void {
    this.#marks.set(node, id);
  }

  /** The highest batch id delivered for `node`. */
  last(node: string): bigint | undefined {
    return this.#marks.get(node);
  }
}

/** A committed batch, complete: its begin and every mutation, in stream order. */
export interface CommittedBatch {
  /** The source database's node id. */
  node: string;
  /** The PgQ batch id. */
  id: bigint;
  /** The batch's begin (its two ticks). */
  begin: Begin;
  /** The batch's mutations, in event order. */
  mutations: Mutation[];
}

/** Options of {@link BatchAssembler}. */
export interface BatchAssemblerOptions extends StreamValidatorOptions {
  /**
   * The highest batch id already delivered per node, e.g. restored from the
   * consumer's own progress store; batches up to it are dropped as duplicates.
   */
  delivered?: Iterable<readonly [node: string, batchId: bigint]>;
}

/** What a {@link BatchAssembler} has done so far. */
export interface BatchAssemblerStats {
  /** Batches returned by push. */
  delivered: number;
  /** Batches dropped because their (node, id) was delivered already. */
  duplicates: number;
  /** Batches dropped on a rollback. */
  rolledBack: number;
  /** Open batches dropped because another publisher began a batch of the same node. */
  abandoned: number;
}

interface OpenBatch {
  node: string;
  id: bigint;
  begin: Begin;
  mutations: Mutation[];
  duplicate: boolean;
}

/**
 * Validates a stream and yields each committed batch once per (node, batch id).
 * Rolled-back batches are dropped; a batch re-sent after a relay crash, possibly
 * by a new publisher whose sequence restarts at 0, is dropped when it was
 * delivered already (see {@link DeliveredMarks}). It holds each open batch's
 * mutations until the commit: for batches too large for memory, use the
 * streaming assembler.
 */
export class BatchAssembler {
  readonly #validator: StreamValidator;
  readonly #open = new Map<string, OpenBatch>();
  readonly #delivered: DeliveredMarks;
  readonly #stats: BatchAssemblerStats = {
    delivered: 0,
    duplicates: 0,
    rolledBack: 0,
    abandoned: 0,
  };

  constructor(options: BatchAssemblerOptions = {}) {
    this.#validator = new StreamValidator(options);
    this.#delivered = new DeliveredMarks(options.delivered);
  }

  /**
   * Feeds the next message. Returns the batch it completes, if it is a commit of
   * a batch not delivered before. Throws PgshovelError("DECODE_ERROR") when the
   * stream breaks its contract.
   */
  push(message: Message): CommittedBatch | undefined {
    this.#validator.accept(message);
    const { publisher } = message.header;
    const { node, id } = message.batch;
    const body = message.body;
    switch (body.kind) {
      case "begin": {
        for (const [other, batch] of this.#open) {
          if (other !== publisher && batch.node === node) {
            this.#open.delete(other);
            this.#stats.abandoned++;
          }
        }
        const duplicate = this.#delivered.seen(node, id);
        this.#open.set(publisher, { node, id, begin: body.begin, mutations: [], duplicate });
        return undefined;
      }
      case "mutation": {
        const open = this.#open.get(publisher);
        if (open !== undefined && !open.duplicate) open.mutations.push(body.mutation);
        return undefined;
      }
      case "rollback":
        if (this.#open.delete(publisher)) this.#stats.rolledBack++;
        return undefined;
      case "commit": {
        const open = this.#open.get(publisher);
        if (open === undefined) return undefined; // mid-stream join: the begin was before us
        this.#open.delete(publisher);
        if (open.duplicate || this.#delivered.seen(node, id)) {
          this.#stats.duplicates++;
          return undefined;
        }
        this.#delivered.record(node, id);
        this.#stats.delivered++;
        return { node: open.node, id: open.id, begin: open.begin, mutations: open.mutations };
      }
    }
  }

  /** The highest batch id delivered for `node`, to store as the consumer's progress. */
  lastDelivered(node: string): bigint | undefined {
    return this.#delivered.last(node);
  }

  /** Counters of delivered and dropped batches. */
  get stats(): Readonly<BatchAssemblerStats> {
    return { ...this.#stats };
  }
}

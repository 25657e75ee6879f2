import { PgshovelError } from "../errors.js";
import type { BatchRef, Begin, Message, Mutation } from "./types.js";

/**
 * The consumer side of the stream: a validator that checks the stream's shape
 * and an assembler that turns messages into committed batches, each delivered
 * once per (node, batch id).
 */

/** What went wrong in a stream. */
export type StreamViolationKind =
  | "sequence-gap" // a publisher's sequence is not contiguous (or does not start at 0)
  | "begin-inside-batch" // a begin while the publisher's previous batch is still open
  | "outside-batch" // a mutation, commit or rollback with no open batch
  | "batch-mismatch" // a message whose batch ref differs from its open batch's
  | "row-shape"; // old/new rows that do not fit the operation

/** A breach of the stream contract found by {@link StreamValidator}. */
export interface StreamViolation {
  /** What went wrong. */
  kind: StreamViolationKind;
  /** The publisher of the offending message. */
  publisher: string;
  /** The sequence number of the offending message. */
  sequence: bigint;
  /** A sentence for people. */
  description: string;
}

/** Options of {@link StreamValidator}. */
export interface StreamValidatorOptions {
  /**
   * The consumer joined the stream part-way (e.g. from a committed Kafka offset):
   * a publisher's first message may have any sequence, and its messages before
   * its first begin are accepted unchecked. Default false: every publisher must
   * start at sequence 0 with a begin.
   */
  midStream?: boolean;
}

interface PublisherState {
  next: bigint;
  open: BatchRef | undefined;
  /** True until the first begin of a publisher met mid-stream. */
  unsynced: boolean;
}

const ROW_SHAPES = {
  INSERT: [false, true],
  UPDATE: [true, true],
  DELETE: [true, false],
  TRUNCATE: [false, false],
} as const;

function sameBatch(a: BatchRef, b: BatchRef): boolean {
  return a.id === b.id && a.node === b.node;
}

function describeBatch(b: BatchRef): string {
  return `batch ${b.id} of node ${b.node}`;
}

/**
 * Checks, per publisher, that sequences are contiguous and that every batch is
 * a begin, mutations, then a commit or rollback carrying the same batch ref.
 * After a violation it resynchronises (takes the message's sequence as the new
 * position, opens or closes the batch as the message says), so one fault is
 * reported once.
 */
export class StreamValidator {
  readonly #publishers = new Map<string, PublisherState>();
  readonly #midStream: boolean;

  constructor(options: StreamValidatorOptions = {}) {
    this.#midStream = options.midStream ?? false;
  }

  /** Records the next message; returns the first violation it commits, if any. */
  check(message: Message): StreamViolation | undefined {
    const { publisher, sequence } = message.header;
    let state = this.#publishers.get(publisher);
    if (state === undefined) {
      state = { next: this.#midStream ? sequence : 0n, open: undefined, unsynced: this.#midStream };
      this.#publishers.set(publisher, state);
    }
    const violation = (kind: StreamViolationKind, description: string): StreamViolation => ({
      kind,
      publisher,
      sequence,
      description: `publisher ${publisher} message ${sequence}: ${description}`,
    });

    const expected = state.next;
    state.next = sequence + 1n;
    let found: StreamViolation | undefined;
    if (sequence !== expected) {
      found = violation("sequence-gap", `expected sequence ${expected}, got ${sequence}`);
    }

    const { body, batch } = message;
    if (body.kind === "begin") {
      if (state.open !== undefined && found === undefined) {
        found = violation(
          "begin-inside-batch",
          `begin of ${describeBatch(batch)} while ${describeBatch(state.open)} is open`,
        );
      }
      state.open = batch;
      state.unsynced = false;
      return found;
    }
    if (state.unsynced) return found;
    const open = state.open;
    if (body.kind !== "mutation") state.open = undefined;
    if (found !== undefined) return found;
    if (open === undefined)
      return violation(
        "outside-batch",
        `${body.kind} of ${describeBatch(batch)} outside any batch`,
      );
    if (!sameBatch(open, batch)) {
      return violation(
        "batch-mismatch",
        `${body.kind} of ${describeBatch(batch)} inside ${describeBatch(open)}`,
      );
    }
    if (body.kind === "mutation") {
      const { operation, old, new: next } = body.mutation;
      const [wantOld, wantNew] = ROW_SHAPES[operation];
      if ((old !== null) !== wantOld || (next !== null) !== wantNew) {
        const has = (row: unknown, name: string) => `${row === null ? "no" : "an"} ${name} row`;
        return violation(
          "row-shape",
          `${operation} with ${has(old, "old")} and ${has(next, "new")}`,
        );
      }
    }
    return undefined;
  }

  /** Records the next message; throws PgshovelError("DECODE_ERROR") on a violation. */
  accept(message: Message): void {
    const violation = this.check(message);
    if (violation !== undefined) throw new PgshovelError("DECODE_ERROR", violation.description);
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
 * delivered already. Deduplication keeps, per node, the highest delivered batch
 * id: PgQ batch ids grow with time, and a stream carries one set's batches in
 * tick order, so any batch at or below that mark was seen.
 */
export class BatchAssembler {
  readonly #validator: StreamValidator;
  readonly #open = new Map<string, OpenBatch>();
  readonly #delivered = new Map<string, bigint>();
  readonly #stats: BatchAssemblerStats = {
    delivered: 0,
    duplicates: 0,
    rolledBack: 0,
    abandoned: 0,
  };

  constructor(options: BatchAssemblerOptions = {}) {
    this.#validator = new StreamValidator(options);
    for (const [node, id] of options.delivered ?? []) this.#delivered.set(node, id);
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
        const last = this.#delivered.get(node);
        const duplicate = last !== undefined && id <= last;
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
        const last = this.#delivered.get(node);
        if (open.duplicate || (last !== undefined && id <= last)) {
          this.#stats.duplicates++;
          return undefined;
        }
        this.#delivered.set(node, id);
        this.#stats.delivered++;
        return { node: open.node, id: open.id, begin: open.begin, mutations: open.mutations };
      }
    }
  }

  /** The highest batch id delivered for `node`, to store as the consumer's progress. */
  lastDelivered(node: string): bigint | undefined {
    return this.#delivered.get(node);
  }

  /** Counters of delivered and dropped batches. */
  get stats(): Readonly<BatchAssemblerStats> {
    return { ...this.#stats };
  }
}

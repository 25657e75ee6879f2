import { PgshovelError } from "../errors.js";
import type { BatchRef, Message } from "./types.js";

/**
 * The stream's shape, checked per publisher: contiguous sequences and
 * begin…commit bracketing with matching batch references.
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

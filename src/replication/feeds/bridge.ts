/**
 * From the push-style streaming assembler to the pull-style batches a replica applies.
 * Nothing is read ahead of the applier: a message is taken from the reader only when
 * the applier asks for the next batch or the next mutation, so however large a batch,
 * at most the events of one message wait between the two (a begin that abandons the
 * open batch makes two). The reader's own buffer is all the rest.
 */
import { PgshovelError } from "../../errors.js";
import { ABORTED, unlessAborted } from "../../kafka/abort.js";
import {
  type BatchDiscardReason,
  type BatchHandler,
  type OpenedBatch,
  StreamingAssembler,
} from "../../stream/streaming-assembler.js";
import type {
  Begin,
  Mutation,
  PositionedMessage,
  StreamPosition,
  Uuid,
} from "../../stream/types.js";
import type { FeedBatch } from "../feed.js";

/** Options of {@link FeedBridge}. */
export interface FeedBridgeOptions {
  /** Names the feed in errors, e.g. "file /var/spool/s.jsonl". */
  description: string;
  /**
   * The reader may start inside the stream (a mark, a stored position): messages before
   * the first begin are passed over, and publishers need not start at sequence 0.
   */
  midStream: boolean;
}

/** What the handler saw, waiting for the applier to take it. */
type FeedEvent =
  | { kind: "begin"; batch: OpenedBatch }
  | { kind: "mutation"; batch: OpenedBatch; mutation: Mutation }
  | { kind: "commit"; batch: OpenedBatch; position: StreamPosition | undefined }
  | { kind: "rollback"; batch: OpenedBatch; reason: BatchDiscardReason };

const END = Symbol("end");

/** The batch handed out last, and how far the applier and the stream have got with it. */
class DeliveredBatch implements FeedBatch {
  readonly node: Uuid;
  readonly id: bigint;
  readonly begin: Begin;
  readonly mutations: AsyncIterable<Mutation>;
  /** Its commit or rollback has been taken from the stream. */
  ended = false;
  /** The replica is through with it: done() was called, or the stream rolled it back. */
  settled = false;
  /** The applier began reading its mutations. */
  reading = false;
  /** Reading passed to the bridge, which drains what the applier left. */
  draining = false;
  #position: StreamPosition | undefined;

  constructor(
    readonly opened: OpenedBatch,
    mutations: (batch: DeliveredBatch) => AsyncIterable<Mutation>,
  ) {
    this.node = opened.node;
    this.id = opened.id;
    this.begin = opened.begin;
    this.mutations = mutations(this);
  }

  /**
   * The `next` of the batch's commit message. A getter (not enumerable, so logging a batch
   * does not call it) that refuses to answer before the commit was read: a position taken
   * too early would be stored with the batch and resume the replica at the wrong place.
   */
  get position(): StreamPosition {
    if (this.#position === undefined) {
      throw new PgshovelError(
        "INTERNAL",
        `the position of batch ${this.id} is known only once its mutations were read to its commit`,
      );
    }
    return this.#position;
  }

  committed(position: StreamPosition | undefined): void {
    this.ended = true;
    this.#position = position;
  }

  /** The stream rolled it back (its relay gave it up, or a new relay cut it off). */
  discarded = false;

  rolledBack(): void {
    this.ended = true;
    this.discarded = true;
    this.settled = true;
  }

  async done(): Promise<void> {
    this.settled = true;
  }
}

/**
 * Turns positioned messages into {@link FeedBatch}es: in stream order, each batch not
 * delivered before once (a batch re-sent after its commit is dropped by the assembler; one
 * re-sent after a rollback comes again whole). A batch's mutations end at its commit; a
 * rollback, or a new begin abandoning it, makes them throw a retryable error so that the
 * applier rolls back, and the re-sent batch follows. Mutations the applier does not read
 * are drained before the next batch is handed out.
 */
export class FeedBridge {
  readonly #description: string;
  readonly #iterator: AsyncIterator<PositionedMessage>;
  readonly #assembler: StreamingAssembler;
  readonly #events: FeedEvent[] = [];
  /** A read of the source not yet taken, kept when a signal stopped the wait for it. */
  #pending: Promise<IteratorResult<PositionedMessage>> | undefined;
  #ended = false;
  #failure: unknown;
  #current: DeliveredBatch | undefined;
  #iterating = false;
  #reading = false;
  /** The batch the assembler has open for the applier, as the handler last heard. */
  #open: OpenedBatch | undefined;
  /** Batches abandoned here because a batch of another node began while they were open. */
  readonly #abandoned = new Set<OpenedBatch>();

  constructor(source: AsyncIterable<PositionedMessage>, options: FeedBridgeOptions) {
    this.#description = options.description;
    this.#iterator = source[Symbol.asyncIterator]();
    this.#assembler = new StreamingAssembler(this.#handler(), { midStream: options.midStream });
  }

  /**
   * The batches, in order, until the source ends or `signal` aborts (the iteration then
   * returns). A batch is handed out only once the one before is settled: done() was
   * called, or the stream rolled it back. Otherwise (its apply failed) it fails with
   * POSITION_LOST, since the batch cannot be handed out again from here: read the feed
   * again from the position stored with the last applied batch. May be iterated again
   * after an iteration ended, going on where it stopped (stdin cannot be opened twice).
   */
  async *batches(signal?: AbortSignal): AsyncGenerator<FeedBatch, void, undefined> {
    if (this.#iterating) {
      throw new PgshovelError("INTERNAL", `${this.#description} is already being read`);
    }
    this.#iterating = true;
    try {
      for (;;) {
        const event = await this.#nextEvent(signal);
        if (event === END || event === ABORTED) return;
        const current = this.#current;
        if (event.kind !== "begin") {
          // What the applier left of the batch before: passed over up to its end.
          if (current === undefined || event.batch !== current.opened) {
            throw new PgshovelError("INTERNAL", `${this.#description}: an event of no batch`);
          }
          current.draining = true;
          if (event.kind === "commit") current.committed(event.position);
          if (event.kind === "rollback") current.rolledBack();
          continue;
        }
        if (current !== undefined && !current.settled) {
          this.#failure = new PgshovelError(
            "POSITION_LOST",
            `${this.#description}: batch ${current.id} of node ${current.node} was handed out but not applied, and cannot be handed out again from here`,
            {
              hint: "read the feed again from the position stored with the last applied batch; a replica fed from stdin must be rebuilt",
            },
          );
          throw this.#failure;
        }
        if (current !== undefined) current.draining = true;
        const batch = new DeliveredBatch(event.batch, (b) => this.#mutations(b, signal));
        this.#current = batch;
        yield batch;
      }
    } finally {
      this.#iterating = false;
    }
  }

  /** Stops the source (its reader closes its file or its connection). */
  async close(): Promise<void> {
    this.#pending?.catch(() => {});
    await this.#iterator.return?.();
  }

  async *#mutations(
    batch: DeliveredBatch,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<Mutation> {
    const doing = `batch ${batch.id} of node ${batch.node} from ${this.#description}`;
    if (batch.reading || batch.draining) {
      throw new PgshovelError(
        "INTERNAL",
        `the mutations of ${doing} are read once, before the next batch`,
      );
    }
    batch.reading = true;
    while (!batch.ended) {
      const event = await this.#nextEvent(signal);
      if (batch.draining) {
        throw new PgshovelError(
          "INTERNAL",
          `the mutations of ${doing} were read after the next batch`,
        );
      }
      if (event === ABORTED) {
        throw new PgshovelError("STOPPED", `stopped while reading ${doing}`);
      }
      if (event === END) {
        throw new PgshovelError(
          "STOPPED",
          `${this.#description} ended inside batch ${batch.id} of node ${batch.node}: its relay stopped before the batch's end; nothing of it is applied`,
        );
      }
      if (event.batch !== batch.opened) {
        throw new PgshovelError(
          "INTERNAL",
          `${doing}: an event of another batch came before its end`,
        );
      }
      switch (event.kind) {
        case "mutation":
          yield event.mutation;
          break;
        case "commit":
          batch.committed(event.position);
          break;
        case "rollback":
          batch.rolledBack();
          throw new PgshovelError(
            "SINK_ERROR",
            event.reason === "rollback"
              ? `${doing} was rolled back by its relay; it comes again whole`
              : `${doing} was abandoned: a new relay began before its end; a batch cut off that way comes again whole`,
            { retryable: true, hint: "read on: the stream re-sends the batch" },
          );
        case "begin":
          throw new PgshovelError("INTERNAL", `${doing}: a begin inside the batch`);
      }
    }
  }

  /** The next event, pulling messages from the source only while none waits. */
  async #nextEvent(
    signal: AbortSignal | undefined,
  ): Promise<FeedEvent | typeof END | typeof ABORTED> {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#reading) {
      throw new PgshovelError("INTERNAL", `${this.#description} is read by two callers at once`);
    }
    this.#reading = true;
    try {
      while (this.#events.length === 0) {
        if (this.#ended) return END;
        if (this.#pending === undefined && signal?.aborted) return ABORTED;
        this.#pending ??= this.#iterator.next();
        const result = await unlessAborted(this.#pending, signal);
        if (result === ABORTED) return ABORTED; // the read stays pending for the next caller
        this.#pending = undefined;
        if (result.done) {
          this.#ended = true;
          continue;
        }
        await this.#assembler.push(result.value.message, result.value.next);
      }
      return this.#events.shift()!;
    } catch (error) {
      // The assembler forgot the batch it was on: nothing read from here on would be sound.
      this.#failure = error;
      throw error;
    } finally {
      this.#reading = false;
    }
  }

  #handler(): BatchHandler {
    const events = this.#events;
    const interleaved = (batch: OpenedBatch) =>
      new PgshovelError(
        "DECODE_ERROR",
        `${this.#description}: batch ${batch.id} of node ${batch.node} went on after a batch of another node began; a replica follows one source at a time`,
      );
    return {
      begin: async (batch) => {
        // Only another node's begin finds a batch still open (the assembler abandons an
        // open batch of the same node itself): the applier can take one batch at a time.
        if (this.#open !== undefined) {
          events.push({ kind: "rollback", batch: this.#open, reason: "abandoned" });
          this.#abandoned.add(this.#open);
        }
        this.#open = batch;
        events.push({ kind: "begin", batch });
        return "apply";
      },
      mutation: (mutation, batch) => {
        if (batch !== this.#open) throw interleaved(batch);
        events.push({ kind: "mutation", batch, mutation });
      },
      commit: (batch, position) => {
        // Throwing here keeps the assembler from recording the batch as delivered.
        if (batch !== this.#open) throw interleaved(batch);
        this.#open = undefined;
        events.push({ kind: "commit", batch, position });
      },
      rollback: (batch, reason) => {
        if (this.#abandoned.delete(batch)) return;
        if (batch === this.#open) this.#open = undefined;
        events.push({ kind: "rollback", batch, reason });
      },
    };
  }
}

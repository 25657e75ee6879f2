import { PgshovelError } from "../errors.js";
import type { Codec } from "./codec.js";
import { type FrameSplitter, type Framing, framingOf } from "./framing.js";
import type { Message, PositionedMessage, StreamPosition } from "./types.js";

/**
 * Turns the chunks of one input into positioned messages: frames cut by the
 * codec's framing, decoded one at a time, errors located by line or byte.
 */

/** The end of an input that does not hold a whole message. */
export interface TornTail {
  /** Where the cut-off message starts: the position after the last whole one. */
  position: StreamPosition;
  /** How many of its bytes are there. */
  bytes: number;
  /** A sentence for people naming the input and what is missing. */
  description: string;
}

/** Decodes the frames of one input, numbering its lines or bytes in errors. */
export class MessageCutter {
  readonly #codec: Codec;
  readonly #framing: Framing;
  readonly #name: string;
  #splitter: FrameSplitter;
  /** Line numbers are known only when reading starts at the first byte. */
  #line: number | undefined;

  constructor(codec: Codec, name: string, start: number) {
    this.#codec = codec;
    this.#framing = framingOf(codec);
    this.#name = name;
    this.#splitter = this.#framing.splitter(start);
    this.#line = start === 0 && this.#framing.name === "json-lines" ? 0 : undefined;
  }

  /** The position just after the last whole message. */
  get position(): number {
    return this.#splitter.completeEnd;
  }

  /**
   * The messages completed by `chunk`, decoded one at a time as they are taken: a bad
   * message fails only after those before it. Take them all before reusing the chunk.
   */
  *messages(chunk: Uint8Array): Generator<PositionedMessage, void, undefined> {
    for (const frame of this.#splitter.push(chunk)) {
      if (this.#line !== undefined) this.#line++;
      if (frame.payload.length === 0 && this.#framing.name === "json-lines") continue; // a blank line
      let message: Message;
      try {
        message = this.#codec.decode(frame.payload);
      } catch (error) {
        const where =
          this.#line === undefined
            ? `byte ${frame.start}`
            : `line ${this.#line} (byte ${frame.start})`;
        throw new PgshovelError(
          "DECODE_ERROR",
          `${this.#name}: ${where}: ${(error as Error).message}`,
          { cause: error },
        );
      }
      yield { message, next: BigInt(frame.end) };
    }
  }

  /** Forgets an unfinished message, to read it again from its first byte. */
  rewind(): void {
    this.#splitter = this.#framing.splitter(this.#splitter.completeEnd);
  }

  /** True when the input so far ends inside a message. */
  get torn(): boolean {
    return this.#splitter.torn() !== undefined;
  }

  /** At the end of the input: reports a message cut off, if there is one. */
  finish(onTornTail: ((tail: TornTail) => void) | undefined): void {
    const torn = this.#splitter.torn();
    if (torn === undefined) return;
    const description = `${this.#name}: the last message is cut off at byte ${torn.start} (${torn.description})`;
    if (onTornTail) {
      onTornTail({ position: BigInt(torn.start), bytes: torn.bytes, description });
      return;
    }
    throw new PgshovelError("DECODE_ERROR", description, {
      hint: "a writer stopped in the middle of a message; everything before it was read (a file sink cuts the fragment off when it reopens the file)",
    });
  }
}

import { PgshovelError } from "../errors.js";
import { decodeFail } from "./checks.js";
import type { Frame, FrameSplitter, TornFrame } from "./framing.js";

/**
 * The incremental splitters behind the two framings of framing.ts. Each holds
 * at most one unfinished frame, copied, so the caller may reuse its chunks.
 */

/**
 * The largest frame a splitter accepts. A record is one message, far below this; a larger
 * announced length means the bytes are not a stream of this framing, and holding them
 * would exhaust memory.
 */
export const MAX_FRAME_BYTES = 1 << 30;

/** The byte that ends a JSON line. */
export const NEWLINE = 0x0a;

/** The bytes of `parts`, `length` in all, in one array (the part itself when there is one). */
export function concat(parts: Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1 && parts[0]!.length === length) return parts[0]!;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function tooLarge(start: number, length: number): never {
  throw new PgshovelError(
    "DECODE_ERROR",
    `cannot decode stream message: frame at byte ${start}: ${length} bytes, more than the ${MAX_FRAME_BYTES}-byte limit`,
    { hint: "the input is not a stream of this codec (check --codec)" },
  );
}

/**
 * What both splitters keep of their place in the input: where the next chunk starts, where
 * the last whole frame ends, and how many frames came.
 */
abstract class PositionedSplitter implements FrameSplitter {
  #offset: number;
  #completeEnd: number;
  #count = 0;

  constructor(start: number) {
    this.#offset = start;
    this.#completeEnd = start;
  }

  get completeEnd(): number {
    return this.#completeEnd;
  }

  /** Frames so far: the index of the next one. */
  protected get count(): number {
    return this.#count;
  }

  /** Takes the next chunk's place in the input; returns the offset it starts at. */
  protected advance(chunk: Uint8Array): number {
    const start = this.#offset;
    this.#offset += chunk.length;
    return start;
  }

  /** Adds a whole frame ending at `end` (its start is where the last one ended). */
  protected emit(frames: Frame[], payload: Uint8Array, end: number): void {
    frames.push({ payload, start: this.#completeEnd, end });
    this.#completeEnd = end;
    this.#count++;
  }

  abstract push(chunk: Uint8Array): Frame[];
  abstract torn(): TornFrame | undefined;
}

/** Splits JSON lines: a frame ends at each "\n". */
export class LineSplitter extends PositionedSplitter {
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;

  push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    const chunkStart = this.advance(chunk);
    let at = 0;
    for (let newline = chunk.indexOf(NEWLINE); newline !== -1; ) {
      let payload = chunk.subarray(at, newline);
      if (this.#pendingBytes > 0) {
        this.#pending.push(payload);
        payload = concat(this.#pending, this.#pendingBytes + payload.length);
        this.#pending = [];
        this.#pendingBytes = 0;
      }
      this.emit(frames, payload, chunkStart + newline + 1);
      at = newline + 1;
      newline = chunk.indexOf(NEWLINE, at);
    }
    if (at < chunk.length) {
      const rest = chunk.length - at;
      if (this.#pendingBytes + rest > MAX_FRAME_BYTES) {
        tooLarge(this.completeEnd, this.#pendingBytes + rest);
      }
      this.#pending.push(new Uint8Array(chunk.subarray(at)));
      this.#pendingBytes += rest;
    }
    return frames;
  }

  torn(): TornFrame | undefined {
    if (this.#pendingBytes === 0) return undefined;
    return {
      start: this.completeEnd,
      bytes: this.#pendingBytes,
      index: this.count,
      description: `${this.#pendingBytes} bytes without a line end`,
    };
  }
}

/** A varint length read from the front of some bytes: complete, unfinished, or malformed. */
export type LengthPrefix = { size: number; length: number } | "more" | "malformed";

/** Reads the varint length prefix at `at`. */
export function readLength(bytes: Uint8Array, at: number): LengthPrefix {
  let length = 0;
  let shift = 1;
  for (let i = at; i < bytes.length; i++) {
    const byte = bytes[i]!;
    length += (byte & 0x7f) * shift;
    if (byte < 0x80) return { size: i - at + 1, length };
    shift *= 0x80;
    if (shift > 2 ** 35) return "malformed";
  }
  return "more";
}

/** Fails on a length prefix of more than five bytes. */
export function malformed(index: number): never {
  return decodeFail(`frame ${index}`, "length varint too long");
}

/** Splits size-delimited frames: a varint length, then that many bytes. */
export class DelimitedSplitter extends PositionedSplitter {
  /** Bytes of an unfinished length prefix. */
  #prefix: number[] = [];
  /** The payload length of the unfinished frame, once its prefix is whole. */
  #length: number | undefined;
  #prefixSize = 0;
  #pieces: Uint8Array[] = [];
  #have = 0;

  push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    const chunkStart = this.advance(chunk);
    let at = this.#finishPending(chunk, frames);
    while (at < chunk.length) {
      const prefix = readLength(chunk, at);
      if (prefix === "malformed") malformed(this.count);
      if (prefix === "more") {
        this.#prefix = Array.from(chunk.subarray(at));
        return frames;
      }
      const start = chunkStart + at;
      if (prefix.length > MAX_FRAME_BYTES) tooLarge(start, prefix.length);
      const payloadAt = at + prefix.size;
      if (payloadAt + prefix.length > chunk.length) {
        this.#length = prefix.length;
        this.#prefixSize = prefix.size;
        this.#pieces = [new Uint8Array(chunk.subarray(payloadAt))];
        this.#have = chunk.length - payloadAt;
        return frames;
      }
      at = payloadAt + prefix.length;
      this.emit(frames, chunk.subarray(payloadAt, at), chunkStart + at);
    }
    return frames;
  }

  /** Completes the frame left unfinished by earlier chunks; returns where `chunk`'s own frames start. */
  #finishPending(chunk: Uint8Array, frames: Frame[]): number {
    let at = 0;
    if (this.#length === undefined) {
      if (this.#prefix.length === 0) return 0;
      while (at < chunk.length && this.#length === undefined) {
        this.#prefix.push(chunk[at++]!);
        const prefix = readLength(Uint8Array.from(this.#prefix), 0);
        if (prefix === "malformed") malformed(this.count);
        if (prefix !== "more") {
          if (prefix.length > MAX_FRAME_BYTES) tooLarge(this.completeEnd, prefix.length);
          this.#length = prefix.length;
          this.#prefixSize = prefix.size;
          this.#prefix = [];
        }
      }
      if (this.#length === undefined) return at;
    }
    const want = this.#length - this.#have;
    const take = Math.min(want, chunk.length - at);
    const piece = chunk.subarray(at, at + take);
    if (take < want) {
      this.#pieces.push(new Uint8Array(piece));
      this.#have += take;
      return chunk.length;
    }
    this.#pieces.push(piece);
    const payload = concat(this.#pieces, this.#length);
    const end = this.completeEnd + this.#prefixSize + this.#length;
    this.#length = undefined;
    this.#pieces = [];
    this.#have = 0;
    this.emit(frames, payload, end);
    return at + take;
  }

  torn(): TornFrame | undefined {
    const base = { start: this.completeEnd, index: this.count };
    if (this.#length !== undefined) {
      return {
        ...base,
        bytes: this.#prefixSize + this.#have,
        description: `truncated: ${this.#length} bytes announced, ${this.#have} left`,
      };
    }
    if (this.#prefix.length > 0) {
      return { ...base, bytes: this.#prefix.length, description: "truncated length" };
    }
    return undefined;
  }
}

import { decodeFail } from "./checks.js";
import type { Codec, CodecName } from "./codec.js";
import {
  concat,
  DelimitedSplitter,
  LineSplitter,
  MAX_FRAME_BYTES,
  malformed,
  NEWLINE,
  readLength,
} from "./frame-splitters.js";

export { MAX_FRAME_BYTES };

/**
 * How messages sit one after another in a file or pipe, in both directions:
 * writing a frame, cutting frames out of chunks as they arrive, and finding
 * where the last whole frame of a file ends. JSON messages are lines ended by
 * "\n"; protobuf messages are size-delimited: the payload's length as a
 * protobuf varint, then the payload (Java's writeDelimitedTo, Go's protodelim,
 * @bufbuild/protobuf's sizeDelimitedEncode). Nothing here does I/O.
 */

/** The names of the two framings. */
export type FramingName = "json-lines" | "size-delimited";

/** One whole frame cut out by a {@link FrameSplitter}. */
export interface Frame {
  /**
   * The record without its framing. When the frame lies inside one pushed chunk this is a
   * view of that chunk: use it before the chunk's memory is reused.
   */
  payload: Uint8Array;
  /** Offset of the frame's first byte in the input. */
  start: number;
  /** Offset just past the frame: where the next one starts. */
  end: number;
}

/** The unfinished frame at the end of the input so far. */
export interface TornFrame {
  /** Where it starts: the end of the last whole frame. */
  start: number;
  /** How many of its bytes arrived. */
  bytes: number;
  /** How many whole frames came before it (since the splitter started). */
  index: number;
  /** What it lacks, e.g. "truncated: 5 bytes announced, 2 left". */
  description: string;
}

/** Cuts frames out of a byte stream chunk by chunk; a frame may span chunks. */
export interface FrameSplitter {
  /**
   * The frames the chunk completes, in order. The bytes of an unfinished frame are copied
   * and kept, so the caller may reuse the chunk's buffer once it has used the frames.
   */
  push(chunk: Uint8Array): Frame[];
  /** The offset just past the last whole frame. */
  readonly completeEnd: number;
  /** The unfinished frame held, if the input so far does not end on a frame boundary. */
  torn(): TornFrame | undefined;
}

/** Reads bytes at a position: what {@link Framing.completeEnd} needs of a file. */
export interface ByteSource {
  /** The number of bytes. */
  readonly size: number;
  /** Up to `length` bytes starting at `position` (fewer only at the end). */
  read(position: number, length: number): Promise<Uint8Array>;
}

/** One way of framing messages in a byte stream. */
export interface Framing {
  /** Which framing this is. */
  readonly name: FramingName;
  /** The bytes to write for one payload, in order (the payload itself is not copied). */
  frame(payload: Uint8Array): Uint8Array[];
  /**
   * For a textual framing, the text that ends each record ("\n"): a writer that gathers
   * records as text appends it instead of calling {@link frame}.
   */
  readonly textTerminator?: string;
  /** A splitter whose offsets count from `start` (default 0). */
  splitter(start?: number): FrameSplitter;
  /**
   * The offset just past the last whole frame of `source`: its size when it ends on a frame
   * boundary, less when a writer stopped mid-frame. Memory stays bounded whatever the size;
   * a size-delimited file is read through once, frame header by frame header.
   */
  completeEnd(source: ByteSource): Promise<number>;
}

const NEWLINE_BYTES = new Uint8Array([NEWLINE]);
// The window read at a time when scanning a file: big enough for few reads, small enough to keep memory flat.
const SCAN_BYTES = 1 << 20;

/** JSON lines: each record is followed by "\n"; a file's last whole line ends at its last "\n". */
export const jsonLines: Framing = {
  name: "json-lines",
  frame: (payload) => [payload, NEWLINE_BYTES],
  textTerminator: "\n",
  splitter: (start = 0) => new LineSplitter(start),
  async completeEnd(source) {
    // Only the tail is read: the last line end is found walking back window by window.
    for (let end = source.size; end > 0; ) {
      const start = Math.max(0, end - SCAN_BYTES);
      const window = await source.read(start, end - start);
      const newline = window.lastIndexOf(NEWLINE);
      if (newline !== -1) return start + newline + 1;
      end = start;
    }
    return 0;
  },
};

/** Size-delimited frames: a varint length, then the record. */
export const sizeDelimited: Framing = {
  name: "size-delimited",
  frame: (payload) => [lengthPrefix(payload.length), payload],
  splitter: (start = 0) => new DelimitedSplitter(start),
  async completeEnd(source) {
    // Frame headers are walked in windows; a payload larger than the window is skipped, not read.
    let at = 0;
    let index = 0;
    while (at < source.size) {
      const window = await source.read(at, Math.min(SCAN_BYTES, source.size - at));
      let i = 0;
      for (;;) {
        const prefix = readLength(window, i);
        if (prefix === "malformed") malformed(index);
        if (prefix === "more") {
          if (at + window.length >= source.size) return at + i; // a torn length at the end
          break; // the prefix straddles the window: read again from it
        }
        const end = i + prefix.size + prefix.length;
        if (at + end > source.size) return at + i;
        index++;
        if (end >= window.length) {
          i = end;
          break;
        }
        i = end;
      }
      if (i === 0 && at + window.length < source.size) malformed(index);
      at += i;
    }
    return at;
  },
};

/** The varint length prefix of a size-delimited frame of `length` bytes. */
function lengthPrefix(length: number): Uint8Array {
  const bytes: number[] = [];
  let n = length;
  while (n >= 0x80) {
    bytes.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 0x80);
  }
  bytes.push(n);
  return Uint8Array.from(bytes);
}

/** The framing a codec's messages get in a file or pipe: JSON lines, or size-delimited protobuf. */
export function framingOf(codec: Codec | CodecName): Framing {
  const name = typeof codec === "string" ? codec : codec.name;
  switch (name) {
    case "json":
      return jsonLines;
    case "protobuf":
      return sizeDelimited;
  }
}

/** One size-delimited frame in one buffer: the varint length of `payload`, then `payload`. */
export function frameDelimited(payload: Uint8Array): Uint8Array {
  const parts = sizeDelimited.frame(payload);
  return concat(parts, parts[0]!.length + payload.length);
}

/** Splits bytes made of whole size-delimited frames into their payloads; throws DECODE_ERROR on a torn frame. */
export function splitDelimited(bytes: Uint8Array): Uint8Array[] {
  const splitter = sizeDelimited.splitter();
  const payloads = splitter.push(bytes).map((frame) => frame.payload);
  const torn = splitter.torn();
  if (torn !== undefined) return decodeFail(`frame ${torn.index}`, torn.description);
  return payloads;
}

import { type FileHandle, open } from "node:fs/promises";
import { PgshovelError } from "../errors.js";
import { type Codec, type CodecName, codecByName } from "./codec.js";
import { FileChanges } from "./file-changes.js";
import { type Framing, framingOf } from "./framing.js";
import { MessageCutter, type TornTail } from "./message-cutter.js";
import type { Message, PositionedMessage, StreamPosition } from "./types.js";

export type { TornTail };

/**
 * Reading a stream written to a file or a pipe: messages one by one with the
 * position after each, in bounded memory whatever the input's size; a file
 * may be followed as it grows. What the reader does with a last message cut
 * off by a writer that stopped mid-write is the caller's choice (onTornTail).
 */

/** Options of {@link readStreamBytes}. */
export interface ReadStreamBytesOptions {
  /** The codec the stream was written with (a name or a codec object). */
  codec: CodecName | Codec;
  /** Ends the iteration: the reader returns, it does not throw. */
  signal?: AbortSignal;
  /**
   * Called once, after every whole message was delivered, when the input ends inside a
   * message. Without it the reader throws PgshovelError("DECODE_ERROR") there instead.
   */
  onTornTail?: (tail: TornTail) => void;
  /** Names the input in errors (default "input", or the file's path). */
  name?: string;
}

/** Options of {@link readStreamFile}. */
export interface ReadStreamFileOptions extends ReadStreamBytesOptions {
  /** Resume after the message whose `next` this is (default: the file's first byte). */
  from?: StreamPosition;
  /**
   * Keep reading as the file grows, like `tail -f`, until `signal` aborts. A message
   * being written is waited for; one cut off by a writer that died and then replaced
   * (a file sink cuts such a fragment off when it reopens the file) is read anew.
   */
  follow?: boolean;
  /** In follow mode, how often to look at the file when no change is reported (default 500 ms). */
  pollIntervalMs?: number;
}

// Bytes read at a time: large enough for few system calls, small enough to keep memory flat.
const READ_BYTES = 1 << 20;
const DEFAULT_POLL_MS = 500;

const ABORTED = Symbol("aborted");

/**
 * The iterator's next result, or ABORTED if `signal` aborts first. Each call listens to the
 * signal only until it settles: racing one shared promise instead would keep every chunk
 * reachable through the reactions piled on it.
 */
function nextOrAbort<T>(
  iterator: AsyncIterator<T> | Iterator<T>,
  signal: AbortSignal | undefined,
): Promise<IteratorResult<T> | typeof ABORTED> {
  if (signal === undefined) return Promise.resolve(iterator.next());
  if (signal.aborted) return Promise.resolve(ABORTED);
  return new Promise((resolve, reject) => {
    const aborted = () => resolve(ABORTED);
    signal.addEventListener("abort", aborted, { once: true });
    Promise.resolve(iterator.next()).then(
      (result) => {
        signal.removeEventListener("abort", aborted);
        resolve(result);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", aborted);
        reject(error);
      },
    );
  });
}

/** Chunks of a stream's bytes: a Node readable stream (e.g. `process.stdin`), or any iterable. */
export type ByteChunks = AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>;

/**
 * Reads a stream from any byte source, e.g. `process.stdin` or a socket: each whole message
 * with `next`, the byte offset just past it counted from the input's first byte. Aborting
 * `signal` ends the iteration and stops the input (a stream is destroyed).
 */
export async function* readStreamBytes(
  input: ByteChunks,
  options: ReadStreamBytesOptions,
): AsyncGenerator<PositionedMessage, void, undefined> {
  const codec = typeof options.codec === "string" ? codecByName(options.codec) : options.codec;
  const cutter = new MessageCutter(codec, options.name ?? "input", 0);
  const { signal } = options;
  const iterator =
    Symbol.asyncIterator in input ? input[Symbol.asyncIterator]() : input[Symbol.iterator]();
  let waiting = false;
  try {
    for (;;) {
      waiting = true;
      const next = await nextOrAbort(iterator, signal);
      if (next === ABORTED) return;
      waiting = false;
      if (next.done) break;
      const chunk = typeof next.value === "string" ? Buffer.from(next.value, "utf8") : next.value;
      for (const item of cutter.messages(chunk)) {
        yield item;
        if (signal?.aborted) return;
      }
    }
    cutter.finish(options.onTornTail);
  } finally {
    if (waiting) {
      // The input's own iterator cannot end while a read is pending: stop the input itself.
      (input as { destroy?: () => void }).destroy?.();
      Promise.resolve(iterator.return?.()).catch(() => {});
    } else {
      await iterator.return?.();
    }
  }
}

/**
 * Reads a stream file: each whole message with `next`, the byte offset just past it (pass it
 * back as `from` to resume after that message). Memory stays bounded whatever the file's
 * size. With `follow`, keeps reading as the file grows until `signal` aborts; aborting ends
 * the iteration, it does not throw. Throws PgshovelError NOT_FOUND for a missing file,
 * INVALID_ARGUMENT for an unreadable one or a bad `from`, DECODE_ERROR for a bad message.
 */
export async function* readStreamFile(
  path: string,
  options: ReadStreamFileOptions,
): AsyncGenerator<PositionedMessage, void, undefined> {
  const codec = typeof options.codec === "string" ? codecByName(options.codec) : options.codec;
  const { signal, follow = false } = options;
  const name = options.name ?? path;
  const handle = await openStreamFile(path);
  let changes: FileChanges | undefined;
  try {
    let stats = await handle.stat();
    const start = await startOffset(handle, stats.size, options.from, framingOf(codec), name);
    const cutter = new MessageCutter(codec, name, start);
    if (follow) changes = new FileChanges(path, options.pollIntervalMs ?? DEFAULT_POLL_MS, signal);
    const buffer = Buffer.allocUnsafe(READ_BYTES);
    let readAt = start;
    for (;;) {
      if (signal?.aborted) return;
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, readAt);
      if (bytesRead > 0) {
        readAt += bytesRead;
        for (const item of cutter.messages(buffer.subarray(0, bytesRead))) {
          yield item;
          if (signal?.aborted) return;
        }
        continue;
      }
      if (changes === undefined) {
        cutter.finish(options.onTornTail);
        return;
      }
      // At the end while following: wait until the file is no longer as it was read.
      const seen = stats;
      do {
        if (!(await changes.next())) return;
        stats = await handle.stat();
      } while (stats.size === seen.size && stats.mtimeMs === seen.mtimeMs && stats.size <= readAt);
      if (stats.size < cutter.position) {
        throw new PgshovelError(
          "DECODE_ERROR",
          `${name} shrank to ${stats.size} bytes, below position ${cutter.position} already read: it no longer holds the stream that was read`,
        );
      }
      // An unfinished message is read again from its start: its writer may have died and
      // the fragment been cut off and replaced.
      if (cutter.torn) {
        cutter.rewind();
        readAt = cutter.position;
      }
    }
  } finally {
    changes?.close();
    await handle.close();
  }
}

/** The messages alone of a positioned reader, e.g. `messagesOf(readStreamFile(path, options))`. */
export async function* messagesOf(
  source: AsyncIterable<PositionedMessage>,
): AsyncGenerator<Message, void, undefined> {
  for await (const { message } of source) yield message;
}

async function openStreamFile(path: string): Promise<FileHandle> {
  try {
    return await open(path, "r");
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
    throw new PgshovelError(
      missing ? "NOT_FOUND" : "INVALID_ARGUMENT",
      `cannot read ${path}: ${missing ? "no such file" : (error as Error).message}`,
      { cause: error },
    );
  }
}

/** Where reading starts: `from`, checked against the file. */
async function startOffset(
  handle: FileHandle,
  size: number,
  from: StreamPosition | undefined,
  framing: Framing,
  name: string,
): Promise<number> {
  if (from === undefined || from === 0n) return 0;
  const refuse = (problem: string) => {
    throw new PgshovelError(
      "INVALID_ARGUMENT",
      `${name}: cannot resume at byte ${from}: ${problem}`,
      {
        hint: "pass the `next` position of a message read from this file",
      },
    );
  };
  if (from < 0n || from > BigInt(size)) return refuse(`the file holds ${size} bytes`);
  const start = Number(from);
  if (framing.name === "json-lines") {
    // A JSON-lines position always follows a line end; anything else is not a message boundary.
    const before = Buffer.alloc(1);
    await handle.read(before, 0, 1, start - 1);
    if (before[0] !== 0x0a) return refuse("it is not the end of a line");
  }
  return start;
}

import type { FileHandle } from "node:fs/promises";
import { PgshovelError } from "../../errors.js";
import type { Codec } from "../../stream/codec.js";
import { type ByteSource, framingOf } from "../../stream/framing.js";

/**
 * A relay killed while writing may leave the last message of a stream file
 * half-written: part of a JSON line, or part of a size-delimited frame. The
 * batch it belonged to was never acknowledged, so it is re-sent whole; the
 * fragment is cut off before appending, or everything after it would be
 * unreadable.
 */

// Bytes read at a time when looking for the file's first message.
const WINDOW_BYTES = 1 << 20;

function byteSource(handle: FileHandle, size: number): ByteSource {
  return {
    size,
    async read(position, length) {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, position);
      return buffer.subarray(0, bytesRead);
    },
  };
}

/**
 * True when the file's first message decodes with `codec`, or, with no whole message, when
 * its first bytes can start one: the file is a stream of this codec, and cutting its tail
 * loses nothing but a fragment.
 */
async function holdsStream(source: ByteSource, codec: Codec): Promise<boolean> {
  const splitter = framingOf(codec).splitter();
  for (let at = 0; at < source.size; at += WINDOW_BYTES) {
    const first = splitter.push(await source.read(at, WINDOW_BYTES)).find((f) => f.payload.length);
    if (first === undefined) continue;
    try {
      codec.decode(first.payload);
      return true;
    } catch {
      return false;
    }
  }
  // A fragment only: a JSON message starts with "{", a protobuf one with its header (field 1).
  const head = await source.read(0, 16);
  if (codec.name === "json") return head[0] === 0x7b;
  const payloadAt = head.findIndex((byte) => byte < 0x80) + 1;
  return payloadAt === 0 || payloadAt >= head.length || head[payloadAt] === 0x0a;
}

/**
 * Cuts a half-written last message off the stream file open in `handle`. Refuses
 * (SINK_ERROR) to touch a file that does not hold a stream of `codec`.
 */
export async function cutTornTail(handle: FileHandle, path: string, codec: Codec): Promise<void> {
  const { size } = await handle.stat();
  if (size === 0) return;
  const source = byteSource(handle, size);
  let end: number;
  try {
    end = await framingOf(codec).completeEnd(source);
  } catch (error) {
    throw notAStream(path, codec, error);
  }
  if (end === size) return;
  if (!(await holdsStream(source, codec))) throw notAStream(path, codec);
  await handle.truncate(end);
}

function notAStream(path: string, codec: Codec, cause?: unknown): PgshovelError {
  return new PgshovelError(
    "SINK_ERROR",
    `${path} does not hold a ${codec.name} stream: not appending to it`,
    {
      cause,
      hint: "check --codec, or write the stream to another file",
    },
  );
}

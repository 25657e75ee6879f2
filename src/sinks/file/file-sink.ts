import { once } from "node:events";
import { type FileHandle, open } from "node:fs/promises";
import type { Writable } from "node:stream";
import { PgshovelError } from "../../errors.js";
import type { Codec } from "../../stream/codec.js";
import { frameDelimited } from "../../stream/framing.js";
import type { BatchRef, Message } from "../../stream/types.js";
import type { Sink } from "../sink.js";

// Bytes gathered before a write: big enough to amortize syscalls, small enough to keep memory flat.
const FLUSH_BYTES = 1 << 20;
const NEWLINE = new Uint8Array([0x0a]);

/** Frames a message for a byte stream: a JSON line, or a size-delimited protobuf frame. */
export function frame(codec: Codec, message: Message): Uint8Array[] {
  const payload = codec.encode(message);
  return codec.name === "json" ? [payload, NEWLINE] : [frameDelimited(payload)];
}

abstract class ByteStreamSink implements Sink {
  abstract readonly description: string;
  readonly transactional = false;

  constructor(protected readonly codec: Codec) {}

  abstract open(): Promise<void>;
  protected abstract write(chunk: Buffer): Promise<void>;
  /** Makes everything written so far durable. */
  protected abstract sync(): Promise<void>;
  abstract close(): Promise<void>;

  async publishBatch(_batch: BatchRef, messages: AsyncIterable<Message>): Promise<void> {
    const encodeText = this.codec.encodeText;
    if (encodeText) await this.publishLines(messages, encodeText);
    else await this.publishFrames(messages);
    await this.sync();
  }

  /**
   * Lines of a textual codec are gathered as text and turned into UTF-8 once per
   * write: one conversion of a large string costs far less than one per message.
   */
  private async publishLines(
    messages: AsyncIterable<Message>,
    encodeText: (message: Message) => string,
  ): Promise<void> {
    let text = "";
    try {
      for await (const message of messages) {
        text += encodeText(message);
        text += "\n";
        // String length counts UTF-16 units: at most 3 bytes each, so a write stays near FLUSH_BYTES.
        if (text.length >= FLUSH_BYTES / 3) {
          await this.write(Buffer.from(text, "utf8"));
          text = "";
        }
      }
    } catch (error) {
      await this.flushAbandoned(Buffer.from(text, "utf8"));
      throw error;
    }
    if (text.length > 0) await this.write(Buffer.from(text, "utf8"));
  }

  private async publishFrames(messages: AsyncIterable<Message>): Promise<void> {
    let pending: Uint8Array[] = [];
    let size = 0;
    try {
      for await (const message of messages) {
        for (const part of frame(this.codec, message)) {
          pending.push(part);
          size += part.length;
        }
        if (size >= FLUSH_BYTES) {
          await this.write(Buffer.concat(pending, size));
          pending = [];
          size = 0;
        }
      }
    } catch (error) {
      await this.flushAbandoned(Buffer.concat(pending, size));
      throw error;
    }
    if (size > 0) await this.write(Buffer.concat(pending, size));
  }

  /**
   * Writes what an abandoned batch had gathered: every message stamped reaches the stream,
   * so the rollback that follows leaves no gap in the publisher's sequence. The batch's own
   * failure is what the caller reports.
   */
  private async flushAbandoned(chunk: Buffer): Promise<void> {
    if (chunk.length > 0) await this.write(chunk).catch(() => {});
  }
}

/** Appends the stream to a file, fsynced at every commit. */
export class FileSink extends ByteStreamSink {
  readonly description: string;
  private handle: FileHandle | undefined;

  constructor(
    private readonly path: string,
    codec: Codec,
  ) {
    super(codec);
    this.description = `file ${path}`;
  }

  async open(): Promise<void> {
    try {
      this.handle = await open(this.path, "a+");
      if (this.codec.name === "json") await this.repairTornTail(this.handle);
    } catch (error) {
      throw new PgshovelError(
        "SINK_ERROR",
        `cannot open ${this.path} for appending: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }

  /**
   * A relay killed while writing may leave half a line at the end; the batch
   * is re-sent whole, so the fragment is cut off before appending.
   */
  private async repairTornTail(handle: FileHandle): Promise<void> {
    const { size } = await handle.stat();
    if (size === 0) return;
    const tail = Buffer.alloc(Math.min(size, 1 << 20));
    await handle.read(tail, 0, tail.length, size - tail.length);
    if (tail[tail.length - 1] === 0x0a) return;
    const lastNewline = tail.lastIndexOf(0x0a);
    const keep = lastNewline === -1 ? size - tail.length : size - tail.length + lastNewline + 1;
    await handle.truncate(keep);
  }

  protected async write(chunk: Buffer): Promise<void> {
    try {
      await this.handle!.write(chunk);
    } catch (error) {
      throw new PgshovelError(
        "SINK_ERROR",
        `writing to ${this.path}: ${(error as Error).message}`,
        { cause: error, retryable: true },
      );
    }
  }

  protected async sync(): Promise<void> {
    try {
      await this.handle!.datasync();
    } catch (error) {
      throw new PgshovelError("SINK_ERROR", `syncing ${this.path}: ${(error as Error).message}`, {
        cause: error,
        retryable: true,
      });
    }
  }

  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
  }
}

/** Writes the stream to a pipe or terminal (stdout); a batch is acknowledged once written out. */
export class StreamSink extends ByteStreamSink {
  readonly description: string;
  private failure: Error | undefined;

  constructor(
    private readonly stream: Writable,
    codec: Codec,
    name = "stdout",
  ) {
    super(codec);
    this.description = name;
    stream.on("error", (error) => {
      this.failure = error;
    });
  }

  async open(): Promise<void> {}

  protected async write(chunk: Buffer): Promise<void> {
    if (this.failure || this.stream.destroyed || this.stream.writableEnded) {
      throw new PgshovelError(
        "SINK_ERROR",
        `${this.description} is closed${this.failure ? `: ${this.failure.message}` : ""}`,
        {
          cause: this.failure,
        },
      );
    }
    try {
      // once() rejects when the stream errors while we wait.
      if (!this.stream.write(chunk)) await once(this.stream, "drain");
    } catch (error) {
      throw new PgshovelError(
        "SINK_ERROR",
        `writing to ${this.description}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }

  protected async sync(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.stream.write("", (error) =>
        error
          ? reject(
              new PgshovelError("SINK_ERROR", `writing to ${this.description}: ${error.message}`),
            )
          : resolve(),
      );
    });
  }

  async close(): Promise<void> {}
}

import { once } from "node:events";
import { type FileHandle, open } from "node:fs/promises";
import type { Writable } from "node:stream";
import { PgshovelError } from "../../errors.js";
import type { Codec } from "../../stream/codec.js";
import { type Framing, framingOf } from "../../stream/framing.js";
import type { BatchRef, Message } from "../../stream/types.js";
import { type Sink, untilRevoked, type WriteGuard } from "../sink.js";
import { cutTornTail } from "./tail-repair.js";

// Bytes gathered before a write: big enough to amortize syscalls, small enough to keep memory flat.
const FLUSH_BYTES = 1 << 20;

const NOTHING = Buffer.alloc(0);

abstract class ByteStreamSink implements Sink {
  abstract readonly description: string;
  readonly transactional = false;
  /** How messages are cut in the byte stream: JSON lines or size-delimited frames. */
  protected readonly framing: Framing;
  /**
   * Messages taken from a batch that failed before they were written (its source failed,
   * or the guard forbade the write). They carry sequence numbers, so they are written
   * first by the next publish — normally the batch's rollback — and the stream stays
   * contiguous.
   */
  private carried: Buffer = NOTHING;

  constructor(protected readonly codec: Codec) {
    this.framing = framingOf(codec);
  }

  abstract open(): Promise<void>;
  protected abstract write(chunk: Buffer): Promise<void>;
  /** Makes everything written so far durable. */
  protected abstract sync(): Promise<void>;
  abstract close(): Promise<void>;

  async publishBatch(
    _batch: BatchRef,
    messages: AsyncIterable<Message>,
    guard?: WriteGuard,
  ): Promise<void> {
    // Checked before a message is taken: a publish refused outright stamps nothing.
    guard?.check();
    const encodeText = this.codec.encodeText;
    const terminator = this.framing.textTerminator;
    if (encodeText && terminator !== undefined) {
      await this.publishLines(messages, encodeText, terminator, guard);
    } else {
      await this.publishFrames(messages, guard);
    }
    guard?.check();
    await untilRevoked(this.sync(), guard);
  }

  /** Writes `chunk` after what an earlier batch left unwritten, if the guard allows it. */
  private async emit(chunk: Buffer, guard: WriteGuard | undefined): Promise<void> {
    const data = this.carried.length > 0 ? Buffer.concat([this.carried, chunk]) : chunk;
    this.carried = NOTHING;
    try {
      guard?.check();
    } catch (error) {
      this.carried = data;
      throw error;
    }
    await untilRevoked(this.write(data), guard);
  }

  private carry(chunk: Buffer): void {
    if (chunk.length > 0) this.carried = Buffer.concat([this.carried, chunk]);
  }

  /**
   * Lines of a textual codec are gathered as text and turned into UTF-8 once per
   * write: one conversion of a large string costs far less than one per message.
   */
  private async publishLines(
    messages: AsyncIterable<Message>,
    encodeText: (message: Message) => string,
    terminator: string,
    guard: WriteGuard | undefined,
  ): Promise<void> {
    let text = "";
    try {
      for await (const message of messages) {
        text += encodeText(message);
        text += terminator;
        // String length counts UTF-16 units: at most 3 bytes each, so a write stays near FLUSH_BYTES.
        if (text.length >= FLUSH_BYTES / 3) {
          const chunk = Buffer.from(text, "utf8");
          text = "";
          await this.emit(chunk, guard);
        }
      }
    } catch (error) {
      this.carry(Buffer.from(text, "utf8"));
      throw error;
    }
    if (text.length > 0) await this.emit(Buffer.from(text, "utf8"), guard);
  }

  private async publishFrames(
    messages: AsyncIterable<Message>,
    guard: WriteGuard | undefined,
  ): Promise<void> {
    let pending: Uint8Array[] = [];
    let size = 0;
    try {
      for await (const message of messages) {
        for (const part of this.framing.frame(this.codec.encode(message))) {
          pending.push(part);
          size += part.length;
        }
        if (size >= FLUSH_BYTES) {
          const chunk = Buffer.concat(pending, size);
          pending = [];
          size = 0;
          await this.emit(chunk, guard);
        }
      }
    } catch (error) {
      this.carry(Buffer.concat(pending, size));
      throw error;
    }
    if (size > 0) await this.emit(Buffer.concat(pending, size), guard);
  }
}

/**
 * Appends the stream to a file, fsynced at every commit. On open it cuts off a message left
 * half-written by a crash (the relay re-sends that batch whole).
 */
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
      await cutTornTail(this.handle, this.path, this.codec);
    } catch (error) {
      await this.close();
      if (error instanceof PgshovelError) throw error;
      throw new PgshovelError(
        "SINK_ERROR",
        `cannot open ${this.path} for appending: ${(error as Error).message}`,
        { cause: error },
      );
    }
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

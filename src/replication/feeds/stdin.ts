/**
 * A replica fed from its standard input, e.g. `pgshovel relay S | pgshovel replicate S
 * --target … --from -`. A pipe has no position to go back to: the mark is 0, the input
 * is read once, and a restarted replica relies on the applier's batch-id check against
 * the position stored in the target (batches up to it are skipped).
 */
import type { Readable } from "node:stream";
import { type Logger, silentLogger } from "../../log.js";
import type { Codec } from "../../stream/codec.js";
import { readStreamBytes } from "../../stream/reader.js";
import type { FeedBatch, ReplicaFeed } from "../feed.js";
import { FeedBridge } from "./bridge.js";

/** Options of {@link stdinFeed}. */
export interface StdinFeedOptions {
  /** The codec the relay wrote with. */
  codec: Codec;
  /** What to read instead of `process.stdin` (a recorded stream in tests, a socket). */
  input?: Readable;
  /** Hears of a last message cut off at the end of the input. */
  logger?: Logger;
}

/**
 * A {@link ReplicaFeed} over a readable stream, `process.stdin` by default. `batches()`
 * ignores `from` and goes on where the input stands: called again after an iteration
 * ended (a rolled-back batch, an abort), it continues the same input; the end of the
 * input ends it.
 */
export function stdinFeed(options: StdinFeedOptions): ReplicaFeed {
  const logger = options.logger ?? silentLogger;
  const input = options.input ?? process.stdin;
  const description = options.input === undefined ? "stdin" : "the input stream";
  // Stops the reader on close(); each batches() call has its own signal besides.
  const stop = new AbortController();
  const messages = readStreamBytes(input, {
    codec: options.codec,
    name: description,
    signal: stop.signal,
    onTornTail: (tail) => logger.warn({ position: tail.position }, tail.description),
  });
  // A pipe carries a relay's stream from its first message: each publisher starts at
  // sequence 0 with a begin, and anything else is refused rather than half-applied.
  const bridge = new FeedBridge(messages, { description, midStream: false });
  return {
    description,
    async mark() {
      return 0n;
    },
    batches(_from, signal): AsyncIterable<FeedBatch> {
      return bridge.batches(signal);
    },
    async close() {
      stop.abort();
      await bridge.close();
    },
  };
}

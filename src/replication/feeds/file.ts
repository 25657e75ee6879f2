/**
 * A replica fed from a stream file that a relay writes (`--sink file:PATH`): the mark is
 * the end of the last whole batch in the file, and the batches follow the file as it
 * grows. Positions are byte offsets.
 */
import { type Logger, silentLogger } from "../../log.js";
import type { Codec } from "../../stream/codec.js";
import { readStreamFile } from "../../stream/reader.js";
import type { StreamPosition } from "../../stream/types.js";
import type { FeedBatch, ReplicaFeed } from "../feed.js";
import { FeedBridge } from "./bridge.js";

/** Options of {@link fileFeed}. */
export interface FileFeedOptions {
  /** The codec the relay wrote the file with. */
  codec: Codec;
  /** Keep reading as the file grows (a replica's normal case); without it the file's end ends the batches. */
  follow?: boolean;
  /** While following, how often to look at the file when no change is reported (default 500 ms). */
  pollIntervalMs?: number;
  /** Hears of a torn last message in a file that is not followed. */
  logger?: Logger;
}

/** A {@link ReplicaFeed} over a stream file. */
export function fileFeed(path: string, options: FileFeedOptions): ReplicaFeed {
  const logger = options.logger ?? silentLogger;
  const description = `file ${path}`;
  const follow = options.follow ?? false;
  return {
    description,

    /**
     * The byte just after the last commit or rollback in the file now (0 when there is
     * none): every batch ended before it holds transactions committed before the snapshot
     * taken next, and what follows it begins a batch, read whole. The file is read through
     * once, one message at a time; a message being written is passed over.
     */
    async mark(): Promise<StreamPosition> {
      let boundary = 0n;
      const messages = readStreamFile(path, { codec: options.codec, onTornTail: () => {} });
      for await (const { message, next } of messages) {
        const kind = message.body.kind;
        if (kind === "commit" || kind === "rollback") boundary = next;
      }
      return boundary;
    },

    async *batches(from, signal): AsyncGenerator<FeedBatch> {
      const start = from ?? 0n;
      const messages = readStreamFile(path, {
        codec: options.codec,
        from: start,
        follow,
        signal,
        ...(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }),
        onTornTail: (tail) => logger.warn({ position: tail.position }, tail.description),
      });
      // From a position inside the file, its first publisher is met part-way.
      const bridge = new FeedBridge(messages, { description, midStream: start > 0n });
      try {
        yield* bridge.batches(signal);
      } finally {
        await bridge.close();
      }
    },

    async close(): Promise<void> {},
  };
}

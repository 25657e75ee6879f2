/**
 * The replica's stream feeds — a Kafka topic, a stream file, stdin — and the one place
 * that picks among them. (The queue feed reads PgQ itself and lives with the worker.)
 */
import { kafkaNames } from "../../config/names.js";
import { PgshovelError } from "../../errors.js";
import type { Logger } from "../../log.js";
import type { Codec } from "../../stream/codec.js";
import type { ReplicaFeed } from "../feed.js";
import { fileFeed } from "./file.js";
import { type KafkaFeedConnection, kafkaFeed } from "./kafka.js";
import { stdinFeed } from "./stdin.js";

export { FeedBridge, type FeedBridgeOptions } from "./bridge.js";
export { type FileFeedOptions, fileFeed } from "./file.js";
export { type KafkaFeedConnection, type KafkaFeedOptions, kafkaFeed } from "./kafka.js";
export { type StdinFeedOptions, stdinFeed } from "./stdin.js";

/** Which stream a replica reads, as `--from kafka|file:PATH|-` names it. */
export type StreamFeedSpec =
  | { kind: "kafka"; kafka: KafkaFeedConnection }
  | { kind: "file"; path: string }
  | { kind: "stdin" };

/** What every stream feed needs besides its spec. */
export interface StreamFeedContext {
  cluster: string;
  set: string;
  /** The codec the relay writes the stream with. */
  codec: Codec;
  logger: Logger;
}

/**
 * The feed `spec` names. A file is followed as it grows; Kafka reads the set's topic
 * unless another is given.
 */
export function openStreamFeed(spec: StreamFeedSpec, ctx: StreamFeedContext): ReplicaFeed {
  switch (spec.kind) {
    case "kafka":
      return kafkaFeed({
        ...spec.kafka,
        topic: spec.kafka.topic ?? kafkaNames.topic(ctx.cluster, ctx.set),
        codec: ctx.codec,
      });
    case "file":
      return fileFeed(spec.path, { codec: ctx.codec, follow: true, logger: ctx.logger });
    case "stdin":
      return stdinFeed({ codec: ctx.codec, logger: ctx.logger });
    default: {
      const unreachable: never = spec;
      throw new PgshovelError("INTERNAL", `unknown stream feed ${JSON.stringify(unreachable)}`);
    }
  }
}

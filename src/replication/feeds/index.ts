/**
 * The replica feeds that read a relay's stream — a Kafka topic, a stream file, stdin —
 * behind one factory that the `replicate` command calls. A placeholder until the feeds
 * land: every kind reports itself unavailable.
 */

import { PgshovelError } from "../../errors.js";
import type { KafkaConnectionOptions } from "../../kafka/options.js";
import type { Logger } from "../../log.js";
import type { Codec } from "../../stream/codec.js";
import type { ReplicaFeed } from "../feed.js";

/** Where a Kafka feed reads: the brokers and the set's topic. */
export interface KafkaReadOptions extends KafkaConnectionOptions {
  topic: string;
}

/** Which stream a replica reads, as the command's `--from` names it. */
export type StreamFeedSpec =
  | { kind: "kafka"; kafka: KafkaReadOptions }
  | { kind: "file"; path: string }
  | { kind: "stdin" };

/** What every stream feed is told about the replica it feeds. */
export interface StreamFeedContext {
  cluster: string;
  set: string;
  codec: Codec;
  logger: Logger;
}

/** Opens the feed `spec` names. */
export function openStreamFeed(spec: StreamFeedSpec, _context: StreamFeedContext): ReplicaFeed {
  throw new PgshovelError("INVALID_ARGUMENT", `a replica fed from ${spec.kind} is not available`, {
    hint: "use --from queue",
  });
}

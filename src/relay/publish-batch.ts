/**
 * One batch through the publisher: begin with both ticks, each mutation in event order,
 * commit — and nothing that ZooKeeper could not confirm this relay to lead for.
 */
import type { LeaderLease } from "../coordination/leader-lease.js";
import { candidacyLost, type Election } from "../coordination/leadership.js";
import type { Follower } from "../coordination/set-follower.js";
import { PgshovelError } from "../errors.js";
import type { Logger } from "../log.js";
import type { BatchRef, Message } from "../stream/types.js";
import type { BatchInfo, BatchSource } from "./batch-source.js";
import type { FinishedBatch } from "./observer.js";
import type { Publisher, Stamp } from "./publisher.js";

const zooKeeperLost = () =>
  new PgshovelError("ZOOKEEPER_UNAVAILABLE", "ZooKeeper connection lost mid-batch", {
    retryable: true,
  });

/** What a batch is published under. */
export interface PublishContext {
  signal: AbortSignal;
  /** Ends (silence, expiry, lost candidacy) abandon the batch at once, even inside the sink. */
  lease: LeaderLease;
  follower: Follower;
  /** The election, when the relay was elected. */
  election: Election | undefined;
  logger: Logger;
}

/** Publishes `batch` of `source`; resolves once the sink acknowledged its commit. */
export async function publishBatch(
  out: Publisher,
  source: BatchSource,
  batch: BatchInfo,
  ref: BatchRef,
  context: PublishContext,
): Promise<FinishedBatch> {
  const { signal, lease, follower, election } = context;
  const ticks = await source.ticks(batch);
  let count = 0;
  const messages = async function* (stamp: Stamp): AsyncGenerator<Message> {
    yield stamp({ kind: "begin", begin: ticks });
    for await (const run of source.events(batch.id)) {
      for (const mutation of run) {
        if (signal.aborted) throw new PgshovelError("STOPPED", "stopping mid-batch");
        if (!follower.isConnected) throw zooKeeperLost();
        if (election && !election.isLeading) throw candidacyLost("relay");
        lease.check();
        count++;
        yield stamp({ kind: "mutation", mutation });
      }
    }
    yield stamp({ kind: "commit" });
  };
  await out.publish(ref, messages, lease);
  const acknowledgedAt = Date.now();
  context.logger.debug({ batch: batch.id.toString(), mutations: count }, "batch published");
  return { id: batch.id, mutations: count, endTickTime: ticks.end.time, acknowledgedAt };
}

import { clusterNotInitialized, setNotFound } from "../cluster/records.js";
import type { ZooKeeper } from "../cluster/zookeeper.js";
import { zkPaths } from "../config/names.js";
import type { LeaderLease } from "../coordination/leader-lease.js";
import { candidacyLost, Leadership } from "../coordination/leadership.js";
import { type RenewalReason, WorkerSession } from "../coordination/session.js";
import { requireCurrentVersion, SetFollower } from "../coordination/set-follower.js";
import { describeError, isPgshovelError, PgshovelError } from "../errors.js";
import { Backoff } from "../retry.js";
import type { BatchRef, Message } from "../stream/types.js";
import type { BatchInfo, BatchSource } from "./batch-source.js";
import { CurrentSource } from "./current-source.js";
import type { RelayDiagnostics, RelayOptions, RelayOutcome, RelayState } from "./options.js";
import { Publisher, type Stamp } from "./publisher.js";

const zooKeeperLost = () =>
  new PgshovelError("ZOOKEEPER_UNAVAILABLE", "ZooKeeper connection lost mid-batch", {
    retryable: true,
  });

/** What the relay logs when it gives its ZooKeeper session up, by reason. */
const RENEWAL_LOG: Record<RenewalReason, string> = {
  fenced:
    "fenced by a newer Kafka producer: stopped publishing; standing for election again in a new ZooKeeper session",
  "session-expired": "the ZooKeeper session expired: stopped publishing; opening a new session",
  silent:
    "ZooKeeper has not answered for the silence bound: stopped publishing at once; as if the ZooKeeper session expired, opening a new session",
};

/**
 * The relay: forwards a set's batches to a sink as begin, mutations, commit;
 * finishes a batch only after the sink acknowledged its commit. Its parts come
 * from the caller: the batch source, the sink, and (or their defaults) the set
 * follower and the election of each ZooKeeper session.
 */
export class Relay {
  private readonly out: Publisher;
  private readonly session: WorkerSession;
  private readonly source: CurrentSource;
  private state: RelayState = "starting";
  private currentBatch: bigint | null = null;
  private batches = 0;
  private mutations = 0;
  private lastTickAt = 0;

  constructor(private readonly options: RelayOptions) {
    const { cluster, set, consumer, logger } = options;
    this.out = new Publisher(options.sink, logger);
    this.source = new CurrentSource(options.source, logger);
    const follower = options.follower ?? ((zk) => new SetFollower(zk, cluster, set, logger));
    const path = zkPaths.relayElection(cluster, set, consumer);
    const election =
      options.leadership ?? ((zk) => new Leadership({ zk, path, logger, role: "relay" }));
    this.session = new WorkerSession({
      ...options,
      parts: (zk) => ({ follower: follower(zk), election: election(zk) }),
    });
  }

  /** This relay's publisher id: a UUID in the header of every message it publishes. */
  get publisher(): string {
    return this.out.id;
  }

  /** The ZooKeeper session in use: `options.zk`, or the one that replaced it after an expiry. */
  get zookeeper(): ZooKeeper {
    return this.session.zk;
  }

  /** Runs until aborted (→ stopped), the set is dropped (→ dropped) or an unrecoverable error (throws). */
  async run(signal: AbortSignal): Promise<RelayOutcome> {
    const { cluster, set, sink, logger, elect, maxZooKeeperPauseMs } = this.options;
    const session = this.session;
    try {
      const first = await session.follower.confirmed(signal, maxZooKeeperPauseMs);
      if (first.kind === "dropped") {
        throw first.what === "cluster" ? clusterNotInitialized(cluster) : setNotFound(cluster, set);
      }
      requireCurrentVersion(first);
      for (;;) {
        try {
          if (elect) {
            this.state = "standby";
            await session.election.acquire(signal, { publisher: this.publisher, pid: process.pid });
          }
          this.state = "opening sink";
          await sink.open();
          return await this.loop(signal);
        } catch (error) {
          if (signal.aborted) throw error;
          if (this.deposed(error)) {
            // `cluster drop --force` removes our candidate node with the set: that is the end.
            if (await this.setDropped(signal)) return { kind: "dropped" };
            // Our candidate node vanished while we led: another relay may lead now. Stand
            // again in this session.
            logger.warn(
              "no longer the active relay: stopped publishing; standing for election again",
            );
            await sink.close().catch(() => {});
            continue;
          }
          // Either way another relay may lead now: an expired session lost our candidacy,
          // and a fenced Kafka producer means a newer one took the transactional id.
          const why = session.renewalReason(error);
          if (!why) throw error;
          logger.warn({ hosts: session.zk.hosts, err: describeError(error) }, RENEWAL_LOG[why]);
          this.state = "renewing the ZooKeeper session";
          // A Kafka producer may have been fenced meanwhile: the sink opens again once we lead.
          await session.renew(signal, () => sink.close().catch(() => {}));
        }
      }
    } catch (error) {
      if (signal.aborted) return { kind: "stopped" };
      throw error;
    } finally {
      this.state = "stopped";
      await this.source.close();
      await sink.close().catch(() => {});
      await session.close();
    }
  }

  /** Whether ZooKeeper confirms that the set (or its cluster) is gone. */
  private async setDropped(signal: AbortSignal): Promise<boolean> {
    const state = await this.session.follower
      .confirmed(signal, this.options.maxZooKeeperPauseMs)
      .catch(() => undefined);
    if (state?.kind !== "dropped") return false;
    this.options.logger.info({ set: this.options.set }, "the set was dropped: stopping");
    return true;
  }

  /** Whether `error` comes from losing the candidacy while leading, the session intact. */
  private deposed(error: unknown): boolean {
    const { election, follower } = this.session;
    return (
      this.options.elect &&
      isPgshovelError(error, "FENCED") &&
      !election.isLeading &&
      !follower.hasExpired
    );
  }

  /**
   * Publishes under a lease taken now that the relay leads: once it ends (ZooKeeper silent
   * for the bound, the session expired, the candidacy gone), the batch in flight is
   * abandoned at once, even inside the sink, and its reason ends the loop.
   */
  private async loop(signal: AbortSignal): Promise<RelayOutcome> {
    const lease = this.session.lease(this.options.elect);
    try {
      return await this.leading(signal, lease);
    } finally {
      lease.close();
    }
  }

  private async leading(outer: AbortSignal, lease: LeaderLease): Promise<RelayOutcome> {
    const { logger, set, elect, maxZooKeeperPauseMs } = this.options;
    // What the relay waits on (ZooKeeper, polls, backoffs, the sink) stops at either.
    const signal = AbortSignal.any([outer, lease.signal]);
    const backoff = new Backoff({
      initialDelayMs: this.options.retryInitialMs,
      maxDelayMs: this.options.retryMaxMs,
    });
    let checkSink = true;
    let version: number | undefined;
    while (!outer.aborted) {
      lease.check();
      if (elect && !this.session.election.isLeading) throw candidacyLost("relay");
      const follower = this.session.follower;
      try {
        const state = await follower.confirmed(signal, maxZooKeeperPauseMs);
        if (state.kind === "dropped") {
          logger.info({ set }, "the set was dropped: stopping");
          return { kind: "dropped" };
        }
        requireCurrentVersion(state);
        version = state.version;
        const { source, opened } = await this.source.on(state.config.database.dsn);
        if (opened) checkSink = true;
        this.state = "polling";
        const batch = await this.nextBatch(source);
        if (!batch) {
          await follower.sleep(this.options.pollIntervalMs, signal);
          continue;
        }
        const ref: BatchRef = { node: source.node, id: batch.id };
        if (checkSink) {
          checkSink = false;
          if (await this.out.sinkHolds(ref)) {
            logger.info(
              { batch: ref.id.toString() },
              "the sink already holds this batch: finishing it without publishing again",
            );
            await source.finish(batch.id);
            continue;
          }
        }
        await this.publish(source, batch, ref, signal, lease);
        await source.finish(batch.id);
        this.batches++;
        this.currentBatch = null;
        backoff.reset();
      } catch (error) {
        this.currentBatch = null;
        if (outer.aborted) break;
        // Whatever failed, it failed because the lease ended, or after: stop leading.
        lease.check();
        if (!(error instanceof PgshovelError) || !error.retryable) {
          if (!(await this.configurationMoved(error, version, signal))) throw error;
          // The set changed under the failed call (dropped, moved, tables changed): the
          // next round follows the new configuration.
          await this.source.close();
          checkSink = true;
          continue;
        }
        const waitMs = backoff.next();
        logger.warn(
          { err: describeError(error), retryInMs: waitMs },
          "recoverable failure: retrying",
        );
        if (error.code === "DATABASE_UNAVAILABLE" || error.code === "DATABASE_ERROR") {
          await this.source.close();
        }
        checkSink = true;
        this.state = "backing off";
        await follower.sleep(waitMs, signal);
      }
    }
    return { kind: "stopped" };
  }

  /**
   * The next batch. When there is none, the relay may tick the queue itself, at most once
   * per poll interval: that bounds how many batches it cuts for the queue's other
   * consumers, which may be slower (Kafka commits a transaction per batch).
   */
  private async nextBatch(source: BatchSource): Promise<BatchInfo | undefined> {
    const batch = await source.nextBatch();
    if (batch || !this.options.selfTick) return batch;
    if (Date.now() - this.lastTickAt < this.options.pollIntervalMs) return undefined;
    this.lastTickAt = Date.now();
    await source.tick();
    return source.nextBatch();
  }

  private async publish(
    source: BatchSource,
    batch: BatchInfo,
    ref: BatchRef,
    signal: AbortSignal,
    lease: LeaderLease,
  ): Promise<void> {
    this.currentBatch = batch.id;
    this.state = "publishing";
    const ticks = await source.ticks(batch);
    const { follower, election } = this.session;
    const elect = this.options.elect;
    let count = 0;
    const messages = async function* (stamp: Stamp): AsyncGenerator<Message> {
      yield stamp({ kind: "begin", begin: ticks });
      for await (const run of source.events(batch.id)) {
        for (const mutation of run) {
          if (signal.aborted) throw new PgshovelError("STOPPED", "stopping mid-batch");
          // Nothing is published that ZooKeeper could not confirm us to lead for.
          if (!follower.isConnected) throw zooKeeperLost();
          if (elect && !election.isLeading) throw candidacyLost("relay");
          lease.check();
          count++;
          yield stamp({ kind: "mutation", mutation });
        }
      }
      yield stamp({ kind: "commit" });
    };
    await this.out.publish(ref, messages, lease);
    this.mutations += count;
    this.options.logger.debug({ batch: batch.id.toString(), mutations: count }, "batch published");
  }

  /**
   * Whether a database error may come from a configuration change that the watch has
   * not delivered yet: `set drop` and `set update` commit in the database only after
   * ZooKeeper, so a relay between the two can find its queue gone ("Not subscriber to
   * queue") or a table's trigger replaced. ZooKeeper, read again, tells.
   */
  private async configurationMoved(
    error: unknown,
    version: number | undefined,
    signal: AbortSignal,
  ): Promise<boolean> {
    if (!isPgshovelError(error, "DATABASE_ERROR") || version === undefined) return false;
    const follower = this.session.follower;
    follower.invalidate();
    const state = await follower
      .confirmed(signal, this.options.maxZooKeeperPauseMs)
      .catch(() => undefined);
    if (state === undefined) return false;
    const moved = state.kind !== "active" || state.version !== version;
    if (moved) {
      this.options.logger.info(
        { err: describeError(error) },
        "a database error under a configuration that has changed since: following the new one",
      );
    }
    return moved;
  }

  /** A snapshot of what the relay is doing, for SIGUSR1. */
  async diagnostics(): Promise<RelayDiagnostics> {
    const info = await this.source.open?.consumerInfo().catch(() => undefined);
    return {
      set: this.options.set,
      consumer: this.options.consumer,
      publisher: this.publisher,
      sink: this.options.sink.description,
      state: this.state,
      currentBatch: this.currentBatch === null ? null : this.currentBatch.toString(),
      lastSequence: this.out.lastSequence?.toString() ?? null,
      batchesPublished: this.batches,
      mutationsPublished: this.mutations,
      lagSeconds: info?.lagSeconds ?? null,
      pendingEvents: info?.pendingEvents ?? null,
    };
  }
}

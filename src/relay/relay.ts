import { hostname } from "node:os";
import { clusterNotInitialized, setNotFound } from "../cluster/records.js";
import type { ZooKeeper } from "../cluster/zookeeper.js";
import { zkPaths } from "../config/names.js";
import type { LeaderLease } from "../coordination/leader-lease.js";
import { candidacyLost, Leadership } from "../coordination/leadership.js";
import { type RenewalReason, WorkerSession } from "../coordination/session.js";
import { requireCurrentVersion, SetFollower } from "../coordination/set-follower.js";
import { describeError, isPgshovelError, PgshovelError } from "../errors.js";
import { Backoff } from "../retry.js";
import type { BatchRef } from "../stream/types.js";
import type { BatchInfo, BatchSource } from "./batch-source.js";
import { configurationMoved, setDropped } from "./configuration-change.js";
import { CurrentSource } from "./current-source.js";
import { openSink } from "./open-sink.js";
import {
  DEFAULT_MAX_SINK_WAIT_MS,
  type RelayDiagnostics,
  type RelayOptions,
  type RelayOutcome,
} from "./options.js";
import { RelayProgress } from "./progress.js";
import { publishBatch } from "./publish-batch.js";
import { Publisher } from "./publisher.js";

/** When this process started: candidates carry it, so that status can tell a restarted relay. */
const STARTED_AT = new Date(Date.now() - process.uptime() * 1000).toISOString();

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
  private readonly progress: RelayProgress;
  private lastTickAt = 0;

  constructor(private readonly options: RelayOptions) {
    const { cluster, set, consumer, logger } = options;
    this.progress = new RelayProgress(options.observer, logger);
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
            this.progress.enter("standby");
            await session.election.acquire(signal, {
              publisher: this.publisher,
              pid: process.pid,
              host: hostname(),
              startedAt: STARTED_AT,
            });
          }
          this.progress.enter("opening sink");
          await openSink(
            sink,
            {
              maxWaitMs: this.options.maxSinkWaitMs ?? DEFAULT_MAX_SINK_WAIT_MS,
              retryInitialMs: this.options.retryInitialMs,
              retryMaxMs: this.options.retryMaxMs,
              isLeading: () => !elect || this.session.election.isLeading,
              logger,
            },
            signal,
          );
          return await this.loop(signal);
        } catch (error) {
          if (signal.aborted) throw error;
          if (this.deposed(error)) {
            // `cluster drop --force` removes our candidate node with the set: that is the end.
            if (await setDropped(this.session.follower, this.options.maxZooKeeperPauseMs, signal)) {
              logger.info({ set: this.options.set }, "the set was dropped: stopping");
              return { kind: "dropped" };
            }
            // Our candidate node vanished while we led: another relay may lead now. Stand
            // again in this session.
            logger.warn(
              "no longer the active relay: stopped publishing; standing for election again",
            );
            await sink.close().catch(() => {});
            this.progress.notify((o) => o.standingAgain?.("deposed"));
            continue;
          }
          // Either way another relay may lead now: an expired session lost our candidacy,
          // and a fenced Kafka producer means a newer one took the transactional id.
          const why = session.renewalReason(error);
          if (!why) throw error;
          logger.warn({ hosts: session.zk.hosts, err: describeError(error) }, RENEWAL_LOG[why]);
          this.progress.enter("renewing the ZooKeeper session");
          this.progress.notify((o) => o.standingAgain?.(why));
          // A Kafka producer may have been fenced meanwhile: the sink opens again once we lead.
          await session.renew(signal, () => sink.close().catch(() => {}));
        }
      }
    } catch (error) {
      if (signal.aborted) return { kind: "stopped" };
      throw error;
    } finally {
      this.progress.enter("stopped");
      await this.source.close();
      await sink.close().catch(() => {});
      await session.close();
    }
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
        const { source, opened } = await this.source.on(state.config.database.dsn, signal);
        if (opened) checkSink = true;
        this.progress.enter("polling");
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
            this.progress.notify((o) => o.batchSkipped?.(batch.id));
            continue;
          }
        }
        this.progress.currentBatch = batch.id;
        this.progress.enter("publishing");
        const published = await publishBatch(this.out, source, batch, ref, {
          signal,
          lease,
          follower: this.session.follower,
          election: this.options.elect ? this.session.election : undefined,
          logger: this.options.logger,
        });
        await source.finish(batch.id);
        this.progress.finished(published);
        backoff.reset();
      } catch (error) {
        this.progress.currentBatch = null;
        if (outer.aborted) break;
        // Whatever failed, it failed because the lease ended, or after: stop leading.
        lease.check();
        if (!(error instanceof PgshovelError) || !error.retryable) {
          const moved = await configurationMoved(error, version, this.session.follower, {
            maxPauseMs: this.options.maxZooKeeperPauseMs,
            logger: this.options.logger,
            signal,
          });
          if (!moved) throw error;
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
        this.progress.notify((o) => o.retrying?.({ code: error.code, delayMs: waitMs }));
        this.progress.enter("backing off");
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

  /** A snapshot of what the relay is doing, for SIGUSR1. */
  async diagnostics(): Promise<RelayDiagnostics> {
    const info = await this.source.open?.consumerInfo().catch(() => undefined);
    return {
      set: this.options.set,
      consumer: this.options.consumer,
      publisher: this.publisher,
      sink: this.options.sink.description,
      state: this.progress.state,
      currentBatch: this.progress.currentBatch?.toString() ?? null,
      lastSequence: this.out.lastSequence?.toString() ?? null,
      batchesPublished: this.progress.batches,
      mutationsPublished: this.progress.mutations,
      lagSeconds: info?.lagSeconds ?? null,
      pendingEvents: info?.pendingEvents ?? null,
    };
  }
}

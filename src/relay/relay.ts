import { hostname } from "node:os";
import { clusterNotInitialized, setNotFound } from "../cluster/records.js";
import type { ZooKeeper } from "../cluster/zookeeper.js";
import { zkPaths } from "../config/names.js";
import { candidacyLost, Leadership } from "../coordination/leadership.js";
import { WorkerSession } from "../coordination/session.js";
import { requireCurrentVersion, SetFollower } from "../coordination/set-follower.js";
import { describeError, isPgshovelError, PgshovelError } from "../errors.js";
import { Backoff, withRetry } from "../retry.js";
import type { BatchRef, Message } from "../stream/types.js";
import type { BatchInfo, BatchSource } from "./batch-source.js";
import { CurrentSource } from "./current-source.js";
import type { FinishedBatch, RelayObserver } from "./observer.js";
import {
  DEFAULT_MAX_SINK_WAIT_MS,
  type RelayDiagnostics,
  type RelayOptions,
  type RelayOutcome,
  type RelayState,
} from "./options.js";
import { Publisher } from "./publisher.js";

/** When this process started: candidates carry it, so that status can tell a restarted relay. */
const STARTED_AT = new Date(Date.now() - process.uptime() * 1000).toISOString();

const zooKeeperLost = () =>
  new PgshovelError("ZOOKEEPER_UNAVAILABLE", "ZooKeeper connection lost mid-batch", {
    retryable: true,
  });

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
            this.setState("standby");
            await session.election.acquire(signal, {
              publisher: this.publisher,
              pid: process.pid,
              host: hostname(),
              startedAt: STARTED_AT,
            });
          }
          this.setState("opening sink");
          await this.openSink(signal);
          return await this.loop(signal);
        } catch (error) {
          if (signal.aborted) throw error;
          if (this.deposed(error)) {
            // Our candidate node vanished while we led: another relay may lead now. Stand
            // again in this session.
            logger.warn(
              "no longer the active relay: stopped publishing; standing for election again",
            );
            await sink.close().catch(() => {});
            this.notify((o) => o.standingAgain?.("deposed"));
            continue;
          }
          // Either way another relay may lead now: an expired session lost our candidacy,
          // and a fenced Kafka producer means a newer one took the transactional id.
          const why = session.renewalReason(error);
          if (!why) throw error;
          logger.warn(
            { hosts: session.zk.hosts },
            why === "fenced"
              ? "fenced by a newer Kafka producer: stopped publishing; standing for election again in a new ZooKeeper session"
              : "the ZooKeeper session expired: stopped publishing; opening a new session",
          );
          this.setState("renewing the ZooKeeper session");
          this.notify((o) => o.standingAgain?.(why));
          // A Kafka producer may have been fenced meanwhile: the sink opens again once we lead.
          await session.renew(signal, () => sink.close().catch(() => {}));
        }
      }
    } catch (error) {
      if (signal.aborted) return { kind: "stopped" };
      throw error;
    } finally {
      this.setState("stopped");
      await this.source.close();
      await sink.close().catch(() => {});
      await session.close();
    }
  }

  /**
   * Opens the sink, retrying retryable failures (brokers not started yet, say) with backoff
   * for up to `maxSinkWaitMs`. The relay leads meanwhile: a sink it cannot reach, a standby
   * could not reach either, and the bound ends the wait (exit 1, for the supervisor to try
   * again). A relay that loses its candidacy meanwhile stops waiting and stands again.
   */
  private async openSink(signal: AbortSignal): Promise<void> {
    const { sink, logger, elect } = this.options;
    const maxWaitMs = this.options.maxSinkWaitMs ?? DEFAULT_MAX_SINK_WAIT_MS;
    const bound = AbortSignal.timeout(maxWaitMs);
    try {
      await withRetry(
        async () => {
          if (elect && !this.session.election.isLeading) throw candidacyLost("relay");
          await sink.open();
        },
        {
          attempts: Number.POSITIVE_INFINITY,
          initialDelayMs: this.options.retryInitialMs,
          maxDelayMs: this.options.retryMaxMs,
          signal: AbortSignal.any([signal, bound]),
          onRetry: (error, attempt, delayMs) =>
            logger.warn(
              { sink: sink.description, attempt, retryInMs: delayMs, err: describeError(error) },
              "the sink did not open: retrying",
            ),
        },
      );
    } catch (error) {
      if (signal.aborted || !bound.aborted || !isPgshovelError(error) || !error.retryable) {
        throw error;
      }
      throw new PgshovelError(
        error.code,
        `the sink (${sink.description}) did not open within ${maxWaitMs} ms (--max-sink-wait): ${error.message}`,
        { cause: error, ...(error.hint === undefined ? {} : { hint: error.hint }) },
      );
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

  private async loop(signal: AbortSignal): Promise<RelayOutcome> {
    const { logger, set, elect, maxZooKeeperPauseMs } = this.options;
    const backoff = new Backoff({
      initialDelayMs: this.options.retryInitialMs,
      maxDelayMs: this.options.retryMaxMs,
    });
    let checkSink = true;
    let version: number | undefined;
    while (!signal.aborted) {
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
        this.setState("polling");
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
            this.notify((o) => o.batchSkipped?.(batch.id));
            continue;
          }
        }
        const published = await this.publish(source, batch, ref, signal);
        await source.finish(batch.id);
        this.batches++;
        this.notify((o) => o.batchFinished?.(published));
        this.currentBatch = null;
        backoff.reset();
      } catch (error) {
        this.currentBatch = null;
        if (signal.aborted) break;
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
        this.notify((o) => o.retrying?.({ code: error.code, delayMs: waitMs }));
        this.setState("backing off");
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
  ): Promise<FinishedBatch> {
    this.currentBatch = batch.id;
    this.setState("publishing");
    const ticks = await source.ticks(batch);
    const { follower, election } = this.session;
    const elect = this.options.elect;
    let count = 0;
    await this.out.publish(ref, async function* (stamp): AsyncGenerator<Message> {
      yield stamp({ kind: "begin", begin: ticks });
      for await (const run of source.events(batch.id)) {
        for (const mutation of run) {
          if (signal.aborted) throw new PgshovelError("STOPPED", "stopping mid-batch");
          // Nothing is published that ZooKeeper could not confirm us to lead for.
          if (!follower.isConnected) throw zooKeeperLost();
          if (elect && !election.isLeading) throw candidacyLost("relay");
          count++;
          yield stamp({ kind: "mutation", mutation });
        }
      }
      yield stamp({ kind: "commit" });
    });
    const acknowledgedAt = Date.now();
    this.mutations += count;
    this.options.logger.debug({ batch: batch.id.toString(), mutations: count }, "batch published");
    return {
      id: batch.id,
      mutations: count,
      endTickTime: ticks.end.time,
      acknowledgedAt,
    };
  }

  private setState(state: RelayState): void {
    if (state === this.state) return;
    this.state = state;
    this.notify((o) => o.stateChanged?.(state));
  }

  /** Tells the observer, if any; an observer that throws does not stop the relay. */
  private notify(tell: (observer: RelayObserver) => void): void {
    const observer = this.options.observer;
    if (!observer) return;
    try {
      tell(observer);
    } catch (error) {
      this.options.logger.warn({ err: describeError(error) }, "the relay's observer failed");
    }
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

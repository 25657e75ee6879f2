/**
 * The replication worker: one active per (set, target), elected in ZooKeeper like a relay.
 * It checks the target's tables, bootstraps the tables not copied yet (the stream's mark
 * first, then the snapshot copy), and applies the feed's batches, one target transaction
 * each, calling the batch's `done()` only after the commit. Its parts come from the caller.
 */

import { setTimeout as delay } from "node:timers/promises";
import { clusterNotInitialized, setNotFound } from "../cluster/records.js";
import type { ZooKeeper } from "../cluster/zookeeper.js";
import { zkPaths } from "../config/names.js";
import type { LeaderLease } from "../coordination/leader-lease.js";
import { candidacyLost, type Election, Leadership } from "../coordination/leadership.js";
import { type RenewalReason, WorkerSession } from "../coordination/session.js";
import { requireCurrentVersion, SetFollower, type SetState } from "../coordination/set-follower.js";
import { describeError, isPgshovelError, PgshovelError } from "../errors.js";
import { Backoff } from "../retry.js";
import type { WriteGuard } from "../sinks/sink.js";
import type { Mutation } from "../stream/types.js";
import { holdsHorizon } from "./caught-up.js";
import { checkContinuity, lagSeconds, positionAfter } from "./continuity.js";
import type { FeedBatch, ReplicaFeed } from "./feed.js";
import { copySnapshots, type ReplicaRun, settleTables } from "./settle.js";
import type { WorkerOptions, WorkerOutcome, WorkerState } from "./worker-options.js";

const ROLE = "replica worker";
const IDLE = Symbol("idle");
type Active = Extract<SetState, { kind: "active" }>;

const RENEWAL_LOG: Record<RenewalReason, string> = {
  fenced: "fenced: stopped applying; standing for election again in a new ZooKeeper session",
  "session-expired": "the ZooKeeper session expired: stopped applying; opening a new session",
  silent:
    "ZooKeeper has not answered for the silence bound: stopped applying at once; as if the ZooKeeper session expired, opening a new session",
};

/**
 * What the worker writes under: its lease, and the stop. Whatever it waits on stops at
 * either (`signal`); `check()` comes right before each write and each COMMIT.
 */
function leaseGuard(stop: AbortSignal, lease: LeaderLease): WriteGuard {
  return {
    signal: AbortSignal.any([stop, lease.signal]),
    check() {
      stop.throwIfAborted();
      lease.check();
    },
  };
}

/** An election whose path needs the target's node id, known only once the target is read. */
class TargetElection implements Election {
  node: string | undefined;
  private inner: Election | undefined;
  constructor(private readonly make: (node: string) => Election) {}
  get isLeading(): boolean {
    return this.inner?.isLeading ?? false;
  }
  /** Already aborted before the election exists: nothing leads yet. */
  get termSignal(): AbortSignal {
    return this.inner?.termSignal ?? AbortSignal.abort();
  }
  acquire(signal: AbortSignal, describe: Record<string, unknown>): Promise<void> {
    if (!this.node) throw new PgshovelError("INTERNAL", "election before the target's node id");
    this.inner ??= this.make(this.node);
    return this.inner.acquire(signal, describe);
  }
  async release(): Promise<void> {
    await this.inner?.release();
  }
}

/** See the file's comment; `run` until stopped, dropped, caught up or an unrecoverable error. */
export class ReplicaWorker {
  private readonly session: WorkerSession;
  private feed: ReplicaFeed | undefined;
  private probe: ReturnType<NonNullable<WorkerOptions["untilCaughtUp"]>> | undefined;
  private lastLagLogAt = 0;

  constructor(private readonly options: WorkerOptions) {
    const { cluster, set, logger } = options;
    const follower = options.follower ?? ((zk) => new SetFollower(zk, cluster, set, logger));
    const leadership =
      options.leadership ??
      ((zk: ZooKeeper, node: string) =>
        new Leadership({
          zk,
          path: zkPaths.replicaElection(cluster, set, node),
          logger,
          role: ROLE,
        }));
    this.session = new WorkerSession({
      ...options,
      parts: (zk) => ({
        follower: follower(zk),
        election: new TargetElection((node) => leadership(zk, node)),
      }),
    });
  }

  /** The ZooKeeper session in use: `options.zk`, or the one that replaced it after an expiry. */
  get zookeeper(): ZooKeeper {
    return this.session.zk;
  }

  private set state(state: WorkerState) {
    this.options.observer?.state?.(state);
  }

  /** Runs the worker; sessions are renewed and leadership stood for again as the relay does. */
  async run(signal: AbortSignal): Promise<WorkerOutcome> {
    const { logger, cluster, set } = this.options;
    try {
      // A set that is not there at the start is a mistake (a typo, another cluster), not a drop.
      const first = await this.session.follower.confirmed(signal, this.options.maxZooKeeperPauseMs);
      if (first.kind === "dropped") {
        throw first.what === "cluster" ? clusterNotInitialized(cluster) : setNotFound(cluster, set);
      }
      for (;;) {
        try {
          return await this.follow(signal);
        } catch (error) {
          if (signal.aborted) throw error;
          await this.closeParts();
          const { election, follower } = this.session;
          if (isPgshovelError(error, "FENCED") && !election.isLeading && !follower.hasExpired) {
            logger.warn("no longer the active replica worker: standing for election again");
            continue;
          }
          const why = this.session.renewalReason(error);
          if (!why) throw error;
          logger.warn(
            { hosts: this.session.zk.hosts, err: describeError(error) },
            RENEWAL_LOG[why],
          );
          this.state = "renewing the ZooKeeper session";
          this.options.observer?.standingAgain?.(why);
          await this.session.renew(signal, async () => {});
        }
      }
    } catch (error) {
      if (signal.aborted) return { kind: "stopped" };
      throw error;
    } finally {
      this.state = "stopped";
      await this.closeParts();
      await this.probe?.close();
      await this.session.close();
    }
  }

  private async closeParts(): Promise<void> {
    const feed = this.feed;
    this.feed = undefined;
    await feed?.close().catch(() => {});
    await this.options.target.close().catch(() => {});
  }

  private async confirmed(signal: AbortSignal): Promise<Active | { kind: "dropped" }> {
    const state = await this.session.follower.confirmed(signal, this.options.maxZooKeeperPauseMs);
    requireCurrentVersion(state);
    return state;
  }

  /**
   * Leads (once the target's node id is known), then runs cycles under a lease, retrying
   * recoverable failures. A lease that ended (ZooKeeper silent for the bound, the session
   * expired, the candidacy gone) stops whatever is in flight at once — the target
   * transaction rolls back — and its reason goes to `run`, which stands again.
   */
  private async follow(signal: AbortSignal): Promise<WorkerOutcome> {
    const { logger, elect, target } = this.options;
    const backoff = new Backoff({
      initialDelayMs: this.options.retryInitialMs,
      maxDelayMs: this.options.retryMaxMs,
    });
    let version: number | undefined;
    let lease: LeaderLease | undefined;
    try {
      while (!signal.aborted) {
        try {
          const state = await this.confirmed(signal);
          if (state.kind === "dropped") return { kind: "dropped" };
          version = state.version;
          const election = this.session.election as TargetElection;
          if (elect && !election.isLeading) {
            const { node } = await target.prepare(
              state.config.database.dsn,
              state.config.tables,
              this.options.createTables,
            );
            election.node = node;
            this.state = "standby";
            await election.acquire(signal, this.options.candidate);
          }
          // One lease while the worker leads; it never comes back once it has ended.
          lease ??= this.session.lease(this.options.elect);
          const guard = leaseGuard(signal, lease);
          guard.check();
          const outcome = await this.cycle(state, guard);
          // A cycle cut short by its lease returns as if stopped: the lease's reason says why.
          if (!signal.aborted) lease.check();
          if (outcome) return outcome;
          backoff.reset();
        } catch (error) {
          await this.closeParts();
          if (signal.aborted) break;
          let failure = error;
          if (lease?.ended) {
            // Whatever failed, failed because the lease ended: its reason is what counts.
            failure = lease.signal.reason;
            lease = undefined;
            // A new session, or a new candidacy, is `run`'s to take; without `reconnect` the
            // session is waited on here, like any ZooKeeper outage.
            if (this.session.renewalReason(failure) || isPgshovelError(failure, "FENCED")) {
              throw failure;
            }
          }
          if (!(failure instanceof PgshovelError) || !failure.retryable) {
            if (!(await this.configurationMoved(failure, version, signal))) throw failure;
            continue;
          }
          const waitMs = backoff.next();
          logger.warn(
            { err: describeError(failure), retryInMs: waitMs },
            "recoverable failure: retrying",
          );
          this.options.observer?.retrying?.({ code: failure.code, delayMs: waitMs });
          this.state = "backing off";
          await this.session.follower.sleep(waitMs, signal);
        }
      }
    } finally {
      lease?.close();
    }
    return { kind: "stopped" };
  }

  /**
   * One pass: tables checked and copied where needed, then the feed's batches until the
   * run ends (an outcome) or the set moved to another database (undefined: start again).
   */
  private async cycle(state: Active, guard: WriteGuard): Promise<WorkerOutcome | undefined> {
    const { signal } = guard;
    const { target, logger } = this.options;
    const dsn = state.config.database.dsn;
    const prepared = await target.prepare(dsn, state.config.tables, this.options.createTables);
    const { tables } = prepared;
    // The horizon is read once, before the first bootstrap or batch of the run.
    this.probe ??= this.options.untilCaughtUp?.(dsn, prepared.node);
    const horizon = await this.probe?.horizon();
    const feed = this.options.feed(dsn, prepared.node);
    this.feed = feed;
    const run: ReplicaRun = { dsn, version: state.version, tables, ...(await target.stored()) };
    await settleTables(run, this.options, feed, (s) => (this.state = s), guard);
    // A position stored without a stream position (the library's queue replica) wins over the mark.
    const from = run.position ? run.position.stream : (run.mark?.stream ?? null);
    logger.info({ feed: feed.description, from: from?.toString() ?? null }, "applying the stream");
    const batches = feed.batches(from, signal)[Symbol.asyncIterator]();
    for (;;) {
      if (horizon !== undefined && holdsHorizon(horizon, run.position, copySnapshots(run))) {
        return { kind: "caught-up" };
      }
      const next = await this.nextBatch(batches, run, guard);
      if (typeof next === "string") {
        return next === "moved" ? undefined : { kind: next };
      }
      try {
        await this.applyBatch(next, run, guard);
      } catch (error) {
        // Its relay gave the batch up or died inside it: the stream sends it again whole, next.
        if (!next.discarded || !isPgshovelError(error) || !error.retryable) throw error;
        logger.warn({ err: describeError(error) }, "batch rolled back by the stream: reading on");
        continue;
      }
      const change = await this.reconfigure(run, guard);
      if (change) return change === "moved" ? undefined : { kind: change };
    }
  }

  private async applyBatch(batch: FeedBatch, run: ReplicaRun, guard: WriteGuard): Promise<void> {
    const { target, logger, observer } = this.options;
    const { election, follower } = this.session;
    if (this.options.elect && !election.isLeading) throw candidacyLost(ROLE);
    checkContinuity(run.position, batch);
    this.state = "applying";
    const elect = this.options.elect;
    // Nothing is written that ZooKeeper could not confirm us to lead for: the batch rolls back.
    const guarded = async function* (): AsyncGenerator<Mutation> {
      for await (const mutation of batch.mutations) {
        if (!follower.isConnected) {
          throw new PgshovelError("ZOOKEEPER_UNAVAILABLE", "ZooKeeper connection lost mid-batch", {
            retryable: true,
          });
        }
        if (elect && !election.isLeading) throw candidacyLost(ROLE);
        guard.check();
        yield mutation;
      }
    };
    // The position is a getter that answers only after the commit: passed on, not copied.
    const toApply = {
      ...batch,
      mutations: guarded(),
      get position() {
        return batch.position;
      },
    };
    const startedAt = performance.now();
    const result = await target.apply(toApply, run.tables, guard);
    const durationMs = performance.now() - startedAt;
    await this.options.afterCommit?.(batch, result);
    await batch.done();
    run.position = result.kind === "applied" ? positionAfter(batch) : result.position;
    const lag = lagSeconds(batch.begin.end.time);
    if (result.kind === "applied") {
      logger.debug({ batch: batch.id.toString(), ...result.stats }, "batch applied");
    } else {
      logger.info({ batch: batch.id.toString() }, "batch applied before: skipped");
    }
    const endTick = batch.begin.end.id;
    observer?.batch?.({ result, lagSeconds: lag, durationMs, endTick, sourceDsn: run.dsn });
    const interval = this.options.lagLogIntervalMs ?? 60_000;
    if (Date.now() - this.lastLagLogAt >= interval) {
      this.lastLagLogAt = Date.now();
      logger.info({ lagSeconds: lag, batch: batch.id.toString() }, "replica lag");
    }
  }

  /**
   * The next batch. While none comes the worker is idle: it follows configuration changes
   * and asks the caught-up probe, without giving up the pending read.
   */
  private async nextBatch(
    batches: AsyncIterator<FeedBatch>,
    run: ReplicaRun,
    guard: WriteGuard,
  ): Promise<FeedBatch | "ended" | "caught-up" | "moved" | "stopped" | "dropped"> {
    const { signal } = guard;
    const pending = batches.next();
    pending.catch(() => {});
    const idleMs = this.options.idleMs ?? 500;
    let idle = false;
    for (;;) {
      const result = await Promise.race([
        pending,
        delay(idleMs, IDLE, { signal }).catch(() => IDLE),
      ]);
      if (typeof result !== "symbol") return result.done ? "ended" : result.value;
      if (signal.aborted) return "stopped";
      if (this.options.elect && !this.session.election.isLeading) throw candidacyLost(ROLE);
      if (!idle) {
        idle = true;
        this.state = "idle";
        this.options.logger.info(
          { batch: run.position?.batch.toString() ?? null },
          "caught up with the feed: every batch it holds is applied",
        );
      }
      const change = await this.reconfigure(run, guard);
      if (change) return change;
      if (await this.probe?.whenIdle(run.position)) return "caught-up";
    }
  }

  /** Follows a new configuration between batches: tables added are copied, tables removed dropped. */
  private async reconfigure(
    run: ReplicaRun,
    guard: WriteGuard,
  ): Promise<"moved" | "dropped" | undefined> {
    const state = await this.confirmed(guard.signal);
    if (state.kind === "dropped") return "dropped";
    if (state.version === run.version) return undefined;
    if (state.config.database.dsn !== run.dsn) return "moved";
    const { target, createTables } = this.options;
    const { tables } = await target.prepare(run.dsn, state.config.tables, createTables);
    Object.assign(run, { version: state.version, tables }, await target.stored());
    await settleTables(run, this.options, this.feed!, (s) => (this.state = s), guard);
    return undefined;
  }

  /**
   * Whether a database error may come from a configuration change that the watch has not
   * delivered yet (`set drop` commits in the database after ZooKeeper). ZooKeeper, read
   * again, tells.
   */
  private async configurationMoved(
    error: unknown,
    version: number | undefined,
    signal: AbortSignal,
  ): Promise<boolean> {
    if (!isPgshovelError(error, "DATABASE_ERROR") || version === undefined) return false;
    this.session.follower.invalidate();
    const state = await this.confirmed(signal).catch(() => undefined);
    return state !== undefined && (state.kind !== "active" || state.version !== version);
  }
}

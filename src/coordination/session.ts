import { setTimeout as delay } from "node:timers/promises";
import type { ZooKeeper } from "../cluster/zookeeper.js";
import { describeError, isPgshovelError, PgshovelError } from "../errors.js";
import type { Logger } from "../log.js";
import { Backoff } from "../retry.js";
import { LeaderLease, LeaseEnded } from "./leader-lease.js";
import type { Election } from "./leadership.js";
import { type Follower, SessionExpired } from "./set-follower.js";

/**
 * Why a worker needs a new ZooKeeper session: its session expired; ZooKeeper was silent for
 * the silence bound (treated as an expiry: the session cannot be confirmed alive); or a
 * newer publisher fenced it.
 */
export type RenewalReason = "session-expired" | "silent" | "fenced";

/** What a worker uses within one ZooKeeper session. */
export interface SessionParts {
  follower: Follower;
  election: Election;
}

/** Options of {@link WorkerSession}. */
export interface WorkerSessionOptions {
  zk: ZooKeeper;
  /** Opens a new session; without it a session that must be renewed ends the worker. */
  reconnect?: (() => Promise<ZooKeeper>) | undefined;
  /** Builds the follower and the election of a session: the first, and each renewed one. */
  parts: (zk: ZooKeeper) => SessionParts;
  logger: Logger;
  /** Give up when no new session opens within this long. */
  maxZooKeeperPauseMs: number;
  /** Backoff between attempts to open a session, and between renewals in quick succession. */
  retryInitialMs: number;
  retryMaxMs: number;
}

/** A renewal this long after the previous one starts without waiting. */
const RENEWAL_QUIET_MS = 30_000;

/**
 * The ZooKeeper session of a leader-elected worker, with the set follower and
 * the election that live in it. After an expiry, or a fencing by a newer
 * publisher, another worker may lead: {@link renew} replaces the session, and
 * the worker stands for election again in the new one.
 */
export class WorkerSession {
  #zk: ZooKeeper;
  #parts: SessionParts;
  #lastRenewalAt = Number.NEGATIVE_INFINITY;
  readonly #renewals: Backoff;

  constructor(private readonly options: WorkerSessionOptions) {
    this.#zk = options.zk;
    this.#parts = options.parts(options.zk);
    this.#renewals = new Backoff({
      initialDelayMs: options.retryInitialMs,
      maxDelayMs: options.retryMaxMs,
    });
  }

  /** The session in use: `options.zk`, or the one that replaced it. */
  get zk(): ZooKeeper {
    return this.#zk;
  }

  get follower(): Follower {
    return this.#parts.follower;
  }

  get election(): Election {
    return this.#parts.election;
  }

  /**
   * The right to write from now on, in this session: it ends when ZooKeeper has been silent
   * for the bound, the session expires, or (with `elect`) the candidacy is gone. Taken once
   * the worker leads; a worker passes it to whatever writes for it (a sink, an applier).
   */
  lease(elect: boolean): LeaderLease {
    return new LeaderLease({ zk: this.#zk, election: elect ? this.election : undefined });
  }

  /** Whether `error` calls for a new session, and why; undefined when not (or no `reconnect`). */
  renewalReason(error: unknown): RenewalReason | undefined {
    if (!this.options.reconnect) return undefined;
    if (error instanceof SessionExpired || this.follower.hasExpired) return "session-expired";
    if (error instanceof LeaseEnded) {
      if (error.why === "expired") return "session-expired";
      if (error.why === "silent") return "silent";
    }
    if (isPgshovelError(error, "FENCED")) return "fenced";
    return undefined;
  }

  /**
   * Closes the session (which gives up the candidacy at once), runs `afterClose` (the worker
   * closes its sink, say), and opens a new session (giving up after `maxZooKeeperPauseMs`)
   * with a new follower and election. Renewals in quick succession (two workers that keep
   * fencing each other, say) back off first.
   */
  async renew(signal: AbortSignal, afterClose: () => Promise<void>): Promise<void> {
    const { logger } = this.options;
    const reconnect = this.options.reconnect;
    if (!reconnect) throw new PgshovelError("INTERNAL", "renewing a session without reconnect");
    this.follower.close();
    this.#zk.close();
    await afterClose();
    const now = Date.now();
    if (now - this.#lastRenewalAt >= RENEWAL_QUIET_MS) this.#renewals.reset();
    else {
      const waitMs = this.#renewals.next();
      logger.warn({ waitMs }, "renewed only a moment ago: waiting first");
      await delay(waitMs, undefined, { signal }).catch(() => {});
    }
    this.#lastRenewalAt = now;
    this.#zk = await this.open(reconnect, signal);
    this.#parts = this.options.parts(this.#zk);
    logger.info({ hosts: this.#zk.hosts }, "new ZooKeeper session open");
  }

  private async open(reconnect: () => Promise<ZooKeeper>, signal: AbortSignal) {
    const { logger, maxZooKeeperPauseMs, retryInitialMs, retryMaxMs } = this.options;
    const giveUpAt = Date.now() + maxZooKeeperPauseMs;
    const backoff = new Backoff({ initialDelayMs: retryInitialMs, maxDelayMs: retryMaxMs });
    for (;;) {
      if (signal.aborted) throw signal.reason;
      try {
        return await reconnect();
      } catch (error) {
        const waitMs = backoff.next();
        if (Date.now() + waitMs > giveUpAt) {
          throw new PgshovelError(
            "ZOOKEEPER_UNAVAILABLE",
            `the ZooKeeper session expired and no new one could be opened within ${maxZooKeeperPauseMs} ms: ${describeError(error)}`,
            { cause: error, hint: "check ZooKeeper, then restart pgshovel" },
          );
        }
        logger.warn(
          { err: describeError(error), retryInMs: waitMs },
          "no new ZooKeeper session yet",
        );
        await delay(waitMs, undefined, { signal }).catch(() => {});
      }
    }
  }

  /** Stops following and steps down (the caller closes the ZooKeeper session itself). */
  async close(): Promise<void> {
    this.follower.close();
    await this.election.release();
  }
}

import type { ZooKeeper } from "../cluster/zookeeper.js";
import { PgshovelError } from "../errors.js";
import type { Election } from "./leadership.js";

/**
 * Why a lease ended: ZooKeeper silent for the bound, the session expired, the candidacy
 * gone (or never held), or the worker closed it.
 */
export type LeaseEnd = "silent" | "expired" | "deposed" | "closed";

/** What a lease reads of a ZooKeeper session. */
export type LeaseSession = Pick<
  ZooKeeper,
  "hosts" | "lastAnsweredAt" | "silenceBoundMs" | "isSilent" | "on" | "off"
>;

/** Options of {@link LeaderLease}. */
export interface LeaderLeaseOptions {
  zk: LeaseSession;
  /** The election whose term the lease follows; without it only the session counts. */
  election?: Election | undefined;
}

/** The reason a {@link LeaderLease} ended with: the worker must write nothing more. */
export class LeaseEnded extends PgshovelError {
  constructor(
    readonly why: LeaseEnd,
    message: string,
  ) {
    // A lost candidacy keeps the code a deposed worker is recognised by.
    super(why === "deposed" ? "FENCED" : "ZOOKEEPER_UNAVAILABLE", message, {
      retryable: why !== "deposed",
    });
  }
}

/**
 * The right of a leader to write, from the moment it won its election until ZooKeeper has
 * been silent for the silence bound (two thirds of the session timeout: see
 * src/cluster/liveness.ts), the session expired, or the candidate node is gone — whichever
 * comes first. It never comes back: a worker whose lease ended stops, and starts a new one
 * only once it has confirmed its leadership again (the relay opens a new session and
 * stands for election).
 *
 * Its `signal` aborts at that moment, so whatever the worker waits on (a write, an fsync, a
 * Kafka commit, a target transaction) is abandoned at once; `check()` reads the clock, so
 * a write about to start is refused even when a busy event loop has not delivered the
 * abort yet. Both make it a sink's `WriteGuard`.
 */
export class LeaderLease {
  readonly #zk: LeaseSession;
  readonly #election: Election | undefined;
  readonly #controller = new AbortController();
  readonly #onSilent = (silentForMs?: number) => this.#end("silent", silentForMs);
  readonly #onExpired = () => this.#end("expired");
  readonly #onDeposed = () => this.#end("deposed");

  constructor(options: LeaderLeaseOptions) {
    this.#zk = options.zk;
    this.#election = options.election;
    this.#zk.on("silent", this.#onSilent);
    this.#zk.on("expired", this.#onExpired);
    this.#election?.termSignal.addEventListener("abort", this.#onDeposed, { once: true });
    // A lease taken while the session is already silent, or the term already over, is over.
    if (this.#zk.isSilent) this.#end("silent");
    if (this.#election?.termSignal.aborted) this.#end("deposed");
    this.#checkClock();
  }

  /** Aborts, with a {@link LeaseEnded}, when the lease ends. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Whether the lease has ended. */
  get ended(): boolean {
    return this.#controller.signal.aborted;
  }

  /**
   * When the lease ends at the latest, in epoch milliseconds: the silence bound after
   * ZooKeeper last answered (later answers push it back).
   */
  get deadline(): number {
    return this.#zk.lastAnsweredAt + this.#zk.silenceBoundMs;
  }

  /** Throws the {@link LeaseEnded} reason once the lease has ended (checking the clock first). */
  check(): void {
    this.#checkClock();
    this.#controller.signal.throwIfAborted();
  }

  /** Ends the lease (the worker stopped leading); listeners are removed. */
  close(): void {
    this.#end("closed");
  }

  #checkClock(): void {
    if (this.ended) return;
    const silentForMs = Date.now() - this.#zk.lastAnsweredAt;
    if (silentForMs >= this.#zk.silenceBoundMs) this.#end("silent", silentForMs);
    else if (this.#election && !this.#election.isLeading) this.#end("deposed");
  }

  #end(why: LeaseEnd, silentForMs?: number): void {
    if (this.ended) return;
    this.#zk.off("silent", this.#onSilent);
    this.#zk.off("expired", this.#onExpired);
    this.#election?.termSignal.removeEventListener("abort", this.#onDeposed);
    this.#controller.abort(new LeaseEnded(why, this.#describe(why, silentForMs)));
  }

  #describe(why: LeaseEnd, silentForMs: number | undefined): string {
    const hosts = this.#zk.hosts;
    switch (why) {
      case "silent": {
        const silent = Math.round(silentForMs ?? Date.now() - this.#zk.lastAnsweredAt);
        return `ZooKeeper (${hosts}) has not answered for ${silent} ms, past the silence bound of ${this.#zk.silenceBoundMs} ms: the session may expire before it answers again`;
      }
      case "expired":
        return `the ZooKeeper session expired (${hosts}); another process may have taken over`;
      case "deposed":
        return "the candidate node is gone: another process may lead now";
      case "closed":
        return "the lease was closed";
    }
  }
}

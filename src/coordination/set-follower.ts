import { setTimeout as delay } from "node:timers/promises";
import { type ClusterRecord, decodeRecord } from "../cluster/records.js";
import type { ZooKeeper } from "../cluster/zookeeper.js";
import { zkPaths } from "../config/names.js";
import type { StoredSetConfig } from "../config/set-config.js";
import { PgshovelError } from "../errors.js";
import type { Logger } from "../log.js";
import { SOFTWARE_VERSION } from "../version.js";

/** How long past the session timeout a disconnected session is still waited for. */
const EXPIRY_MARGIN_MS = 5_000;

/** The ZooKeeper session ended: every ephemeral node of it (a worker's candidacy) is gone. */
export class SessionExpired extends PgshovelError {
  constructor(hosts: string) {
    super(
      "ZOOKEEPER_UNAVAILABLE",
      `the ZooKeeper session expired (${hosts}); another process may have taken over`,
      { hint: "restart it (a supervisor should do it)" },
    );
  }
}

/** What a worker may do under the configuration it last confirmed. */
export type SetState =
  | { kind: "active"; config: StoredSetConfig; version: number }
  | { kind: "dropped"; what: "set" | "cluster" }
  | { kind: "version-mismatch"; clusterVersion: string };

/** Fails with VERSION_MISMATCH when another software version wrote the cluster record. */
export function requireCurrentVersion(
  state: SetState,
): asserts state is Exclude<SetState, { kind: "version-mismatch" }> {
  if (state.kind === "version-mismatch") {
    throw new PgshovelError(
      "VERSION_MISMATCH",
      `cluster is at version ${state.clusterVersion}, this pgshovel is ${SOFTWARE_VERSION}`,
      { hint: "run the pgshovel of the cluster's version, or `pgshovel cluster upgrade`" },
    );
  }
}

/**
 * A set's configuration as ZooKeeper confirms it, and the state of the session
 * that confirms it: what a worker (a relay) checks before each batch.
 */
export interface Follower {
  /** True while the ZooKeeper session is connected: a worker publishes only then. */
  readonly isConnected: boolean;
  /** True once the session has expired; it never comes back. */
  readonly hasExpired: boolean;
  /**
   * The configuration confirmed with ZooKeeper now. Waits while disconnected,
   * up to `maxPauseMs`; fails when the session expired or the pause lasted too long.
   */
  confirmed(signal: AbortSignal, maxPauseMs: number): Promise<SetState>;
  invalidate(): void;
  /** Sleeps up to `ms`, waking early on abort or on a ZooKeeper event. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  /** Stops reacting to session events (the session is being closed). */
  close(): void;
}

/**
 * Follows a set's znode and the cluster record through watches. A relay
 * asks it, before every batch, for the confirmed state: while the session is
 * disconnected that call waits (the relay pauses), and once the session has
 * expired it fails with {@link SessionExpired} (another relay may own the set by
 * then: the relay stops publishing and stands for leadership again in a new session).
 */
export class SetFollower implements Follower {
  private state: SetState | undefined;
  private stale = true;
  private connected = true;
  private disconnectedAt = 0;
  private expired = false;
  private wake: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly zk: ZooKeeper,
    private readonly cluster: string,
    private readonly set: string,
    private readonly logger: Logger,
  ) {
    zk.on("disconnected", () => {
      if (this.closed) return;
      if (this.connected) this.disconnectedAt = Date.now();
      this.connected = false;
      this.logger.warn("lost the ZooKeeper connection: pausing until it is back");
      this.poke();
    });
    zk.on("connected", () => {
      if (!this.connected) this.logger.info("ZooKeeper connection is back: resuming");
      this.connected = true;
      this.stale = true;
      this.poke();
    });
    zk.on("expired", () => {
      this.expired = true;
      this.poke();
    });
  }

  get isConnected(): boolean {
    return this.connected && !this.expired;
  }

  get hasExpired(): boolean {
    return this.expired;
  }

  private poke(): void {
    this.wake?.();
  }

  private onWatch = () => {
    this.stale = true;
    this.poke();
  };

  private async reload(): Promise<SetState> {
    const clusterNode = await this.zk.get(zkPaths.cluster(this.cluster), this.onWatch);
    if (!clusterNode) return { kind: "dropped", what: "cluster" };
    const record = decodeRecord<ClusterRecord>(clusterNode.data, zkPaths.cluster(this.cluster));
    if (record.version !== SOFTWARE_VERSION)
      return { kind: "version-mismatch", clusterVersion: record.version };
    const setNode = await this.zk.get(zkPaths.set(this.cluster, this.set), this.onWatch);
    if (!setNode) {
      // Watch for re-creation is not needed: a dropped set ends the relay.
      return { kind: "dropped", what: "set" };
    }
    return {
      kind: "active",
      config: decodeRecord<StoredSetConfig>(setNode.data, zkPaths.set(this.cluster, this.set)),
      version: setNode.stat.version,
    };
  }

  async confirmed(signal: AbortSignal, maxPauseMs: number): Promise<SetState> {
    const pausedSince = Date.now();
    while (!this.connected && !this.expired) {
      if (signal.aborted) throw signal.reason;
      // The server expires a session it has not heard from for the session timeout. A
      // client cut off longer than that only learns it once it reconnects, and the
      // client library may stay stuck in a connection attempt that never completes:
      // past the timeout (and a margin) the session is given up here, and the relay
      // opens a new one.
      if (Date.now() - this.disconnectedAt > this.zk.sessionTimeoutMs + EXPIRY_MARGIN_MS) {
        this.expired = true;
        break;
      }
      if (Date.now() - pausedSince > maxPauseMs) {
        throw new PgshovelError(
          "ZOOKEEPER_UNAVAILABLE",
          `ZooKeeper (${this.zk.hosts}) unreachable for more than ${maxPauseMs} ms`,
        );
      }
      await this.sleep(200, signal);
    }
    if (this.expired) throw new SessionExpired(this.zk.hosts);
    if (this.stale || !this.state) {
      this.stale = false;
      const previous = this.state;
      this.state = await this.reload();
      if (
        previous?.kind === "active" &&
        this.state.kind === "active" &&
        previous.version !== this.state.version
      ) {
        this.logger.info(
          { version: this.state.version, tables: this.state.config.tables.length },
          "set configuration changed",
        );
      }
    }
    return this.state;
  }

  invalidate(): void {
    this.stale = true;
  }

  close(): void {
    this.closed = true;
  }

  async sleep(ms: number, signal: AbortSignal): Promise<void> {
    const woken = new Promise<void>((resolve) => {
      this.wake = resolve;
    });
    await Promise.race([delay(ms, undefined, { signal }).catch(() => {}), woken]);
    this.wake = undefined;
  }
}

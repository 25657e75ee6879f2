import { setTimeout as delay } from "node:timers/promises";
import type { ClusterRecord } from "../cluster/records.js";
import type { ZooKeeper } from "../cluster/zookeeper.js";
import { zkPaths } from "../config/names.js";
import type { StoredSetConfig } from "../config/set-config.js";
import { PgshovelError } from "../errors.js";
import type { Logger } from "../log.js";
import { SOFTWARE_VERSION } from "../version.js";

/** How long past the session timeout a disconnected session is still waited for. */
const EXPIRY_MARGIN_MS = 5_000;

/** The ZooKeeper session ended: every ephemeral node of it (the relay's candidacy) is gone. */
export class SessionExpired extends PgshovelError {
  constructor(hosts: string) {
    super(
      "ZOOKEEPER_UNAVAILABLE",
      `the ZooKeeper session expired (${hosts}); another relay may have taken over`,
      { hint: "restart the relay (a supervisor should do it)" },
    );
  }
}

/** What the relay may do under the configuration it last confirmed. */
export type SetState =
  | { kind: "active"; config: StoredSetConfig; version: number }
  | { kind: "dropped"; what: "set" | "cluster" }
  | { kind: "version-mismatch"; clusterVersion: string };

/**
 * Follows a set's znode and the cluster record through watches. The relay
 * asks it, before every batch, for the confirmed state: while the session is
 * disconnected that call waits (the relay pauses), and once the session has
 * expired it fails with {@link SessionExpired} (another relay may own the set by
 * then: the relay stops publishing and stands for leadership again in a new session).
 */
export class SetFollower {
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

  /** True while the ZooKeeper session is connected: the relay publishes only then. */
  get isConnected(): boolean {
    return this.connected && !this.expired;
  }

  /** True once the session has expired; it never comes back. */
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
    const record = JSON.parse(clusterNode.data.toString("utf8")) as ClusterRecord;
    if (record.version !== SOFTWARE_VERSION)
      return { kind: "version-mismatch", clusterVersion: record.version };
    const setNode = await this.zk.get(zkPaths.set(this.cluster, this.set), this.onWatch);
    if (!setNode) {
      // Watch for re-creation is not needed: a dropped set ends the relay.
      return { kind: "dropped", what: "set" };
    }
    return {
      kind: "active",
      config: JSON.parse(setNode.data.toString("utf8")) as StoredSetConfig,
      version: setNode.stat.version,
    };
  }

  /**
   * The configuration confirmed with ZooKeeper now. Waits while disconnected,
   * up to `maxPauseMs`; fails when the session expired or the pause lasted too long.
   */
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

  /** Makes the next {@link confirmed} read ZooKeeper again, watch or no watch. */
  invalidate(): void {
    this.stale = true;
  }

  /** Stops reacting to session events (the relay is closing the session itself). */
  close(): void {
    this.closed = true;
  }

  /** Sleeps up to `ms`, waking early on abort or on a ZooKeeper event. */
  async sleep(ms: number, signal: AbortSignal): Promise<void> {
    const woken = new Promise<void>((resolve) => {
      this.wake = resolve;
    });
    await Promise.race([delay(ms, undefined, { signal }).catch(() => {}), woken]);
    this.wake = undefined;
  }
}

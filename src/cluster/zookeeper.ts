import { EventEmitter } from "node:events";
import zookeeper from "node-zookeeper-client";
import { PgshovelError } from "../errors.js";
import type { Logger } from "../log.js";
import { Liveness } from "./liveness.js";
import { type Connection, instrument, type ZkServer } from "./zookeeper-connection.js";
import {
  answeredByServer,
  type ClientError,
  convert,
  isConnectionLoss,
  isZkError,
} from "./zookeeper-errors.js";
import { buildTransaction, type NodeStat, parseHosts, toStat, type ZkOp } from "./zookeeper-ops.js";

/** Options for {@link ZooKeeper.connect}. */
export interface ZooKeeperOptions {
  /** `host:port[,host:port…][/chroot]` */
  hosts: string;
  /** Fail when not connected within this many milliseconds. */
  timeoutMs: number;
  /** Session timeout asked for; defaults to timeoutMs (at least 4 s). The server may grant another. */
  sessionTimeoutMs?: number;
  /**
   * Fail an operation that gets no answer within this many milliseconds; defaults to the
   * negotiated session timeout. No operation waits longer, connected or not.
   */
  operationTimeoutMs?: number;
  /** Where a refused connection attempt is reported while connecting. */
  logger?: Logger;
}

/** Events of a session: the client's connection states, and the liveness of the server. */
export type ZooKeeperEvent = "connected" | "disconnected" | "expired" | "silent" | "answering";

export { isZkError, zkCode } from "./zookeeper-errors.js";
export { type NodeStat, parseHosts, type ZkOp } from "./zookeeper-ops.js";

type Reply<T> = (error: ClientError | null, value?: T) => void;

/** How long a closed session waits for the server to confirm before its socket is destroyed. */
const CLOSE_GRACE_MS = 1000;

/** An operation waiting for its answer; failed at once when the session is closed or reset. */
interface InFlight {
  doing: string;
  /** A read, sent again after a lost connection; a write is failed instead. */
  read: boolean;
  fail: (error: PgshovelError) => void;
}

/**
 * A promise-based ZooKeeper session with pgshovel's error vocabulary. Every operation has a
 * deadline; the server's liveness is tracked (see liveness.ts), and a connection that stays
 * silent past the silence bound is dropped and made again, as ZooKeeper's own client does.
 */
export class ZooKeeper {
  readonly hosts: string;
  /** The chroot of the connection string (`/pgshovel`), or undefined. */
  readonly chroot: string | undefined;
  private readonly client: zookeeper.Client;
  private readonly connection: Connection;
  private readonly liveness: Liveness;
  private readonly events = new EventEmitter();
  private readonly inFlight = new Set<InFlight>();
  private readonly refusedWarned = new Set<string>();
  private resetTimer: NodeJS.Timeout | undefined;
  private established = false;
  private closed = false;

  private constructor(private readonly options: ZooKeeperOptions) {
    this.hosts = options.hosts;
    this.chroot = parseHosts(options.hosts).chroot;
    this.client = zookeeper.createClient(options.hosts, {
      sessionTimeout: options.sessionTimeoutMs ?? Math.max(options.timeoutMs, 4000),
      spinDelay: 200,
      // No silent resends: a create or multi resent after a lost connection may apply twice.
      // Reads are resent here, within their deadline.
      retries: 0,
    });
    this.connection = instrument(this.client, {
      socketError: (error, server) => this.onSocketError(error, server),
      unreadableReply: (error) => this.onUnreadableReply(error),
    });
    this.liveness = new Liveness({
      sessionTimeoutMs: () => this.sessionTimeoutMs,
      probe: (done) => {
        this.client.exists("/", (error) => done(answeredByServer(error)));
      },
    });
    this.liveness.on("silent", (silentForMs) => {
      if (this.closed) return;
      this.events.emit("silent", silentForMs);
      // Like ZooKeeper's own client past its read timeout: give up this connection and try
      // again (another server of the ensemble first), and again each bound while nothing
      // answers, since an attempt on a frozen server never completes by itself. The session
      // survives if the server still knows it. A write waiting for its answer fails first,
      // saying why; a read is sent again on the next connection.
      for (const op of [...this.inFlight]) {
        if (op.read) continue;
        const message = `${op.doing}: ZooKeeper (hosts ${this.hosts}) has not answered for ${Math.round(silentForMs)} ms; the connection was dropped`;
        op.fail(new PgshovelError("ZOOKEEPER_UNAVAILABLE", message, { retryable: true }));
      }
      this.connection.reset();
      clearInterval(this.resetTimer);
      this.resetTimer = setInterval(() => this.connection.reset(), this.silenceBoundMs);
      this.resetTimer.unref();
    });
    this.liveness.on("answering", () => {
      clearInterval(this.resetTimer);
      if (!this.closed) this.events.emit("answering");
    });
    for (const event of ["connected", "disconnected", "expired"] as const) {
      this.client.on(event, () => {
        if (this.closed) return;
        if (event === "connected") this.liveness.answered();
        this.events.emit(event);
      });
    }
  }

  /**
   * Connects, failing with ZOOKEEPER_UNAVAILABLE (naming the hosts) past the timeout. A refused
   * attempt is logged at once (with `options.logger`), and attempts go on until the timeout.
   */
  static async connect(options: ZooKeeperOptions): Promise<ZooKeeper> {
    const zk = new ZooKeeper(options);
    await zk.open();
    return zk;
  }

  private open(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.close();
        reject(
          new PgshovelError(
            "ZOOKEEPER_UNAVAILABLE",
            `could not connect to ZooKeeper at ${this.hosts} within ${this.options.timeoutMs} ms`,
            {
              retryable: true,
              hint: "check --zookeeper-hosts (PGSHOVEL_ZOOKEEPER_HOSTS) and that ZooKeeper is running",
            },
          ),
        );
      }, this.options.timeoutMs);
      this.client.once("connected", () => {
        clearTimeout(timer);
        this.established = true;
        this.liveness.start();
        resolve();
      });
      this.client.connect();
    });
  }

  private onSocketError(error: NodeJS.ErrnoException, server: ZkServer | undefined): void {
    if (this.established || !server || error.code !== "ECONNREFUSED") return;
    const where = `${server.host}:${server.port}`;
    if (this.refusedWarned.has(where)) return;
    this.refusedWarned.add(where);
    this.options.logger?.warn(
      { host: where, hosts: this.hosts },
      `ZooKeeper at ${where} refused the connection: retrying for up to ${this.options.timeoutMs} ms`,
    );
  }

  private onUnreadableReply(error: unknown): void {
    const detail = error instanceof Error ? error.message : String(error);
    for (const op of [...this.inFlight]) {
      // The request may or may not have been applied: report it as a lost connection, whose
      // outcome callers that care read back.
      op.fail(
        new PgshovelError(
          "ZOOKEEPER_UNAVAILABLE",
          `${op.doing}: ZooKeeper (hosts ${this.hosts}) sent a reply the client could not read (${detail}); the connection was reset`,
          { cause: error, retryable: true },
        ),
      );
    }
  }

  /** The session timeout the server granted, in milliseconds. */
  get sessionTimeoutMs(): number {
    return this.client.getSessionTimeout();
  }

  /**
   * How long the server may stay silent before a session holder must stop acting on the
   * session (two thirds of the session timeout; see liveness.ts for why that is early enough).
   */
  get silenceBoundMs(): number {
    return this.liveness.boundMs;
  }

  /** When the server last answered anything (a reply, a probe, a handshake), in epoch milliseconds. */
  get lastAnsweredAt(): number {
    return this.liveness.lastAnsweredAt;
  }

  /** True from a `silent` event until the server answers again. */
  get isSilent(): boolean {
    return this.liveness.isSilent;
  }

  /**
   * The session's events: "connected", "disconnected", "expired" from the client, "silent"
   * (with how long, in ms) once the server has not answered for the silence bound, and
   * "answering" at its first answer after that.
   */
  on(event: ZooKeeperEvent, listener: (silentForMs?: number) => void): void {
    this.events.on(event, listener);
  }

  /** Removes a listener added with {@link on}. */
  off(event: ZooKeeperEvent, listener: (silentForMs?: number) => void): void {
    this.events.off(event, listener);
  }

  /** Resolves once the server is silent past the bound (at once if it is now); rejects on abort. */
  untilSilent(signal?: AbortSignal): Promise<void> {
    if (this.liveness.isSilent) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.events.off("silent", onSilent);
        reject(signal?.reason);
      };
      const onSilent = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      if (signal?.aborted) return onAbort();
      this.events.once("silent", onSilent);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** The session id as hex, for logs and ephemeral ownership checks. */
  sessionId(): string {
    return this.client.getSessionId().toString("hex");
  }

  /**
   * Ends the session: operations still waiting fail at once, the server is told (when it
   * answers), and nothing of the client keeps the process alive afterwards.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.liveness.stop();
    clearInterval(this.resetTimer);
    for (const op of [...this.inFlight]) {
      op.fail(
        new PgshovelError(
          "ZOOKEEPER_UNAVAILABLE",
          `${op.doing}: the ZooKeeper session was closed`,
          {
            retryable: true,
          },
        ),
      );
    }
    this.connection.shutDown(CLOSE_GRACE_MS);
  }

  /**
   * Sends a request and waits for its answer, at most `timeoutMs` (default: the operation
   * timeout, else the session timeout). A read lost with its connection is sent again within
   * that time. On timeout a write may still be applied once the client reconnects: callers
   * that must know the outcome read it back (see two-phase.ts).
   */
  private request<T>(
    doing: string,
    send: (reply: Reply<T>) => void,
    options: { read?: boolean; timeoutMs?: number } = {},
  ): Promise<T> {
    if (this.closed) {
      return Promise.reject(
        new PgshovelError("ZOOKEEPER_UNAVAILABLE", `${doing}: the ZooKeeper session is closed`, {
          retryable: true,
        }),
      );
    }
    const timeoutMs = options.timeoutMs ?? this.options.operationTimeoutMs ?? this.sessionTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let resend: NodeJS.Timeout | undefined;
      const finish = (error: PgshovelError | undefined, value?: T) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearTimeout(resend);
        this.inFlight.delete(op);
        if (error) reject(error);
        else resolve(value as T);
      };
      const op: InFlight = { doing, read: options.read === true, fail: (error) => finish(error) };
      const timer = setTimeout(() => {
        const message = `${doing}: no answer from ZooKeeper (hosts ${this.hosts}) within ${timeoutMs} ms`;
        finish(new PgshovelError("ZOOKEEPER_UNAVAILABLE", message, { retryable: true }));
      }, timeoutMs);
      const deadline = Date.now() + timeoutMs;
      let attempt = 0;
      const attemptSend = () => {
        try {
          send((error, value) => {
            if (answeredByServer(error)) this.liveness.answered();
            if (settled) return;
            if (error && options.read && isConnectionLoss(error) && !this.closed) {
              const waitMs = Math.min(200 * 2 ** attempt++, 2000);
              if (Date.now() + waitMs < deadline) {
                resend = setTimeout(attemptSend, waitMs);
                return;
              }
            }
            if (error) finish(convert(error, doing, this.hosts));
            else finish(undefined, value);
          });
        } catch (error) {
          // The client library validates arguments by throwing (an invalid path, say).
          finish(convert(error, doing, this.hosts));
        }
      };
      this.inFlight.add(op);
      attemptSend();
    });
  }

  /** Reads a node; undefined when it does not exist. */
  async get(
    path: string,
    watcher?: () => void,
  ): Promise<{ data: Buffer; stat: NodeStat } | undefined> {
    try {
      return await this.request<{ data: Buffer; stat: NodeStat }>(
        `reading ${path}`,
        (reply) => {
          const callback = (error: ClientError | null, data: Buffer, stat: zookeeper.Stat) =>
            reply(error, error ? undefined : { data: data ?? Buffer.alloc(0), stat: toStat(stat) });
          if (watcher) this.client.getData(path, () => watcher(), callback);
          else this.client.getData(path, callback);
        },
        { read: true },
      );
    } catch (error) {
      if (isZkError(error, "NO_NODE")) return undefined;
      throw error;
    }
  }

  /** Whether a node exists; an optional one-shot watcher fires on creation, change or deletion. */
  async exists(path: string, watcher?: () => void): Promise<NodeStat | undefined> {
    return this.request<NodeStat | undefined>(
      `checking ${path}`,
      (reply) => {
        const callback = (error: ClientError | null, stat: zookeeper.Stat) =>
          reply(error, stat ? toStat(stat) : undefined);
        if (watcher) this.client.exists(path, () => watcher(), callback);
        else this.client.exists(path, callback);
      },
      { read: true },
    );
  }

  /** Children names; an empty list when the node does not exist. */
  async children(path: string, watcher?: () => void): Promise<string[]> {
    try {
      return await this.request<string[]>(
        `listing ${path}`,
        (reply) => {
          const callback = (error: ClientError | null, children: string[]) =>
            reply(error, children);
          if (watcher) this.client.getChildren(path, () => watcher(), callback);
          else this.client.getChildren(path, callback);
        },
        { read: true },
      );
    } catch (error) {
      if (isZkError(error, "NO_NODE")) return [];
      throw error;
    }
  }

  /** Creates a node; `ephemeral` ties it to this session. */
  async create(path: string, data: Buffer, options: { ephemeral?: boolean } = {}): Promise<void> {
    const mode = options.ephemeral
      ? zookeeper.CreateMode.EPHEMERAL
      : zookeeper.CreateMode.PERSISTENT;
    await this.request<void>(`creating ${path}`, (reply) => {
      this.client.create(path, data, mode, (error) => reply(error));
    });
  }

  /** Creates an ephemeral sequential node `prefix0000000001`… and returns its path. */
  async createEphemeralSequential(prefix: string, data: Buffer): Promise<string> {
    return this.request<string>(`creating ${prefix}…`, (reply) => {
      this.client.create(prefix, data, zookeeper.CreateMode.EPHEMERAL_SEQUENTIAL, reply);
    });
  }

  /** Creates every missing node of `path` (persistent, empty). */
  async ensurePath(path: string): Promise<void> {
    // mkdirp tolerates nodes that exist: sending it again is harmless.
    await this.request<void>(
      `creating ${path}`,
      (reply) => {
        this.client.mkdirp(path, (error) => reply(error));
      },
      { read: true },
    );
  }

  /** Removes a node, at `version` (any version by default). */
  async remove(path: string, version = -1): Promise<void> {
    await this.request<void>(`removing ${path}`, (reply) => {
      this.client.remove(path, version, (error) => reply(error));
    });
  }

  /**
   * Removes a node and everything below it, depth first. Tolerates nodes that
   * vanish meanwhile. (The client library's own recursive delete is unreliable.)
   */
  async removeRecursive(path: string): Promise<void> {
    for (const child of await this.children(path)) {
      await this.removeRecursive(`${path === "/" ? "" : path}/${child}`);
    }
    try {
      await this.remove(path);
    } catch (error) {
      if (!isZkError(error, "NO_NODE")) throw error;
    }
  }

  /** Applies every operation or none (ZooKeeper multi); `timeoutMs` overrides the operation timeout. */
  async multi(ops: ZkOp[], doing: string, timeoutMs?: number): Promise<void> {
    let transaction: zookeeper.Transaction;
    try {
      transaction = buildTransaction(this.client, ops);
    } catch (error) {
      throw convert(error, doing, this.hosts);
    }
    await this.request<void>(
      doing,
      (reply) => {
        transaction.commit((error) => reply(error));
      },
      timeoutMs === undefined ? {} : { timeoutMs },
    );
  }

  /**
   * Creates the chroot of the connection string when it is missing, through a short session
   * without the chroot. Returns whether it created it.
   */
  async ensureChroot(): Promise<boolean> {
    if (!this.chroot) return false;
    if (await this.chrootExists()) return false;
    const root = await ZooKeeper.connect({
      ...this.options,
      hosts: parseHosts(this.hosts).servers,
    });
    try {
      await root.ensurePath(this.chroot);
    } finally {
      root.close();
    }
    return true;
  }

  /** Whether the chroot of the connection string exists (true without a chroot). */
  async chrootExists(): Promise<boolean> {
    if (!this.chroot) return true;
    // Inside a chroot, "/" is the chroot itself.
    return (await this.exists("/")) !== undefined;
  }
}

import zookeeper from "node-zookeeper-client";
import { PgshovelError } from "../errors.js";

/** Metadata of a znode that pgshovel relies on. */
export interface NodeStat {
  version: number;
  /** Non-empty for an ephemeral node: the owning session. */
  ephemeralOwner: string;
}

/** One operation of a ZooKeeper multi-op transaction. */
export type ZkOp =
  | { op: "create"; path: string; data: Buffer; ephemeral?: boolean }
  | { op: "setData"; path: string; data: Buffer; version: number }
  | { op: "check"; path: string; version: number }
  | { op: "remove"; path: string; version: number };

/** Options for {@link ZooKeeper.connect}. */
export interface ZooKeeperOptions {
  /** `host:port[,host:port…][/chroot]` */
  hosts: string;
  /** Fail when not connected within this many milliseconds. */
  timeoutMs: number;
  /** Session timeout; defaults to timeoutMs. */
  sessionTimeoutMs?: number;
  /**
   * Fail an operation that gets no answer within this many milliseconds. Unset, an operation
   * issued while disconnected waits for the reconnection (the client queues it), however long.
   */
  operationTimeoutMs?: number;
}

const RETRYABLE_CODES = new Set([
  zookeeper.Exception.CONNECTION_LOSS,
  zookeeper.Exception.OPERATION_TIMEOUT,
  zookeeper.Exception.SESSION_EXPIRED,
]);

/** The ZooKeeper exception code carried by a converted error, when there is one. */
export function zkCode(error: unknown): number | undefined {
  const cause = error instanceof PgshovelError ? error.cause : error;
  if (cause instanceof zookeeper.Exception) return cause.getCode();
  return undefined;
}

/** True when `error` comes from ZooKeeper with the given exception name (NO_NODE, BAD_VERSION…). */
export function isZkError(error: unknown, name: keyof typeof zookeeper.Exception): boolean {
  return zkCode(error) === (zookeeper.Exception[name] as unknown as number);
}

function convert(error: Error | zookeeper.Exception, doing: string, hosts: string): PgshovelError {
  if (error instanceof zookeeper.Exception) {
    const retryable = RETRYABLE_CODES.has(error.getCode());
    return new PgshovelError(
      retryable ? "ZOOKEEPER_UNAVAILABLE" : "ZOOKEEPER_ERROR",
      `${doing}: ZooKeeper ${error.getName()}${retryable ? ` (hosts ${hosts})` : ""}`,
      { cause: error, retryable },
    );
  }
  return new PgshovelError("ZOOKEEPER_ERROR", `${doing}: ${error.message}`, { cause: error });
}

/** A promise-based ZooKeeper session with pgshovel's error vocabulary. */
export class ZooKeeper {
  readonly hosts: string;
  private readonly client: zookeeper.Client;
  private readonly operationTimeoutMs: number | undefined;

  private constructor(hosts: string, client: zookeeper.Client, operationTimeoutMs?: number) {
    this.hosts = hosts;
    this.client = client;
    this.operationTimeoutMs = operationTimeoutMs;
  }

  /**
   * Runs a callback-style operation, bounded by `timeoutMs` (default: the operation timeout).
   * On timeout the request may still be sent once the client reconnects: callers that must
   * know the outcome read it back (see two-phase.ts).
   */
  private bounded<T>(
    doing: string,
    start: (resolve: (value: T) => void, reject: (error: unknown) => void) => void,
    timeoutMs = this.operationTimeoutMs,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              const message = `${doing}: no answer from ZooKeeper (hosts ${this.hosts}) within ${timeoutMs} ms`;
              reject(new PgshovelError("ZOOKEEPER_UNAVAILABLE", message, { retryable: true }));
            }, timeoutMs);
      start(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error) => {
          clearTimeout(timer);
          reject(error);
        },
      );
    });
  }

  /** Connects, failing with ZOOKEEPER_UNAVAILABLE (naming the hosts) past the timeout. */
  static async connect(options: ZooKeeperOptions): Promise<ZooKeeper> {
    const client = zookeeper.createClient(options.hosts, {
      sessionTimeout: options.sessionTimeoutMs ?? Math.max(options.timeoutMs, 4000),
      spinDelay: 200,
      retries: 1,
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.close();
        reject(
          new PgshovelError(
            "ZOOKEEPER_UNAVAILABLE",
            `could not connect to ZooKeeper at ${options.hosts} within ${options.timeoutMs} ms`,
            {
              retryable: true,
              hint: "check --zookeeper-hosts (PGSHOVEL_ZOOKEEPER_HOSTS) and that ZooKeeper is running",
            },
          ),
        );
      }, options.timeoutMs);
      client.once("connected", () => {
        clearTimeout(timer);
        resolve();
      });
      client.connect();
    });
    return new ZooKeeper(options.hosts, client, options.operationTimeoutMs);
  }

  /** The session timeout the server granted, in milliseconds. */
  get sessionTimeoutMs(): number {
    return this.client.getSessionTimeout();
  }

  /** The underlying client's events: "disconnected", "connected", "expired". */
  on(event: "connected" | "disconnected" | "expired", listener: () => void): void {
    this.client.on(event, listener);
  }

  /** The session id as hex, for logs and ephemeral ownership checks. */
  sessionId(): string {
    return this.client.getSessionId().toString("hex");
  }

  close(): void {
    this.client.close();
  }

  /** Reads a node; undefined when it does not exist. */
  async get(
    path: string,
    watcher?: () => void,
  ): Promise<{ data: Buffer; stat: NodeStat } | undefined> {
    return this.bounded(`reading ${path}`, (resolve, reject) => {
      const callback = (
        error: Error | zookeeper.Exception | null,
        data: Buffer,
        stat: zookeeper.Stat,
      ) => {
        if (error) {
          if (
            error instanceof zookeeper.Exception &&
            error.getCode() === zookeeper.Exception.NO_NODE
          ) {
            resolve(undefined);
          } else reject(convert(error, `reading ${path}`, this.hosts));
          return;
        }
        resolve({ data: data ?? Buffer.alloc(0), stat: toStat(stat) });
      };
      if (watcher) this.client.getData(path, () => watcher(), callback);
      else this.client.getData(path, callback);
    });
  }

  /** Whether a node exists; an optional one-shot watcher fires on creation, change or deletion. */
  async exists(path: string, watcher?: () => void): Promise<NodeStat | undefined> {
    return this.bounded(`checking ${path}`, (resolve, reject) => {
      const callback = (error: Error | zookeeper.Exception | null, stat: zookeeper.Stat) => {
        if (error) reject(convert(error, `checking ${path}`, this.hosts));
        else resolve(stat ? toStat(stat) : undefined);
      };
      if (watcher) this.client.exists(path, () => watcher(), callback);
      else this.client.exists(path, callback);
    });
  }

  /** Children names; an empty list when the node does not exist. */
  async children(path: string, watcher?: () => void): Promise<string[]> {
    return this.bounded(`listing ${path}`, (resolve, reject) => {
      const callback = (error: Error | zookeeper.Exception | null, children: string[]) => {
        if (error) {
          if (
            error instanceof zookeeper.Exception &&
            error.getCode() === zookeeper.Exception.NO_NODE
          ) {
            resolve([]);
          } else reject(convert(error, `listing ${path}`, this.hosts));
          return;
        }
        resolve(children);
      };
      if (watcher) this.client.getChildren(path, () => watcher(), callback);
      else this.client.getChildren(path, callback);
    });
  }

  /** Creates a node; `ephemeral` ties it to this session. */
  async create(path: string, data: Buffer, options: { ephemeral?: boolean } = {}): Promise<void> {
    const mode = options.ephemeral
      ? zookeeper.CreateMode.EPHEMERAL
      : zookeeper.CreateMode.PERSISTENT;
    return this.bounded(`creating ${path}`, (resolve, reject) => {
      this.client.create(path, data, mode, (error) => {
        if (error) reject(convert(error, `creating ${path}`, this.hosts));
        else resolve();
      });
    });
  }

  /** Creates an ephemeral sequential node `prefix0000000001`… and returns its path. */
  async createEphemeralSequential(prefix: string, data: Buffer): Promise<string> {
    return this.bounded(`creating ${prefix}…`, (resolve, reject) => {
      this.client.create(prefix, data, zookeeper.CreateMode.EPHEMERAL_SEQUENTIAL, (error, path) => {
        if (error) reject(convert(error, `creating ${prefix}…`, this.hosts));
        else resolve(path);
      });
    });
  }

  /** Creates every missing node of `path` (persistent, empty). */
  async ensurePath(path: string): Promise<void> {
    return this.bounded(`creating ${path}`, (resolve, reject) => {
      this.client.mkdirp(path, (error) => {
        if (error) reject(convert(error, `creating ${path}`, this.hosts));
        else resolve();
      });
    });
  }

  async remove(path: string, version = -1): Promise<void> {
    return this.bounded(`removing ${path}`, (resolve, reject) => {
      this.client.remove(path, version, (error) => {
        if (error) reject(convert(error, `removing ${path}`, this.hosts));
        else resolve();
      });
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
    const transaction = this.client.transaction();
    for (const op of ops) {
      switch (op.op) {
        case "create":
          transaction.create(
            op.path,
            op.data,
            op.ephemeral ? zookeeper.CreateMode.EPHEMERAL : zookeeper.CreateMode.PERSISTENT,
          );
          break;
        case "setData":
          transaction.setData(op.path, op.data, op.version);
          break;
        case "check":
          transaction.check(op.path, op.version);
          break;
        case "remove":
          transaction.remove(op.path, op.version);
          break;
      }
      // node-zookeeper-client's Transaction does `version = version || -1`, turning an expected
      // version 0 into "any version": put the exact version back on the queued operation.
      if (op.op !== "create") {
        const queued = (transaction as unknown as { ops: { version?: number }[] }).ops;
        queued[queued.length - 1]!.version = op.version;
      }
    }
    return this.bounded(
      doing,
      (resolve, reject) => {
        transaction.commit((error) => {
          if (error) reject(convert(error, doing, this.hosts));
          else resolve();
        });
      },
      timeoutMs ?? this.operationTimeoutMs,
    );
  }
}

function toStat(stat: zookeeper.Stat): NodeStat {
  const owner = stat.ephemeralOwner;
  return {
    version: stat.version,
    ephemeralOwner: owner?.some((byte) => byte !== 0) ? owner.toString("hex") : "",
  };
}

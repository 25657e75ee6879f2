/** Promise helpers over node-zookeeper-client for integration tests. */
import { connect } from "node:net";
import zookeeper from "node-zookeeper-client";
import { stackEnv } from "./env.js";

export type Stat = zookeeper.Stat;

export interface ZkConnectOptions {
  /** host:port[,host:port...] (default: the stack's PGSHOVEL_ZOOKEEPER_HOSTS). */
  hosts?: string;
  sessionTimeoutMs?: number;
  /** Give up connecting after this long (default 15 000 ms). */
  connectTimeoutMs?: number;
}

function isCode(error: unknown, code: number): boolean {
  return (
    typeof error === "object" &&
    error !== null &&
    "getCode" in error &&
    typeof (error as { getCode: unknown }).getCode === "function" &&
    (error as { getCode(): number }).getCode() === code
  );
}

export class TestZk {
  constructor(readonly client: zookeeper.Client) {}

  /** The node's Stat, or null when it does not exist. */
  exists(path: string): Promise<Stat | null> {
    return new Promise((resolve, reject) => {
      this.client.exists(path, (error, stat) => (error ? reject(error) : resolve(stat ?? null)));
    });
  }

  /** The node's data (and Stat), or null when it does not exist. */
  get(path: string): Promise<{ data: Buffer | null; stat: Stat } | null> {
    return new Promise((resolve, reject) => {
      this.client.getData(path, (error, data, stat) => {
        if (error)
          return isCode(error, zookeeper.Exception.NO_NODE) ? resolve(null) : reject(error);
        resolve({ data: data ?? null, stat });
      });
    });
  }

  /** The node's data as UTF-8 text, or null when the node does not exist or has no data. */
  async getString(path: string): Promise<string | null> {
    const node = await this.get(path);
    return node?.data ? node.data.toString("utf8") : null;
  }

  /** Creates PATH (its parent must exist); returns the created path (sequential nodes!). */
  create(
    path: string,
    data?: Buffer | string,
    mode: number = zookeeper.CreateMode.PERSISTENT,
  ): Promise<string> {
    const buffer = data === undefined ? null : Buffer.isBuffer(data) ? data : Buffer.from(data);
    return new Promise((resolve, reject) => {
      const done = (error: Error | zookeeper.Exception | null, created: string) =>
        error ? reject(error) : resolve(created);
      if (buffer) this.client.create(path, buffer, mode, done);
      else this.client.create(path, mode, done);
    });
  }

  /** Creates PATH and any missing ancestors. */
  mkdirp(path: string, data?: Buffer | string): Promise<string> {
    const buffer = data === undefined ? null : Buffer.isBuffer(data) ? data : Buffer.from(data);
    return new Promise((resolve, reject) => {
      const done = (error: Error | zookeeper.Exception | null, created: string) =>
        error ? reject(error) : resolve(created);
      if (buffer) this.client.mkdirp(path, buffer, done);
      else this.client.mkdirp(path, done);
    });
  }

  set(path: string, data: Buffer | string, version = -1): Promise<Stat> {
    const buffer = Buffer.isBuffer(data) ? data : Buffer.from(data);
    return new Promise((resolve, reject) => {
      this.client.setData(path, buffer, version, (error, stat) =>
        error ? reject(error) : resolve(stat),
      );
    });
  }

  /** Child names of PATH ([] when PATH does not exist). */
  children(path: string): Promise<string[]> {
    return new Promise((resolve, reject) => {
      this.client.getChildren(path, (error, children) => {
        if (error) return isCode(error, zookeeper.Exception.NO_NODE) ? resolve([]) : reject(error);
        resolve(children);
      });
    });
  }

  /** Removes one node (no error when it is already gone). */
  remove(path: string, version = -1): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.remove(path, version, (error) => {
        if (error && !isCode(error, zookeeper.Exception.NO_NODE)) return reject(error);
        resolve();
      });
    });
  }

  /** Removes PATH and everything below it, depth first; retries when children appear meanwhile. */
  async removeRecursive(path: string): Promise<void> {
    for (let attempt = 0; attempt < 10; attempt += 1) {
      const children = await this.children(path);
      for (const child of children) {
        await this.removeRecursive(path === "/" ? `/${child}` : `${path}/${child}`);
      }
      if (path === "/") return;
      try {
        await this.remove(path);
        return;
      } catch (error) {
        if (!isCode(error, zookeeper.Exception.NOT_EMPTY)) throw error;
      }
    }
    throw new Error(`could not remove ${path}: children keep appearing`);
  }

  close(): void {
    this.client.close();
  }
}

/** Connects to ZooKeeper; rejects when no connection is made within connectTimeoutMs. */
export function connectZk(options: ZkConnectOptions = {}): Promise<TestZk> {
  const hosts = options.hosts ?? stackEnv().zookeeperHosts;
  const timeoutMs = options.connectTimeoutMs ?? 15_000;
  const client = zookeeper.createClient(hosts, {
    sessionTimeout: options.sessionTimeoutMs ?? 10_000,
    spinDelay: 200,
    retries: 2,
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.close();
      reject(new Error(`could not connect to ZooKeeper at ${hosts} within ${timeoutMs} ms`));
    }, timeoutMs);
    client.once("connected", () => {
      clearTimeout(timer);
      resolve(new TestZk(client));
    });
    client.connect();
  });
}

/**
 * Sends one of ZooKeeper's four-letter commands (`ruok`, `srvr`, `stat`, `mntr` are enabled
 * on the stack's servers) to the first server of HOSTS and returns its answer.
 */
export function fourLetterWord(hosts: string, word: string, timeoutMs = 5000): Promise<string> {
  const [host = "127.0.0.1", port = "2181"] = (hosts.split(/[,/]/)[0] ?? "").split(":");
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port: Number(port) });
    let answer = "";
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no answer to ${word}`)));
    socket.on("connect", () => socket.end(word));
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString("utf8");
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(answer));
  });
}

/** The server's count of open client connections (`mntr`), this query's own included. */
export async function aliveConnections(hosts: string): Promise<number> {
  const match = /^zk_num_alive_connections\s+(\d+)$/m.exec(await fourLetterWord(hosts, "mntr"));
  if (!match) throw new Error(`no zk_num_alive_connections in the mntr answer of ${hosts}`);
  return Number(match[1]);
}

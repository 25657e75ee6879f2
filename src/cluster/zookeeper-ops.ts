/** Znode shapes and requests as pgshovel uses them: stats, multi-ops, connection strings. */
import zookeeper from "node-zookeeper-client";

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

/** Splits `host:port,…/chroot` into the servers and the chroot path (undefined without one). */
export function parseHosts(hosts: string): { servers: string; chroot: string | undefined } {
  const slash = hosts.indexOf("/");
  if (slash === -1) return { servers: hosts, chroot: undefined };
  const chroot = hosts.slice(slash).replace(/\/+$/, "");
  return { servers: hosts.slice(0, slash), chroot: chroot === "" ? undefined : chroot };
}

/** A client transaction holding `ops`, each with its exact expected version. */
export function buildTransaction(client: zookeeper.Client, ops: ZkOp[]): zookeeper.Transaction {
  const transaction = client.transaction();
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
  return transaction;
}

/** The parts of a znode's Stat that pgshovel relies on. */
export function toStat(stat: zookeeper.Stat): NodeStat {
  const owner = stat.ephemeralOwner;
  return {
    version: stat.version,
    ephemeralOwner: owner?.some((byte) => byte !== 0) ? owner.toString("hex") : "",
  };
}

import { PgshovelError } from "../errors.js";

const IDENTIFIER = /^[a-z0-9_]+$/;

/** Longest cluster name: keeps trigger names within PostgreSQL's 63 bytes. */
export const MAX_CLUSTER_NAME = 16;
/** Longest replication set name. */
export const MAX_SET_NAME = 40;

function check(kind: string, name: string, max: number): string {
  if (!IDENTIFIER.test(name) || name.length > max) {
    throw new PgshovelError(
      "INVALID_ARGUMENT",
      `invalid ${kind} name ${JSON.stringify(name)}: use 1 to ${max} characters from [a-z0-9_]`,
    );
  }
  return name;
}

/** Validates a cluster name (`[a-z0-9_]`, at most 16 characters). */
export function checkClusterName(name: string): string {
  return check("cluster", name, MAX_CLUSTER_NAME);
}

/** Validates a replication set name (`[a-z0-9_]`, at most 40 characters). */
export function checkSetName(name: string): string {
  return check("set", name, MAX_SET_NAME);
}

/** Database-side names derived from a cluster and set, in one place. */
export const dbNames = {
  schema: (cluster: string) => `pgshovel_${cluster}`,
  queue: (cluster: string, set: string) => `pgshovel_${cluster}_${set}`,
  trigger: (cluster: string, set: string) => `pgs_${cluster}_${set}`,
  truncateTrigger: (cluster: string, set: string) => `pgs_${cluster}_${set}_t`,
  captureFunction: (set: string, relid: number) => `capture_${set}_${relid}`,
  /** A replica's applied position per set, in the target's cluster schema. */
  replicaPosition: "replica_position",
  /** A replica's copied tables per set, in the target's cluster schema. */
  replicaTables: "replica_tables",
  /** The PgQ consumer a replica registers on its source's queue: named after the target's node id. */
  replicaConsumer: (targetNode: string) =>
    `pgshovel_replica_${targetNode.replaceAll("-", "").slice(0, 12)}`,
};

/** ZooKeeper paths, in one place. */
export const zkPaths = {
  cluster: (cluster: string) => `/${cluster}`,
  sets: (cluster: string) => `/${cluster}/sets`,
  set: (cluster: string, set: string) => `/${cluster}/sets/${set}`,
  transactions: (cluster: string) => `/${cluster}/transactions`,
  transaction: (cluster: string, id: string) => `/${cluster}/transactions/${id}`,
  relays: (cluster: string, set: string) => `/${cluster}/relays/${set}`,
};

/** Quotes an SQL identifier. */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Quotes an SQL string literal. */
export function literal(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

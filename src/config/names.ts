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

/** The PgQ consumer relays use unless told otherwise; `set create` registers it with the queue. */
export const DEFAULT_CONSUMER = "pgshovel";

const captureFunctionPrefix = (set: string) => `capture_${set}_`;

/** Database-side names derived from a cluster and set, in one place. */
export const dbNames = {
  schema: (cluster: string) => `pgshovel_${cluster}`,
  queue: (cluster: string, set: string) => `pgshovel_${cluster}_${set}`,
  trigger: (cluster: string, set: string) => `pgs_${cluster}_${set}`,
  truncateTrigger: (cluster: string, set: string) => `pgs_${cluster}_${set}_t`,
  captureFunction: (set: string, relid: number) => `${captureFunctionPrefix(set)}${relid}`,
  /** A regular expression (PostgreSQL's `~`) matching every capture function name of a set. */
  captureFunctionPattern: (set: string) => `^${captureFunctionPrefix(set)}[0-9]+$`,
  /** A replica's applied position per set, in the target's cluster schema. */
  replicaPosition: "replica_position",
  /** A replica's copied tables per set, in the target's cluster schema. */
  replicaTables: "replica_tables",
  /** Where a replica's stream started per set (the mark taken before its bootstrap snapshot). */
  replicaMark: "replica_mark",
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
  /** Where the relays of one (set, consumer) stand for election: one candidate node each. */
  relayElection: (cluster: string, set: string, consumer: string) =>
    `${zkPaths.relays(cluster, set)}/${consumer}`,
  replicas: (cluster: string, set: string) => `/${cluster}/replicas/${set}`,
  /** Where the replica workers of one (set, target database) stand for election, by the target's node id. */
  replicaElection: (cluster: string, set: string, targetNode: string) =>
    `${zkPaths.replicas(cluster, set)}/${targetNode}`,
};

/** Kafka names derived from a cluster, set and consumer, in one place. */
export const kafkaNames = {
  /** The set's topic, unless the relay is given another. */
  topic: (cluster: string, set: string) => `${cluster}.${set}.mutations`,
  /** The relay's transactional id: a second relay with the same id fences the first. */
  transactionalId: (cluster: string, set: string, consumer: string) =>
    `pgshovel.${cluster}.${set}.${consumer}`,
};

/** Quotes an SQL identifier. */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Quotes an SQL string literal. */
export function literal(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

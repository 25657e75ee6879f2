/**
 * The replicas part of `pgshovel status`: the replica workers standing for each target of
 * a set (from their ZooKeeper candidates), each target's position read from its own
 * database, and how far behind the source's queue it is. Read-only, like the rest of
 * status; a target that cannot be read is reported as such, never fails the command.
 */
import type { AdminContext } from "../cluster/context.js";
import { dbNames, zkPaths } from "../config/names.js";
import { hidePassword } from "../config/set-config.js";
import { readCandidates } from "../coordination/leadership.js";
import { closeQuietly, connect, type PgClient, query } from "../database/postgres.js";
import { describeError } from "../errors.js";
import { readPosition } from "../replication/target-state.js";
import { type ConsumerState, type QueueInfo, readTicksBehind } from "./pgq-info.js";
import { scrubText } from "./scrub.js";

/** A replica worker as its candidate node describes it. */
export interface ReplicaCandidate {
  /** Its election node, `candidate-NNNNNNNNNN`. */
  node: string;
  /** The worker's id (a UUID per process). */
  worker: string | null;
  pid: number | null;
  host: string | null;
  /** When the worker process started. */
  startedAt: string | null;
}

/** Where a replica's batches come from: its own PgQ consumer, or a relay's stream. */
export interface ReplicaFeedStatus {
  kind: "queue" | "kafka" | "file" | "stdin" | "unknown";
  /** The replica's PgQ consumer (queue feed only). */
  consumer: string | null;
}

/** One replica target of a set: its workers, its position and its lag. */
export interface ReplicaStatus {
  /** The target database's node id (its election path). */
  targetNode: string;
  /** The target's DSN as the workers give it, password hidden. */
  target: string | null;
  leader: ReplicaCandidate | null;
  standbys: ReplicaCandidate[];
  feed: ReplicaFeedStatus;
  /** The last batch applied; null before the first (or when the target was not read). */
  position: { node: string; batch: string; endTick: string; endTime: string } | null;
  /** Seconds since the source's end tick of the last batch applied. */
  lagSeconds: number | null;
  /** Ticks of the queue after the replica's position: the batches it has still to apply. */
  batchesBehind: number | null;
  /** Events in those batches, as PgQ counts them (null when unknown). */
  eventsBehind: string | null;
  /** Why the target could not be read; null when it was. */
  error: string | null;
}

/** What the set's queue said, for the batches-behind figures. */
export interface QueueView {
  info: QueueInfo | null;
  consumers: ConsumerState[];
}

const text = (value: unknown) => (typeof value === "string" ? value : null);
const FEEDS = new Set(["queue", "kafka", "file", "stdin"]);

function candidate(node: string, data: Record<string, unknown>): ReplicaCandidate {
  return {
    node,
    worker: text(data.worker),
    pid: typeof data.pid === "number" ? data.pid : null,
    host: text(data.host),
    startedAt: text(data.startedAt),
  };
}

/**
 * A DSN to connect with, from the one a candidate carries (its password hidden as `***`):
 * without the placeholder, so that libpq's PGPASSWORD or password file supplies it.
 */
export function connectableDsn(dsn: string): string {
  if (/^postgres(ql)?:\/\//i.test(dsn)) {
    try {
      const url = new URL(dsn);
      if (url.password === "***") url.password = "";
      if (url.searchParams.get("password") === "***") url.searchParams.delete("password");
      return url.toString();
    } catch {
      return dsn;
    }
  }
  return dsn.replace(/\s*\bpassword\s*=\s*\*\*\*(?=\s|$)/gi, "");
}

interface TargetReading {
  position: ReplicaStatus["position"];
  lagSeconds: number | null;
  error: string | null;
}

async function readTarget(
  dsn: string,
  cluster: string,
  set: string,
  timeoutMs: number,
): Promise<TargetReading> {
  let client: PgClient | undefined;
  try {
    client = await connect(connectableDsn(dsn), {
      applicationName: "pgshovel status",
      timeoutMs,
    });
    const position = await readPosition(client, cluster, set);
    if (!position) return { position: null, lagSeconds: null, error: null };
    const lag = await query<{ lag: number }>(
      client,
      "SELECT extract(epoch FROM now() - $1::timestamptz)::float8 AS lag",
      [position.endTime],
      "reading the replica's lag",
    );
    return {
      position: {
        node: position.node,
        batch: position.batch.toString(),
        endTick: position.endTick.toString(),
        endTime: position.endTime,
      },
      lagSeconds: lag.rows[0]?.lag ?? null,
      error: null,
    };
  } catch (error) {
    // The target's DSN may appear in a driver's message: no password leaves here.
    return { position: null, lagSeconds: null, error: scrubText(describeError(error)) };
  } finally {
    await closeQuietly(client);
  }
}

function feedOf(data: Record<string, unknown>, targetNode: string, queue: QueueView) {
  const from = text(data.from);
  const own = text(data.consumer) ?? dbNames.replicaConsumer(targetNode);
  if (from !== null && FEEDS.has(from)) {
    const kind = from as ReplicaFeedStatus["kind"];
    return { kind, consumer: kind === "queue" ? own : null };
  }
  // A worker that does not say: its own consumer registered means it reads the queue.
  const registered = queue.consumers.some((c) => c.name === own);
  return registered
    ? { kind: "queue" as const, consumer: own }
    : { kind: "unknown" as const, consumer: null };
}

/**
 * Every target of the set with a replica worker standing for it. Batches behind: for a
 * queue feed, the ticks after its consumer's last one and the events PgQ counts pending;
 * for a stream feed, the ticks after its position's end tick (tick ids follow each other
 * within a queue) and the events between the two ticks.
 */
export async function readReplicas(
  ctx: AdminContext,
  set: string,
  sourceDsn: string,
  queue: QueueView,
  timeoutMs: number,
): Promise<ReplicaStatus[]> {
  // No node yet (no replica ever ran): no children.
  const targets = (await ctx.zk.children(zkPaths.replicas(ctx.cluster, set))).sort();
  const replicas: ReplicaStatus[] = [];
  for (const targetNode of targets) {
    const found = await readCandidates(
      ctx.zk,
      zkPaths.replicaElection(ctx.cluster, set, targetNode),
    );
    if (found.length === 0) continue;
    const [leader, ...standbys] = found.map((c) => candidate(c.node, c.data));
    const data = found[0]!.data;
    const dsn = text(data.target);
    const reading: TargetReading = dsn
      ? await readTarget(dsn, ctx.cluster, set, timeoutMs)
      : { position: null, lagSeconds: null, error: "its worker does not say where the target is" };
    replicas.push({
      targetNode,
      target: dsn === null ? null : hidePassword(dsn),
      leader: leader ?? null,
      standbys,
      feed: feedOf(data, targetNode, queue),
      ...reading,
      batchesBehind: null,
      eventsBehind: null,
    });
  }
  await fillBehind(replicas, sourceDsn, dbNames.queue(ctx.cluster, set), queue, timeoutMs);
  return replicas;
}

async function fillBehind(
  replicas: ReplicaStatus[],
  sourceDsn: string,
  queueName: string,
  queue: QueueView,
  timeoutMs: number,
): Promise<void> {
  const last = queue.info ? BigInt(queue.info.lastTickId) : undefined;
  if (last === undefined) return;
  const streamed: ReplicaStatus[] = [];
  for (const replica of replicas) {
    if (replica.feed.kind === "queue") {
      const own = queue.consumers.find((c) => c.name === replica.feed.consumer);
      if (own?.lastTick) {
        replica.batchesBehind = Number(last - BigInt(own.lastTick));
        replica.eventsBehind = own.pendingEvents;
      }
    } else if (replica.position) {
      streamed.push(replica);
    }
  }
  if (streamed.length === 0) return;
  let client: PgClient | undefined;
  try {
    client = await connect(sourceDsn, { applicationName: "pgshovel status", timeoutMs });
    const ticks = streamed.map((r) => BigInt(r.position!.endTick));
    const behind = await readTicksBehind(client, queueName, ticks);
    for (const replica of streamed) {
      const found = behind.get(BigInt(replica.position!.endTick));
      replica.batchesBehind = found?.batches ?? null;
      replica.eventsBehind = found?.events ?? null;
    }
  } catch {
    // The queue's own line says why the source could not be read.
  } finally {
    await closeQuietly(client);
  }
}

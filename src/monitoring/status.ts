/**
 * `pgshovel status`: one read-only view of a cluster's sets — configuration, relays,
 * PgQ queue and consumers, the topic's last committed batch, the replicas and their
 * lag — with a verdict per set.
 * It reads ZooKeeper nodes, PgQ's info functions and the topic as a read_committed
 * reader: it never stands for election, registers a consumer or opens a producer.
 */
import type { AdminContext } from "../cluster/context.js";
import { listSetNames, readClusterRecord, requireSet } from "../cluster/records.js";
import { dbNames, kafkaNames, zkPaths } from "../config/names.js";
import { hidePassword, type StoredSetConfig } from "../config/set-config.js";
import { readCandidates } from "../coordination/leadership.js";
import { closeQuietly, connect } from "../database/postgres.js";
import { describeError, isPgshovelError } from "../errors.js";
import type { KafkaConnectionOptions } from "../kafka/options.js";
import { readFence } from "../promotion/fence.js";
import type { CodecName } from "../stream/codec.js";
import { type ConsumerState, type QueueInfo, readConsumers, readQueueInfo } from "./pgq-info.js";
import { type ReplicaStatus, readReplicas } from "./replica-status.js";
import { type Finding, judgeSet, type Level, type Thresholds, worst } from "./verdict.js";

/** A running relay as its candidate node describes it. */
export interface RelayCandidate {
  /** Its election node, `candidate-NNNNNNNNNN`. */
  node: string;
  publisher: string | null;
  pid: number | null;
  host: string | null;
  /** When the relay process started. */
  startedAt: string | null;
  /** When this candidacy began (for the leader: it leads since then at the latest, or since its predecessor left). */
  since: string | null;
}

/** The relays of one (set, consumer): the leader and those standing by. */
export interface ConsumerRelays {
  consumer: string;
  leader: RelayCandidate | null;
  standbys: RelayCandidate[];
}

/** A PgQ consumer of the set's queue, and whether a relay serves it. */
export interface ConsumerStatus extends ConsumerState {
  /** True when at least one relay runs for this consumer. */
  relayed: boolean;
}

/** The set's topic as status sees it. */
export interface SinkStatus {
  kind: "kafka";
  topic: string;
  /** False when no brokers were given: nothing was read. */
  checked: boolean;
  /** Whether the topic exists (null when not checked or unreadable). */
  exists: boolean | null;
  lastCommittedBatch: {
    node: string;
    id: string;
    offset: string;
    publisher: string;
    sequence: string;
    timestamp: string;
  } | null;
  error: string | null;
}

/** Everything status reports about one set (docs/monitoring.md pins the JSON shape). */
export interface SetStatus {
  name: string;
  verdict: Level;
  findings: Finding[];
  /** The DSN, password hidden. */
  database: string;
  node: string;
  tables: string[];
  configurationVersion: number;
  relays: ConsumerRelays[];
  queue: { name: string; error: string | null; info: QueueInfo | null };
  consumers: ConsumerStatus[];
  sink: SinkStatus;
  /** The targets with a replica worker running, each with its position and lag. */
  replicas: ReplicaStatus[];
  /** The set's fence (`set fence`): since when, and the tick taken after it; null: not fenced. */
  fence: { fencedAt: string; tick: string | null } | null;
}

/** The report of `pgshovel status`. */
export interface ClusterStatus {
  cluster: string;
  /** The cluster record's software version. */
  version: string;
  checkedAt: string;
  verdict: Level;
  thresholds: Thresholds;
  sets: SetStatus[];
}

/** Options of {@link collectStatus}. */
export interface StatusOptions {
  /** Only this set (NOT_FOUND when it does not exist); all sets otherwise. */
  set?: string | undefined;
  thresholds: Thresholds;
  /** How to read the sets' topics; undefined: the topics are not checked. */
  kafka?: { connection: KafkaConnectionOptions; codec: CodecName } | undefined;
  /** Bound on connecting to each set's database and each replica's target. */
  connectTimeoutMs: number;
}

const text = (value: unknown) => (typeof value === "string" ? value : null);

function candidate(node: string, data: Record<string, unknown>): RelayCandidate {
  return {
    node,
    publisher: text(data.publisher),
    pid: typeof data.pid === "number" ? data.pid : null,
    host: text(data.host),
    startedAt: text(data.startedAt),
    since: text(data.since),
  };
}

/** The relays of every consumer of a set that has any, by consumer name. */
export async function readRelays(ctx: AdminContext, set: string): Promise<ConsumerRelays[]> {
  const consumers = (await ctx.zk.children(zkPaths.relays(ctx.cluster, set))).sort();
  const relays: ConsumerRelays[] = [];
  for (const consumer of consumers) {
    const candidates = await readCandidates(
      ctx.zk,
      zkPaths.relayElection(ctx.cluster, set, consumer),
    );
    if (candidates.length === 0) continue;
    const [leader, ...standbys] = candidates.map((c) => candidate(c.node, c.data));
    relays.push({ consumer, leader: leader ?? null, standbys });
  }
  return relays;
}

async function readQueue(
  dsn: string,
  queue: string,
  timeoutMs: number,
): Promise<{ info: QueueInfo | null; consumers: ConsumerState[]; error: string | null }> {
  let client: Awaited<ReturnType<typeof connect>> | undefined;
  try {
    client = await connect(dsn, { applicationName: "pgshovel status", timeoutMs });
    const info = await readQueueInfo(client, queue);
    if (!info) return { info: null, consumers: [], error: null };
    return { info, consumers: await readConsumers(client, queue), error: null };
  } catch (error) {
    return { info: null, consumers: [], error: describeError(error) };
  } finally {
    await closeQuietly(client);
  }
}

async function readSink(
  cluster: string,
  set: string,
  kafka: StatusOptions["kafka"],
): Promise<SinkStatus> {
  const topic = kafkaNames.topic(cluster, set);
  const base = { kind: "kafka" as const, topic, lastCommittedBatch: null, error: null };
  if (!kafka) return { ...base, checked: false, exists: null };
  try {
    // Loaded only when asked: the Kafka client is large.
    const { readLastCommittedBatch } = await import("../kafka/last-commit.js");
    const last = await readLastCommittedBatch({
      ...kafka.connection,
      clientId: "pgshovel-status",
      topic,
      codec: kafka.codec,
    });
    return {
      ...base,
      checked: true,
      exists: true,
      lastCommittedBatch: last
        ? {
            node: last.batch.node,
            id: last.batch.id.toString(),
            offset: last.offset.toString(),
            publisher: last.header.publisher,
            sequence: last.header.sequence.toString(),
            timestamp: last.header.timestamp,
          }
        : null,
    };
  } catch (error) {
    if (isPgshovelError(error, "NOT_FOUND")) return { ...base, checked: true, exists: false };
    return { ...base, checked: true, exists: null, error: describeError(error) };
  }
}

/** Collects one set's status and judges it. */
export async function collectSetStatus(
  ctx: AdminContext,
  name: string,
  stored: { config: StoredSetConfig; version: number },
  options: StatusOptions,
): Promise<SetStatus> {
  const { config, version } = stored;
  const queueName = dbNames.queue(ctx.cluster, name);
  const dsn = config.database.dsn;
  const timeoutMs = options.connectTimeoutMs;
  const [relays, [queue, replicas], sink, fenced] = await Promise.all([
    readRelays(ctx, name),
    readQueue(dsn, queueName, timeoutMs).then(
      async (queue) => [queue, await readReplicas(ctx, name, dsn, queue, timeoutMs)] as const,
    ),
    readSink(ctx.cluster, name, options.kafka),
    readFence(ctx, name),
  ]);
  const fence = fenced ? { fencedAt: fenced.record.fenced_at, tick: fenced.record.tick } : null;
  const relayed = new Set(relays.map((r) => r.consumer));
  const consumers = queue.consumers.map((c) => ({ ...c, relayed: relayed.has(c.name) }));
  const findings = judgeSet(
    {
      relays: relays.map((r) => ({ consumer: r.consumer, standbys: r.standbys.length })),
      queueProblem:
        queue.error !== null
          ? { kind: "unreachable", error: queue.error }
          : queue.info === null
            ? { kind: "missing" }
            : null,
      queue: queue.info,
      consumers,
      sinkError: sink.error,
      fencedAt: fence?.fencedAt ?? null,
      replicas: replicas.map((r) => ({
        target: r.target ?? r.targetNode,
        error: r.error,
        lagSeconds: r.lagSeconds,
        batchesBehind: r.batchesBehind,
      })),
    },
    options.thresholds,
  );
  return {
    name,
    verdict: worst(findings.map((f) => f.level)),
    findings,
    database: hidePassword(config.database.dsn),
    node: config.database.node,
    tables: config.tables.map((t) => `${t.schema}.${t.name}`),
    configurationVersion: version,
    relays,
    queue: { name: queueName, error: queue.error, info: queue.info },
    consumers,
    sink,
    replicas,
    fence,
  };
}

/** Collects the status of the cluster's sets (or of one). */
export async function collectStatus(
  ctx: AdminContext,
  options: StatusOptions,
): Promise<ClusterStatus> {
  const { record } = await readClusterRecord(ctx);
  const names = options.set === undefined ? await listSetNames(ctx) : [options.set];
  const sets: SetStatus[] = [];
  for (const name of names) {
    let stored: { config: StoredSetConfig; version: number };
    try {
      stored = await requireSet(ctx, name);
    } catch (error) {
      // Dropped since it was listed: only a set asked for by name is an error.
      if (options.set === undefined && isPgshovelError(error, "NOT_FOUND")) continue;
      throw error;
    }
    sets.push(await collectSetStatus(ctx, name, stored, options));
  }
  return {
    cluster: ctx.cluster,
    version: record.version,
    checkedAt: new Date().toISOString(),
    verdict: worst(sets.map((s) => s.verdict)),
    thresholds: options.thresholds,
    sets,
  };
}

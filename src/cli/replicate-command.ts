import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { type Command, InvalidArgumentError } from "commander";
import { DEFAULT_CONSUMER, dbNames, kafkaNames } from "../config/names.js";
import { hidePassword } from "../config/set-config.js";
import { PgshovelError } from "../errors.js";
import { PASSWORD_SASL_MECHANISMS } from "../kafka/options.js";
import type { Logger } from "../log.js";
import {
  type ReplicaOperations,
  startReplicaOperations,
} from "../monitoring/replica-operations.js";
import type { ApplyResult } from "../replication/apply.js";
import { QueueCaughtUp, StreamCaughtUp } from "../replication/caught-up.js";
import type { FeedBatch } from "../replication/feed.js";
import { type KafkaFeedConnection, openStreamFeed } from "../replication/feeds/index.js";
import { copyReporter } from "../replication/progress.js";
import { QueueFeed } from "../replication/queue-feed.js";
import { PgTarget } from "../replication/target.js";
import { ReplicaWorker } from "../replication/worker.js";
import type { FeedFactory } from "../replication/worker-options.js";
import { CODEC_NAMES, type CodecName, codecByName } from "../stream/codec.js";
import { openZooKeeper, runUntilStopped } from "./long-running.js";
import { addOperationsOptions, type OperationsFlags } from "./operations-options.js";
import {
  type GlobalOptions,
  maxZookeeperPauseOption,
  option,
  parseConsumer,
  parseDuration,
  parsePositiveInt,
  parseSet,
  targetOption,
} from "./options.js";
import { addKafkaConnectionOptions } from "./sinks.js";

/** Where the replica's stream comes from: a tagged union, handled exhaustively. */
export type FeedSpec =
  | { kind: "queue" }
  | { kind: "kafka" }
  | { kind: "file"; path: string }
  | { kind: "stdin" };

/** The name of the replicate command of `pgshovel`. */
export const REPLICATE_COMMAND = "replicate";

/** Options of the replicate command, parsed. */
interface ReplicateFlags extends OperationsFlags {
  target: string;
  from: FeedSpec;
  consumerId?: string;
  relayConsumer: string;
  codec?: CodecName;
  jobs: number;
  createTables: boolean;
  /** False with --no-copy. */
  copy: boolean;
  untilCaughtUp: boolean;
  pollInterval: number;
  fetchSize: number;
  maxZookeeperPause: number;
  kafkaBrokers: string;
  topic?: string;
  kafkaTls?: boolean;
  kafkaSaslMechanism?: string;
  kafkaSaslUsername?: string;
  kafkaSaslPassword?: string;
}

/**
 * Test-only: `PGSHOVEL_TEST_PAUSE_AFTER_COMMIT=N` stops the worker after the target's commit
 * of the Nth batch it applies and before that batch is finished, until the process is killed.
 */
const PAUSE_AFTER_COMMIT = "PGSHOVEL_TEST_PAUSE_AFTER_COMMIT";

function parseFeed(text: string): FeedSpec {
  if (text === "queue") return { kind: "queue" };
  if (text === "kafka") return { kind: "kafka" };
  if (text === "-") return { kind: "stdin" };
  if (text.startsWith("file:") && text.length > 5) return { kind: "file", path: text.slice(5) };
  throw new InvalidArgumentError(
    `${JSON.stringify(text)} is not a stream source: use queue, kafka, file:PATH or -`,
  );
}

/** A DSN given on the command line: a `postgresql://` URI. */
function kafkaReadOptions(
  flags: ReplicateFlags,
  cluster: string,
  set: string,
): KafkaFeedConnection {
  const mechanism = PASSWORD_SASL_MECHANISMS.find((m) => m === flags.kafkaSaslMechanism);
  return {
    brokers: flags.kafkaBrokers
      .split(",")
      .map((b) => b.trim())
      .filter(Boolean),
    topic: flags.topic ?? kafkaNames.topic(cluster, set),
    clientId: `pgshovel-replica-${set}`,
    ...(flags.kafkaTls ? { tls: {} } : {}),
    ...(mechanism === undefined
      ? {}
      : {
          sasl: {
            mechanism,
            ...(flags.kafkaSaslUsername === undefined ? {} : { username: flags.kafkaSaslUsername }),
            ...(flags.kafkaSaslPassword === undefined ? {} : { password: flags.kafkaSaslPassword }),
          },
        }),
  };
}

/** The feed factory `--from` names. The only place that knows every feed. */
function feedFactory(
  flags: ReplicateFlags,
  context: { cluster: string; set: string; logger: Logger },
): FeedFactory {
  const { cluster, set, logger } = context;
  const spec = flags.from;
  const codec = () => codecByName(flags.codec ?? (spec.kind === "kafka" ? "protobuf" : "json"));
  switch (spec.kind) {
    case "queue":
      return (sourceDsn, targetNode) =>
        new QueueFeed({
          sourceDsn,
          cluster,
          set,
          consumer: flags.consumerId ?? dbNames.replicaConsumer(targetNode),
          fetchSize: flags.fetchSize,
          pollIntervalMs: flags.pollInterval,
        });
    case "kafka": {
      const kafka = kafkaReadOptions(flags, cluster, set);
      return () =>
        openStreamFeed({ kind: "kafka", kafka }, { cluster, set, codec: codec(), logger });
    }
    case "file":
      return () =>
        openStreamFeed({ kind: "file", path: spec.path }, { cluster, set, codec: codec(), logger });
    case "stdin":
      return () => openStreamFeed({ kind: "stdin" }, { cluster, set, codec: codec(), logger });
    default: {
      const unreachable: never = spec;
      throw new Error(`unknown stream source ${JSON.stringify(unreachable)}`);
    }
  }
}

/** The `replica` label of a target: host, port and database, without the user or password. */
function replicaName(dsn: string): string {
  try {
    const url = new URL(dsn);
    return `${url.host}${url.pathname}`;
  } catch {
    return hidePassword(dsn);
  }
}

/** The target's password, if the DSN holds one: error reports must never carry it. */
function passwordOf(dsn: string): string[] {
  try {
    const password = decodeURIComponent(new URL(dsn).password);
    return password ? [password] : [];
  } catch {
    return [];
  }
}

/** The test-only pause after a commit, when its variable asks for it. */
function pauseAfterCommit(
  logger: Logger,
  signal: AbortSignal,
): ((batch: FeedBatch, result: ApplyResult) => Promise<void>) | undefined {
  const text = process.env[PAUSE_AFTER_COMMIT];
  if (!text) return undefined;
  const at = Number(text);
  if (!Number.isInteger(at) || at <= 0) {
    throw new PgshovelError("INVALID_ARGUMENT", `${PAUSE_AFTER_COMMIT} must be a positive integer`);
  }
  let applied = 0;
  return async (batch, result) => {
    if (result.kind !== "applied" || ++applied !== at) return;
    logger.warn({ batch: batch.id.toString() }, "test pause: committed, not finished");
    await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
  };
}

function runReplicate(command: Command, set: string, flags: ReplicateFlags): Promise<void> {
  return runUntilStopped<ReplicaOperations>(command, {
    operations: (options, logger) =>
      startReplicaOperations({
        labels: { cluster: options.cluster, set, replica: replicaName(flags.target) },
        metricsListen: flags.metricsListen,
        healthStallAfterMs: flags.healthStallAfter,
        sentryDsn: flags.sentryDsn,
        secrets: [
          ...passwordOf(flags.target),
          ...(flags.kafkaSaslPassword === undefined ? [] : [flags.kafkaSaslPassword]),
        ],
        progressIntervalMs: flags.progressInterval,
        logger,
      }),
    async run(options, ops, signal) {
      let replica: ReplicaWorker | undefined;
      try {
        replica = await startWorker(options, set, flags, ops, signal);
        const outcome = await replica.run(signal);
        if (outcome.kind === "dropped") {
          process.stderr.write(`set ${set} was dropped; the replica worker stops\n`);
        } else if (outcome.kind === "caught-up") {
          ops.logger.info("caught up: every transaction committed before the start is applied");
        } else if (outcome.kind === "ended") {
          ops.logger.info("the stream ended: every batch in it is applied");
        }
      } finally {
        replica?.zookeeper.close();
      }
    },
  });
}

/** The ZooKeeper session, the target, the feed and the worker, wired from the flags. */
async function startWorker(
  options: GlobalOptions,
  set: string,
  flags: ReplicateFlags,
  ops: ReplicaOperations,
  signal: AbortSignal,
): Promise<ReplicaWorker> {
  const { cluster } = options;
  const { logger } = ops;
  const { zk, reconnect } = await openZooKeeper(options, logger, signal);
  const worker = randomUUID();
  const target = new PgTarget({ targetDsn: flags.target, cluster, set });
  const streamed = flags.from.kind !== "queue";
  const afterCommit = pauseAfterCommit(logger, signal);
  const replica = new ReplicaWorker({
    zk,
    reconnect,
    cluster,
    set,
    logger,
    feed: feedFactory(flags, { cluster, set, logger }),
    target,
    elect: true,
    candidate: {
      worker,
      pid: process.pid,
      host: hostname(),
      startedAt: new Date().toISOString(),
      target: target.description,
      // For status: where the batches come from, and the queue feed's consumer when given.
      from: flags.from.kind,
      consumer: streamed ? null : (flags.consumerId ?? null),
    },
    createTables: flags.createTables,
    jobs: flags.jobs,
    ...(flags.copy === false ? { noCopy: true } : {}),
    ...(flags.untilCaughtUp
      ? {
          untilCaughtUp: (sourceDsn: string, targetNode: string) =>
            streamed
              ? new StreamCaughtUp(sourceDsn, cluster, set, flags.relayConsumer)
              : new QueueCaughtUp(
                  sourceDsn,
                  cluster,
                  set,
                  flags.consumerId ?? dbNames.replicaConsumer(targetNode),
                ),
        }
      : {}),
    progress: copyReporter(logger, { terminal: process.stderr.isTTY ? process.stderr : undefined }),
    ...(afterCommit ? { afterCommit } : {}),
    maxZooKeeperPauseMs: flags.maxZookeeperPause,
    retryInitialMs: 200,
    retryMaxMs: 5000,
    observer: ops.observer,
  });
  logger.info(
    { set, worker, target: target.description, from: flags.from.kind },
    "replica worker starting",
  );
  return replica;
}

/** Adds `replicate SET` to the program. */
export function addReplicateCommand(program: Command): void {
  const command = program.command(REPLICATE_COMMAND);
  command
    .description(
      "keep a PostgreSQL replica of a set's tables: bootstrap from one snapshot, then apply each source batch as one transaction",
    )
    .argument("<set>", "the replication set to replicate", parseSet)
    .addOption(targetOption())
    .addOption(
      option(
        "--from <source>",
        "where the stream comes from: queue (the set's PgQ queue, as a consumer of the replica's own), kafka (the set's topic), file:PATH (a relay's stream file) or - (stdin)",
      )
        .argParser(parseFeed)
        .default(parseFeed("queue"), "queue"),
    )
    .addOption(
      option(
        "--consumer-id <id>",
        "with --from queue: the replica's PgQ consumer (default pgshovel_replica_<target node id>, one per target)",
      ).argParser(parseConsumer),
    )
    .addOption(
      option(
        "--relay-consumer <id>",
        "with a stream source and --until-caught-up: the PgQ consumer of the relay that writes the stream",
      )
        .default(DEFAULT_CONSUMER)
        .argParser(parseConsumer),
    )
    .addOption(
      option(
        "--codec <codec>",
        "encoding of a stream source (default: protobuf for Kafka, json for files and stdin)",
      ).choices(CODEC_NAMES),
    )
    .addOption(
      option("--jobs <n>", "tables copied at once during the bootstrap, from one shared snapshot")
        .default(1)
        .argParser(parsePositiveInt),
    )
    .addOption(
      option(
        "--create-tables",
        "create missing target tables with the captured columns, their types and the primary key (otherwise a missing table is an error)",
      ),
    )
    .addOption(
      option(
        "--no-copy",
        "a new replica takes the target's tables as they are, without a copy (the reverse direction after a switchover); refused unless the set's queue has captured nothing yet",
      ),
    )
    .addOption(
      option(
        "--until-caught-up",
        "exit 0 once everything committed on the source when the command started is applied",
      ),
    )
    .addOption(
      option("--poll-interval <duration>", "with --from queue: wait between polls of an idle queue")
        .default(200, "200ms")
        .argParser(parseDuration),
    )
    .addOption(
      option("--fetch-size <n>", "with --from queue: events fetched from a batch at a time")
        .default(5000)
        .argParser(parsePositiveInt),
    )
    .addOption(maxZookeeperPauseOption())
    .addOption(
      option("--topic <name>", "with --from kafka: the topic (default <cluster>.<set>.mutations)"),
    )
    .action(async (set: string, flags: ReplicateFlags, cmd: Command) => {
      await runReplicate(cmd, set, flags);
    });
  addKafkaConnectionOptions(command, "127.0.0.1:9092");
  addOperationsOptions(command);
}

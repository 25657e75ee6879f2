import { Command, InvalidArgumentError } from "commander";
import { DEFAULT_CONSUMER, dbNames } from "../config/names.js";
import { describeError } from "../errors.js";
import { type RelayOperations, startRelayOperations } from "../monitoring/relay-operations.js";
import { DEFAULT_MAX_SINK_WAIT_MS } from "../relay/options.js";
import { PgqSource } from "../relay/pgq-source.js";
import { Relay } from "../relay/relay.js";
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
} from "./options.js";
import { addKafkaOptions, createSink, kafkaOptionsFrom, type SinkSpec } from "./sinks.js";

/** The name of the relay command of `pgshovel`. */
export const RELAY_COMMAND = "relay";

/** Options of the relay command, parsed. */
interface RelayFlags extends OperationsFlags {
  sink: SinkSpec;
  codec?: CodecName;
  consumerId: string;
  pollInterval: number;
  fetchSize: number;
  selfTick: boolean;
  maxZookeeperPause: number;
  maxSinkWait: number;
  [kafkaOption: string]: unknown;
}

function parseSink(text: string): SinkSpec {
  if (text === "stdout") return { kind: "stdout" };
  if (text === "kafka") return { kind: "kafka" };
  if (text.startsWith("file:") && text.length > 5) return { kind: "file", path: text.slice(5) };
  throw new InvalidArgumentError(
    `${JSON.stringify(text)} is not a sink: use stdout, file:PATH or kafka`,
  );
}

function configure(command: Command, defaultSink: SinkSpec["kind"]): Command {
  command
    .argument("<set>", "the replication set to relay", parseSet)
    .addOption(
      option("--sink <sink>", "where to publish: stdout, file:PATH or kafka")
        .argParser(parseSink)
        .default(parseSink(defaultSink), defaultSink),
    )
    .addOption(
      option(
        "--codec <codec>",
        "message encoding (default: json for stdout and files, protobuf for Kafka)",
      ).choices(CODEC_NAMES),
    )
    .addOption(
      option("--consumer-id <id>", "PgQ consumer name; one relay is active per set and consumer")
        .default(DEFAULT_CONSUMER)
        .argParser(parseConsumer),
    )
    .addOption(
      option("--poll-interval <duration>", "wait between polls of an idle queue")
        .default(50, "50ms")
        .argParser(parseDuration),
    )
    .addOption(
      option("--fetch-size <n>", "events fetched from a batch's cursor at a time")
        .default(5000)
        .argParser(parsePositiveInt),
    )
    .addOption(
      option(
        "--no-self-tick",
        "do not tick the queue when idle (leave ticking to pgqd: higher latency)",
      ),
    )
    .addOption(maxZookeeperPauseOption())
    .addOption(
      option(
        "--max-sink-wait <duration>",
        "give up when the sink cannot be opened (Kafka brokers unreachable, say) this long; retry meanwhile",
      )
        .default(DEFAULT_MAX_SINK_WAIT_MS, "5m")
        .argParser(parseDuration),
    );
  addKafkaOptions(command);
  addOperationsOptions(command);
  return command.action(async (set: string, flags: RelayFlags, cmd: Command) => {
    await runRelay(cmd, set, flags);
  });
}

function runRelay(command: Command, set: string, flags: RelayFlags): Promise<void> {
  return runUntilStopped<RelayOperations>(command, {
    operations: (options, logger) =>
      startRelayOperations({
        labels: { cluster: options.cluster, set, consumer: flags.consumerId },
        queue: dbNames.queue(options.cluster, set),
        metricsListen: flags.metricsListen,
        healthStallAfterMs: flags.healthStallAfter,
        sentryDsn: flags.sentryDsn,
        secrets: typeof flags.kafkaSaslPassword === "string" ? [flags.kafkaSaslPassword] : [],
        progressIntervalMs: flags.progressInterval,
        logger,
      }),
    async run(options, ops, signal) {
      let relay: Relay | undefined;
      const diagnose = () => {
        relay?.diagnostics().then(
          (report) => process.stderr.write(`${JSON.stringify({ diagnostics: report })}\n`),
          (error) => process.stderr.write(`diagnostics failed: ${describeError(error)}\n`),
        );
      };
      try {
        relay = await startRelay(options, set, flags, ops, signal);
        process.on("SIGUSR1", diagnose);
        const outcome = await relay.run(signal);
        if (outcome.kind === "dropped")
          process.stderr.write(`set ${set} was dropped; the relay stops\n`);
      } finally {
        process.off("SIGUSR1", diagnose);
        relay?.zookeeper.close();
      }
    },
  });
}

/** The sink, the ZooKeeper session and the relay, wired with the operations' wrappers. */
async function startRelay(
  options: GlobalOptions,
  set: string,
  flags: RelayFlags,
  ops: RelayOperations,
  signal: AbortSignal,
): Promise<Relay> {
  const { logger } = ops;
  const consumer = flags.consumerId;
  const codec = ops.codec(
    codecByName(flags.codec ?? (flags.sink.kind === "kafka" ? "protobuf" : "json")),
  );
  const sink = ops.sink(
    await createSink(flags.sink, {
      codec,
      logger,
      kafka:
        flags.sink.kind === "kafka"
          ? kafkaOptionsFrom(flags, { cluster: options.cluster, set, consumer })
          : undefined,
    }),
  );
  const { zk, reconnect } = await openZooKeeper(options, logger, signal);
  const { cluster } = options;
  const relay = new Relay({
    zk,
    reconnect,
    cluster,
    set,
    consumer,
    sink,
    source: (dsn) => {
      ops.useDatabase(dsn);
      return new PgqSource(dsn, { cluster, set, consumer, fetchSize: flags.fetchSize });
    },
    logger,
    pollIntervalMs: flags.pollInterval,
    selfTick: flags.selfTick,
    maxZooKeeperPauseMs: flags.maxZookeeperPause,
    maxSinkWaitMs: flags.maxSinkWait,
    retryInitialMs: 200,
    retryMaxMs: 5000,
    elect: true,
    ...(ops.observer ? { observer: ops.observer } : {}),
  });
  ops.follow(() => relay.diagnostics());
  logger.info(
    { set, consumer, sink: sink.description, codec: codec.name, publisher: relay.publisher },
    "relay starting",
  );
  return relay;
}

/** The root command of a relay-only program (pgshovel-stream-relay, pgshovel-kafka-relay). */
export function relayProgram(entry: string, sink: "stdout" | "kafka"): Command {
  const command = new Command(entry).description(
    sink === "kafka"
      ? "relay a replication set's transactions into Kafka, one Kafka transaction per batch (same as `pgshovel relay SET --sink kafka`)"
      : "relay a replication set's transactions to stdout as JSON lines (same as `pgshovel relay SET`)",
  );
  return configure(command, sink);
}

/** Adds `relay SET` to the program. */
export function addRelayCommand(program: Command): void {
  configure(
    program
      .command(RELAY_COMMAND)
      .description(
        "relay a replication set's transactions, in commit order, to stdout, a file or Kafka",
      ),
    "stdout",
  );
}

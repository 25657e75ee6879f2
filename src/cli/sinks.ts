import type { Command } from "commander";
import { kafkaNames } from "../config/names.js";
import { PgshovelError } from "../errors.js";
import { type KafkaConnectionOptions, PASSWORD_SASL_MECHANISMS } from "../kafka/options.js";
import type { Logger } from "../log.js";
import { FileSink, StreamSink } from "../sinks/file/file-sink.js";
import { COMPRESSIONS, DEFAULT_COMPRESSION } from "../sinks/kafka/compression.js";
import type { KafkaSinkOptionsInput } from "../sinks/kafka/options.js";
import type { Sink } from "../sinks/sink.js";
import type { Codec } from "../stream/codec.js";
import { option, parsePositiveInt } from "./options.js";

/** Which sink the user chose: a tagged union, handled exhaustively. */
export type SinkSpec = { kind: "stdout" } | { kind: "file"; path: string } | { kind: "kafka" };

/**
 * The Kafka sink's options as the relay's flags give them; the codec comes from
 * `--codec`. Validated once, by the sink's schema, when the sink is built.
 */
export type KafkaFlagOptions = Omit<KafkaSinkOptionsInput, "codec">;

/**
 * Adds the options that say how to reach Kafka: brokers (with a default, or none: then
 * the command reads Kafka only when they are given), TLS and SASL.
 */
export function addKafkaConnectionOptions(command: Command, defaultBrokers?: string): void {
  const brokers = option(
    "--kafka-brokers <list>",
    "Kafka bootstrap brokers, comma-separated host:port",
  );
  command
    .addOption(defaultBrokers === undefined ? brokers : brokers.default(defaultBrokers))
    .addOption(option("--kafka-tls", "connect to the brokers with TLS"))
    .addOption(
      option("--kafka-sasl-mechanism <mechanism>", "SASL mechanism").choices(
        PASSWORD_SASL_MECHANISMS,
      ),
    )
    .addOption(option("--kafka-sasl-username <user>", "SASL user name"))
    .addOption(
      option("--kafka-sasl-password <password>", "SASL password (prefer the environment variable)"),
    );
}

/** Adds the Kafka options to a relay command. */
export function addKafkaOptions(command: Command): void {
  addKafkaConnectionOptions(command, "127.0.0.1:9092");
  command
    .addOption(option("--topic <name>", "Kafka topic (default: <cluster>.<set>.mutations)"))
    .addOption(
      option("--compression <codec>", "Kafka record compression")
        .choices(COMPRESSIONS)
        .default(DEFAULT_COMPRESSION),
    )
    .addOption(
      option("--replication-factor <n>", "replication factor of a topic the relay creates")
        .default(1)
        .argParser(parsePositiveInt),
    );
}

const text = (value: unknown): string | undefined =>
  typeof value === "string" ? value : undefined;

/** Reads how to reach Kafka out of parsed flags (see {@link addKafkaConnectionOptions}). */
export function kafkaConnectionFrom(flags: Record<string, unknown>): KafkaConnectionOptions {
  // Commander has checked the choices; find() gives the value its literal type.
  const mechanism = PASSWORD_SASL_MECHANISMS.find((m) => m === flags.kafkaSaslMechanism);
  const username = text(flags.kafkaSaslUsername);
  const password = text(flags.kafkaSaslPassword);
  return {
    brokers: (text(flags.kafkaBrokers) ?? "")
      .split(",")
      .map((b) => b.trim())
      .filter(Boolean),
    ...(flags.kafkaTls === true ? { tls: {} } : {}),
    ...(mechanism === undefined
      ? {}
      : {
          sasl: {
            mechanism,
            ...(username === undefined ? {} : { username }),
            ...(password === undefined ? {} : { password }),
          },
        }),
  };
}

/** Reads the Kafka sink's options out of parsed relay flags. */
export function kafkaOptionsFrom(
  flags: Record<string, unknown>,
  ids: { cluster: string; set: string; consumer: string },
): KafkaFlagOptions {
  const compression = COMPRESSIONS.find((c) => c === flags.compression);
  return {
    ...kafkaConnectionFrom(flags),
    topic: text(flags.topic) ?? kafkaNames.topic(ids.cluster, ids.set),
    ...(compression === undefined ? {} : { compression }),
    ...(typeof flags.replicationFactor === "number"
      ? { replicationFactor: flags.replicationFactor }
      : {}),
    transactionalId: kafkaNames.transactionalId(ids.cluster, ids.set, ids.consumer),
    clientId: `pgshovel-relay-${ids.set}`,
  };
}

/** Builds the chosen sink. The only place that knows every sink implementation. */
export async function createSink(
  spec: SinkSpec,
  context: { codec: Codec; logger: Logger; kafka: KafkaFlagOptions | undefined },
): Promise<Sink> {
  switch (spec.kind) {
    case "stdout":
      return new StreamSink(process.stdout, context.codec);
    case "file":
      return new FileSink(spec.path, context.codec);
    case "kafka": {
      if (context.kafka === undefined) {
        throw new PgshovelError("INTERNAL", "the Kafka sink was chosen without Kafka options");
      }
      // Loaded only here: the Kafka client costs a file or stdout relay ~70 MB of RSS.
      const { KafkaSink } = await import("../sinks/kafka/kafka-sink.js");
      return new KafkaSink({ ...context.kafka, codec: context.codec, logger: context.logger });
    }
    default: {
      const unreachable: never = spec;
      throw new Error(`unknown sink ${JSON.stringify(unreachable)}`);
    }
  }
}

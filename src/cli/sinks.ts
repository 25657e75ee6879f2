import type { Command } from "commander";
import type { Logger } from "../log.js";
import { FileSink, StreamSink } from "../sinks/file/file-sink.js";
import { COMPRESSIONS, DEFAULT_COMPRESSION } from "../sinks/kafka/compression.js";
import type { Sink } from "../sinks/sink.js";
import type { Codec } from "../stream/codec.js";
import { option, parsePositiveInt } from "./options.js";

/** Which sink the user chose: a tagged union, handled exhaustively. */
export type SinkSpec = { kind: "stdout" } | { kind: "file"; path: string } | { kind: "kafka" };

/** Kafka settings gathered from the relay's flags. */
export interface KafkaSettings {
  brokers: string[];
  topic: string;
  compression: string;
  replicationFactor: number;
  transactionalId: string;
  clientId: string;
  tls: boolean;
  sasl?: { mechanism: string; username: string; password: string };
}

/** Adds the Kafka options to a relay command. */
export function addKafkaOptions(command: Command): void {
  command
    .addOption(
      option(
        "--kafka-brokers <list>",
        "Kafka bootstrap brokers, comma-separated host:port",
      ).default("127.0.0.1:9092"),
    )
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
    )
    .addOption(option("--kafka-tls", "connect to the brokers with TLS"))
    .addOption(
      option("--kafka-sasl-mechanism <mechanism>", "SASL mechanism").choices([
        "PLAIN",
        "SCRAM-SHA-256",
        "SCRAM-SHA-512",
      ]),
    )
    .addOption(option("--kafka-sasl-username <user>", "SASL user name"))
    .addOption(
      option("--kafka-sasl-password <password>", "SASL password (prefer the environment variable)"),
    );
}

/** Reads the Kafka settings out of parsed relay flags. */
export function kafkaOptionsFrom(
  flags: Record<string, unknown>,
  ids: { cluster: string; set: string; consumer: string },
): KafkaSettings {
  const mechanism = flags.kafkaSaslMechanism as string | undefined;
  return {
    brokers: String(flags.kafkaBrokers)
      .split(",")
      .map((b) => b.trim())
      .filter(Boolean),
    topic: (flags.topic as string | undefined) ?? `${ids.cluster}.${ids.set}.mutations`,
    compression: String(flags.compression),
    replicationFactor: flags.replicationFactor as number,
    transactionalId: `pgshovel.${ids.cluster}.${ids.set}.${ids.consumer}`,
    clientId: `pgshovel-relay-${ids.set}`,
    tls: flags.kafkaTls === true,
    ...(mechanism
      ? {
          sasl: {
            mechanism,
            username: String(flags.kafkaSaslUsername ?? ""),
            password: String(flags.kafkaSaslPassword ?? ""),
          },
        }
      : {}),
  };
}

/** Builds the chosen sink. The only place that knows every sink implementation. */
export async function createSink(
  spec: SinkSpec,
  context: { codec: Codec; logger: Logger; kafka: KafkaSettings | undefined },
): Promise<Sink> {
  switch (spec.kind) {
    case "stdout":
      return new StreamSink(process.stdout, context.codec);
    case "file":
      return new FileSink(spec.path, context.codec);
    case "kafka": {
      const kafka = context.kafka!;
      // Loaded only here: the Kafka client costs a file or stdout relay ~70 MB of RSS.
      const { KafkaSink } = await import("../sinks/kafka/kafka-sink.js");
      return new KafkaSink({
        brokers: kafka.brokers,
        topic: kafka.topic,
        codec: context.codec.name,
        compression: kafka.compression as (typeof COMPRESSIONS)[number],
        replicationFactor: kafka.replicationFactor,
        transactionalId: kafka.transactionalId,
        clientId: kafka.clientId,
        ...(kafka.tls ? { tls: {} } : {}),
        ...(kafka.sasl ? { sasl: kafka.sasl as never } : {}),
        logger: context.logger,
      });
    }
    default: {
      const unreachable: never = spec;
      throw new Error(`unknown sink ${JSON.stringify(unreachable)}`);
    }
  }
}

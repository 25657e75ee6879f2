import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Command } from "commander";
import { addKafkaOptions, kafkaOptionsFrom } from "../../../src/cli/sinks.js";
import { kafkaNames } from "../../../src/config/names.js";
import { parseReadStreamOptions } from "../../../src/consumer/options.js";
import { isPgshovelError } from "../../../src/errors.js";
import { parseKafkaSinkOptions } from "../../../src/sinks/kafka/options.js";

const ids = { cluster: "prod", set: "orders", consumer: "pgshovel" };

/** The sink options the relay's Kafka flags give. */
function fromFlags(argv: string[]) {
  const command = new Command("relay").exitOverride();
  addKafkaOptions(command);
  command.parse(argv, { from: "user" });
  return kafkaOptionsFrom(command.opts(), ids);
}

const invalid = (pattern: RegExp) => (error: unknown) =>
  isPgshovelError(error, "INVALID_ARGUMENT") && pattern.test(error.message);

describe("Kafka names", () => {
  test("the topic and the transactional id of a set", () => {
    assert.equal(kafkaNames.topic("prod", "orders"), "prod.orders.mutations");
    assert.equal(kafkaNames.transactionalId("prod", "orders", "c1"), "pgshovel.prod.orders.c1");
  });
});

describe("Kafka options from the relay's flags", () => {
  test("defaults: the set's topic and transactional id, zstd, replication factor 1", () => {
    const options = fromFlags(["--kafka-brokers", "k1:9092, k2:9092"]);
    assert.deepEqual(parseKafkaSinkOptions({ ...options, codec: "protobuf" }), {
      brokers: ["k1:9092", "k2:9092"],
      clientId: "pgshovel-relay-orders",
      topic: "prod.orders.mutations",
      codec: "protobuf",
      compression: "zstd",
      replicationFactor: 1,
      transactionalId: "pgshovel.prod.orders.pgshovel",
      transactionTimeoutMs: 60_000,
    });
  });

  test("every flag lands in the one shape the sink validates", () => {
    const options = fromFlags([
      "--kafka-brokers",
      "[::1]:9093",
      "--topic",
      "custom.topic",
      "--compression",
      "lz4",
      "--replication-factor",
      "3",
      "--kafka-tls",
      "--kafka-sasl-mechanism",
      "SCRAM-SHA-512",
      "--kafka-sasl-username",
      "relay",
      "--kafka-sasl-password",
      "secret",
    ]);
    const config = parseKafkaSinkOptions({ ...options, codec: "json" });
    assert.deepEqual(config.brokers, ["[::1]:9093"]);
    assert.equal(config.topic, "custom.topic");
    assert.equal(config.compression, "lz4");
    assert.equal(config.replicationFactor, 3);
    assert.deepEqual(config.tls, {});
    assert.deepEqual(config.sasl, {
      mechanism: "SCRAM-SHA-512",
      username: "relay",
      password: "secret",
    });
  });

  test("a SASL mechanism without credentials is refused, naming what is missing", () => {
    const options = fromFlags(["--kafka-brokers", "k:1", "--kafka-sasl-mechanism", "PLAIN"]);
    assert.throws(
      () => parseKafkaSinkOptions({ ...options, codec: "json" }),
      invalid(/sasl\.username: required with mechanism PLAIN; sasl\.password/),
    );
  });
});

describe("Kafka option validation", () => {
  const sink = { brokers: ["k:9092"], topic: "t", codec: "json", transactionalId: "x" };

  test("the sink refuses bad values and unknown keys with their paths", () => {
    assert.throws(
      () => parseKafkaSinkOptions({ ...sink, brokers: ["k:9092", "no-port"], topic: "a b" }),
      invalid(/brokers\.1: must be host:port; topic: must be 1 to 249/),
    );
    assert.throws(() => parseKafkaSinkOptions({ ...sink, codec: "avro" }), invalid(/codec: /));
    assert.throws(
      () => parseKafkaSinkOptions({ ...sink, sasl: { mechanism: "KERBEROS" } }),
      invalid(/sasl: must have a mechanism among PLAIN/),
    );
    assert.throws(
      () => parseKafkaSinkOptions({ ...sink, groupId: "g" }),
      invalid(/Unrecognized key: "groupId"/),
    );
  });

  test("the reader takes the same connection fields and its own", () => {
    const read = { brokers: ["k:9092"], topic: "t", codec: "protobuf" };
    const config = parseReadStreamOptions({
      ...read,
      from: 12n,
      sasl: { mechanism: "PLAIN", username: "u", password: "p" },
    });
    assert.equal(config.from, 12n);
    assert.throws(
      () => parseReadStreamOptions({ ...read, from: -1n }),
      invalid(/from: must not be negative/),
    );
    assert.throws(() => parseReadStreamOptions({ ...read, from: 3 }), invalid(/from: /));
    assert.throws(
      () => parseReadStreamOptions({ ...read, brokers: [] }),
      invalid(/brokers: must list/),
    );
    assert.throws(
      () => parseReadStreamOptions({ ...read, signal: {} }),
      invalid(/signal: must be an AbortSignal/),
    );
    assert.throws(
      () => parseReadStreamOptions({ ...read, transactionalId: "x" }),
      invalid(/Unrecognized key: "transactionalId"/),
    );
  });
});

/**
 * A Kafka relay that kills itself (SIGKILL) at a chosen point of the first
 * batch carrying mutations — before producing, mid-batch, or after the Kafka
 * commit but before PgQ's finish_batch. Run by kafka-relay.test.ts.
 */
import { ZooKeeper } from "../../src/cluster/zookeeper.js";
import { kafkaNames } from "../../src/config/names.js";
import { createLogger } from "../../src/log.js";
import { PgqSource } from "../../src/relay/pgq-source.js";
import { Relay } from "../../src/relay/relay.js";
import { KafkaSink } from "../../src/sinks/kafka/index.js";
import type { Sink } from "../../src/sinks/sink.js";
import type { BatchRef, Message } from "../../src/stream/types.js";

/** Where the child dies. */
export type CrashPoint = "before-produce" | "mid-batch" | "after-commit";

interface ChildArgs {
  cluster: string;
  set: string;
  zkHosts: string;
  brokers: string[];
  topic: string;
  crashAt: CrashPoint;
}

const die = (): never => {
  process.kill(process.pid, "SIGKILL");
  throw new Error("unreachable");
};

async function* replay(
  first: Message[],
  rest: AsyncIterator<Message>,
  onMutation: (n: number) => void,
): AsyncGenerator<Message> {
  let mutations = 0;
  for (const message of first) {
    if (message.body.kind === "mutation") onMutation(++mutations);
    yield message;
  }
  for (;;) {
    const next = await rest.next();
    if (next.done) return;
    if (next.value.body.kind === "mutation") onMutation(++mutations);
    yield next.value;
  }
}

function crashingSink(inner: KafkaSink, crashAt: CrashPoint): Sink {
  return {
    description: inner.description,
    transactional: true,
    open: () => inner.open(),
    close: () => inner.close(),
    lastCommittedBatch: () => inner.lastCommittedBatch(),
    async publishBatch(batch: BatchRef, messages: AsyncIterable<Message>) {
      const iterator = messages[Symbol.asyncIterator]();
      const head: Message[] = [];
      for (let i = 0; i < 2; i++) {
        const next = await iterator.next();
        if (next.done) break;
        head.push(next.value);
      }
      const carriesMutations = head[1]?.body.kind === "mutation";
      if (carriesMutations && crashAt === "before-produce") die();
      const stream = replay(head, iterator, (n) => {
        if (carriesMutations && crashAt === "mid-batch" && n === 5) die();
      });
      await inner.publishBatch(batch, stream);
      if (carriesMutations && crashAt === "after-commit") die();
    },
  };
}

const args = JSON.parse(process.env.PGSHOVEL_TEST_CHILD ?? "{}") as ChildArgs;
const logger = createLogger({ level: "debug", format: "json" });
const zk = await ZooKeeper.connect({
  hosts: args.zkHosts,
  timeoutMs: 10_000,
  sessionTimeoutMs: 4000,
});
const sink = new KafkaSink({
  brokers: args.brokers,
  topic: args.topic,
  codec: "protobuf",
  transactionalId: kafkaNames.transactionalId(args.cluster, args.set, "pgshovel"),
  logger,
});
const relay = new Relay({
  zk,
  cluster: args.cluster,
  set: args.set,
  consumer: "pgshovel",
  sink: crashingSink(sink, args.crashAt),
  source: (dsn) =>
    new PgqSource(dsn, {
      cluster: args.cluster,
      set: args.set,
      consumer: "pgshovel",
      fetchSize: 1000,
    }),
  logger,
  pollIntervalMs: 50,
  selfTick: true,
  maxZooKeeperPauseMs: 30_000,
  retryInitialMs: 100,
  retryMaxMs: 1000,
  elect: true,
});
await relay.run(new AbortController().signal);

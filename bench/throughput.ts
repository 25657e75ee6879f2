/**
 * Figures 2 and 3, relay throughput: a backlog of captured mutations drained
 * by a spawned `bin/pgshovel relay` into a file and into Kafka, against the
 * same batches read with plain SQL, in the same round.
 */
import { createReadStream } from "node:fs";
import { open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type pg from "pg";
import { readStream } from "../src/consumer/kafka.js";
import { PartitionReader } from "../src/kafka/partition-reader.js";
import { jsonLines } from "../src/stream/framing.js";
import { stackEnv, uniqueName } from "../test/support/env.js";
import {
  RELAY_KILL_AFTER_MS,
  type SetFixture,
  setupSet,
  startRelay,
  stopRelay,
} from "../test/support/fixtures.js";
import { deleteTopic } from "../test/support/kafka.js";
import {
  fillBacklog,
  ROWS_DDL,
  ROWS_TABLE,
  readBacklogWithSql,
  registerConsumers,
  waitConsumerPast,
} from "./backlog.js";
import { type FigureResult, fmt, target } from "./report.js";
import { median, round } from "./stats.js";

/** The relay's default --fetch-size; the SQL baseline fetches the same. */
const FETCH_SIZE = 5000;

/** Options of the throughput figures. */
export interface ThroughputOptions {
  events: number;
  rounds: number;
  sinks: ("file" | "kafka")[];
  profileDir?: string | undefined;
  log: (line: string) => void;
}

type Reader = "sql" | "file" | "kafka";

export interface Drain {
  events: number;
  seconds: number;
  rate: number;
}

/** The time (ms) in the header of the first line of a JSON-lines stream file. */
async function firstFileTimestamp(path: string): Promise<number> {
  const handle = await open(path, "r");
  try {
    const buffer = Buffer.alloc(64 * 1024);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    const [first] = jsonLines.splitter().push(buffer.subarray(0, bytesRead));
    const line = Buffer.from(first!.payload).toString("utf8");
    return Date.parse((JSON.parse(line) as { header: { timestamp: string } }).header.timestamp);
  } finally {
    await handle.close();
  }
}

const MUTATION_KEY = Buffer.from('"mutation":{');

/** Counts the mutation lines of a JSON-lines stream file. */
async function countFileMutations(path: string): Promise<number> {
  let count = 0;
  const splitter = jsonLines.splitter();
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    for (const { payload } of splitter.push(chunk as Buffer)) {
      if (Buffer.from(payload.buffer, payload.byteOffset, payload.length).includes(MUTATION_KEY)) {
        count++;
      }
    }
  }
  return count;
}

/** The time (ms) in the header of the topic's first committed message. */
async function firstKafkaTimestamp(topic: string): Promise<number> {
  for await (const message of readStream({
    brokers: stackEnv().kafkaBrokers,
    topic,
    codec: "protobuf",
    stopAtEnd: true,
  })) {
    return Date.parse(message.header.timestamp);
  }
  throw new Error(`topic ${topic} is empty`);
}

/** Offsets below the topic's last stable offset (records plus transaction markers). */
async function kafkaStableOffset(topic: string): Promise<bigint> {
  const reader = new PartitionReader({ brokers: stackEnv().kafkaBrokers }, topic);
  try {
    return (await reader.bounds()).stable;
  } finally {
    await reader.close().catch(() => {});
  }
}

/** Reads the queue's event tables once (sets hint bits), so that no reader pays for it. */
async function settleBacklog(control: pg.Client, queue: string): Promise<void> {
  const result = await control.query<{ table: string }>(
    "SELECT queue_data_pfx AS table FROM pgq.queue WHERE queue_name = $1",
    [queue],
  );
  const table = result.rows[0]?.table;
  if (!table) throw new Error(`queue ${queue} not found`);
  await control.query(`SELECT count(*) FROM ${table}`);
}

/** Drains `events` captured mutations of `fixture` up to `tick` with a spawned relay into a file or Kafka. */
export async function drainWithRelay(
  fixture: SetFixture,
  control: pg.Client,
  sink: "file" | "kafka",
  tick: bigint,
  events: number,
  roundIndex: number,
  options: ThroughputOptions,
): Promise<Drain> {
  const consumer = `bench_${sink}`;
  const path = join(tmpdir(), `${uniqueName("bench_stream")}.jsonl`);
  const topic = `${fixture.cluster}.s.r${roundIndex}`;
  const args =
    sink === "file"
      ? ["--sink", `file:${path}`]
      : ["--sink", "kafka", "--kafka-brokers", stackEnv().kafkaBrokers.join(","), "--topic", topic];
  const relay = startRelay(fixture, ["--consumer-id", consumer, ...args], "pgshovel", {
    profileDir: options.profileDir,
  });
  try {
    const done = await waitConsumerPast(control, fixture.queue, consumer, tick, {
      timeoutMs: 120_000 + events / 10,
      relay,
    });
    const first =
      sink === "file" ? await firstFileTimestamp(path) : await firstKafkaTimestamp(topic);
    const seconds = (done - first) / 1000;
    if (sink === "file") {
      const written = await countFileMutations(path);
      if (written !== events)
        throw new Error(`the file holds ${written} mutations, expected ${events}`);
    } else {
      const stable = await kafkaStableOffset(topic);
      if (stable < BigInt(events))
        throw new Error(`topic ${topic} holds ${stable} offsets, expected ≥ ${events}`);
    }
    return { events, seconds, rate: events / seconds };
  } finally {
    await stopRelay(relay, RELAY_KILL_AFTER_MS);
    if (options.profileDir)
      options.log(`relay ${sink} pid ${relay.pid}: CPU profile in ${options.profileDir}`);
    await rm(path, { force: true });
    if (sink === "kafka") await deleteTopic(topic).catch(() => {});
  }
}

/** Runs the throughput figures for the chosen sinks (one backlog per round serves all readers). */
export async function runThroughput(options: ThroughputOptions): Promise<FigureResult[]> {
  const fixture = await setupSet({
    prefix: "bench_throughput",
    tables: [ROWS_TABLE],
    // One event per row, the relay's heaviest input, as this figure has always measured
    // (packed events drain faster: bench/packed-drain.ts).
    capture: "row",
    prepare: async (db) => {
      await db.query(ROWS_DDL);
    },
  });
  const control = await fixture.db.connect();
  try {
    const readers: Reader[] = ["sql", ...options.sinks];
    const drains: Record<Reader, Drain[]> = { sql: [], file: [], kafka: [] };
    const runs: Record<string, unknown>[] = [];
    for (let r = 0; r < options.rounds; r++) {
      await registerConsumers(
        control,
        fixture.queue,
        readers.map((reader) => `bench_${reader}`),
      );
      const fill = await fillBacklog(
        control,
        fixture.queue,
        r * options.events + 1,
        options.events,
      );
      options.log(
        `throughput round ${r + 1}/${options.rounds}: ${fmt(options.events)} events captured in ${fill.seconds.toFixed(1)} s`,
      );
      // The first scan of fresh rows sets their hint bits (it writes pages): a scan now
      // spares whichever reader comes first that cost, which the others would not pay.
      await settleBacklog(control, fixture.queue);
      // Rotate who reads first: the first reader may find colder caches.
      const order = readers.map((_, i) => readers[(i + r) % readers.length]!);
      const run: Record<string, unknown> = { round: r, fillSeconds: round(fill.seconds, 2), order };
      for (const reader of order) {
        let drain: Drain;
        if (reader === "sql") {
          const read = await readBacklogWithSql(
            fixture.db.dsn,
            fixture.queue,
            "bench_sql",
            fill.tick,
            FETCH_SIZE,
          );
          if (read.events !== options.events)
            throw new Error(`SQL read ${read.events} events, expected ${options.events}`);
          drain = { events: read.events, seconds: read.seconds, rate: read.events / read.seconds };
          run.batches = read.batches;
        } else {
          drain = await drainWithRelay(
            fixture,
            control,
            reader,
            fill.tick,
            options.events,
            r,
            options,
          );
        }
        drains[reader].push(drain);
        run[reader] = { seconds: round(drain.seconds, 3), eventsPerSecond: Math.round(drain.rate) };
        options.log(`  ${reader}: ${fmt(drain.rate)} events/s (${drain.seconds.toFixed(2)} s)`);
      }
      for (const sink of options.sinks) {
        run[`${sink}Ratio`] = round(drains[sink][r]!.rate / drains.sql[r]!.rate, 3);
      }
      runs.push(run);
    }
    const sqlRate = median(drains.sql.map((d) => d.rate));
    return options.sinks.map((sink) => figure(sink, drains, sqlRate, runs, options));
  } finally {
    await control.end().catch(() => {});
    await fixture.close();
  }
}

function figure(
  sink: "file" | "kafka",
  drains: Record<Reader, Drain[]>,
  sqlRate: number,
  runs: Record<string, unknown>[],
  options: ThroughputOptions,
): FigureResult {
  const rate = median(drains[sink].map((d) => d.rate));
  // The ratio of each round (same backlog, same minute), then the median.
  const ratio = median(drains[sink].map((d, i) => d.rate / drains.sql[i]!.rate));
  const checks =
    sink === "file"
      ? [
          target("events/s", Math.round(rate), ">=", 100_000),
          target("ratio to the SQL read", round(ratio, 3), ">=", 0.5),
        ]
      : [target("events/s", Math.round(rate), ">=", 50_000)];
  const how = `${fmt(options.events)} events, median of ${options.rounds}`;
  return {
    id: sink,
    title: `relay throughput, ${sink}`,
    measuredAt: new Date().toISOString(),
    parameters: {
      events: options.events,
      rounds: options.rounds,
      fetchSize: FETCH_SIZE,
      relay: "spawned bin/pgshovel relay",
      codec: sink === "file" ? "json" : "protobuf",
      compression: sink === "kafka" ? "zstd" : undefined,
      measuredFrom:
        "first message's header timestamp to the PgQ batch finished (polled every 20 ms)",
    },
    values: { eventsPerSecond: Math.round(rate), sqlEventsPerSecond: Math.round(sqlRate) },
    ratios: { toSqlRead: round(ratio, 3) },
    runs: runs.map((run) => ({
      round: run.round,
      sql: run.sql,
      [sink]: run[sink],
      ratio: run[`${sink}Ratio`],
    })),
    targets: checks,
    rows: [
      {
        figure: `relay throughput → ${sink === "file" ? "file (JSON lines)" : "Kafka (protobuf, zstd)"} (${how})`,
        measured: `${fmt(rate)} events/s`,
        baseline: `${fmt(sqlRate)} events/s plain SQL read`,
        ratio: ratio.toFixed(2),
        target: sink === "file" ? "≥ 100,000 events/s and ≥ 0.5" : "≥ 50,000 events/s",
        met: checks.every((c) => c.met),
      },
    ],
  };
}

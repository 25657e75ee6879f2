/**
 * Figure 4, end-to-end latency: a writer paced at a steady rate of one-row
 * transactions; a consumer of the relay's file (tail) and of its Kafka topic
 * (read_committed) records when each row becomes visible. Latency is from the
 * writer's commit acknowledgement to the consumer seeing the mutation.
 */
import { open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import pg from "pg";
import { readStream } from "../src/consumer/kafka.js";
import { jsonLines } from "../src/stream/framing.js";
import type { Message } from "../src/stream/types.js";
import { stackEnv, uniqueName } from "../test/support/env.js";
import {
  RELAY_KILL_AFTER_MS,
  type SetFixture,
  setupSet,
  startRelay,
  stopRelay,
  waitForLog,
} from "../test/support/fixtures.js";
import { deleteTopic } from "../test/support/kafka.js";
import { waitFor } from "../test/support/wait.js";
import { type FigureResult, fmt, type TableRow, type TargetCheck, target } from "./report.js";
import { nowMs, percentile, round } from "./stats.js";

/** Options of the latency figure. */
export interface LatencyOptions {
  seconds: number;
  /** Transactions per second. */
  rate: number;
  /** Samples of the first seconds (relay and consumer warming up) are left out. */
  warmupSeconds: number;
  sinks: ("file" | "kafka")[];
  profileDir?: string | undefined;
  log: (line: string) => void;
}

const WRITERS = 4;
/** How often the file consumer looks for new bytes. */
const TAIL_POLL_MS = 2;

/** Row id → when it was seen; `stop` ends the consumer. */
interface Watcher {
  visible: Map<number, number>;
  stop(): Promise<void>;
}

function recordMutation(message: Message, visible: Map<number, number>, at: number): void {
  if (message.body.kind !== "mutation") return;
  const id = Number(message.body.mutation.new?.id);
  if (!visible.has(id)) visible.set(id, at);
}

/** Tails a JSON-lines stream file. */
function tailFile(path: string): Watcher {
  const visible = new Map<number, number>();
  let stopped = false;
  const loop = (async () => {
    const handle = await open(path, "r");
    try {
      let position = 0;
      const splitter = jsonLines.splitter();
      const buffer = Buffer.alloc(1 << 20);
      while (!stopped) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
        if (bytesRead === 0) {
          await delay(TAIL_POLL_MS);
          continue;
        }
        const at = nowMs();
        position += bytesRead;
        const frames = splitter.push(buffer.subarray(0, bytesRead));
        for (const line of frames.map((f) => Buffer.from(f.payload).toString("utf8"))) {
          if (line.includes('"mutation":{')) {
            const message = JSON.parse(line) as { mutation: { new: { id: string } } };
            const id = Number(message.mutation.new.id);
            if (!visible.has(id)) visible.set(id, at);
          }
        }
      }
    } finally {
      await handle.close();
    }
  })();
  return {
    visible,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** Follows a topic as a read_committed consumer. */
function followTopic(topic: string): Watcher {
  const visible = new Map<number, number>();
  const controller = new AbortController();
  const loop = (async () => {
    try {
      for await (const message of readStream({
        brokers: stackEnv().kafkaBrokers,
        topic,
        codec: "protobuf",
        signal: controller.signal,
      })) {
        recordMutation(message, visible, nowMs());
      }
    } catch (error) {
      if (!controller.signal.aborted) throw error;
    }
  })();
  return {
    visible,
    async stop() {
      controller.abort();
      await loop;
    },
  };
}

/** Writes `count` one-row transactions paced at `rate`/s; returns id → commit acknowledgement time. */
async function pacedWriter(
  dsn: string,
  first: number,
  count: number,
  rate: number,
): Promise<{ acks: Map<number, number>; due: Map<number, number>; maxBehindMs: number }> {
  const clients = await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      const client = new pg.Client({ connectionString: dsn });
      await client.connect();
      return client;
    }),
  );
  const acks = new Map<number, number>();
  const due = new Map<number, number>();
  let next = 0;
  let maxBehindMs = 0;
  const start = nowMs() + 50;
  try {
    await Promise.all(
      clients.map(async (client) => {
        for (;;) {
          const i = next++;
          if (i >= count) return;
          const at = start + (i * 1000) / rate;
          const wait = at - nowMs();
          if (wait > 0) await delay(wait);
          else maxBehindMs = Math.max(maxBehindMs, -wait);
          await client.query("INSERT INTO lat (id) VALUES ($1)", [first + i]);
          acks.set(first + i, nowMs());
          due.set(first + i, at);
        }
      }),
    );
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
  }
  return { acks, due, maxBehindMs };
}

interface SinkLatency {
  samples: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  achievedRate: number;
  maxBehindMs: number;
}

async function measure(
  fixture: SetFixture,
  sink: "file" | "kafka",
  first: number,
  options: LatencyOptions,
): Promise<SinkLatency> {
  const path = join(tmpdir(), `${uniqueName("bench_latency")}.jsonl`);
  const topic = `${fixture.cluster}.s.latency`;
  const args =
    sink === "file"
      ? ["--sink", `file:${path}`]
      : ["--sink", "kafka", "--kafka-brokers", stackEnv().kafkaBrokers.join(","), "--topic", topic];
  const relay = startRelay(fixture, ["--consumer-id", `lat_${sink}`, ...args], "pgshovel", {
    profileDir: options.profileDir,
  });
  let watcher: Watcher | undefined;
  try {
    await waitForLog(relay, "reading the set's queue");
    watcher = sink === "file" ? tailFile(path) : followTopic(topic);
    const count = Math.round(options.seconds * options.rate);
    const written = await pacedWriter(fixture.db.dsn, first, count, options.rate);
    const seen = watcher.visible;
    await waitFor(() => seen.size >= count, {
      timeoutMs: 30_000,
      intervalMs: 50,
      abandonWhen: () => (relay.ended() ? "the relay exited" : undefined),
      get description() {
        return `${count} rows visible through ${sink}, ${seen.size} so far (relay stderr: ${relay.stderr().slice(-2000)})`;
      },
    });
    const startedAt = Math.min(...written.due.values());
    const latencies: number[] = [];
    for (const [id, ack] of written.acks) {
      if (written.due.get(id)! < startedAt + options.warmupSeconds * 1000) continue;
      latencies.push(watcher.visible.get(id)! - ack);
    }
    const ackTimes = [...written.acks.values()];
    return {
      samples: latencies.length,
      p50: round(percentile(latencies, 50), 1),
      p90: round(percentile(latencies, 90), 1),
      p99: round(percentile(latencies, 99), 1),
      max: round(Math.max(...latencies), 1),
      achievedRate: round(count / ((Math.max(...ackTimes) - Math.min(...ackTimes)) / 1000), 1),
      maxBehindMs: round(written.maxBehindMs, 1),
    };
  } finally {
    await watcher?.stop().catch(() => {});
    await stopRelay(relay, RELAY_KILL_AFTER_MS);
    await rm(path, { force: true });
    if (sink === "kafka") await deleteTopic(topic).catch(() => {});
  }
}

/** Runs the latency figure for each sink, one after the other, on one set. */
export async function runLatency(options: LatencyOptions): Promise<FigureResult> {
  const fixture = await setupSet({
    prefix: "bench_latency",
    tables: ["lat"],
    prepare: async (db) => {
      await db.query(
        "CREATE TABLE lat (id int8 PRIMARY KEY, sent timestamptz NOT NULL DEFAULT clock_timestamp())",
      );
    },
  });
  try {
    const results: Partial<Record<"file" | "kafka", SinkLatency>> = {};
    const checks: TargetCheck[] = [];
    const rows: TableRow[] = [];
    for (const [index, sink] of options.sinks.entries()) {
      const result = await measure(fixture, sink, index * 10_000_000 + 1, options);
      results[sink] = result;
      options.log(
        `latency ${sink}: p50 ${result.p50} ms, p99 ${result.p99} ms at ${fmt(result.achievedRate)} tx/s`,
      );
      const p50 = target(`${sink} p50 ms`, result.p50, "<=", 100);
      const p99 = target(`${sink} p99 ms`, result.p99, "<=", 300);
      checks.push(p50, p99);
      rows.push({
        figure: `end-to-end latency, commit → visible in ${sink === "file" ? "the file (tail)" : "Kafka (read_committed)"} (${fmt(result.achievedRate)} tx/s, ${options.seconds} s)`,
        measured: `p50 ${result.p50} ms, p99 ${result.p99} ms (max ${result.max} ms)`,
        baseline: "–",
        ratio: "–",
        target: "p50 ≤ 100 ms, p99 ≤ 300 ms",
        met: p50.met && p99.met,
      });
    }
    const values: Record<string, number> = {};
    for (const [sink, r] of Object.entries(results)) {
      values[`${sink}P50Ms`] = r.p50;
      values[`${sink}P99Ms`] = r.p99;
    }
    return {
      id: "latency",
      title: "end-to-end latency",
      measuredAt: new Date().toISOString(),
      parameters: {
        seconds: options.seconds,
        rate: options.rate,
        warmupSeconds: options.warmupSeconds,
        writers: WRITERS,
        transaction: "one INSERT of one row, autocommit",
        relay: "spawned bin/pgshovel relay, default --poll-interval 50ms, self-ticking",
        fileConsumer: `reads new bytes every ${TAIL_POLL_MS} ms`,
        kafkaConsumer: "readStream (read_committed), protobuf",
        measuredFrom: "the writer's commit acknowledgement to the consumer reading the mutation",
      },
      values,
      ratios: {},
      runs: Object.entries(results).map(([sink, r]) => ({ sink, ...r })),
      targets: checks,
      rows,
    };
  } finally {
    await fixture.close();
  }
}

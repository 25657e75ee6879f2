/**
 * Replica figure 4, end-to-end latency: from a source commit to the row being
 * visible on the target, under a paced pgbench load, with `--from queue` and
 * with `--from kafka` behind a relay to Kafka.
 */
import { spawn } from "node:child_process";
import { setTimeout as delay } from "node:timers/promises";
import { stackEnv } from "../test/support/env.js";
import {
  PGBENCH_TABLES,
  preparePgbench,
  RELAY_KILL_AFTER_MS,
  type RelayProcess,
  type SetFixture,
  setupSet,
  startRelay,
  stopRelay,
  waitForLog,
} from "../test/support/fixtures.js";
import { deleteTopic } from "../test/support/kafka.js";
import { createTestDatabase } from "../test/support/postgres.js";
import { waitFor } from "../test/support/wait.js";
import { loadAverage, startReplicate } from "./replica-support.js";
import { type FigureResult, fmt, type target } from "./report.js";
import { nowMs, percentile, round } from "./stats.js";

/** Options of the replica latency figure. */
export interface ReplicaLatencyOptions {
  seconds: number;
  /** pgbench transactions per second (-R). */
  rate: number;
  log: (line: string) => void;
}

const PROBE_DDL = "CREATE TABLE bench_probe (id int8 PRIMARY KEY, at timestamptz)";
const PROBE_EVERY_MS = 50;

/** Paced pgbench in the background; resolves when it ends. */
function pacedPgbench(fixture: SetFixture, rate: number, seconds: number): Promise<void> {
  const { server, name } = fixture.db;
  const args = ["-h", server.host, "-p", String(server.port), "-U", server.user];
  const child = spawn(
    "/usr/lib/postgresql/15/bin/pgbench",
    [...args, "-n", "-c", "2", "-j", "2", "-R", String(rate), "-T", String(seconds), name],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const ended = new Promise<void>((resolve, reject) =>
    child.on("exit", (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`pgbench exited with ${code}: ${stderr.slice(-1000)}`)),
    ),
  );
  ended.catch(() => {}); // awaited later; a failure must not go unhandled meanwhile
  return ended;
}

interface FeedLatency {
  probes: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

async function measure(
  fixture: SetFixture,
  feed: "queue" | "kafka",
  options: ReplicaLatencyOptions,
): Promise<FeedLatency> {
  const replica = await createTestDatabase(`bench_rlat_${feed}`, { pgq: false });
  const topic = `${fixture.cluster}.s.rlat`;
  const brokers = stackEnv().kafkaBrokers.join(",");
  let relay: RelayProcess | undefined;
  const feedArgs =
    feed === "queue" ? [] : ["--from", "kafka", "--kafka-brokers", brokers, "--topic", topic];
  if (feed === "kafka") {
    relay = startRelay(fixture, ["--sink", "kafka", "--kafka-brokers", brokers, "--topic", topic]);
    await waitForLog(relay, "reading the set's queue");
  }
  const worker = startReplicate(fixture, replica.dsn, ["--create-tables", ...feedArgs]);
  const source = await fixture.db.connect();
  const target = await replica.connect();
  try {
    await waitForLog(worker, "caught up with the feed", 180_000);
    const load = pacedPgbench(fixture, options.rate, options.seconds);
    const committed = new Map<number, number>();
    const latencies: number[] = [];
    // The previous feed's probes stay in the source: go on after them.
    const last = await source.query<{ id: string }>(
      "SELECT coalesce(max(id), 0)::text AS id FROM bench_probe",
    );
    let seen = Number(last.rows[0]!.id);
    let stopped = false;
    const poller = (async () => {
      while (!stopped) {
        const rows = await target.query<{ id: string }>(
          "SELECT id::text FROM bench_probe WHERE id > $1 ORDER BY id",
          [seen],
        );
        const at = nowMs();
        for (const { id } of rows.rows) {
          const n = Number(id);
          const commit = committed.get(n);
          if (commit !== undefined) latencies.push(at - commit);
          seen = Math.max(seen, n);
        }
        await delay(2);
      }
    })();
    let id = seen;
    try {
      const end = nowMs() + options.seconds * 1000;
      // Warm-up is the first second of the load: its probes are not counted.
      const countFrom = nowMs() + 1000;
      while (nowMs() < end) {
        id += 1;
        await source.query("INSERT INTO bench_probe VALUES ($1, clock_timestamp())", [id]);
        const at = nowMs();
        committed.set(id, at >= countFrom ? at : Number.NaN);
        await delay(PROBE_EVERY_MS);
      }
      await load;
      await waitFor(() => seen >= id, {
        timeoutMs: 60_000,
        description: `replica ${feed}: every probe on the target (seen ${seen} of ${id})`,
        abandonWhen: () => (worker.ended() ? "replicate exited" : undefined),
      });
    } finally {
      stopped = true;
      await poller.catch(() => {});
    }
    const counted = latencies.filter((l) => !Number.isNaN(l));
    return {
      probes: counted.length,
      p50Ms: round(percentile(counted, 50), 1),
      p99Ms: round(percentile(counted, 99), 1),
      maxMs: round(Math.max(...counted), 1),
    };
  } finally {
    await source.end().catch(() => {});
    await target.end().catch(() => {});
    await stopRelay(worker, RELAY_KILL_AFTER_MS);
    if (relay) await stopRelay(relay, RELAY_KILL_AFTER_MS);
    await replica.drop().catch(() => {});
    if (feed === "kafka") await deleteTopic(topic).catch(() => {});
  }
}

/** Runs the latency figure on the shared stack, one feed after the other. */
export async function runReplicaLatency(options: ReplicaLatencyOptions): Promise<FigureResult> {
  const loadBefore = await loadAverage();
  const fixture = await setupSet({
    prefix: "bench_rlat",
    tables: [...PGBENCH_TABLES, "bench_probe"],
    prepare: async (db) => {
      await preparePgbench(db);
      await db.query(PROBE_DDL);
    },
  });
  try {
    const results: Partial<Record<"queue" | "kafka", FeedLatency>> = {};
    for (const feed of ["queue", "kafka"] as const) {
      results[feed] = await measure(fixture, feed, options);
      const r = results[feed]!;
      options.log(
        `replica latency ${feed}: p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms over ${r.probes} probes`,
      );
    }
    const q = results.queue!;
    const k = results.kafka!;
    const loadAfter = await loadAverage();
    const row = (feed: "queue" | "kafka", r: FeedLatency) => ({
      figure: `replica latency, commit → visible on the target, --from ${feed} (pgbench -R ${options.rate}, ${r.probes} probes)`,
      measured: `p50 ${fmt(r.p50Ms, 1)} ms, p99 ${fmt(r.p99Ms, 1)} ms`,
      baseline: feed === "kafka" ? `--from queue p50 ${fmt(q.p50Ms, 1)} ms` : "–",
      ratio: feed === "kafka" ? (r.p50Ms / q.p50Ms).toFixed(2) : "–",
      target: "–",
      met: null,
    });
    return {
      id: "replica-latency",
      title: "replica latency",
      measuredAt: new Date().toISOString(),
      parameters: {
        seconds: options.seconds,
        rate: options.rate,
        probe: `one committed INSERT into a captured table every ${PROBE_EVERY_MS} ms; the target polled every ~2 ms`,
        warmup: "probes of the first second are not counted",
        replicate: "default options (--poll-interval, --fetch-size)",
        loadAverage: [loadBefore, loadAfter],
      },
      values: {
        queueP50Ms: q.p50Ms,
        queueP99Ms: q.p99Ms,
        kafkaP50Ms: k.p50Ms,
        kafkaP99Ms: k.p99Ms,
      },
      ratios: { kafkaToQueueP50: round(k.p50Ms / q.p50Ms, 2) },
      runs: Object.entries(results).map(([feed, r]) => ({ feed, ...r })),
      targets: [] as ReturnType<typeof target>[],
      rows: [row("queue", q), row("kafka", k)],
    };
  } finally {
    await fixture.close();
  }
}

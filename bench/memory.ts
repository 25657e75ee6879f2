/**
 * Figure 5, memory: the relay's peak resident size (VmHWM) while draining one
 * PgQ batch of a single big transaction, against its resident size when idle.
 */
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
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
import { fillBacklog, ROWS_DDL, ROWS_TABLE, waitConsumerPast } from "./backlog.js";
import { type FigureResult, fmt, type TableRow, type TargetCheck, target } from "./report.js";
import { nowMs, round } from "./stats.js";

/** Options of the memory figure. */
export interface MemoryOptions {
  events: number;
  sinks: ("file" | "kafka")[];
  profileDir?: string | undefined;
  log: (line: string) => void;
}

/** A process's resident memory, from /proc/<pid>/status, in MB. */
interface ProcessMemory {
  /** VmRSS: resident now. */
  rssMB: number;
  /** VmHWM: the peak resident size so far. */
  peakMB: number;
}

/** Reads VmRSS and VmHWM of `pid`. */
async function processMemory(pid: number): Promise<ProcessMemory> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status);
    if (!match) throw new Error(`no ${name} in /proc/${pid}/status`);
    return (Number(match[1]) * 1024) / 1e6;
  };
  return { rssMB: field("VmRSS"), peakMB: field("VmHWM") };
}

interface SinkMemory {
  idleMB: number;
  peakMB: number;
  drainSeconds: number;
  eventsPerSecond: number;
}

async function measure(
  fixture: SetFixture,
  sink: "file" | "kafka",
  first: number,
  options: MemoryOptions,
): Promise<SinkMemory> {
  const path = join(tmpdir(), `${uniqueName("bench_memory")}.jsonl`);
  const topic = `${fixture.cluster}.s.memory`;
  const consumer = `mem_${sink}`;
  const args =
    sink === "file"
      ? ["--sink", `file:${path}`]
      : ["--sink", "kafka", "--kafka-brokers", stackEnv().kafkaBrokers.join(","), "--topic", topic];
  const relay = startRelay(fixture, ["--consumer-id", consumer, ...args], "pgshovel", {
    profileDir: options.profileDir,
  });
  const control = await fixture.db.connect();
  try {
    await waitForLog(relay, "reading the set's queue");
    // Idle: a few polls of an empty queue after start-up; the largest of a few samples.
    let idleMB = 0;
    for (let i = 0; i < 10; i++) {
      await delay(100);
      idleMB = Math.max(idleMB, (await processMemory(relay.pid)).rssMB);
    }
    // One transaction: one batch.
    const fill = await fillBacklog(control, fixture.queue, first, options.events, options.events);
    options.log(
      `memory ${sink}: ${fmt(options.events)} events in one transaction (${fill.seconds.toFixed(1)} s)`,
    );
    const started = nowMs();
    const done = await waitConsumerPast(control, fixture.queue, consumer, fill.tick, {
      timeoutMs: 120_000 + options.events / 10,
      intervalMs: 50,
      relay,
    });
    const { peakMB } = await processMemory(relay.pid);
    const drainSeconds = (done - started) / 1000;
    return {
      idleMB: round(idleMB, 1),
      peakMB: round(peakMB, 1),
      drainSeconds: round(drainSeconds, 2),
      eventsPerSecond: Math.round(options.events / drainSeconds),
    };
  } finally {
    await control.end().catch(() => {});
    await stopRelay(relay, RELAY_KILL_AFTER_MS);
    await rm(path, { force: true });
    if (sink === "kafka") await deleteTopic(topic).catch(() => {});
  }
}

/** Runs the memory figure for each sink, each with its own relay and its own big transaction. */
export async function runMemory(options: MemoryOptions): Promise<FigureResult> {
  const fixture = await setupSet({
    prefix: "bench_memory",
    tables: [ROWS_TABLE],
    // One event per row, the relay's heaviest input, as this figure has always measured
    // (packed events drain faster: bench/packed-drain.ts).
    capture: "row",
    prepare: async (db) => {
      await db.query(ROWS_DDL);
    },
  });
  try {
    const results: Partial<Record<"file" | "kafka", SinkMemory>> = {};
    const checks: TargetCheck[] = [];
    const rows: TableRow[] = [];
    for (const [index, sink] of options.sinks.entries()) {
      const result = await measure(fixture, sink, index * options.events + 1, options);
      results[sink] = result;
      options.log(`memory ${sink}: idle ${result.idleMB} MB, peak ${result.peakMB} MB`);
      const check = target(`${sink} peak RSS MB`, result.peakMB, "<", 200);
      checks.push(check);
      rows.push({
        figure: `relay memory, one batch of ${fmt(options.events)} events → ${sink === "file" ? "file" : "Kafka"} (drained at ${fmt(result.eventsPerSecond)} events/s)`,
        measured: `peak RSS ${result.peakMB} MB`,
        baseline: `${result.idleMB} MB idle`,
        ratio: (result.peakMB / result.idleMB).toFixed(2),
        target: "< 200 MB",
        met: check.met,
      });
    }
    const values: Record<string, number> = {};
    const ratios: Record<string, number> = {};
    for (const [sink, r] of Object.entries(results)) {
      values[`${sink}PeakMB`] = r.peakMB;
      values[`${sink}IdleMB`] = r.idleMB;
      ratios[`${sink}PeakToIdle`] = round(r.peakMB / r.idleMB, 2);
    }
    return {
      id: "memory",
      title: "relay memory",
      measuredAt: new Date().toISOString(),
      parameters: {
        events: options.events,
        transaction: "one INSERT … SELECT generate_series in one transaction: one PgQ batch",
        relay: "spawned bin/pgshovel relay, default options (--fetch-size 5000)",
        peak: "VmHWM of /proc/<pid>/status once the batch is finished",
        idle: "largest VmRSS of 10 samples over 1 s after start-up, queue empty",
      },
      values,
      ratios,
      runs: Object.entries(results).map(([sink, r]) => ({ sink, ...r })),
      targets: checks,
      rows,
    };
  } finally {
    await fixture.close();
  }
}

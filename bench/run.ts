/**
 * The benchmark suite's entry point (`make bench`, or
 * `node dist/bench/run.js [--only FIGURE]… [--events N] [--runs N] [--scale N] [--quick] [--profile DIR]`).
 * `--only replica` stands for the four replica figures.
 * Runs the chosen figures against the local services, each against a
 * baseline measured in the same run, then writes bench/results/latest.json
 * and the table of docs/benchmarks.md. `--quick` runs tiny sizes as a smoke
 * test and writes its results to a temporary file only.
 */
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { adminDsn, repoRoot } from "../test/support/env.js";
import { runCapture } from "./capture.js";
import { runLatency } from "./latency.js";
import { describeMachine } from "./machine.js";
import { runMemory } from "./memory.js";
import { runReplicaApply } from "./replica-apply.js";
import { runReplicaBootstrap } from "./replica-bootstrap.js";
import { runReplicaLatency } from "./replica-latency.js";
import { runReplicaMemory } from "./replica-memory.js";
import {
  FIGURE_IDS,
  type FigureId,
  type FigureResult,
  renderTable,
  updateDocs,
  writeResults,
} from "./report.js";
import { runThroughput } from "./throughput.js";

const USAGE = `usage: node dist/bench/run.js [options]
  --only FIGURE   run only this figure (repeatable): ${FIGURE_IDS.join(", ")},
                  or replica for the four replica-* figures
  --events N      backlog size of the throughput figures (default 500000)
  --runs N        rounds of the capture, throughput and replica figures (default 3)
  --scale N       pgbench scale of the replica bootstrap figure (default 50)
  --quick         tiny sizes, a smoke run under a minute; writes nothing into the repository
  --profile DIR   write a V8 CPU profile of every spawned relay into DIR
  --help`;

function positiveInt(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0)
    throw new Error(`--${name} must be a positive integer, not ${JSON.stringify(text)}`);
  return value;
}

function parse() {
  const { values } = parseArgs({
    options: {
      only: { type: "string", multiple: true },
      events: { type: "string" },
      runs: { type: "string" },
      scale: { type: "string" },
      quick: { type: "boolean", default: false },
      profile: { type: "string" },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const only = (values.only ?? [])
    .flatMap((o) => o.split(","))
    .flatMap((o) => (o === "replica" ? FIGURE_IDS.filter((id) => id.startsWith("replica-")) : [o]));
  for (const id of only) {
    if (!(FIGURE_IDS as readonly string[]).includes(id))
      throw new Error(`--only ${id}: not a figure (${FIGURE_IDS.join(", ")})`);
  }
  const quick = values.quick;
  return {
    figures: new Set<FigureId>(only.length > 0 ? (only as FigureId[]) : FIGURE_IDS),
    quick,
    events: positiveInt("events", values.events) ?? (quick ? 20_000 : 500_000),
    runs: positiveInt("runs", values.runs),
    scale: positiveInt("scale", values.scale) ?? (quick ? 1 : 50),
    profileDir: values.profile,
  };
}

async function main(): Promise<void> {
  const options = parse();
  const log = (line: string) =>
    process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  if (options.profileDir) await mkdir(options.profileDir, { recursive: true });
  const machine = await describeMachine(adminDsn());
  log(
    `${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, PostgreSQL ${machine.postgres}`,
  );
  const started = Date.now();
  const results: FigureResult[] = [];
  const { figures, quick } = options;

  for (const [id, durable] of [
    ["capture", false],
    ["capture-durable", true],
  ] as const) {
    if (!figures.has(id)) continue;
    results.push(
      await runCapture({
        seconds: quick ? 2 : 15,
        clients: 4,
        rounds: options.runs ?? (quick ? 1 : 3),
        durable,
        log,
      }),
    );
  }
  const sinks = (["file", "kafka"] as const).filter((s) => figures.has(s));
  if (sinks.length > 0) {
    results.push(
      ...(await runThroughput({
        events: options.events,
        rounds: options.runs ?? (quick ? 1 : 3),
        sinks: [...sinks],
        profileDir: options.profileDir,
        log,
      })),
    );
  }
  if (figures.has("latency")) {
    results.push(
      await runLatency({
        seconds: quick ? 3 : 20,
        rate: 500,
        warmupSeconds: quick ? 0.5 : 2,
        sinks: ["file", "kafka"],
        profileDir: options.profileDir,
        log,
      }),
    );
  }
  if (figures.has("memory")) {
    results.push(
      await runMemory({
        events: quick ? 20_000 : 1_000_000,
        sinks: ["file", "kafka"],
        profileDir: options.profileDir,
        log,
      }),
    );
  }
  if (figures.has("replica-apply")) {
    results.push(
      await runReplicaApply({
        mutations: quick ? 8_000 : 200_000,
        rounds: options.runs ?? (quick ? 1 : 3),
        log,
      }),
    );
  }
  if (figures.has("replica-bootstrap")) {
    results.push(
      await runReplicaBootstrap({
        scale: options.scale,
        rounds: options.runs ?? (quick ? 1 : 2),
        log,
      }),
    );
  }
  if (figures.has("replica-memory")) {
    results.push(await runReplicaMemory({ rows: quick ? 20_000 : 1_000_000, log }));
  }
  if (figures.has("replica-latency")) {
    results.push(await runReplicaLatency({ seconds: quick ? 4 : 20, rate: 200, log }));
  }
  const command = `node dist/bench/run.js ${process.argv.slice(2).join(" ")}`.trim();
  const out = quick
    ? join(tmpdir(), "pgshovel-bench-quick.json")
    : join(repoRoot, "bench", "results", "latest.json");
  const written = await writeResults(out, machine, command, results);
  if (!quick) await updateDocs(join(repoRoot, "docs", "benchmarks.md"), written);
  log(
    `done in ${((Date.now() - started) / 1000).toFixed(0)} s; results in ${out}${quick ? "" : " and docs/benchmarks.md"}`,
  );
  const current = { ...written, figures: Object.fromEntries(results.map((r) => [r.id, r])) };
  console.log(renderTable(current));
  const missed = results.flatMap((r) =>
    r.targets
      .filter((t) => !t.met)
      .map((t) => `${r.id}: ${t.name} ${t.value} (target ${t.comparison} ${t.threshold})`),
  );
  if (missed.length > 0) log(`targets missed:\n  ${missed.join("\n  ")}`);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});

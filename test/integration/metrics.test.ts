/**
 * The relay's /metrics and /health for real: a private Prometheus scrapes a running relay
 * and its HTTP API returns pgshovel series that grow with the load; /health answers 200
 * for a leader and a standby, 503 with the reason for a leader that makes no progress
 * while events wait; a replica worker's batches-behind gauge and progress line count the
 * source's ticks it has still to apply; promtool accepts the shipped rules and sample
 * configuration.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import type pg from "pg";
import { DEFAULT_CONSUMER } from "../../src/config/names.js";
import type { HealthReport } from "../../src/monitoring/health.js";
import { repoRoot } from "../support/env.js";
import {
  forceTick,
  type RelayProcess,
  type SetFixture,
  setupSet,
  startPgshovel,
  startRelay,
  stopRelay,
  waitForLog,
} from "../support/fixtures.js";
import { createTestDatabase } from "../support/postgres.js";
import { freePort } from "../support/private-services.js";
import { waitFor } from "../support/wait.js";
import { tempDirFor } from "./relay-support.js";

const execFileAsync = promisify(execFile);
const dir = tempDirFor("pgshovel-metrics-");
const RULES = join(repoRoot, "docs", "prometheus", "pgshovel-rules.yml");

const oneTable = async (db: { query(sql: string): Promise<unknown> }) => {
  await db.query("CREATE TABLE t (id serial PRIMARY KEY, v text)");
};

/** A Prometheus of the test's own, on a free loopback port, scraping `targets` every second. */
async function startPrometheus(targets: string[]): Promise<{ url: string; stop(): Promise<void> }> {
  const home = await mkdtemp(join(tmpdir(), "pgshovel-prometheus-"));
  const port = await freePort();
  const config = join(home, "prometheus.yml");
  await writeFile(
    config,
    [
      "global: { scrape_interval: 1s, evaluation_interval: 1s }",
      `rule_files: [${JSON.stringify(RULES)}]`,
      "scrape_configs:",
      "  - job_name: pgshovel",
      `    static_configs: [{ targets: ${JSON.stringify(targets)} }]`,
      "",
    ].join("\n"),
  );
  const child: ChildProcess = spawn(
    "prometheus",
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(home, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    log += chunk.toString("utf8");
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    child.kill("SIGTERM");
    await exited;
    await rm(home, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => (await fetch(`${url}/-/ready`)).ok, {
      description: "Prometheus ready",
      abandonWhen: () => (child.exitCode !== null ? `prometheus exited: ${log}` : undefined),
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, stop };
}

/** The value of a PromQL query's single sample, or undefined while it has none. */
async function queryValue(prometheus: string, promql: string): Promise<number | undefined> {
  const response = await fetch(`${prometheus}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await response.json()) as {
    data: { result: { value: [number, string] }[] };
  };
  const [first] = body.data.result;
  return first ? Number(first.value[1]) : undefined;
}

async function health(url: string): Promise<{ status: number; report: HealthReport }> {
  const response = await fetch(`${url}/health`);
  return { status: response.status, report: (await response.json()) as HealthReport };
}

/** Starts a relay serving metrics on a free port; its URL. */
async function relayWithMetrics(
  fixture: SetFixture,
  name: string,
  extra: string[] = [],
): Promise<{ relay: RelayProcess; url: string; address: string }> {
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const relay = startRelay(fixture, [
    "--sink",
    `file:${join(dir(), `${name}.jsonl`)}`,
    "--metrics-listen",
    address,
    ...extra,
  ]);
  await waitForLog(relay, "serving metrics and health");
  return { relay, url: `http://${address}`, address };
}

const insert = (fixture: SetFixture, rows: number) =>
  fixture.db.query(`INSERT INTO t (v) SELECT 'row ' || g FROM generate_series(1, ${rows}) g`);

describe("metrics and health", () => {
  test("Prometheus scrapes a relay: pgshovel series grow with the load, the shipped rules load", async () => {
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
    const relays: RelayProcess[] = [];
    let prometheus: { url: string; stop(): Promise<void> } | undefined;
    try {
      const leader = await relayWithMetrics(fixture, "leader");
      relays.push(leader.relay);
      await waitForLog(leader.relay, "leading");
      prometheus = await startPrometheus([leader.address]);
      const series = `pgshovel_relay_mutations_published_total{cluster="${fixture.cluster}",set="s",consumer="${DEFAULT_CONSUMER}"}`;
      await insert(fixture, 100);
      const first = await waitFor(
        async () => {
          const value = await queryValue(prometheus!.url, series);
          return value !== undefined && value >= 100 && value;
        },
        { description: `${series} reaching 100 in Prometheus`, timeoutMs: 60_000 },
      );
      await insert(fixture, 250);
      await waitFor(async () => ((await queryValue(prometheus!.url, series)) ?? 0) >= first + 250, {
        description: `${series} growing by 250`,
        timeoutMs: 60_000,
      });
      for (const name of [
        `pgshovel_relay_batches_published_total{cluster="${fixture.cluster}"}`,
        `pgshovel_relay_published_bytes_total{cluster="${fixture.cluster}"}`,
        `pgshovel_relay_end_to_end_lag_seconds_count{cluster="${fixture.cluster}"}`,
        `pgshovel_relay_leader{cluster="${fixture.cluster}"}`,
        `pgshovel_queue_pending_events{cluster="${fixture.cluster}",consumer="${DEFAULT_CONSUMER}"}`,
        "pgshovel_process_resident_memory_bytes",
      ]) {
        // Wrapped: a sample of 0 is a value too.
        const found = await waitFor(
          async () => {
            const value = await queryValue(prometheus!.url, name);
            return value !== undefined && { value };
          },
          { description: `${name} in Prometheus` },
        );
        assert.ok(found.value >= 0, name);
      }
      assert.equal(
        await queryValue(prometheus.url, `pgshovel_relay_leader{cluster="${fixture.cluster}"}`),
        1,
      );
      // Every shipped rule evaluates without error against real series.
      await waitFor(
        async () => {
          const response = await fetch(`${prometheus!.url}/api/v1/rules`);
          const body = (await response.json()) as {
            data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] };
          };
          const rules = body.data.groups.flatMap((g) => g.rules);
          const bad = rules.filter((r) => r.health !== "ok");
          assert.deepEqual(
            bad.filter((r) => r.health === "err"),
            [],
            "no rule fails",
          );
          return rules.length >= 9 && bad.length === 0;
        },
        { description: "every rule evaluated" },
      );
    } finally {
      await prometheus?.stop();
      for (const relay of relays) await stopRelay(relay, 15_000);
      await fixture.close();
    }
  });

  test("/health: 200 leading and standing by; 503 with the reason when the leader stalls while events wait", async () => {
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
    const relays: RelayProcess[] = [];
    let blocker: pg.Client | undefined;
    try {
      const leader = await relayWithMetrics(fixture, "a", ["--health-stall-after", "2s"]);
      relays.push(leader.relay);
      await waitForLog(leader.relay, "leading");
      const standby = await relayWithMetrics(fixture, "b");
      relays.push(standby.relay);
      await waitForLog(standby.relay, "standing by");
      const led = await waitFor(
        async () => {
          const h = await health(leader.url);
          return h.status === 200 && h.report.state === "polling" && h;
        },
        { description: "the leader healthy" },
      );
      assert.equal(led.report.reason, null);
      const stood = await health(standby.url);
      assert.equal(stood.status, 200);
      assert.equal(stood.report.state, "standby");
      const scrape = await (await fetch(`${standby.url}/metrics`)).text();
      assert.match(scrape, /pgshovel_relay_state\{[^}]*state="standby"\} 1/);
      assert.match(scrape, /pgshovel_relay_leader\{[^}]*\} 0/);
      assert.doesNotMatch(scrape, /pgshovel_queue_pending_events\{/, "a standby samples no queue");

      // Hold the consumer's subscription row: the leader cannot take its next batch.
      blocker = await fixture.db.connect();
      await blocker.query("BEGIN");
      await blocker.query(
        `SELECT 1 FROM pgq.subscription s
           JOIN pgq.consumer c ON c.co_id = s.sub_consumer
           JOIN pgq.queue q ON q.queue_id = s.sub_queue
          WHERE c.co_name = $1 AND q.queue_name = $2 FOR UPDATE OF s`,
        [DEFAULT_CONSUMER, fixture.queue],
      );
      await insert(fixture, 10);
      const stalled = await waitFor(
        async () => {
          const h = await health(leader.url);
          return h.status === 503 && h;
        },
        { description: "the stalled leader unhealthy", timeoutMs: 30_000 },
      );
      assert.match(
        stalled.report.reason ?? "",
        /no progress for \d+ s while \d+ events are pending/,
      );
      // PgQ estimates pending events from its event sequence: near the truth, not exact.
      assert.ok(
        BigInt(stalled.report.pendingEvents ?? "0") > 0n,
        stalled.report.pendingEvents ?? "",
      );

      await blocker.query("ROLLBACK");
      await waitFor(async () => (await health(leader.url)).status === 200, {
        description: "the leader healthy again once it made progress",
      });
      const after = await (await fetch(`${leader.url}/metrics`)).text();
      assert.match(after, /pgshovel_relay_mutations_published_total\{[^}]*\} 10\n/);
      const missing = await fetch(`${leader.url}/nothing`);
      assert.equal(missing.status, 404);
    } finally {
      await blocker?.end().catch(() => {});
      for (const relay of relays) await stopRelay(relay, 15_000);
      await fixture.close();
    }
  });

  test("a replica worker: batches behind as a gauge and in its progress line, none for a standby", async () => {
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"] });
    const target = await createTestDatabase("metrics_replica", { pgq: false });
    const workers: RelayProcess[] = [];
    const start = async (extra: string[], env: Record<string, string> = {}) => {
      const port = await freePort();
      const worker = startPgshovel(
        fixture,
        [
          "replicate",
          fixture.set,
          "--target",
          target.dsn,
          "--create-tables",
          "--metrics-listen",
          `127.0.0.1:${port}`,
          "--progress-interval",
          "200ms",
          ...extra,
        ],
        { env },
      );
      workers.push(worker);
      return { worker, url: `http://127.0.0.1:${port}` };
    };
    const behind = async (url: string) => {
      const text = await (await fetch(`${url}/metrics`)).text();
      const match = /^pgshovel_apply_batches_behind\{[^}]*replica="[^"]+"[^}]*\} (\d+)$/m.exec(
        text,
      );
      return match ? Number(match[1]) : undefined;
    };
    try {
      // The second batch applied is committed, then the worker waits: the source ticks on.
      const active = await start([], { PGSHOVEL_TEST_PAUSE_AFTER_COMMIT: "2" });
      await waitForLog(active.worker, "leading: this replica worker is the active one", 60_000);
      const standby = await start([]);
      await waitForLog(standby.worker, "standing by: another replica worker is active", 60_000);
      await insert(fixture, 1);
      await forceTick(fixture.db, fixture.queue);
      await waitFor(async () => (await behind(active.url)) !== undefined, {
        description: "the gauge after the first batch",
        timeoutMs: 60_000,
      });
      await insert(fixture, 1);
      await forceTick(fixture.db, fixture.queue);
      await waitForLog(active.worker, "test pause: committed, not finished", 60_000);
      const paused = (await behind(active.url))!;
      for (let i = 0; i < 3; i++) {
        await insert(fixture, 1);
        await forceTick(fixture.db, fixture.queue);
      }
      const counted = await waitFor(
        async () => {
          const value = await behind(active.url);
          return value !== undefined && value >= paused + 3 && value;
        },
        { description: "three more batches behind", timeoutMs: 30_000 },
      );
      assert.ok(counted >= 4, `batches behind: ${counted}`);
      await waitFor(
        () =>
          active.worker
            .stderr()
            .split("\n")
            .some((line) => {
              if (!line.includes('"msg":"progress"')) return false;
              const fields = JSON.parse(line) as { batchesBehind?: number | null };
              return (fields.batchesBehind ?? 0) >= paused + 3;
            }),
        { description: "a progress line with the batches behind", timeoutMs: 30_000 },
      );
      const stood = await (await fetch(`${standby.url}/metrics`)).text();
      assert.match(stood, /^pgshovel_apply_leader\{[^}]*\} 0$/m);
      assert.doesNotMatch(stood, /^pgshovel_apply_batches_behind\{/m, "a standby reads no source");
    } finally {
      for (const worker of workers) await stopRelay(worker, 15_000);
      await target.drop();
      await fixture.close();
    }
  });

  test("promtool accepts the shipped alert rules and the sample scrape configuration", async () => {
    const rules = await execFileAsync("promtool", ["check", "rules", RULES]);
    assert.match(rules.stdout, /SUCCESS: \d+ rules found/);
    const config = await execFileAsync("promtool", [
      "check",
      "config",
      join(repoRoot, "docs", "prometheus", "prometheus.yml"),
    ]);
    assert.match(config.stdout, /SUCCESS/);
  });
});

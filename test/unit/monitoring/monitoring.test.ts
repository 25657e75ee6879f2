import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Registry } from "prom-client";
import { assessHealth, type HealthFacts } from "../../../src/monitoring/health.js";
import { parseListenAddress } from "../../../src/monitoring/listen-address.js";
import { RelayMetrics } from "../../../src/monitoring/relay-metrics.js";
import { scrubText, scrubValue } from "../../../src/monitoring/scrub.js";
import {
  judgeSet,
  type SetFacts,
  type Thresholds,
  worst,
} from "../../../src/monitoring/verdict.js";
import { jsonCodec } from "../../../src/stream/codec.js";

const thresholds: Thresholds = {
  maxLagSeconds: 60,
  staleConsumerAfterSeconds: 900,
  expectStandby: false,
};
const healthy: SetFacts = {
  relays: [{ consumer: "pgshovel", standbys: 1 }],
  queueProblem: null,
  queue: { tickerLagSeconds: 1, newEvents: "0" },
  consumers: [
    {
      name: "pgshovel",
      lagSeconds: 1,
      lastSeenSeconds: 1,
      pendingEvents: "0",
      blocksRotation: false,
    },
  ],
  sinkError: null,
};
const codes = (facts: SetFacts, t = thresholds) =>
  judgeSet(facts, t).map((f) => `${f.level} ${f.code}`);

describe("status verdict", () => {
  test("a relayed, caught-up set is OK", () => {
    assert.deepEqual(codes(healthy), []);
    assert.equal(worst([]), "OK");
  });

  test("no relay, lag over the threshold with events waiting, the queue missing or unreachable: FAIL", () => {
    assert.deepEqual(codes({ ...healthy, relays: [] }), ["FAIL NO_RELAY"]);
    const lagging = { ...healthy.consumers[0]!, lagSeconds: 61, pendingEvents: "5" };
    assert.deepEqual(codes({ ...healthy, consumers: [lagging] }), ["FAIL LAG_HIGH"]);
    // An idle queue's lag grows until the next tick: not a failure without pending events.
    assert.deepEqual(codes({ ...healthy, consumers: [{ ...lagging, pendingEvents: "0" }] }), []);
    assert.deepEqual(
      codes({ ...healthy, queueProblem: { kind: "missing" }, queue: null, consumers: [] }),
      ["FAIL QUEUE_MISSING"],
    );
    assert.deepEqual(
      codes({ ...healthy, queueProblem: { kind: "unreachable", error: "refused" }, queue: null }),
      ["FAIL DATABASE_UNREACHABLE"],
    );
  });

  test("a stale or rotation-blocking consumer, a missing standby, a stalled ticker: WARN, after FAILs", () => {
    const stale = {
      name: "old",
      lagSeconds: 5000,
      lastSeenSeconds: 5000,
      pendingEvents: "100",
      blocksRotation: true,
    };
    const facts: SetFacts = {
      ...healthy,
      relays: [{ consumer: "pgshovel", standbys: 0 }],
      consumers: [...healthy.consumers, stale],
      queue: { tickerLagSeconds: 120, newEvents: "3" },
    };
    assert.deepEqual(codes(facts, { ...thresholds, expectStandby: true }), [
      "WARN CONSUMER_STALE",
      "WARN BLOCKS_ROTATION",
      "WARN STANDBY_MISSING",
      "WARN TICKER_LAG",
    ]);
    assert.deepEqual(codes({ ...facts, relays: [] }).slice(0, 1), ["FAIL NO_RELAY"]);
    assert.equal(worst(["OK", "WARN", "OK"]), "WARN");
    assert.equal(worst(["WARN", "FAIL"]), "FAIL");
  });
});

describe("health", () => {
  const base: HealthFacts = {
    state: "polling",
    lastFailure: null,
    progressAt: 1_000,
    pendingEvents: "0",
    now: 2_000,
    stallAfterMs: 60_000,
  };
  test("leading with progress, idle, or standing by: healthy", () => {
    assert.equal(assessHealth(base).healthy, true);
    assert.equal(assessHealth({ ...base, now: 1_000_000 }).healthy, true, "idle: nothing pending");
    assert.equal(assessHealth({ ...base, state: "standby", progressAt: null }).healthy, true);
  });
  test("a stalled leader, backing off, renewing the session, starting: unhealthy with a reason", () => {
    const stalled = assessHealth({ ...base, now: 100_000, pendingEvents: "42" });
    assert.equal(stalled.healthy, false);
    assert.equal(stalled.reason, "no progress for 99 s while 42 events are pending");
    assert.match(
      assessHealth({ ...base, now: 100_000, pendingEvents: undefined }).reason ?? "",
      /cannot be read/,
    );
    assert.match(
      assessHealth({ ...base, state: "backing off", lastFailure: "DATABASE_UNAVAILABLE" }).reason ??
        "",
      /DATABASE_UNAVAILABLE/,
    );
    assert.equal(assessHealth({ ...base, state: "renewing the ZooKeeper session" }).healthy, false);
    assert.equal(assessHealth({ ...base, state: "starting" }).healthy, false);
  });
});

describe("secrets scrubbing", () => {
  test("passwords in URIs and key/value DSNs, known secrets and secret keys are censored", () => {
    assert.equal(
      scrubText("connecting to postgresql://app:s3cr3t@db:5432/x failed"),
      "connecting to postgresql://app:***@db:5432/x failed",
    );
    assert.equal(scrubText("host=db password='a b' user=x"), "host=db password=*** user=x");
    assert.equal(scrubText("the token is hunter22!", ["hunter22!"]), "the token is ***");
    const event = scrubValue({
      message: "dsn postgresql://u:pw1234@h/d",
      extra: { password: "plain", nested: [{ saslPassword: "x" }, "https://k:secretsecret@h/1"] },
    });
    assert.deepEqual(event, {
      message: "dsn postgresql://u:***@h/d",
      extra: { password: "***", nested: [{ saslPassword: "***" }, "https://k:***@h/1"] },
    });
  });
});

describe("listen addresses", () => {
  test("HOST:PORT, [IPv6]:PORT and :PORT; anything else is refused", () => {
    assert.deepEqual(parseListenAddress("127.0.0.1:9187"), { host: "127.0.0.1", port: 9187 });
    assert.deepEqual(parseListenAddress("[::1]:0"), { host: "::1", port: 0 });
    assert.deepEqual(parseListenAddress(":9187"), { host: "0.0.0.0", port: 9187 });
    for (const bad of ["9187", "host", "host:99999", "a b:1"]) {
      assert.throws(() => parseListenAddress(bad), /not a listen address/, bad);
    }
  });
});

describe("relay metrics", () => {
  test("the observer and the decorators feed the registry", async () => {
    const registry = new Registry();
    const metrics = new RelayMetrics(registry, { cluster: "c", set: "s", consumer: "k" });
    metrics.stateChanged("polling");
    metrics.batchFinished({
      id: 7n,
      mutations: 3,
      endTickTime: "2026-01-01T00:00:00.000000Z",
      acknowledgedAt: Date.parse("2026-01-01T00:00:02.500Z"),
    });
    metrics.retrying({ code: "KAFKA_UNAVAILABLE", delayMs: 400 });
    const codec = metrics.codec(jsonCodec);
    const sink = metrics.sink({
      description: "scripted",
      transactional: false,
      open: async () => {},
      publishBatch: async (_batch, messages) => {
        for await (const message of messages) codec.encodeText!(message);
      },
      close: async () => {},
    });
    await sink.publishBatch(
      { node: "n", id: 1n },
      (async function* () {
        yield {
          header: {
            publisher: "734648a6-1699-4234-a930-99e3683ff3eb",
            sequence: 0n,
            timestamp: "2026-01-01T00:00:00.000000Z",
          },
          batch: { node: "4dea04ef-1da2-4fdf-8a96-21f85174973c", id: 1n },
          body: { kind: "commit" as const },
        };
      })(),
    );
    const failing = metrics.sink({ ...sink, open: async () => Promise.reject(new Error("no")) });
    await assert.rejects(failing.open());
    const text = await registry.metrics();
    const labels = 'cluster="c",set="s",consumer="k"';
    assert.match(text, new RegExp(`pgshovel_relay_batches_published_total\\{${labels}\\} 1`));
    assert.match(text, new RegExp(`pgshovel_relay_mutations_published_total\\{${labels}\\} 3`));
    assert.match(text, new RegExp(`pgshovel_relay_last_batch_lag_seconds\\{${labels}\\} 2.5`));
    assert.match(text, new RegExp(`pgshovel_relay_leader\\{${labels}\\} 1`));
    assert.match(
      text,
      new RegExp(`pgshovel_relay_retries_total\\{${labels},reason="KAFKA_UNAVAILABLE"\\} 1`),
    );
    assert.match(
      text,
      new RegExp(
        `pgshovel_relay_backoff_seconds_total\\{${labels},reason="KAFKA_UNAVAILABLE"\\} 0.4`,
      ),
    );
    assert.match(
      text,
      new RegExp(`pgshovel_relay_sink_errors_total\\{${labels},code="INTERNAL"\\} 1`),
    );
    assert.match(text, new RegExp(`pgshovel_relay_published_bytes_total\\{${labels}\\} [1-9]\\d*`));
    assert.match(text, /pgshovel_build_info\{version="[^"]+"\} 1/);
  });
});

/**
 * The relay's Prometheus metrics, all `pgshovel_` prefixed (docs/monitoring.md lists
 * them). They come from wrappers, not from the loop: the relay's observer hooks, a sink
 * decorator, a codec decorator that counts bytes, and gauges that sample PgQ at scrape
 * time. The registry is the caller's.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, type Registry } from "prom-client";
import type { ErrorCode } from "../errors.js";
import { isPgshovelError } from "../errors.js";
import type { FinishedBatch, RelayObserver, StandAgainReason } from "../relay/observer.js";
import type { RelayState } from "../relay/options.js";
import type { Sink } from "../sinks/sink.js";
import type { Codec } from "../stream/codec.js";
import { timestampToParts } from "../stream/timestamp.js";
import type { BatchRef, Message } from "../stream/types.js";
import { SOFTWARE_VERSION } from "../version.js";
import type { ConsumerState, QueueInfo } from "./pgq-info.js";
import type { QueueSampler } from "./queue-sampler.js";

/** The labels every pgshovel series of a relay carries. */
export interface RelayLabels {
  cluster: string;
  set: string;
  consumer: string;
}

/** Every state a relay reports, one series each in `pgshovel_relay_state`. */
const STATES: readonly RelayState[] = [
  "starting",
  "standby",
  "opening sink",
  "polling",
  "publishing",
  "backing off",
  "renewing the ZooKeeper session",
  "stopped",
];
const LEADING: readonly RelayState[] = ["opening sink", "polling", "publishing", "backing off"];
const RELAY = ["cluster", "set", "consumer"] as const;
const SET = ["cluster", "set"] as const;

/** Bytes encoded for the batch being published, counted by {@link RelayMetrics.codec}. */
interface Tally {
  bytes: number;
}

/** Adds Node's and the process's default metrics, `pgshovel_` prefixed, to `registry`. */
export function addDefaultMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry, prefix: "pgshovel_" });
}

/** A relay's own metrics in `registry`; an observer of the relay. */
export class RelayMetrics implements RelayObserver {
  private readonly labels: RelayLabels;
  private readonly tally: Tally = { bytes: 0 };
  private readonly batches: Counter<(typeof RELAY)[number]>;
  private readonly mutations: Counter<(typeof RELAY)[number]>;
  private readonly bytes: Counter<(typeof RELAY)[number]>;
  private readonly publishDuration: Histogram<(typeof RELAY)[number]>;
  private readonly lag: Histogram<(typeof RELAY)[number]>;
  private readonly lastLag: Gauge<(typeof RELAY)[number]>;
  private readonly lastBatchAt: Gauge<(typeof RELAY)[number]>;
  private readonly leader: Gauge<(typeof RELAY)[number]>;
  private readonly state: Gauge<(typeof RELAY)[number] | "state">;
  private readonly retries: Counter<(typeof RELAY)[number] | "reason">;
  private readonly backoff: Counter<(typeof RELAY)[number] | "reason">;
  private readonly standsAgain: Counter<(typeof RELAY)[number] | "reason">;
  private readonly sinkErrors: Counter<(typeof RELAY)[number] | "code">;

  constructor(registry: Registry, labels: RelayLabels, queue?: QueueSampler) {
    this.labels = { ...labels };
    const registers = [registry];
    const relay = (name: string, help: string) => ({ name, help, labelNames: RELAY, registers });
    this.batches = new Counter(
      relay(
        "pgshovel_relay_batches_published_total",
        "Batches published and acknowledged by the sink",
      ),
    );
    this.mutations = new Counter(
      relay("pgshovel_relay_mutations_published_total", "Mutations in the batches published"),
    );
    this.bytes = new Counter(
      relay(
        "pgshovel_relay_published_bytes_total",
        "Bytes of the messages of acknowledged batches, as encoded",
      ),
    );
    this.publishDuration = new Histogram({
      ...relay(
        "pgshovel_relay_publish_duration_seconds",
        "Time the sink took to publish a batch, from its first message to the acknowledgement of its commit",
      ),
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    });
    this.lag = new Histogram({
      ...relay(
        "pgshovel_relay_end_to_end_lag_seconds",
        "From the batch's end tick in PgQ to the sink's acknowledgement",
      ),
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
    });
    this.lastLag = new Gauge(
      relay(
        "pgshovel_relay_last_batch_lag_seconds",
        "End-to-end lag of the last batch acknowledged",
      ),
    );
    this.lastBatchAt = new Gauge(
      relay(
        "pgshovel_relay_last_batch_timestamp_seconds",
        "When the last batch was acknowledged (Unix time)",
      ),
    );
    this.leader = new Gauge(
      relay(
        "pgshovel_relay_leader",
        "1 while this relay is the active one of its set and consumer, 0 otherwise",
      ),
    );
    this.state = new Gauge({
      ...relay("pgshovel_relay_state", "1 for the relay's current state, 0 for the others"),
      labelNames: [...RELAY, "state"],
    });
    this.retries = new Counter({
      ...relay(
        "pgshovel_relay_retries_total",
        "Recoverable failures after which the batch was retried, by error code",
      ),
      labelNames: [...RELAY, "reason"],
    });
    this.backoff = new Counter({
      ...relay(
        "pgshovel_relay_backoff_seconds_total",
        "Time spent backing off before retries, by error code",
      ),
      labelNames: [...RELAY, "reason"],
    });
    this.standsAgain = new Counter({
      ...relay(
        "pgshovel_relay_stood_again_total",
        "Times the relay stopped publishing and stood for election again, by reason",
      ),
      labelNames: [...RELAY, "reason"],
    });
    this.sinkErrors = new Counter({
      ...relay(
        "pgshovel_relay_sink_errors_total",
        "Failed sink calls (open, publish), by error code",
      ),
      labelNames: [...RELAY, "code"],
    });
    new Gauge({
      name: "pgshovel_build_info",
      help: "Always 1; the version label is pgshovel's software version",
      labelNames: ["version"],
      registers,
    }).set({ version: SOFTWARE_VERSION }, 1);
    for (const counter of [this.batches, this.mutations, this.bytes]) counter.inc(this.labels, 0);
    this.stateChanged("starting");
    if (queue) addQueueGauges(registry, labels, queue);
  }

  stateChanged(state: RelayState): void {
    for (const each of STATES)
      this.state.set({ ...this.labels, state: each }, each === state ? 1 : 0);
    this.leader.set(this.labels, LEADING.includes(state) ? 1 : 0);
  }

  batchFinished(batch: FinishedBatch): void {
    this.batches.inc(this.labels);
    this.mutations.inc(this.labels, batch.mutations);
    const { seconds, micros } = timestampToParts(batch.endTickTime);
    const lag = Math.max(0, batch.acknowledgedAt / 1000 - (seconds + micros / 1e6));
    this.lag.observe(this.labels, lag);
    this.lastLag.set(this.labels, lag);
    this.lastBatchAt.set(this.labels, batch.acknowledgedAt / 1000);
  }

  retrying(failure: { code: ErrorCode; delayMs: number }): void {
    this.retries.inc({ ...this.labels, reason: failure.code });
    this.backoff.inc({ ...this.labels, reason: failure.code }, failure.delayMs / 1000);
  }

  standingAgain(reason: StandAgainReason): void {
    this.standsAgain.inc({ ...this.labels, reason });
  }

  /** `codec`, counting the bytes it encodes into the batch being published. */
  codec(codec: Codec): Codec {
    const tally = this.tally;
    const counted: Codec = {
      name: codec.name,
      encode: (message) => {
        const bytes = codec.encode(message);
        tally.bytes += bytes.byteLength;
        return bytes;
      },
      decode: (bytes) => codec.decode(bytes),
    };
    const encodeText = codec.encodeText;
    if (encodeText) {
      counted.encodeText = (message) => {
        const text = encodeText(message);
        tally.bytes += Buffer.byteLength(text);
        return text;
      };
    }
    return counted;
  }

  /** `sink`, timing its batches, counting their bytes and its failures by error code. */
  sink(sink: Sink): Sink {
    const metrics = this;
    const failed = (error: unknown) => {
      const code = isPgshovelError(error) ? error.code : "INTERNAL";
      metrics.sinkErrors.inc({ ...metrics.labels, code });
      throw error;
    };
    const wrapped: Sink = {
      description: sink.description,
      transactional: sink.transactional,
      open: () => sink.open().catch(failed),
      async publishBatch(batch: BatchRef, messages: AsyncIterable<Message>): Promise<void> {
        metrics.tally.bytes = 0;
        const stop = metrics.publishDuration.startTimer(metrics.labels);
        await sink.publishBatch(batch, messages).catch(failed);
        stop();
        metrics.bytes.inc(metrics.labels, metrics.tally.bytes);
      },
      close: () => sink.close(),
    };
    const last = sink.lastCommittedBatch?.bind(sink);
    if (last) wrapped.lastCommittedBatch = last;
    return wrapped;
  }
}

/** The queue's gauges, read from PgQ at each scrape (a leader's only: a standby has no database). */
function addQueueGauges(registry: Registry, labels: RelayLabels, sampler: QueueSampler): void {
  const set = { cluster: labels.cluster, set: labels.set };
  const registers = [registry];
  const perConsumer = (name: string, help: string, value: (c: ConsumerState) => number | null) =>
    new Gauge({
      name,
      help,
      labelNames: RELAY,
      registers,
      async collect() {
        this.reset();
        for (const consumer of (await sampler.sample())?.consumers ?? []) {
          const v = value(consumer);
          if (v !== null) this.set({ ...set, consumer: consumer.name }, v);
        }
      },
    });
  const perQueue = (name: string, help: string, value: (q: QueueInfo) => number) =>
    new Gauge({
      name,
      help,
      labelNames: SET,
      registers,
      async collect() {
        this.reset();
        const info = (await sampler.sample())?.info;
        if (info) this.set(set, value(info));
      },
    });
  perConsumer(
    "pgshovel_queue_pending_events",
    "Events of the set's queue a PgQ consumer has not finished yet",
    (c) => (c.pendingEvents === null ? null : Number(c.pendingEvents)),
  );
  perConsumer(
    "pgshovel_queue_consumer_lag_seconds",
    "Age of the last tick a PgQ consumer finished",
    (c) => c.lagSeconds,
  );
  perConsumer(
    "pgshovel_queue_consumer_last_seen_seconds",
    "Time since a PgQ consumer last took a batch",
    (c) => c.lastSeenSeconds,
  );
  perConsumer(
    "pgshovel_queue_consumer_blocks_rotation",
    "1 when a PgQ consumer keeps the queue's event tables from rotating",
    (c) => (c.blocksRotation ? 1 : 0),
  );
  perQueue(
    "pgshovel_queue_ticker_lag_seconds",
    "Time since the queue's last tick",
    (q) => q.tickerLagSeconds,
  );
  perQueue("pgshovel_queue_event_tables_bytes", "Disk size of the queue's event tables", (q) =>
    Number(q.eventTables.bytes),
  );
}

/**
 * Scripted parts for driving the relay loop without services: a batch source over
 * in-memory batches, a set follower whose state the test sets, an election, and a
 * sink that records what it receives. Every call goes into one shared trace, so a
 * test can check the order in which the relay touched them.
 */
import { EventEmitter } from "node:events";
import { setImmediate as turn } from "node:timers/promises";
import type { ZooKeeper } from "../../../src/cluster/zookeeper.js";
import { candidacyLost, type Election } from "../../../src/coordination/leadership.js";
import {
  type Follower,
  SessionExpired,
  type SetState,
} from "../../../src/coordination/set-follower.js";
import { PgshovelError } from "../../../src/errors.js";
import { silentLogger } from "../../../src/log.js";
import type { BatchInfo, BatchSource } from "../../../src/relay/batch-source.js";
import type { RelayObserver } from "../../../src/relay/observer.js";
import type { RelayOptions } from "../../../src/relay/options.js";
import { Relay } from "../../../src/relay/relay.js";
import {
  type CommittedMark,
  type Sink,
  untilRevoked,
  type WriteGuard,
} from "../../../src/sinks/sink.js";
import type { BatchRef, Message, Mutation, Tick } from "../../../src/stream/types.js";

/** What the relay did, in order: "open db1", "finish 1", "sink commit 1", … */
export type Trace = string[];

/** A mutation of table t with id `n`. */
export function mutation(n: number): Mutation {
  return {
    id: BigInt(n),
    schema: "public",
    table: "t",
    operation: "INSERT",
    identity: ["id"],
    old: null,
    new: { id: n },
    transaction: 100n + BigInt(n),
    time: "2026-11-24T03:45:27.000000Z",
  };
}

/** One database's queue: batches in order, each with its mutations; finished ones are removed. */
export class ScriptedQueue {
  readonly batches: { id: bigint; mutations: Mutation[] }[] = [];
  /** When set, the next call of that name fails with it (once). */
  failNext: { call: "open" | "nextBatch" | "events" | "finish"; error: Error } | undefined;

  constructor(
    readonly node: string,
    readonly trace: Trace,
  ) {}

  add(id: number, ...mutations: number[]): this {
    this.batches.push({ id: BigInt(id), mutations: mutations.map(mutation) });
    return this;
  }

  fail(call: "open" | "nextBatch" | "events" | "finish"): void {
    if (this.failNext?.call !== call) return;
    const { error } = this.failNext;
    this.failNext = undefined;
    throw error;
  }
}

const tick = (id: bigint): Tick => ({
  id,
  snapshot: { xmin: id, xmax: id, xip: [] },
  time: "2026-11-24T03:45:27.000000Z",
});

/** A batch source over a {@link ScriptedQueue}. */
export class ScriptedSource implements BatchSource {
  readonly labels = { queue: "scripted" };

  constructor(
    readonly dsn: string,
    readonly queue: ScriptedQueue,
  ) {}

  get node(): string {
    return this.queue.node;
  }

  private log(entry: string): void {
    this.queue.trace.push(entry);
  }

  async open(): Promise<void> {
    this.log(`open ${this.dsn}`);
    this.queue.fail("open");
  }

  async nextBatch(): Promise<BatchInfo | undefined> {
    this.queue.fail("nextBatch");
    const next = this.queue.batches[0];
    return next && { id: next.id, startTickId: next.id * 10n, endTickId: next.id * 10n + 10n };
  }

  async ticks(batch: BatchInfo): Promise<{ start: Tick; end: Tick }> {
    return { start: tick(batch.startTickId), end: tick(batch.endTickId) };
  }

  async *events(batchId: bigint): AsyncGenerator<Mutation[]> {
    const batch = this.queue.batches.find((b) => b.id === batchId)!;
    this.log(`events ${batchId}`);
    // In two runs, as a real source hands them out.
    const half = Math.ceil(batch.mutations.length / 2);
    yield batch.mutations.slice(0, half);
    this.queue.fail("events");
    yield batch.mutations.slice(half);
  }

  async finish(batchId: bigint): Promise<void> {
    this.queue.fail("finish");
    this.log(`finish ${batchId}`);
    this.queue.batches.splice(
      this.queue.batches.findIndex((b) => b.id === batchId),
      1,
    );
  }

  async tick(): Promise<void> {}

  async consumerInfo() {
    return { lagSeconds: 0, pendingEvents: String(this.queue.batches.length) };
  }

  async close(): Promise<void> {
    this.log(`close ${this.dsn}`);
  }
}

/**
 * A set follower whose state the test sets. Each sleep the relay asks for (idle polls,
 * backoffs) is recorded and lasts one turn of the event loop; `onSleep` may stop the run.
 */
export class ScriptedFollower implements Follower {
  isConnected = true;
  hasExpired = false;
  state: SetState;
  readonly sleeps: number[] = [];
  onSleep: (() => void) | undefined;

  constructor(dsn: string) {
    this.state = active(dsn, 1);
  }

  async confirmed(): Promise<SetState> {
    if (this.hasExpired) throw new SessionExpired("scripted");
    return this.state;
  }

  invalidate(): void {}

  async sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
    this.onSleep?.();
    await turn();
  }

  close(): void {}
}

/** An active set state on database `dsn` at configuration `version`. */
export function active(dsn: string, version: number): SetState {
  return {
    kind: "active",
    version,
    config: { database: { dsn, node: "node" }, tables: [] } as unknown as Extract<
      SetState,
      { kind: "active" }
    >["config"],
  };
}

/** An election that the relay wins at once; the test can take leadership away. */
export class ScriptedElection implements Election {
  acquired = 0;
  #leading = false;
  #term = new AbortController();

  constructor(readonly trace: Trace) {
    this.#term.abort(candidacyLost("relay"));
  }

  get isLeading(): boolean {
    return this.#leading;
  }

  /** Set to false by a test: the candidacy is gone, and the term ends. */
  set isLeading(leading: boolean) {
    this.#leading = leading;
    if (!leading) this.#term.abort(candidacyLost("relay"));
  }

  get termSignal(): AbortSignal {
    return this.#term.signal;
  }

  async acquire(): Promise<void> {
    this.acquired++;
    this.trace.push("leading");
    this.#term = new AbortController();
    this.#leading = true;
  }

  async release(): Promise<void> {
    this.isLeading = false;
  }
}

/**
 * A sink that records every message it receives. `failOn` may make it throw on a
 * message (after recording it, as a write that reached consumers but failed); `ack`
 * holds each batch's acknowledgement until it resolves.
 */
export class ScriptedSink implements Sink {
  readonly description = "scripted sink";
  readonly received: Message[] = [];
  readonly committed: Message[] = [];
  failOn: ((message: Message) => Error | undefined) | undefined;
  ack: ((batch: BatchRef) => Promise<void>) | undefined;
  holds: CommittedMark | undefined;
  opened = 0;
  closed = 0;

  constructor(
    readonly trace: Trace,
    readonly transactional = false,
  ) {}

  async open(): Promise<void> {
    this.opened++;
  }

  async publishBatch(
    batch: BatchRef,
    messages: AsyncIterable<Message>,
    guard?: WriteGuard,
  ): Promise<void> {
    // As the file sink: a publish the guard refuses takes no message.
    guard?.check();
    const batchMessages: Message[] = [];
    for await (const message of messages) {
      this.received.push(message);
      batchMessages.push(message);
      this.trace.push(`sink ${message.body.kind} ${message.batch.id}`);
      const error = this.failOn?.(message);
      if (error) throw error;
    }
    if (this.ack) await untilRevoked(this.ack(batch), guard);
    this.committed.push(...batchMessages);
    this.trace.push(`sink ack ${batch.id}`);
  }

  async lastCommittedBatch(): Promise<CommittedMark | undefined> {
    return this.holds;
  }

  async close(): Promise<void> {
    this.closed++;
  }
}

/** A retryable failure, as a broker outage gives. */
export const outage = () => new PgshovelError("SINK_ERROR", "scripted outage", { retryable: true });

/**
 * A ZooKeeper session that answers until the test calls {@link silence}. Nothing else of
 * it is used: the follower and the election are scripted.
 */
export class ScriptedZooKeeper {
  readonly hosts = "scripted";
  readonly silenceBoundMs = 60_000;
  isSilent = false;
  readonly #events = new EventEmitter();

  get lastAnsweredAt(): number {
    return this.isSilent ? Date.now() - this.silenceBoundMs : Date.now();
  }

  /** The server stops answering: the session reports silence past the bound. */
  silence(): void {
    this.isSilent = true;
    this.#events.emit("silent", this.silenceBoundMs);
  }

  on(event: string, listener: (silentForMs?: number) => void): void {
    this.#events.on(event, listener);
  }

  off(event: string, listener: (silentForMs?: number) => void): void {
    this.#events.off(event, listener);
  }

  close(): void {}
}

const asZooKeeper = (zk: ScriptedZooKeeper) => zk as unknown as ZooKeeper;

/**
 * A relay over scripted parts: `queues` maps each DSN to its queue. With `renewed`, the
 * relay may renew its session: each new session gets the next follower and election.
 */
export function scriptedRelay(options: {
  queues: Record<string, ScriptedQueue>;
  follower: ScriptedFollower;
  sink: ScriptedSink;
  election?: ScriptedElection;
  renewed?: { follower: ScriptedFollower; election: ScriptedElection }[];
  maxSinkWaitMs?: number;
  observer?: RelayObserver;
}): {
  relay: Relay;
  sources: ScriptedSource[];
  sessions: () => number;
  /** The ZooKeeper sessions opened so far: the first, then each renewed one. */
  zookeepers: ScriptedZooKeeper[];
} {
  const sources: ScriptedSource[] = [];
  const sessions = [
    { follower: options.follower, election: options.election ?? new ScriptedElection([]) },
    ...(options.renewed ?? []),
  ];
  let opened = 0;
  const zookeepers = [new ScriptedZooKeeper()];
  const reconnect = async () => {
    const zk = new ScriptedZooKeeper();
    zookeepers.push(zk);
    return asZooKeeper(zk);
  };
  const relayOptions: RelayOptions = {
    zk: asZooKeeper(zookeepers[0]!),
    cluster: "c",
    set: "s",
    consumer: "pgshovel",
    sink: options.sink,
    logger: silentLogger,
    source: (dsn) => {
      const source = new ScriptedSource(dsn, options.queues[dsn]!);
      sources.push(source);
      return source;
    },
    // The relay asks for the follower, then the election, of each session it opens.
    follower: () => sessions[opened]!.follower,
    leadership: () => sessions[opened++]!.election,
    ...(options.renewed ? { reconnect } : {}),
    ...(options.observer ? { observer: options.observer } : {}),
    pollIntervalMs: 0,
    selfTick: true,
    maxZooKeeperPauseMs: 1_000,
    retryInitialMs: 1,
    retryMaxMs: 4,
    elect: options.election !== undefined,
    ...(options.maxSinkWaitMs === undefined ? {} : { maxSinkWaitMs: options.maxSinkWaitMs }),
  };
  return { relay: new Relay(relayOptions), sources, sessions: () => opened, zookeepers };
}

/** Aborts `controller` on the first idle poll once `done()` holds. */
export function stopWhen(
  follower: ScriptedFollower,
  controller: AbortController,
  done: () => boolean,
): void {
  follower.onSleep = () => {
    if (done()) controller.abort();
  };
}

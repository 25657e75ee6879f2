/**
 * Scripted parts for driving the replication worker without services: a feed over
 * in-memory batches, a target that keeps its state in memory, and a caught-up probe.
 * Every call goes into one shared trace, so a test can check the order of events.
 */
import { setTimeout as delay } from "node:timers/promises";
import type { ZooKeeper } from "../../../src/cluster/zookeeper.js";
import type { SetState } from "../../../src/coordination/set-follower.js";
import { PgshovelError } from "../../../src/errors.js";
import { silentLogger } from "../../../src/log.js";
import type { ApplyResult, BatchToApply } from "../../../src/replication/apply.js";
import type { BootstrapResult } from "../../../src/replication/bootstrap.js";
import type { CaughtUpProbe } from "../../../src/replication/caught-up.js";
import type { FeedBatch, ReplicaFeed } from "../../../src/replication/feed.js";
import type {
  PreparedTarget,
  ReplicaTarget,
  StoredReplica,
} from "../../../src/replication/target.js";
import type { ReplicaTable } from "../../../src/replication/target-schema.js";
import type { CopiedTable, ReplicaMark, TableName } from "../../../src/replication/target-state.js";
import { ReplicaWorker } from "../../../src/replication/worker.js";
import type { WorkerOptions } from "../../../src/replication/worker-options.js";
import type { Mutation, StreamPosition, Tick } from "../../../src/stream/types.js";
import {
  ScriptedElection,
  ScriptedFollower,
  ScriptedZooKeeper,
  type Trace,
} from "../relay/scripted.js";

export const SOURCE = "node-1";
const DSN = "postgresql://source";

const tick = (id: bigint): Tick => ({
  id,
  snapshot: { xmin: id, xmax: id, xip: [] },
  time: "2026-11-24T03:45:27.000000Z",
});

/** A mutation of table `table` with row id `n`. */
export function mutation(n: number, table = "t"): Mutation {
  return {
    id: BigInt(n),
    schema: "public",
    table,
    operation: "INSERT",
    identity: ["id"],
    old: null,
    new: { id: n },
    transaction: 100n + BigInt(n),
    time: "2026-11-24T03:45:27.000000Z",
  };
}

/** The set's state at `version` with `tables` (in schema public). */
export function setState(version: number, tables: string[]): SetState {
  return {
    kind: "active",
    version,
    config: {
      database: { dsn: DSN, node: SOURCE },
      tables: tables.map((name) => ({ schema: "public", name })),
    } as unknown as Extract<SetState, { kind: "active" }>["config"],
  };
}

interface ScriptedBatch {
  id: bigint;
  mutations: Mutation[];
}

/**
 * A feed over batches in memory: batch n spans ticks 10n to 10n+10, so consecutive
 * batches are contiguous. It hands out every batch not done yet, then waits for more (or
 * ends, when `finite`). `onIdle` runs each time it has nothing to hand out.
 */
export class ScriptedFeed implements ReplicaFeed {
  readonly description = "scripted feed";
  readonly queued: ScriptedBatch[] = [];
  finite = false;
  onIdle: (() => void) | undefined;
  /** Runs as each mutation is handed out. */
  onMutation: (() => void) | undefined;
  private wake: (() => void) | undefined;

  constructor(readonly trace: Trace) {}

  add(id: number, ...mutations: (number | Mutation)[]): this {
    this.queued.push({
      id: BigInt(id),
      mutations: mutations.map((m) => (typeof m === "number" ? mutation(m) : m)),
    });
    this.wake?.();
    return this;
  }

  async mark(): Promise<StreamPosition | null> {
    this.trace.push("mark");
    return 7n;
  }

  private async *generate(signal: AbortSignal): AsyncGenerator<FeedBatch> {
    let next = 0;
    while (!signal.aborted) {
      const batch = this.queued[next];
      if (!batch) {
        if (this.finite) return;
        this.onIdle?.();
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          signal.addEventListener("abort", () => resolve(), { once: true });
          setTimeout(resolve, 5).unref();
        });
        continue;
      }
      next++;
      const trace = this.trace;
      const feed = this;
      yield {
        node: SOURCE,
        id: batch.id,
        begin: { start: tick(batch.id * 10n), end: tick(batch.id * 10n + 10n) },
        position: batch.id * 100n,
        mutations: (async function* () {
          for (const m of batch.mutations) {
            feed.onMutation?.();
            yield m;
          }
        })(),
        done: async () => {
          trace.push(`done ${batch.id}`);
        },
      };
    }
  }

  batches(from: StreamPosition | null, signal: AbortSignal): AsyncIterable<FeedBatch> {
    this.trace.push(`read from ${from}`);
    return this.generate(signal);
  }

  async close(): Promise<void> {
    this.trace.push("feed close");
  }
}

/** A target keeping its state in memory; `failApply` makes the next apply of a batch fail. */
export class ScriptedTarget implements ReplicaTarget {
  readonly description = "scripted target";
  readonly stored_: StoredReplica = { position: undefined, mark: undefined, copied: new Map() };
  /** Rows per table, as applied (ids). */
  readonly rows = new Map<string, number[]>();
  failApply: { batch: bigint; error: Error } | undefined;

  constructor(readonly trace: Trace) {}

  async prepare(
    _sourceDsn: string,
    tables: { schema: string; name: string }[],
  ): Promise<PreparedTarget> {
    const described: ReplicaTable[] = tables.map((t) => ({
      schema: t.schema,
      name: t.name,
      identity: ["id"],
      columns: [{ name: "id", type: "integer" }],
    }));
    return { node: "target-1", tables: described, created: [] };
  }

  async stored(): Promise<StoredReplica> {
    return { ...this.stored_, copied: new Map(this.stored_.copied) };
  }

  async storeMark(mark: ReplicaMark): Promise<void> {
    this.trace.push(`store mark ${mark.stream}`);
    this.stored_.mark ??= mark;
  }

  async forget(tables: TableName[]): Promise<void> {
    for (const table of tables) {
      this.trace.push(`forget ${table.schema}.${table.name}`);
      this.stored_.copied.delete(`${table.schema}.${table.name}`);
    }
  }

  async copy(_dsn: string, tables: ReplicaTable[]): Promise<BootstrapResult> {
    for (const table of tables) {
      const name = `${table.schema}.${table.name}`;
      this.trace.push(`copy ${name}`);
      const copied: CopiedTable = {
        schema: table.schema,
        name: table.name,
        snapshot: { xmin: 5n, xmax: 5n, xip: [] },
        rows: 0n,
      };
      this.stored_.copied.set(name, copied);
    }
    return {
      snapshot: { xmin: 5n, xmax: 5n, xip: [] },
      copied: tables.map((t) => ({ table: t, rows: 0n })),
      alreadyCopied: [],
    };
  }

  async apply(batch: BatchToApply, tables: ReplicaTable[]): Promise<ApplyResult> {
    const position = this.stored_.position;
    if (position && position.node === batch.node && batch.id <= position.batch) {
      this.trace.push(`skip ${batch.id}`);
      return { kind: "skipped", node: batch.node, id: batch.id, position };
    }
    this.trace.push(`apply ${batch.id}: ${tables.map((t) => `${t.schema}.${t.name}`).join(",")}`);
    const names = new Set(tables.map((t) => `${t.schema}.${t.name}`));
    const writes: [string, number][] = [];
    for await (const m of batch.mutations) {
      const name = `${m.schema}.${m.table}`;
      if (names.has(name) && this.stored_.copied.has(name)) writes.push([name, Number(m.id)]);
    }
    if (this.failApply?.batch === batch.id) {
      const { error } = this.failApply;
      this.failApply = undefined;
      this.trace.push(`rollback ${batch.id}`);
      throw error;
    }
    for (const [name, id] of writes) this.rows.set(name, [...(this.rows.get(name) ?? []), id]);
    this.stored_.position = {
      node: batch.node,
      batch: batch.id,
      endTick: batch.begin.end.id,
      endSnapshot: batch.begin.end.snapshot,
      endTime: batch.begin.end.time,
      stream: batch.position ?? null,
    };
    this.trace.push(`commit ${batch.id}`);
    const stats = { mutations: 0, applied: 0, inCopy: 0, notCopied: 0, notInSet: 0, statements: 0 };
    return { kind: "applied", node: batch.node, id: batch.id, stats };
  }

  async close(): Promise<void> {
    this.trace.push("target close");
  }
}

/** A probe with a fixed horizon that never settles the question when idle. */
export class ScriptedProbe implements CaughtUpProbe {
  constructor(private readonly at: bigint) {}
  async horizon(): Promise<bigint> {
    return this.at;
  }
  async whenIdle(): Promise<boolean> {
    return false;
  }
  async close(): Promise<void> {}
}

/** A retryable failure, as a target restart gives. */
export const unavailable = () =>
  new PgshovelError("DATABASE_UNAVAILABLE", "scripted outage", { retryable: true });

// The worker applies under a lease: the session must answer what a lease reads.
const scriptedZooKeeper = () =>
  Object.assign(new ScriptedZooKeeper(), { close() {} }) as unknown as ZooKeeper;

/** A worker over scripted parts, with the follower at version 1 of a set of table t. */
export function scriptedWorker(options: Partial<WorkerOptions> = {}) {
  const trace: Trace = [];
  const feed = new ScriptedFeed(trace);
  const target = new ScriptedTarget(trace);
  const follower = new ScriptedFollower(DSN);
  follower.state = setState(1, ["t"]);
  const election = new ScriptedElection(trace);
  let opened = 0;
  const worker = new ReplicaWorker({
    zk: scriptedZooKeeper(),
    cluster: "c",
    set: "s",
    logger: silentLogger,
    feed: () => {
      trace.push(`feed open ${++opened}`);
      return feed;
    },
    target,
    follower: () => follower,
    leadership: () => election,
    elect: true,
    candidate: {},
    createTables: false,
    jobs: 1,
    maxZooKeeperPauseMs: 1000,
    retryInitialMs: 200,
    retryMaxMs: 1000,
    idleMs: 1,
    ...options,
  });
  const controller = new AbortController();
  return { trace, feed, target, follower, election, worker, controller };
}

/** Waits until `condition` holds, checking every millisecond, for at most 5 s. */
export async function until(condition: () => boolean, what = "the condition"): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} never held`);
    await delay(1);
  }
}

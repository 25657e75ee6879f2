import { randomUUID } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import type { ZooKeeper } from "../cluster/zookeeper.js";
import { hidePassword } from "../config/set-config.js";
import { describeError, isPgshovelError, PgshovelError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Sink } from "../sinks/sink.js";
import { timestampFromDate } from "../stream/timestamp.js";
import {
  type BatchRef,
  type Body,
  type Message,
  type Mutation,
  type Operation,
  ROWS_JSON,
  type Row,
} from "../stream/types.js";
import { Leadership } from "./leadership.js";
import { type BatchInfo, PgqSource, type QueueEvent, toTimestamp } from "./pgq-source.js";
import { SessionExpired, SetFollower, type SetState } from "./set-follower.js";

/** Everything a relay needs, validated by the caller. */
export interface RelayOptions {
  zk: ZooKeeper;
  cluster: string;
  set: string;
  /** PgQ consumer name; one active relay per (set, consumer). */
  consumer: string;
  sink: Sink;
  logger: Logger;
  /** Rows fetched from the batch cursor at a time. */
  fetchSize: number;
  /** Wait between polls when the queue is idle. */
  pollIntervalMs: number;
  /** Tick the queue ourselves when idle (pgqd remains the fallback). */
  selfTick: boolean;
  /** Longest pause while ZooKeeper is unreachable before giving up. */
  maxZooKeeperPauseMs: number;
  /** Back-off bounds for recoverable failures. */
  retryInitialMs: number;
  retryMaxMs: number;
  /** Whether to wait for leadership (one active relay per set and consumer). */
  elect: boolean;
  /**
   * Opens a new ZooKeeper session. With it, a relay whose session expired, or whose
   * Kafka producer was fenced by a newer one, stops publishing, opens a new session
   * (giving up after `maxZooKeeperPauseMs`), stands for leadership again and carries
   * on; without it, either ends the run with an error.
   * The relay closes the sessions it replaces; {@link Relay.zookeeper} is the current one.
   */
  reconnect?: () => Promise<ZooKeeper>;
}

/** How a relay run ended. */
export type RelayOutcome = { kind: "stopped" } | { kind: "dropped" };

/** What SIGUSR1 prints. */
export interface RelayDiagnostics {
  set: string;
  consumer: string;
  publisher: string;
  sink: string;
  state: string;
  currentBatch: string | null;
  lastSequence: string | null;
  batchesPublished: number;
  mutationsPublished: number;
  lagSeconds: number | null;
  pendingEvents: string | null;
}

const OPERATIONS = new Set<string>(["INSERT", "UPDATE", "DELETE", "TRUNCATE"]);

/** A session renewal this long after the previous one starts without waiting. */
const RENEWAL_QUIET_MS = 30_000;

/** What the capture trigger writes into ev_data: `{"old" : …, "new" : …}`, both members always. */
const ROWS_PREFIX = '{"old" : ';

/**
 * A mutation read from the queue. Its rows stay the trigger's JSON text until
 * someone reads `old` or `new`: the JSON codec copies that text into the stream
 * ({@link ROWS_JSON}), so a JSON relay never parses rows at all.
 */
class CapturedMutation implements Mutation {
  #data: string;
  #rows: { old?: Row | null; new?: Row | null } | undefined;
  [ROWS_JSON]: string | undefined;

  constructor(
    readonly id: bigint,
    readonly schema: string,
    readonly table: string,
    readonly operation: Operation,
    readonly identity: string[],
    data: string,
    readonly transaction: bigint,
    readonly time: string,
  ) {
    this.#data = data;
    // Events written before the trigger always carried both members (or by TRUNCATE)
    // have no such text: they are parsed and encoded like any other mutation.
    this[ROWS_JSON] =
      data.startsWith(ROWS_PREFIX) && data.endsWith("}") ? data.slice(1, -1) : undefined;
  }

  private rows(): { old?: Row | null; new?: Row | null } {
    this.#rows ??= JSON.parse(this.#data) as { old?: Row | null; new?: Row | null };
    return this.#rows;
  }

  get old(): Row | null {
    return this.rows().old ?? null;
  }

  set old(row: Row | null) {
    this.rows().old = row;
    this[ROWS_JSON] = undefined;
  }

  get new(): Row | null {
    return this.rows().new ?? null;
  }

  set new(row: Row | null) {
    this.rows().new = row;
    this[ROWS_JSON] = undefined;
  }
}

/** Turns a PgQ event written by the capture trigger into a stream mutation. */
export function toMutation(event: QueueEvent, identityCache: Map<string, string[]>): Mutation {
  const operation = event.ev_type;
  if (!OPERATIONS.has(operation)) {
    throw new PgshovelError(
      "INTERNAL",
      `event ${event.ev_id} has unknown type ${JSON.stringify(operation)}`,
    );
  }
  let identity = identityCache.get(event.ev_extra4);
  if (!identity) {
    identity = JSON.parse(event.ev_extra4) as string[];
    identityCache.set(event.ev_extra4, identity);
  }
  return new CapturedMutation(
    BigInt(event.ev_id),
    event.ev_extra1,
    event.ev_extra2,
    operation as Operation,
    identity,
    event.ev_data,
    BigInt(event.ev_txid),
    toTimestamp(event.ev_time),
  );
}

/**
 * The relay: forwards a set's PgQ batches to a sink as begin, mutations,
 * commit; finishes a batch only after the sink acknowledged its commit.
 */
export class Relay {
  readonly publisher = randomUUID();
  private sequence = 0n;
  private source: PgqSource | undefined;
  private state = "starting";
  private currentBatch: bigint | null = null;
  private batches = 0;
  private lastTickAt = 0;
  private mutations = 0;
  private readonly identityCache = new Map<string, string[]>();
  private zk: ZooKeeper;
  private follower: SetFollower;
  private leadership: Leadership;
  private lastRenewalAt = 0;
  private renewalBackoff = 0;

  constructor(private readonly options: RelayOptions) {
    this.zk = options.zk;
    this.follower = new SetFollower(this.zk, options.cluster, options.set, options.logger);
    this.leadership = this.newLeadership();
  }

  /** The ZooKeeper session in use: `options.zk`, or the one that replaced it after an expiry. */
  get zookeeper(): ZooKeeper {
    return this.zk;
  }

  private newLeadership(): Leadership {
    const { cluster, set, consumer, logger } = this.options;
    return new Leadership(this.zk, cluster, set, consumer, logger);
  }

  /** Runs until aborted (→ stopped), the set is dropped (→ dropped) or an unrecoverable error (throws). */
  async run(signal: AbortSignal): Promise<RelayOutcome> {
    const { sink } = this.options;
    try {
      const first = await this.follower.confirmed(signal, this.options.maxZooKeeperPauseMs);
      if (first.kind === "dropped" && first.what === "cluster") {
        throw new PgshovelError(
          "NOT_FOUND",
          `cluster ${JSON.stringify(this.options.cluster)} is not initialized`,
          { hint: "check --cluster and --zookeeper-hosts, or run `pgshovel cluster initialize`" },
        );
      }
      if (first.kind === "dropped") {
        throw new PgshovelError(
          "NOT_FOUND",
          `set ${JSON.stringify(this.options.set)} does not exist in cluster ${JSON.stringify(this.options.cluster)}`,
          {
            hint: "`pgshovel set list` shows the sets",
          },
        );
      }
      this.checkVersion(first);
      for (;;) {
        try {
          if (this.options.elect) {
            this.state = "standby";
            await this.leadership.acquire(signal, { publisher: this.publisher, pid: process.pid });
          }
          this.state = "opening sink";
          await sink.open();
          return await this.loop(signal);
        } catch (error) {
          // Either way another relay may lead now: an expired session lost our candidacy,
          // and a fenced Kafka producer means a newer one took the transactional id.
          const expired = error instanceof SessionExpired || this.follower.hasExpired;
          const fenced = isPgshovelError(error, "FENCED");
          if (signal.aborted || !(expired || fenced) || !this.options.reconnect) throw error;
          await this.renewSession(signal, expired ? "session-expired" : "fenced");
        }
      }
    } catch (error) {
      if (signal.aborted) return { kind: "stopped" };
      throw error;
    } finally {
      this.state = "stopped";
      this.follower.close();
      await this.source?.close();
      await sink.close().catch(() => {});
      await this.leadership.release();
    }
  }

  /**
   * After the session expired, or the sink was fenced: another relay may lead by now, so
   * nothing is published until a new session wins the election again. The sink is closed
   * (a Kafka producer may have been fenced meanwhile) and opened again once this relay
   * leads.
   */
  private async renewSession(
    signal: AbortSignal,
    why: "session-expired" | "fenced",
  ): Promise<void> {
    const { logger, sink, maxZooKeeperPauseMs } = this.options;
    const reconnect = this.options.reconnect!;
    logger.warn(
      { hosts: this.zk.hosts },
      why === "fenced"
        ? "fenced by a newer Kafka producer: stopped publishing; standing for election again in a new ZooKeeper session"
        : "the ZooKeeper session expired: stopped publishing; opening a new session",
    );
    this.state = "renewing the ZooKeeper session";
    this.follower.close();
    this.zk.close();
    await sink.close().catch(() => {});
    // Renewals in quick succession (two relays that keep fencing each other, say) back off.
    const now = Date.now();
    this.renewalBackoff =
      now - this.lastRenewalAt < RENEWAL_QUIET_MS
        ? Math.min(
            Math.max(this.renewalBackoff * 2, this.options.retryInitialMs),
            this.options.retryMaxMs,
          )
        : 0;
    this.lastRenewalAt = now;
    if (this.renewalBackoff > 0) {
      logger.warn({ waitMs: this.renewalBackoff }, "renewed only a moment ago: waiting first");
      await delay(this.renewalBackoff, undefined, { signal }).catch(() => {});
    }
    const giveUpAt = Date.now() + maxZooKeeperPauseMs;
    let backoff = this.options.retryInitialMs;
    for (;;) {
      if (signal.aborted) throw signal.reason;
      try {
        this.zk = await reconnect();
        break;
      } catch (error) {
        if (Date.now() + backoff > giveUpAt) {
          throw new PgshovelError(
            "ZOOKEEPER_UNAVAILABLE",
            `the ZooKeeper session expired and no new one could be opened within ${maxZooKeeperPauseMs} ms: ${describeError(error)}`,
            { cause: error, hint: "check ZooKeeper, then restart the relay" },
          );
        }
        logger.warn(
          { err: describeError(error), retryInMs: backoff },
          "no new ZooKeeper session yet",
        );
        await delay(backoff, undefined, { signal }).catch(() => {});
        backoff = Math.min(backoff * 2, this.options.retryMaxMs);
      }
    }
    this.follower = new SetFollower(this.zk, this.options.cluster, this.options.set, logger);
    this.leadership = this.newLeadership();
    logger.info({ hosts: this.zk.hosts }, "new ZooKeeper session open");
  }

  private checkVersion(
    state: SetState,
  ): asserts state is Exclude<SetState, { kind: "version-mismatch" }> {
    if (state.kind === "version-mismatch") {
      throw new PgshovelError(
        "VERSION_MISMATCH",
        `cluster is at version ${state.clusterVersion}, this relay runs a different version`,
        {
          hint: "run the relay of the cluster's version, or `pgshovel cluster upgrade`",
        },
      );
    }
  }

  private async loop(signal: AbortSignal): Promise<RelayOutcome> {
    const { logger } = this.options;
    let backoff = this.options.retryInitialMs;
    let checkSink = true;
    let version: number | undefined;
    while (!signal.aborted) {
      try {
        const state = await this.follower.confirmed(signal, this.options.maxZooKeeperPauseMs);
        if (state.kind === "dropped") {
          logger.info({ set: this.options.set }, "the set was dropped: stopping");
          return { kind: "dropped" };
        }
        this.checkVersion(state);
        version = state.version;
        const dsn = state.config.database.dsn;
        if (this.source && this.source.dsn !== dsn) {
          logger.info(
            { database: hidePassword(dsn) },
            "the set moved to another database: switching",
          );
          await this.source.close();
          this.source = undefined;
        }
        if (!this.source) {
          const source = new PgqSource(
            dsn,
            this.options.cluster,
            this.options.set,
            this.options.consumer,
          );
          await source.open().catch(async (error) => {
            await source.close();
            throw error;
          });
          this.source = source;
          checkSink = true;
          logger.info(
            { database: hidePassword(dsn), node: source.node, queue: source.queue },
            "reading the set's queue",
          );
        }
        const source = this.source;
        this.state = "polling";
        let batch = await source.nextBatch();
        // Ticking at most once per poll interval bounds how many batches we cut for the
        // queue's other consumers, which may be slower (Kafka commits a transaction per batch).
        if (
          !batch &&
          this.options.selfTick &&
          Date.now() - this.lastTickAt >= this.options.pollIntervalMs
        ) {
          this.lastTickAt = Date.now();
          await source.tick();
          batch = await source.nextBatch();
        }
        if (!batch) {
          await this.follower.sleep(this.options.pollIntervalMs, signal);
          continue;
        }
        const ref: BatchRef = { node: source.node, id: batch.id };
        if (checkSink) {
          checkSink = false;
          const last = await this.options.sink.lastCommittedBatch?.();
          // After a failed publish whose commit did land, our sequence continues after it.
          if (last && last.header.publisher === this.publisher)
            this.sequence = last.header.sequence + 1n;
          if (last && last.batch.node === ref.node && last.batch.id === ref.id) {
            logger.info(
              { batch: ref.id.toString() },
              "the sink already holds this batch: finishing it without publishing again",
            );
            await source.finish(batch.id);
            continue;
          }
        }
        await this.publish(source, batch, ref, signal);
        await source.finish(batch.id);
        this.batches++;
        this.currentBatch = null;
        backoff = this.options.retryInitialMs;
      } catch (error) {
        this.currentBatch = null;
        if (signal.aborted) break;
        if (!(error instanceof PgshovelError) || !error.retryable) {
          if (!(await this.configurationMoved(error, version, signal))) throw error;
          // The set changed under the failed call (dropped, moved, tables changed): the
          // next round follows the new configuration.
          await this.source?.close();
          this.source = undefined;
          checkSink = true;
          continue;
        }
        logger.warn(
          { err: describeError(error), retryInMs: backoff },
          "recoverable failure: retrying",
        );
        if (error.code === "DATABASE_UNAVAILABLE" || error.code === "DATABASE_ERROR") {
          await this.source?.close();
          this.source = undefined;
        }
        checkSink = true;
        this.state = "backing off";
        await this.follower.sleep(backoff, signal);
        backoff = Math.min(backoff * 2, this.options.retryMaxMs);
      }
    }
    return { kind: "stopped" };
  }

  /**
   * Whether a database error may come from a configuration change that the watch has
   * not delivered yet: `set drop` and `set update` commit in the database only after
   * ZooKeeper, so a relay between the two can find its queue gone ("Not subscriber to
   * queue") or a table's trigger replaced. ZooKeeper, read again, tells.
   */
  private async configurationMoved(
    error: unknown,
    version: number | undefined,
    signal: AbortSignal,
  ): Promise<boolean> {
    if (!isPgshovelError(error, "DATABASE_ERROR") || version === undefined) return false;
    this.follower.invalidate();
    const state = await this.follower
      .confirmed(signal, this.options.maxZooKeeperPauseMs)
      .catch(() => undefined);
    if (state === undefined) return false;
    const moved = state.kind !== "active" || state.version !== version;
    if (moved) {
      this.options.logger.info(
        { err: describeError(error) },
        "a database error under a configuration that has changed since: following the new one",
      );
    }
    return moved;
  }

  // Formatting a timestamp per message is measurable at 100k+ messages/s: once per millisecond is enough.
  private stampMs = 0;
  private stamp = "";

  private message(batch: BatchRef, body: Body): Message {
    const now = Date.now();
    if (now !== this.stampMs) {
      this.stampMs = now;
      this.stamp = timestampFromDate(new Date(now));
    }
    const header = { publisher: this.publisher, sequence: this.sequence, timestamp: this.stamp };
    this.sequence++;
    return { header, batch, body };
  }

  private async publish(
    source: PgqSource,
    batch: BatchInfo,
    ref: BatchRef,
    signal: AbortSignal,
  ): Promise<void> {
    const { sink, logger } = this.options;
    this.currentBatch = batch.id;
    this.state = "publishing";
    const ticks = await source.ticks(batch);
    const firstSequence = this.sequence;
    let count = 0;
    const follower = this.follower;
    const relay = this;
    async function* messages(): AsyncGenerator<Message> {
      yield relay.message(ref, { kind: "begin", begin: ticks });
      for await (const events of source.events(batch.id, relay.options.fetchSize)) {
        for (const event of events) {
          if (signal.aborted) throw new PgshovelError("INTERNAL", "stopping", { retryable: false });
          if (!follower.isConnected) {
            throw new PgshovelError(
              "ZOOKEEPER_UNAVAILABLE",
              "ZooKeeper connection lost mid-batch",
              { retryable: true },
            );
          }
          count++;
          yield relay.message(ref, {
            kind: "mutation",
            mutation: toMutation(event, relay.identityCache),
          });
        }
      }
      yield relay.message(ref, { kind: "commit" });
    }
    try {
      await sink.publishBatch(ref, messages());
    } catch (error) {
      if (sink.transactional) {
        // Nothing of this batch is visible downstream: its sequence numbers are free again.
        this.sequence = firstSequence;
      } else {
        await sink
          .publishBatch(
            ref,
            (async function* () {
              yield relay.message(ref, { kind: "rollback" });
            })(),
          )
          .catch((rollbackError) => {
            logger.warn(
              { err: describeError(rollbackError) },
              "could not publish the rollback of an abandoned batch",
            );
          });
      }
      throw error;
    }
    this.mutations += count;
    logger.debug({ batch: batch.id.toString(), mutations: count }, "batch published");
  }

  /** A snapshot of what the relay is doing, for SIGUSR1. */
  async diagnostics(): Promise<RelayDiagnostics> {
    const info = await this.source?.consumerInfo().catch(() => undefined);
    return {
      set: this.options.set,
      consumer: this.options.consumer,
      publisher: this.publisher,
      sink: this.options.sink.description,
      state: this.state,
      currentBatch: this.currentBatch === null ? null : this.currentBatch.toString(),
      lastSequence: this.sequence === 0n ? null : (this.sequence - 1n).toString(),
      batchesPublished: this.batches,
      mutationsPublished: this.mutations,
      lagSeconds: info?.lagSeconds ?? null,
      pendingEvents: info?.pendingEvents ?? null,
    };
  }
}

/**
 * The queue feed: a replica reading the set's PgQ queue directly, as a consumer of its own.
 * PgQ keeps the position (the consumer's last finished batch); the feed's positions are
 * tick ids — the mark is the tick the new consumer starts after, a batch's position its end
 * tick — so that a consumer dropped and registered again, which starts at a later tick, is
 * found out instead of skipping the batches in between.
 */
import { setTimeout as delay } from "node:timers/promises";
import { dbNames } from "../config/names.js";
import { closeQuietly, connect, type PgClient, query } from "../database/postgres.js";
import { isPgshovelError, PgshovelError } from "../errors.js";
import { PgqSource } from "../relay/pgq-source.js";
import type { Mutation, StreamPosition } from "../stream/types.js";
import type { FeedBatch, ReplicaFeed } from "./feed.js";

/** What a {@link QueueFeed} reads. */
export interface QueueFeedOptions {
  sourceDsn: string;
  cluster: string;
  set: string;
  /** The replica's own PgQ consumer: `dbNames.replicaConsumer(targetNode)` unless told. */
  consumer: string;
  /** Events fetched from a batch's cursor at a time. */
  fetchSize: number;
  /** Wait between polls of an idle queue (after a tick of its own found nothing). */
  pollIntervalMs: number;
}

/** The error of a consumer that is gone: the batches since its last one are out of reach. */
export function consumerLost(queue: string, consumer: string): PgshovelError {
  return new PgshovelError(
    "POSITION_LOST",
    `the replica's PgQ consumer ${consumer} is not registered on queue ${queue}: the batches since the replica's position are lost`,
    {
      hint: "the consumer was unregistered (by hand, or by dropping and creating the set again): rebuild the replica — truncate its tables and delete the set's rows in the target's replica_tables, replica_position and replica_mark — then run replicate again",
    },
  );
}

/** A set's PgQ queue as a replica's feed: batches in tick order, finished after the target commits. */
export class QueueFeed implements ReplicaFeed {
  readonly description: string;
  private readonly queue: string;
  private source: PgqSource | undefined;

  constructor(private readonly options: QueueFeedOptions) {
    this.queue = dbNames.queue(options.cluster, options.set);
    this.description = `queue ${this.queue} as ${options.consumer}`;
  }

  private async withSource<T>(doing: (client: PgClient) => Promise<T>): Promise<T> {
    const client = await connect(this.options.sourceDsn, {
      applicationName: `pgshovel-replica ${this.options.set}`,
    });
    try {
      return await doing(client);
    } finally {
      await closeQuietly(client);
    }
  }

  /**
   * Registers the consumer (a new one starts at the latest tick, taken before any later
   * snapshot) and returns the tick it starts after.
   */
  async mark(): Promise<StreamPosition | null> {
    return this.withSource(async (client) => {
      const doing = "registering the replica's PgQ consumer";
      const params = [this.queue, this.options.consumer];
      await query(client, "SELECT pgq.register_consumer($1, $2)", params, doing);
      const result = await query<{ tick: string }>(
        client,
        "SELECT last_tick::text AS tick FROM pgq.get_consumer_info($1, $2)",
        params,
        doing,
      );
      return BigInt(result.rows[0]!.tick);
    });
  }

  /** Whether the consumer is registered; false also when the queue is gone. */
  private async registered(): Promise<boolean> {
    return this.withSource(async (client) => {
      const result = await query(
        client,
        `SELECT 1 FROM pgq.subscription s
           JOIN pgq.queue q ON q.queue_id = s.sub_queue
           JOIN pgq.consumer c ON c.co_id = s.sub_consumer
          WHERE q.queue_name = $1 AND c.co_name = $2`,
        [this.queue, this.options.consumer],
        "looking up the replica's PgQ consumer",
      );
      return result.rowCount === 1;
    });
  }

  /**
   * The batches after `from` (a tick id). The first one PgQ hands out must start there, or
   * end at or before it (applied already: the crash came before its finish); one that
   * starts later means the consumer lost its place.
   */
  async *batches(from: StreamPosition | null, signal: AbortSignal): AsyncGenerator<FeedBatch> {
    const { sourceDsn, cluster, set, consumer, fetchSize, pollIntervalMs } = this.options;
    // PgqSource registers a missing consumer, which would hide a gap: check first.
    if (!(await this.registered())) throw consumerLost(this.queue, consumer);
    await this.source?.close();
    const source = new PgqSource(sourceDsn, { cluster, set, consumer, fetchSize });
    this.source = source;
    await source.open();
    let checked = from === null;
    while (!signal.aborted) {
      const info = await this.next(source);
      if (!info) {
        await delay(pollIntervalMs, undefined, { signal }).catch(() => {});
        continue;
      }
      if (!checked && from !== null) {
        if (info.startTickId !== from && info.endTickId > from) {
          throw new PgshovelError(
            "POSITION_LOST",
            `batch ${info.id} of queue ${this.queue} starts at tick ${info.startTickId}, but the replica stands at tick ${from}: the transactions in between would be lost`,
            { hint: consumerLost(this.queue, consumer).hint },
          );
        }
        checked = true;
      }
      const begin = await source.ticks(info);
      const mutations = async function* (): AsyncGenerator<Mutation> {
        for await (const run of source.events(info.id)) yield* run;
      };
      yield {
        node: source.node,
        id: info.id,
        begin,
        position: info.endTickId,
        mutations: mutations(),
        // A skipped batch's events were never read: finishing is all it needs.
        done: () => source.finish(info.id),
      };
    }
  }

  /** The next batch; when none is ready, a tick of our own first (PgQ makes one only if events wait). */
  private async next(source: PgqSource) {
    try {
      const ready = await source.nextBatch();
      if (ready) return ready;
      await source.tick();
      return await source.nextBatch();
    } catch (error) {
      // "Not subscriber to queue": unregistered while we read it.
      if (isPgshovelError(error, "DATABASE_ERROR") && !(await this.registered())) {
        throw consumerLost(this.queue, this.options.consumer);
      }
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.source?.close();
    this.source = undefined;
  }
}

/**
 * How many batches a replica worker has still to apply: the ticks of the set's queue
 * after the end tick of its last batch, read from the source on a connection of its own
 * (a progress line or a scrape never waits behind the worker's feed).
 */
import { closeQuietly, connect, type PgClient, query } from "../database/postgres.js";
import { describeError } from "../errors.js";
import type { Logger } from "../log.js";
import { readTicksBehind, type TicksBehind } from "./pgq-info.js";

/** Options of {@link BehindSampler}. */
export interface BehindSamplerOptions {
  /** The set's PgQ queue. */
  queue: string;
  logger: Logger;
  /** A sample younger than this is reused (the progress line and a scrape may ask together). */
  reuseMs?: number;
  /** Bound on connecting and on each query. */
  timeoutMs?: number;
}

/**
 * Samples the batches behind the replica's position. It knows the source and the position
 * only once a batch is done with ({@link follow}): a standby samples nothing.
 */
export class BehindSampler {
  private dsn: string | undefined;
  private endTick: bigint | undefined;
  private client: PgClient | undefined;
  private last: { at: number; sample: Promise<TicksBehind | undefined> } | undefined;

  constructor(private readonly options: BehindSamplerOptions) {}

  /** The replica's position after a batch, and the database it came from. */
  follow(sourceDsn: string, endTick: bigint): void {
    if (sourceDsn !== this.dsn) {
      this.dsn = sourceDsn;
      void this.reset();
    }
    if (endTick !== this.endTick) this.last = undefined;
    this.endTick = endTick;
  }

  /** A recent sample; undefined before the first batch or when the source is unreachable. */
  sample(): Promise<TicksBehind | undefined> {
    const now = Date.now();
    if (this.last && now - this.last.at < (this.options.reuseMs ?? 1_000)) return this.last.sample;
    const sample = this.read();
    this.last = { at: now, sample };
    return sample;
  }

  private async read(): Promise<TicksBehind | undefined> {
    const { dsn, endTick } = this;
    if (dsn === undefined || endTick === undefined) return undefined;
    const timeoutMs = this.options.timeoutMs ?? 5_000;
    try {
      if (!this.client) {
        const client = await connect(dsn, {
          applicationName: "pgshovel-replica metrics",
          timeoutMs,
        });
        await query(client, `SET statement_timeout = ${timeoutMs}`, [], "configuring the session");
        this.client = client;
      }
      const behind = await readTicksBehind(this.client, this.options.queue, [endTick]);
      return behind.get(endTick);
    } catch (error) {
      this.options.logger.debug({ err: describeError(error) }, "could not read the batches behind");
      await this.reset();
      return undefined;
    }
  }

  private async reset(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await closeQuietly(client);
  }

  /** Forgets the position (the worker stands by again) and closes the connection. */
  async forget(): Promise<void> {
    this.dsn = undefined;
    this.endTick = undefined;
    this.last = undefined;
    await this.reset();
  }

  /** Closes the connection. */
  close(): Promise<void> {
    return this.forget();
  }
}

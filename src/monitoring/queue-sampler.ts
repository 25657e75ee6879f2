import { closeQuietly, connect, type PgClient, query } from "../database/postgres.js";
import { describeError } from "../errors.js";
import type { Logger } from "../log.js";
import { type ConsumerState, type QueueInfo, readConsumers, readQueueInfo } from "./pgq-info.js";

/** The set's queue as one sample saw it. */
export interface QueueSample {
  info: QueueInfo | undefined;
  consumers: ConsumerState[];
}

/** Options of {@link QueueSampler}. */
export interface QueueSamplerOptions {
  queue: string;
  logger: Logger;
  /** A sample younger than this is reused (several gauges read one sample per scrape). */
  reuseMs?: number;
  /** Bound on connecting and on each query. */
  timeoutMs?: number;
}

/**
 * Reads PgQ's view of the set's queue for metrics and health, on a connection of its
 * own: a scrape never waits behind the relay's batch, nor disturbs its transaction.
 * It knows the database only once the relay opens it ({@link use}), so a standby
 * samples nothing and reports nothing about the queue.
 */
export class QueueSampler {
  private dsn: string | undefined;
  private client: PgClient | undefined;
  private last: { at: number; sample: Promise<QueueSample | undefined> } | undefined;

  constructor(private readonly options: QueueSamplerOptions) {}

  /** The set's database, as the relay opens it (again when the set moves). */
  use(dsn: string): void {
    if (dsn === this.dsn) return;
    this.dsn = dsn;
    this.last = undefined;
    void this.reset();
  }

  /** A recent sample; undefined when the database is unknown or unreachable. */
  sample(): Promise<QueueSample | undefined> {
    const now = Date.now();
    if (this.last && now - this.last.at < (this.options.reuseMs ?? 1_000)) return this.last.sample;
    const sample = this.read();
    this.last = { at: now, sample };
    return sample;
  }

  private async read(): Promise<QueueSample | undefined> {
    const dsn = this.dsn;
    if (dsn === undefined) return undefined;
    const { queue, logger } = this.options;
    const timeoutMs = this.options.timeoutMs ?? 5_000;
    try {
      if (!this.client) {
        const client = await connect(dsn, { applicationName: "pgshovel-relay metrics", timeoutMs });
        await query(client, `SET statement_timeout = ${timeoutMs}`, [], "configuring the session");
        this.client = client;
      }
      const info = await readQueueInfo(this.client, queue);
      return { info, consumers: info ? await readConsumers(this.client, queue) : [] };
    } catch (error) {
      logger.debug({ err: describeError(error) }, "could not sample the queue");
      await this.reset();
      return undefined;
    }
  }

  private async reset(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await closeQuietly(client);
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    this.dsn = undefined;
    await this.reset();
  }
}

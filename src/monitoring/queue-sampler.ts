import type { PgClient } from "../database/postgres.js";
import { DatabaseSampler, type DatabaseSamplerOptions } from "./database-sampler.js";
import { type ConsumerState, type QueueInfo, readConsumers, readQueueInfo } from "./pgq-info.js";

/** The set's queue as one sample saw it. */
export interface QueueSample {
  info: QueueInfo | undefined;
  consumers: ConsumerState[];
}

/** Options of {@link QueueSampler}. */
export interface QueueSamplerOptions extends DatabaseSamplerOptions {
  queue: string;
}

/**
 * Reads PgQ's view of the set's queue for metrics and health, on a connection of its
 * own. It knows the database only once the relay opens it ({@link use}), so a standby
 * samples nothing and reports nothing about the queue.
 */
export class QueueSampler extends DatabaseSampler<QueueSample> {
  constructor(private readonly options: QueueSamplerOptions) {
    super(options, { applicationName: "pgshovel-relay metrics", reading: "the queue" });
  }

  /** The set's database, as the relay opens it (again when the set moves). */
  use(dsn: string): void {
    this.database(dsn);
  }

  protected async readFrom(client: PgClient): Promise<QueueSample> {
    const info = await readQueueInfo(client, this.options.queue);
    return { info, consumers: info ? await readConsumers(client, this.options.queue) : [] };
  }
}

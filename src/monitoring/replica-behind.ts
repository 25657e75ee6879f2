/**
 * How many batches a replica worker has still to apply: the ticks of the set's queue
 * after the end tick of its last batch, read from the source on a connection of its own
 * (a progress line or a scrape never waits behind the worker's feed).
 */
import type { PgClient } from "../database/postgres.js";
import { DatabaseSampler, type DatabaseSamplerOptions } from "./database-sampler.js";
import { readTicksBehind, type TicksBehind } from "./pgq-info.js";

/** Options of {@link BehindSampler}. */
export interface BehindSamplerOptions extends DatabaseSamplerOptions {
  /** The set's PgQ queue. */
  queue: string;
}

/**
 * Samples the batches behind the replica's position. It knows the source and the position
 * only once a batch is done with ({@link follow}): a standby samples nothing.
 */
export class BehindSampler extends DatabaseSampler<TicksBehind> {
  private endTick: bigint | undefined;

  constructor(private readonly options: BehindSamplerOptions) {
    super(options, { applicationName: "pgshovel-replica metrics", reading: "the batches behind" });
  }

  /** The replica's position after a batch, and the database it came from. */
  follow(sourceDsn: string, endTick: bigint): void {
    this.database(sourceDsn);
    if (endTick !== this.endTick) this.stale();
    this.endTick = endTick;
  }

  /** Forgets the position (the worker stands by again) and closes the connection. */
  forget(): Promise<void> {
    this.endTick = undefined;
    return this.close();
  }

  protected override ready(): boolean {
    return this.endTick !== undefined;
  }

  protected async readFrom(client: PgClient): Promise<TicksBehind | undefined> {
    const endTick = this.endTick;
    if (endTick === undefined) return undefined;
    const behind = await readTicksBehind(client, this.options.queue, [endTick]);
    return behind.get(endTick);
  }
}

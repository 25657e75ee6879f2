import { closeQuietly, connect, type PgClient, query } from "../database/postgres.js";
import { describeError } from "../errors.js";
import type { Logger } from "../log.js";

/** Options every {@link DatabaseSampler} takes. */
export interface DatabaseSamplerOptions {
  logger: Logger;
  /** A sample younger than this is reused (several readers may ask within one scrape). */
  reuseMs?: number;
  /** Bound on connecting and on each query. */
  timeoutMs?: number;
}

/**
 * Something read from a database for metrics, health or a progress line, on a connection
 * of its own: a reader never waits behind the command's own work, nor disturbs its
 * transactions. The database is known only once the command uses it ({@link database}),
 * so a standby reads nothing. Any error drops the connection and makes the sample
 * undefined; the next sample connects again.
 */
export abstract class DatabaseSampler<T> {
  #dsn: string | undefined;
  #client: PgClient | undefined;
  #last: { at: number; sample: Promise<T | undefined> } | undefined;

  constructor(
    private readonly base: DatabaseSamplerOptions,
    /** The connection's application_name, and what a failed read says it was doing. */
    private readonly purpose: { applicationName: string; reading: string },
  ) {}

  /** Points at the database (again when it moves): another one drops the connection. */
  protected database(dsn: string): void {
    if (dsn === this.#dsn) return;
    this.#dsn = dsn;
    this.#last = undefined;
    void this.#reset();
  }

  /** Forgets the last sample: what it read has changed. */
  protected stale(): void {
    this.#last = undefined;
  }

  /** Whether there is anything to read yet, besides the database. */
  protected ready(): boolean {
    return true;
  }

  /** One reading on the sampler's connection. */
  protected abstract readFrom(client: PgClient): Promise<T | undefined>;

  /** A recent sample; undefined when the database is unknown or unreachable. */
  sample(): Promise<T | undefined> {
    const now = Date.now();
    if (this.#last && now - this.#last.at < (this.base.reuseMs ?? 1_000)) return this.#last.sample;
    const sample = this.#read();
    this.#last = { at: now, sample };
    return sample;
  }

  /** Forgets the database and the sample, and closes the connection. */
  async close(): Promise<void> {
    this.#dsn = undefined;
    this.#last = undefined;
    await this.#reset();
  }

  async #read(): Promise<T | undefined> {
    const dsn = this.#dsn;
    if (dsn === undefined || !this.ready()) return undefined;
    const timeoutMs = this.base.timeoutMs ?? 5_000;
    try {
      if (!this.#client) {
        const client = await connect(dsn, {
          applicationName: this.purpose.applicationName,
          timeoutMs,
        });
        await query(client, `SET statement_timeout = ${timeoutMs}`, [], "configuring the session");
        this.#client = client;
      }
      return await this.readFrom(this.#client);
    } catch (error) {
      this.base.logger.debug(
        { err: describeError(error) },
        `could not read ${this.purpose.reading}`,
      );
      await this.#reset();
      return undefined;
    }
  }

  async #reset(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    await closeQuietly(client);
  }
}

import { hidePassword } from "../config/set-config.js";
import type { Logger } from "../log.js";
import { untilAborted } from "./abortable.js";
import type { BatchSource, BatchSourceFactory } from "./batch-source.js";

/**
 * The batch source on the set's current database: opened when first needed,
 * closed after a connection failure, replaced when the set moves to another
 * database (a new source from the factory, the old one closed).
 */
export class CurrentSource {
  private current: { dsn: string; source: BatchSource } | undefined;

  constructor(
    private readonly factory: BatchSourceFactory,
    private readonly logger: Logger,
  ) {}

  /** The open source, if any. */
  get open(): BatchSource | undefined {
    return this.current?.source;
  }

  /**
   * The source reading `dsn`, opened now (`opened`) unless it was open already. An abort of
   * `signal` ends the wait for the database at once; a connection made later is closed.
   */
  async on(dsn: string, signal: AbortSignal): Promise<{ source: BatchSource; opened: boolean }> {
    if (this.current?.dsn === dsn) return { source: this.current.source, opened: false };
    if (this.current) {
      this.logger.info(
        { database: hidePassword(dsn) },
        "the set moved to another database: switching",
      );
      await this.close();
    }
    const source = this.factory(dsn);
    const opening = source.open().catch(async (error: unknown) => {
      await source.close();
      throw error;
    });
    await untilAborted(opening, signal, () => source.close());
    this.current = { dsn, source };
    this.logger.info(
      { database: hidePassword(dsn), node: source.node, ...source.labels },
      "reading the set's queue",
    );
    return { source, opened: true };
  }

  /** Closes the open source; the next {@link on} opens a new one. */
  async close(): Promise<void> {
    const source = this.current?.source;
    this.current = undefined;
    await source?.close();
  }
}

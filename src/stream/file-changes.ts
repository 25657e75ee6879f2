import { type FSWatcher, watch } from "node:fs";

/**
 * Wakes a reader that follows a growing file: on each change the file system
 * reports (fs.watch), and at least every poll interval in case it reports
 * nothing (network file systems, a watch that failed). Never a busy loop.
 */
export class FileChanges {
  readonly #pollMs: number;
  readonly #signal: AbortSignal | undefined;
  #watcher: FSWatcher | undefined;
  /** A change arrived while nobody waited. */
  #pending = false;
  #wake: (() => void) | undefined;

  constructor(path: string, pollMs: number, signal: AbortSignal | undefined) {
    this.#pollMs = pollMs;
    this.#signal = signal;
    try {
      this.#watcher = watch(path, { persistent: false }, () => this.#changed());
      this.#watcher.on("error", () => this.#unwatch());
    } catch {
      this.#watcher = undefined; // polling alone
    }
  }

  /** Resolves true once the file may have changed, false when the signal aborts first. */
  next(): Promise<boolean> {
    const signal = this.#signal;
    if (signal?.aborted) return Promise.resolve(false);
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const done = (changed: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", aborted);
        this.#wake = undefined;
        this.#pending = false;
        resolve(changed);
      };
      const aborted = () => done(false);
      const timer = setTimeout(() => done(true), this.#pollMs);
      signal?.addEventListener("abort", aborted, { once: true });
      this.#wake = () => done(true);
    });
  }

  /** Stops watching. */
  close(): void {
    this.#unwatch();
  }

  #changed(): void {
    if (this.#wake) this.#wake();
    else this.#pending = true;
  }

  #unwatch(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
  }
}

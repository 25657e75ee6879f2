/**
 * What a relay is doing and has done — its state, the batch in flight, its counts — told
 * to its observer as it changes. Kept apart from the loop so that the loop only says what
 * happened.
 */
import { describeError } from "../errors.js";
import type { Logger } from "../log.js";
import type { FinishedBatch, RelayObserver } from "./observer.js";
import type { RelayState } from "./options.js";

/** A relay's observable progress. */
export class RelayProgress {
  state: RelayState = "starting";
  currentBatch: bigint | null = null;
  batches = 0;
  mutations = 0;

  constructor(
    private readonly observer: RelayObserver | undefined,
    private readonly logger: Logger,
  ) {}

  /** The relay moved to `state`. */
  enter(state: RelayState): void {
    if (state === this.state) return;
    this.state = state;
    this.notify((o) => o.stateChanged?.(state));
  }

  /** A batch was published and finished. */
  finished(batch: FinishedBatch): void {
    this.batches++;
    this.mutations += batch.mutations;
    this.currentBatch = null;
    this.notify((o) => o.batchFinished?.(batch));
  }

  /** Tells the observer, if any; an observer that throws does not stop the relay. */
  notify(tell: (observer: RelayObserver) => void): void {
    if (!this.observer) return;
    try {
      tell(this.observer);
    } catch (error) {
      this.logger.warn({ err: describeError(error) }, "the relay's observer failed");
    }
  }
}

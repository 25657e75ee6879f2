import type { ErrorCode } from "../errors.js";
import type { Timestamp } from "../stream/types.js";
import type { RelayState } from "./options.js";

/** A batch the sink acknowledged and the relay then finished in PgQ. */
export interface FinishedBatch {
  id: bigint;
  mutations: number;
  /** When PgQ took the batch's end tick: every transaction of the batch committed before it. */
  endTickTime: Timestamp;
  /** When the sink acknowledged the batch's commit (epoch milliseconds). */
  acknowledgedAt: number;
}

/** Why a relay stopped publishing and stood for election again. */
export type StandAgainReason = "session-expired" | "silent" | "fenced" | "deposed";

/**
 * What a relay reports as it goes, for metrics, health checks and progress logs. Each
 * hook is called synchronously from the loop and must neither throw nor block: the
 * relay runs the same with or without an observer.
 */
export interface RelayObserver {
  /** The relay's state changed (standby, polling, publishing, backing off…). */
  stateChanged?(state: RelayState): void;
  /** A batch was published, acknowledged by the sink and finished. */
  batchFinished?(batch: FinishedBatch): void;
  /** A batch the sink already held (published before a crash) was finished without publishing. */
  batchSkipped?(id: bigint): void;
  /** A recoverable failure: the relay abandons the batch, waits `delayMs` and tries again. */
  retrying?(failure: { code: ErrorCode; delayMs: number }): void;
  /** The relay stopped publishing and stands for election again. */
  standingAgain?(reason: StandAgainReason): void;
}

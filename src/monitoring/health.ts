/**
 * The relay's /health answer: healthy while it leads and makes progress, or stands by
 * as it should; unhealthy, with the reason, otherwise — for a Kubernetes probe.
 */
import type { ErrorCode } from "../errors.js";
import type { RelayObserver } from "../relay/observer.js";
import type { RelayState } from "../relay/options.js";

/** What /health answers (200 when `healthy`, 503 otherwise). */
export interface HealthReport {
  healthy: boolean;
  /** The relay's state, as its diagnostics name it. */
  state: RelayState;
  /** Why it is unhealthy; null when healthy. */
  reason: string | null;
  /** Seconds since the last batch was finished (or since it began to lead); null when not leading. */
  secondsSinceProgress: number | null;
  /** The consumer's pending events, when PgQ could be read. */
  pendingEvents: string | null;
}

/** What {@link assessHealth} decides from. */
export interface HealthFacts {
  state: RelayState;
  /** The error code of the last recoverable failure (while backing off). */
  lastFailure: ErrorCode | null;
  /** Epoch ms of the last progress: a finished batch, or the start of leadership. */
  progressAt: number | null;
  /** The consumer's pending events; undefined when PgQ could not be read. */
  pendingEvents: string | undefined;
  now: number;
  /** A leader with events pending and no progress for longer than this is unhealthy. */
  stallAfterMs: number;
}

const LEADING: readonly RelayState[] = ["polling", "publishing"];

/** The health of a relay, from its state and progress. Pure. */
export function assessHealth(facts: HealthFacts): HealthReport {
  const { state, now } = facts;
  const idleMs = facts.progressAt === null ? null : now - facts.progressAt;
  const report = (reason: string | null): HealthReport => ({
    healthy: reason === null,
    state,
    reason,
    secondsSinceProgress:
      idleMs === null || !LEADING.includes(state) ? null : Math.round(idleMs / 100) / 10,
    pendingEvents: facts.pendingEvents ?? null,
  });
  switch (state) {
    case "standby":
      return report(null);
    case "polling":
    case "publishing": {
      if (idleMs === null || idleMs <= facts.stallAfterMs) return report(null);
      const seconds = Math.round(idleMs / 1000);
      if (facts.pendingEvents === undefined)
        return report(`no progress for ${seconds} s and PgQ's backlog cannot be read`);
      if (BigInt(facts.pendingEvents) > 0n)
        return report(
          `no progress for ${seconds} s while ${facts.pendingEvents} events are pending`,
        );
      return report(null);
    }
    case "backing off":
      return report(`backing off after a recoverable failure (${facts.lastFailure ?? "unknown"})`);
    case "renewing the ZooKeeper session":
      return report("renewing the ZooKeeper session: not publishing");
    case "starting":
    case "opening sink":
      return report(`${state}: not publishing yet`);
    case "stopped":
      return report("stopped");
    default: {
      const unreachable: never = state;
      return report(`unknown state ${String(unreachable)}`);
    }
  }
}

/** Follows the relay's reports for {@link assessHealth}. */
export class HealthTracker implements RelayObserver {
  state: RelayState = "starting";
  lastFailure: ErrorCode | null = null;
  progressAt: number | null = null;

  stateChanged(state: RelayState): void {
    // Leading starts the clock: a new leader has had no time to make progress yet.
    if (LEADING.includes(state) && !LEADING.includes(this.state) && this.state !== "backing off")
      this.progressAt = Date.now();
    this.state = state;
  }

  batchFinished(): void {
    this.progressAt = Date.now();
  }

  batchSkipped(): void {
    this.progressAt = Date.now();
  }

  retrying(failure: { code: ErrorCode }): void {
    this.lastFailure = failure.code;
  }
}

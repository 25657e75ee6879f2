/**
 * What ZooKeeper, read again, says about the set after a failure: dropped, or changed
 * under a database call that failed because of it.
 */
import type { Follower } from "../coordination/set-follower.js";
import { describeError, isPgshovelError } from "../errors.js";
import type { Logger } from "../log.js";

/** Whether ZooKeeper confirms that the set (or its cluster) is gone. */
export async function setDropped(
  follower: Follower,
  maxPauseMs: number,
  signal: AbortSignal,
): Promise<boolean> {
  const state = await follower.confirmed(signal, maxPauseMs).catch(() => undefined);
  return state?.kind === "dropped";
}

/**
 * Whether a database error may come from a configuration change that the watch has
 * not delivered yet: `set drop` and `set update` commit in the database only after
 * ZooKeeper, so a relay between the two can find its queue gone ("Not subscriber to
 * queue") or a table's trigger replaced. ZooKeeper, read again, tells.
 */
export async function configurationMoved(
  error: unknown,
  version: number | undefined,
  follower: Follower,
  options: { maxPauseMs: number; logger: Logger; signal: AbortSignal },
): Promise<boolean> {
  if (!isPgshovelError(error, "DATABASE_ERROR") || version === undefined) return false;
  follower.invalidate();
  const state = await follower.confirmed(options.signal, options.maxPauseMs).catch(() => undefined);
  if (state === undefined) return false;
  const moved = state.kind !== "active" || state.version !== version;
  if (moved) {
    options.logger.info(
      { err: describeError(error) },
      "a database error under a configuration that has changed since: following the new one",
    );
  }
  return moved;
}

/**
 * The frame of a command that runs until it is stopped (a relay, a replica worker): SIGTERM
 * and SIGINT stop it cleanly with exit 0, a stop that hangs is cut short, its operations
 * (error reporting, monitoring, progress) start first and close last, and the error that
 * ends it is reported before it is thrown on.
 */
import type { Command } from "commander";
import { ZooKeeper } from "../cluster/zookeeper.js";
import type { Logger } from "../log.js";
import { untilAborted } from "../relay/abortable.js";
import { globals, loggerFor } from "./context.js";
import type { GlobalOptions } from "./options.js";
import { catchStopSignals, releaseStopSignals } from "./stop-signals.js";

/** A command that has not stopped this long after SIGTERM or SIGINT exits anyway. */
const STOP_DEADLINE_MS = 9000;

/** What {@link runUntilStopped} needs of a command's operations. */
export interface CommandOperations {
  readonly logger: Logger;
  failed(error: unknown): void;
  close(): Promise<void>;
}

/** The steps of a long-running command. */
export interface LongRunning<Ops extends CommandOperations> {
  /** Starts the operations around the run, with the command's plain logger. */
  operations(options: GlobalOptions, logger: Logger): Promise<Ops>;
  /**
   * The command's own work, until it ends or `signal` aborts. Its `finally` work belongs in
   * the returned promise: it has ended before the operations close.
   */
  run(options: GlobalOptions, ops: Ops, signal: AbortSignal): Promise<void>;
}

/**
 * Runs a long-running command. Every step ends at once when a stop signal comes, and what
 * it throws then is not an error: whatever was in flight is safe to abandon, since nothing
 * the command does is final before it commits.
 */
export async function runUntilStopped<Ops extends CommandOperations>(
  command: Command,
  steps: LongRunning<Ops>,
): Promise<void> {
  // main.ts caught the signals before the program loaded; a run otherwise catches them now.
  const stop = catchStopSignals();
  const { signal } = stop;
  const options = globals(command);
  let logger = loggerFor(options);
  const onStop = () => {
    logger.info({ signal: stop.received }, "stopping");
    setTimeout(() => {
      logger.warn(`did not stop within ${STOP_DEADLINE_MS / 1000} s: exiting`);
      process.exit(0);
    }, STOP_DEADLINE_MS).unref();
  };
  if (signal.aborted) onStop();
  else signal.addEventListener("abort", onStop, { once: true });
  let ops: Ops | undefined;
  try {
    if (signal.aborted) return;
    ops = await steps.operations(options, logger);
    logger = ops.logger;
    await steps.run(options, ops, signal);
  } catch (error) {
    if (signal.aborted) return;
    ops?.failed(error);
    throw error;
  } finally {
    signal.removeEventListener("abort", onStop);
    releaseStopSignals(false);
    await ops?.close();
  }
}

/**
 * The ZooKeeper session a long-running command leads or stands by in, and how to open
 * another after an expiry. Waiting for the first ends at once when `signal` aborts.
 */
export async function openZooKeeper(
  options: GlobalOptions,
  logger: Logger,
  signal: AbortSignal,
): Promise<{ zk: ZooKeeper; reconnect: () => Promise<ZooKeeper> }> {
  const reconnect = () =>
    ZooKeeper.connect({
      hosts: options.zookeeperHosts,
      timeoutMs: options.zookeeperTimeout,
      logger,
    });
  logger.info({ hosts: options.zookeeperHosts }, "connecting to ZooKeeper");
  const zk = await untilAborted(reconnect(), signal, (late) => late.close());
  return { zk, reconnect };
}

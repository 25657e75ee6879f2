import type { Command } from "commander";
import type { AdminContext } from "../cluster/context.js";
import { ZooKeeper } from "../cluster/zookeeper.js";
import { createLogger, type Logger } from "../log.js";
import type { GlobalOptions } from "./options.js";

/** The options of a command together with the global ones. */
export function globals(command: Command): GlobalOptions {
  return command.optsWithGlobals() as GlobalOptions;
}

/** A logger configured by the global options. */
export function loggerFor(options: GlobalOptions): Logger {
  return createLogger({ level: options.logLevel, format: options.logFormat });
}

/** Connects to ZooKeeper and runs `action` with an admin context, closing the session afterwards. */
export async function withAdmin<T>(
  command: Command,
  action: (ctx: AdminContext) => Promise<T>,
): Promise<T> {
  const options = globals(command);
  const logger = loggerFor(options);
  const zk = await ZooKeeper.connect({
    hosts: options.zookeeperHosts,
    timeoutMs: options.zookeeperTimeout,
    operationTimeoutMs: options.zookeeperTimeout,
    logger,
  });
  try {
    return await action({
      zk,
      cluster: options.cluster,
      logger,
      zookeeperTimeoutMs: options.zookeeperTimeout,
    });
  } finally {
    zk.close();
  }
}

import type { Logger } from "../log.js";
import type { ZooKeeper } from "./zookeeper.js";

/** Points where tests can act between the phases of a configuration change. */
export interface TwoPhaseHooks {
  /** After every database prepared its transaction, before ZooKeeper is written. */
  afterPrepare?: (gids: string[]) => Promise<void>;
}

/** What every administrative operation needs: a ZooKeeper session and the cluster it acts on. */
export interface AdminContext {
  zk: ZooKeeper;
  cluster: string;
  logger: Logger;
  /** Bounds waits on ZooKeeper, e.g. to learn the outcome of an interrupted commit. */
  zookeeperTimeoutMs: number;
  hooks?: TwoPhaseHooks;
}

/**
 * Child process of the atomicity tests: creates a set through the library and SIGKILLs itself
 * once every database prepared its transaction, before ZooKeeper is written.
 *
 * Usage: node crash-after-prepare.js HOSTS CLUSTER SET DSN TABLE
 * Prints `prepared <gid>…` on stdout just before dying.
 */
import { createSet } from "../../../src/cluster/admin.js";
import { ZooKeeper } from "../../../src/cluster/zookeeper.js";
import { silentLogger } from "../../../src/log.js";

const [hosts, cluster, set, dsn, table] = process.argv.slice(2);
if (!hosts || !cluster || !set || !dsn || !table) {
  process.stderr.write("usage: crash-after-prepare HOSTS CLUSTER SET DSN TABLE\n");
  process.exit(2);
}
// The shortest session ZooKeeper grants by default (2 ticks): the dead owner goes away soon.
const zk = await ZooKeeper.connect({ hosts, timeoutMs: 10_000, sessionTimeoutMs: 4_000 });
await createSet(
  {
    zk,
    cluster,
    logger: silentLogger,
    zookeeperTimeoutMs: 10_000,
    hooks: {
      afterPrepare: async (gids) => {
        process.stdout.write(`prepared ${gids.join(" ")}\n`, () =>
          process.kill(process.pid, "SIGKILL"),
        );
        await new Promise(() => {});
      },
    },
  },
  set,
  { database: { dsn }, tables: [{ name: table, schema: "public" }] },
);
process.stderr.write("the afterPrepare hook did not run\n");
process.exit(3);

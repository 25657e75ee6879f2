import type { ZooKeeper } from "../cluster/zookeeper.js";
import { zkPaths } from "../config/names.js";
import type { Logger } from "../log.js";

/**
 * One active relay per (set, consumer): every relay adds an ephemeral
 * sequential candidate node; the lowest one leads. A standby watches the
 * candidate just ahead of it, so a dead leader's node vanishing (session
 * expiry after kill -9) promotes exactly the next one.
 */
export class Leadership {
  private node: string | undefined;

  constructor(
    private readonly zk: ZooKeeper,
    private readonly cluster: string,
    private readonly set: string,
    private readonly consumer: string,
    private readonly logger: Logger,
  ) {}

  private get dir(): string {
    return `${zkPaths.relays(this.cluster, this.set)}/${this.consumer}`;
  }

  /** Resolves once this relay leads; rejects when aborted. */
  async acquire(signal: AbortSignal, describe: Record<string, unknown>): Promise<void> {
    await this.zk.ensurePath(this.dir);
    this.node ??= await this.zk.createEphemeralSequential(
      `${this.dir}/candidate-`,
      Buffer.from(JSON.stringify(describe)),
    );
    const mine = this.node.slice(this.dir.length + 1);
    let announced = false;
    for (;;) {
      if (signal.aborted) throw signal.reason;
      const candidates = (await this.zk.children(this.dir))
        .filter((c) => c.startsWith("candidate-"))
        .sort();
      const index = candidates.indexOf(mine);
      if (index === -1) {
        // Our node is gone (session expired and re-established): stand again.
        this.node = await this.zk.createEphemeralSequential(
          `${this.dir}/candidate-`,
          Buffer.from(JSON.stringify(describe)),
        );
        continue;
      }
      if (index === 0) {
        this.logger.info({ node: mine }, "leading: this relay is the active one");
        return;
      }
      const ahead = candidates[index - 1]!;
      if (!announced) {
        this.logger.info({ ahead }, "standing by: another relay is active");
        announced = true;
      }
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        this.zk
          .exists(`${this.dir}/${ahead}`, () => {
            signal.removeEventListener("abort", onAbort);
            resolve();
          })
          .then((stat) => {
            if (!stat) {
              signal.removeEventListener("abort", onAbort);
              resolve();
            }
          }, reject);
      });
    }
  }

  /** Steps down: removes the candidate node so the next relay leads at once. */
  async release(): Promise<void> {
    if (!this.node) return;
    await this.zk.remove(this.node).catch(() => {});
    this.node = undefined;
  }
}

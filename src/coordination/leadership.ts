import type { ZooKeeper } from "../cluster/zookeeper.js";
import { PgshovelError } from "../errors.js";
import type { Logger } from "../log.js";

/** One active worker among those that stand for the same election. */
export interface Election {
  /** Resolves once this candidate leads; rejects when aborted. */
  acquire(signal: AbortSignal, describe: Record<string, unknown>): Promise<void>;
  /**
   * True from {@link acquire} on, until this candidate's node is gone (removed by
   * hand, say): then another candidate may lead, and this one must stop and stand again.
   */
  readonly isLeading: boolean;
  /**
   * Aborts once the current term of leadership ends (its node gone, or released), so that
   * a worker waiting on something stops at once; already aborted while not leading.
   */
  readonly termSignal: AbortSignal;
  /** Steps down: the next candidate leads at once. */
  release(): Promise<void>;
}

/** Options of {@link Leadership}. */
export interface LeadershipOptions {
  zk: ZooKeeper;
  /** The election's node, whose children are the candidates, e.g. `zkPaths.relayElection(…)`. */
  path: string;
  logger: Logger;
  /** Who stands, as log lines name it: "relay". */
  role: string;
}

const CANDIDATE = "candidate-";
/** Wait before watching our node again after ZooKeeper failed to set the watch. */
const REWATCH_MS = 1_000;

/** One candidate of an election, as its node describes it. */
export interface Candidate {
  /** The node's name, `candidate-NNNNNNNNNN`. */
  node: string;
  /** The lowest candidate leads. */
  leading: boolean;
  /** What the candidate wrote: for a relay its publisher id, pid, host, startedAt and since. */
  data: Record<string, unknown>;
}

/** The candidates of an election, the leader first; reads only, so it disturbs no one. */
export async function readCandidates(zk: ZooKeeper, path: string): Promise<Candidate[]> {
  const names = (await zk.children(path)).filter((c) => c.startsWith(CANDIDATE)).sort();
  const candidates: Candidate[] = [];
  for (const name of names) {
    const node = await zk.get(`${path}/${name}`);
    if (!node) continue; // gone meanwhile
    let data: Record<string, unknown> = {};
    try {
      const parsed: unknown = JSON.parse(node.data.toString("utf8"));
      if (typeof parsed === "object" && parsed !== null) data = parsed as Record<string, unknown>;
    } catch {
      // A candidate of an older version, or written by hand: listed without details.
    }
    candidates.push({ node: name, leading: candidates.length === 0, data });
  }
  return candidates;
}

/** The error a worker stops with when its candidacy vanished while it led. */
export function candidacyLost(role: string): PgshovelError {
  return new PgshovelError(
    "FENCED",
    `this ${role}'s candidate node was removed: another ${role} may lead now`,
  );
}

/** The term of a candidate that does not lead: over before it began. */
function endedTerm(): AbortController {
  const controller = new AbortController();
  controller.abort(new PgshovelError("FENCED", "not leading"));
  return controller;
}

/**
 * Leader election in ZooKeeper: every candidate adds an ephemeral sequential
 * node under the election's path; the lowest one leads. A standby watches the
 * candidate just ahead of it, so a dead leader's node vanishing (session
 * expiry after kill -9) promotes exactly the next one. The leader watches its
 * own node: once it is gone, {@link isLeading} turns false.
 */
export class Leadership implements Election {
  private node: string | undefined;
  private leading = false;
  private term = endedTerm();

  constructor(private readonly options: LeadershipOptions) {}

  get isLeading(): boolean {
    return this.leading;
  }

  get termSignal(): AbortSignal {
    return this.term.signal;
  }

  private stepDown(): void {
    this.leading = false;
    if (!this.term.signal.aborted) this.term.abort(candidacyLost(this.options.role));
  }

  async acquire(signal: AbortSignal, describe: Record<string, unknown>): Promise<void> {
    const { zk, path: dir, logger, role } = this.options;
    this.stepDown();
    await zk.ensurePath(dir);
    let announced = false;
    for (;;) {
      if (signal.aborted) throw signal.reason;
      // A node of ours that is gone (removed, or its session ended) is replaced by a new
      // one; its name is read again each round, since it changes with the node.
      // `since` tells status how long this candidacy has stood.
      this.node ??= await zk.createEphemeralSequential(
        `${dir}/${CANDIDATE}`,
        Buffer.from(JSON.stringify({ ...describe, since: new Date().toISOString() })),
      );
      const mine = this.node.slice(dir.length + 1);
      const candidates = (await zk.children(dir)).filter((c) => c.startsWith(CANDIDATE)).sort();
      const index = candidates.indexOf(mine);
      if (index === -1) {
        this.node = undefined;
        continue;
      }
      if (index === 0) {
        this.leading = true;
        this.term = new AbortController();
        this.watchOwn(this.node);
        logger.info({ node: mine }, `leading: this ${role} is the active one`);
        return;
      }
      const ahead = candidates[index - 1]!;
      if (!announced) {
        logger.info({ ahead }, `standing by: another ${role} is active`);
        announced = true;
      }
      await this.waitForRemoval(`${dir}/${ahead}`, signal);
    }
  }

  /** Resolves when `node` is gone (or changes), rejects when aborted. */
  private waitForRemoval(node: string, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      // An abort while our node was being created fires no event any more.
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      const done = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      this.options.zk.exists(node, done).then((stat) => {
        if (!stat) done();
      }, reject);
    });
  }

  /** Turns {@link isLeading} false once `node`, our candidacy, no longer exists. */
  private watchOwn(node: string): void {
    const current = () => this.node === node && this.leading;
    this.options.zk
      .exists(node, () => {
        if (current()) this.watchOwn(node);
      })
      .then(
        (stat) => {
          if (stat || !current()) return;
          this.stepDown();
          this.options.logger.warn({ node }, "the candidate node is gone: stepping down");
        },
        // No answer (the connection is down): the set follower pauses the worker meanwhile.
        () => setTimeout(() => current() && this.watchOwn(node), REWATCH_MS).unref(),
      );
  }

  async release(): Promise<void> {
    this.stepDown();
    if (!this.node) return;
    await this.options.zk.remove(this.node).catch(() => {});
    this.node = undefined;
  }
}

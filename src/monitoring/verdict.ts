/**
 * The verdict on a set: pure rules over what status collected, each finding with a code
 * from a closed list, a level and a sentence.
 */

/** How bad a finding is; a set's verdict is its worst finding, OK without any. */
export type Level = "OK" | "WARN" | "FAIL";

/** The closed list of finding codes. */
export const FINDING_CODES = [
  "NO_RELAY", // FAIL: no relay runs for the set
  "DATABASE_UNREACHABLE", // FAIL: status could not read the set's queue
  "QUEUE_MISSING", // FAIL: the set's queue does not exist in its database
  "LAG_HIGH", // FAIL: a relayed consumer's lag is over --max-lag while events wait
  "CONSUMER_STALE", // WARN: a consumer without a relay not seen for --stale-consumer-after
  "BLOCKS_ROTATION", // WARN: a consumer keeps PgQ from rotating its event tables
  "STANDBY_MISSING", // WARN: a relayed consumer has no standby (--expect-standby)
  "TICKER_LAG", // WARN: events wait but the queue has not ticked for --max-lag
  "SINK_UNREADABLE", // WARN: the topic could not be read
  "REPLICA_UNREACHABLE", // WARN: a replica's target could not be read
  "REPLICA_LAG_HIGH", // WARN: a replica lags more than --max-lag with batches still to apply
  "SET_FENCED", // WARN: the set is fenced: writes to its tables are refused
] as const;

/** One of {@link FINDING_CODES}. */
export type FindingCode = (typeof FINDING_CODES)[number];

/** Something status found wrong with a set. */
export interface Finding {
  level: Exclude<Level, "OK">;
  code: FindingCode;
  message: string;
}

/** The thresholds the rules use. */
export interface Thresholds {
  maxLagSeconds: number;
  staleConsumerAfterSeconds: number;
  expectStandby: boolean;
}

/** What the rules look at: the facts status gathered about one set. */
export interface SetFacts {
  /** Consumers with at least one running relay, and how many of those relays stand by. */
  relays: { consumer: string; standbys: number }[];
  /** Why the queue could not be read, if it could not. */
  queueProblem: { kind: "missing" } | { kind: "unreachable"; error: string } | null;
  queue: { tickerLagSeconds: number; newEvents: string } | null;
  consumers: {
    name: string;
    lagSeconds: number | null;
    lastSeenSeconds: number | null;
    pendingEvents: string | null;
    blocksRotation: boolean;
  }[];
  sinkError: string | null;
  /** When the set was fenced (`set fence`), if it is. */
  fencedAt?: string | null;
  /** The targets with a replica worker running; absent: none. */
  replicas?: {
    target: string;
    error: string | null;
    lagSeconds: number | null;
    batchesBehind: number | null;
  }[];
}

const waiting = (events: string | null) => events !== null && BigInt(events) > 0n;
const round = (seconds: number) => `${Math.round(seconds * 10) / 10} s`;

/** The findings on a set, FAIL first. */
export function judgeSet(facts: SetFacts, thresholds: Thresholds): Finding[] {
  const findings: Finding[] = [];
  const fail = (code: FindingCode, message: string) =>
    findings.push({ level: "FAIL", code, message });
  const warn = (code: FindingCode, message: string) =>
    findings.push({ level: "WARN", code, message });
  const relayed = new Set(facts.relays.map((r) => r.consumer));
  if (facts.fencedAt) {
    warn(
      "SET_FENCED",
      `the set is fenced since ${facts.fencedAt}: writes to its tables are refused until pgshovel set unfence`,
    );
  }
  if (facts.relays.length === 0) fail("NO_RELAY", "no relay is running for this set");
  const problem = facts.queueProblem;
  if (problem?.kind === "missing")
    fail("QUEUE_MISSING", "the set's queue does not exist in its database");
  if (problem?.kind === "unreachable")
    fail("DATABASE_UNREACHABLE", `cannot read the set's queue: ${problem.error}`);
  for (const consumer of facts.consumers) {
    const lag = consumer.lagSeconds;
    if (relayed.has(consumer.name)) {
      if (lag !== null && lag > thresholds.maxLagSeconds && waiting(consumer.pendingEvents)) {
        fail(
          "LAG_HIGH",
          `consumer ${consumer.name} lags ${round(lag)} (over ${round(thresholds.maxLagSeconds)}) with ${consumer.pendingEvents} events pending`,
        );
      }
    } else if (
      consumer.lastSeenSeconds !== null &&
      consumer.lastSeenSeconds > thresholds.staleConsumerAfterSeconds
    ) {
      warn(
        "CONSUMER_STALE",
        `consumer ${consumer.name} has no relay and was last seen ${round(consumer.lastSeenSeconds)} ago: unregister it if it is retired (pgshovel set consumers --unregister)`,
      );
    }
    if (consumer.blocksRotation) {
      warn(
        "BLOCKS_ROTATION",
        `consumer ${consumer.name} blocks the rotation of the event tables, which grow until it moves on`,
      );
    }
  }
  if (thresholds.expectStandby) {
    for (const relay of facts.relays) {
      if (relay.standbys === 0)
        warn("STANDBY_MISSING", `consumer ${relay.consumer} has no standby relay`);
    }
  }
  if (
    facts.queue !== null &&
    facts.queue.tickerLagSeconds > thresholds.maxLagSeconds &&
    waiting(facts.queue.newEvents)
  ) {
    warn(
      "TICKER_LAG",
      `events wait but the queue has not ticked for ${round(facts.queue.tickerLagSeconds)}: check pgqd`,
    );
  }
  if (facts.sinkError !== null)
    warn("SINK_UNREADABLE", `cannot read the topic: ${facts.sinkError}`);
  for (const replica of facts.replicas ?? []) {
    if (replica.error !== null) {
      warn("REPLICA_UNREACHABLE", `cannot read replica ${replica.target}: ${replica.error}`);
    } else if (
      replica.lagSeconds !== null &&
      replica.lagSeconds > thresholds.maxLagSeconds &&
      (replica.batchesBehind ?? 0) > 0
    ) {
      warn(
        "REPLICA_LAG_HIGH",
        `replica ${replica.target} lags ${round(replica.lagSeconds)} (over ${round(thresholds.maxLagSeconds)}) with ${replica.batchesBehind} batches to apply`,
      );
    }
  }
  return findings.sort((a, b) => (a.level === b.level ? 0 : a.level === "FAIL" ? -1 : 1));
}

/** The worst level among `findings` (or among several sets' verdicts). */
export function worst(levels: Iterable<Level>): Level {
  let result: Level = "OK";
  for (const level of levels) {
    if (level === "FAIL") return "FAIL";
    if (level === "WARN") result = "WARN";
  }
  return result;
}

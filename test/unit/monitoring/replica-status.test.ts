import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { connectableDsn } from "../../../src/monitoring/replica-status.js";
import { judgeSet, type SetFacts } from "../../../src/monitoring/verdict.js";

const thresholds = { maxLagSeconds: 60, staleConsumerAfterSeconds: 900, expectStandby: false };
const facts = (replicas: SetFacts["replicas"]): SetFacts => ({
  relays: [{ consumer: "pgshovel", standbys: 1 }],
  queueProblem: null,
  queue: { tickerLagSeconds: 1, newEvents: "0" },
  consumers: [],
  sinkError: null,
  replicas,
});
const codes = (f: SetFacts) => judgeSet(f, thresholds).map((x) => `${x.level} ${x.code}`);

describe("replicas in status", () => {
  test("an unreadable target and a replica far behind are WARN; an idle replica's lag is not", () => {
    const replica = { target: "db2/shop", error: null, lagSeconds: 1, batchesBehind: 0 };
    assert.deepEqual(codes(facts([replica])), []);
    assert.deepEqual(codes(facts([{ ...replica, error: "refused" }])), [
      "WARN REPLICA_UNREACHABLE",
    ]);
    assert.deepEqual(codes(facts([{ ...replica, lagSeconds: 90, batchesBehind: 4 }])), [
      "WARN REPLICA_LAG_HIGH",
    ]);
    // Nothing to apply: the lag only says when the source last ticked.
    assert.deepEqual(codes(facts([{ ...replica, lagSeconds: 90, batchesBehind: 0 }])), []);
  });

  test("the hidden password of a candidate's DSN is dropped before connecting, not sent", () => {
    assert.equal(
      connectableDsn("postgresql://app:***@db2:5432/shop"),
      "postgresql://app@db2:5432/shop",
    );
    assert.equal(
      connectableDsn("postgresql://app@db2/shop?password=***&sslmode=require"),
      "postgresql://app@db2/shop?sslmode=require",
    );
    assert.equal(connectableDsn("host=db2 password=*** dbname=shop"), "host=db2 dbname=shop");
    assert.equal(connectableDsn("postgresql://app@db2/shop"), "postgresql://app@db2/shop");
  });

  test("a fenced set is a WARN naming the way back", () => {
    const fenced = judgeSet({ ...facts([]), fencedAt: "2026-12-01T15:15:13.121Z" }, thresholds);
    assert.deepEqual(
      fenced.map((f) => `${f.level} ${f.code}`),
      ["WARN SET_FENCED"],
    );
    assert.match(fenced[0]!.message, /since 2026-12-01T15:15:13.121Z.*set unfence/);
    assert.deepEqual(codes({ ...facts([]), fencedAt: null }), []);
  });
});

/**
 * `pgshovel set verify` on a replica fed from a relay's stream file rather than the queue:
 * the position row is the same, the tick reaches the replica through the relay, and the
 * verify says OK under load.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type RelayProcess, startRelay, stopRelay, waitForLog } from "../support/fixtures.js";
import { tempDirFor } from "./relay-support.js";
import { runVerify, startLoad, type VerifyFixture, verifyFixture } from "./verify-support.js";

const dir = tempDirFor("pgshovel-verify-feeds-");

describe("pgshovel set verify: a replica fed from a stream file", () => {
  let fixture: VerifyFixture;
  let relay: RelayProcess | undefined;
  let path: string;
  before(async () => {
    path = join(dir(), "s.jsonl");
    fixture = await verifyFixture({
      beforeWorker: async (base) => {
        relay = startRelay(base, ["--sink", `file:${path}`]);
        await waitForLog(relay, "reading the set's queue", 60_000);
      },
      workerArgs: () => ["--from", `file:${path}`],
    });
  });
  after(async () => {
    await fixture?.close();
    if (relay) await stopRelay(relay, 15_000);
  });

  test("OK three times under pgbench load", async () => {
    const load = await startLoad(fixture.db, 2);
    try {
      for (let i = 0; i < 3; i++) {
        const run = await runVerify(fixture);
        assert.equal(run.code, 0, `verify ${i + 1}: ${run.stdout}${run.stderr}`);
        assert.match(run.stdout, /^OK: 4 table\(s\) equal$/m);
      }
    } finally {
      await load.stop();
    }
  });
});

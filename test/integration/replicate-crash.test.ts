/**
 * kill -9 of `pgshovel replicate` at many moments under pgbench — mid-bootstrap, between a
 * batch's target commit and its finish, inside batches — restarted each time: the replica
 * ends equal to the source, and no batch was applied twice.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { zkPaths } from "../../src/config/names.js";
import type { RelayProcess } from "../support/fixtures.js";
import { waitFor } from "../support/wait.js";
import {
  appliedBatchIds,
  assertReplicaEqual,
  logLines,
  type ReplicateFixture,
  replicateFixture,
  runReplicate,
  startReplicate,
} from "./replicate-support.js";

const PG_BIN = "/usr/lib/postgresql/15/bin";
const PAUSED = "test pause: committed, not finished";

/** pgbench at a modest rate until stopped. */
function startLoad(fixture: ReplicateFixture): ChildProcess {
  const { server, name } = fixture.db;
  const args = ["-h", server.host, "-p", String(server.port), "-U", server.user];
  return spawn(
    join(PG_BIN, "pgbench"),
    [...args, "-n", "-c", "3", "-R", "150", "-T", "600", name],
    {
      stdio: "ignore",
    },
  );
}

async function waitForLines(worker: RelayProcess, message: string, count: number): Promise<void> {
  await waitFor(() => logLines(worker.stderr(), message).length >= count, {
    timeoutMs: 60_000,
    intervalMs: 20,
    abandonWhen: () => (worker.ended() ? "the worker exited" : undefined),
    get description() {
      return `${count} "${message}" lines (stderr: ${worker.stderr().slice(-2000)})`;
    },
  });
}

describe("pgshovel replicate killed with SIGKILL at many moments", () => {
  let fixture: ReplicateFixture;
  let load: ChildProcess | undefined;
  before(async () => {
    fixture = await replicateFixture();
  });
  after(async () => {
    load?.kill("SIGKILL");
    await fixture?.close();
  });

  test("restarted each time, it ends equal and applies each batch once", async () => {
    load = startLoad(fixture);
    const logs: string[] = [];
    let kills = 0;
    /** Runs one worker until `moment` has come, then kills it with SIGKILL. */
    const killAt = async (
      moment: (worker: RelayProcess) => Promise<void>,
      env: Record<string, string> = {},
    ) => {
      const worker = startReplicate(fixture, ["--create-tables", "--jobs", "2"], {
        logLevel: "debug",
        env,
      });
      try {
        await moment(worker);
      } finally {
        worker.child.kill("SIGKILL");
        await worker.exited;
        logs.push(worker.stderr());
        kills++;
      }
      // The dead worker's candidate node lasts until its session expires: the test does not
      // wait for that (takeover has its own test).
      await fixture.ctx.zk.removeRecursive(zkPaths.replicas(fixture.cluster, fixture.set));
    };

    // Mid-bootstrap: as the copy starts, then once some tables are copied.
    await killAt((w) => waitForLines(w, "copying tables from one snapshot of the source", 1));
    await killAt((w) => waitForLines(w, "table copied", 1));
    await killAt((w) => waitForLines(w, "applying the stream", 1));
    // Between a batch's target commit and its finish, and at random points of batches.
    for (let round = 0; round < 18; round++) {
      if (round % 2 === 0) {
        const at = String(1 + ((round / 2) % 3));
        await killAt((w) => waitForLines(w, PAUSED, 1), {
          PGSHOVEL_TEST_PAUSE_AFTER_COMMIT: at,
        });
      } else {
        await killAt((w) => waitForLines(w, "batch applied", 1 + Math.floor(Math.random() * 4)));
      }
    }
    assert.ok(kills >= 20, `${kills} kills`);

    load.kill("SIGINT");
    await new Promise((resolve) => load!.once("exit", resolve));
    const last = await runReplicate(fixture, ["--until-caught-up"], { logLevel: "debug" });
    assert.equal(last.code, 0, last.stderr.slice(-3000));
    logs.push(last.stderr);
    await assertReplicaEqual(fixture);

    // Each batch applied once: no id appears twice among the applied ones…
    const applied = logs.flatMap(appliedBatchIds);
    assert.ok(applied.length > 0);
    assert.equal(new Set(applied).size, applied.length, `a batch applied twice: ${applied}`);
    // …and each batch paused after its commit came again and was skipped, not applied.
    for (let i = 0; i < logs.length - 1; i++) {
      for (const paused of logLines(logs[i]!, PAUSED)) {
        const skipped = logLines(logs[i + 1]!, "batch applied before: skipped");
        assert.ok(
          skipped.some((line) => line.batch === paused.batch),
          `batch ${paused.batch} was skipped after the restart`,
        );
        assert.ok(!applied.includes(String(paused.batch)), `batch ${paused.batch} not re-applied`);
      }
    }
  });
});

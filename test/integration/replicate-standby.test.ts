/**
 * Two `pgshovel replicate` for one (set, target): one applies, the other stands by, and
 * takes over when the first is killed with SIGKILL; the replica stays equal.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type RelayProcess, stopRelay, waitForLog } from "../support/fixtures.js";
import { waitFor } from "../support/wait.js";
import {
  appliedBatchIds,
  assertReplicaEqual,
  PGBENCH_COMPARED,
  type ReplicateFixture,
  replicateFixture,
  startReplicate,
} from "./replicate-support.js";
import { checksum } from "./replication-support.js";

const PG_BIN = "/usr/lib/postgresql/15/bin";

describe("two replica workers for one target", () => {
  let fixture: ReplicateFixture;
  let load: ChildProcess | undefined;
  const workers: RelayProcess[] = [];
  before(async () => {
    fixture = await replicateFixture();
  });
  after(async () => {
    load?.kill("SIGKILL");
    for (const worker of workers) await stopRelay(worker, 15_000);
    await fixture?.close();
  });

  test("one applies, the other stands by and takes over on kill -9; still equal", async () => {
    const { server, name } = fixture.db;
    load = spawn(
      join(PG_BIN, "pgbench"),
      ["-h", server.host, "-p", String(server.port), "-U", server.user].concat([
        "-n",
        "-c",
        "2",
        "-R",
        "100",
        "-T",
        "600",
        name,
      ]),
      { stdio: "ignore" },
    );
    // A short session timeout: the dead leader's candidacy expires quickly.
    const options = { logLevel: "debug", env: { PGSHOVEL_ZOOKEEPER_TIMEOUT: "2s" } };
    const first = startReplicate(fixture, ["--create-tables"], options);
    workers.push(first);
    await waitForLog(first, "leading: this replica worker is the active one", 60_000);
    const second = startReplicate(fixture, ["--create-tables"], options);
    workers.push(second);
    await waitForLog(second, "standing by: another replica worker is active", 60_000);
    await waitFor(() => appliedBatchIds(first.stderr()).length >= 3, {
      timeoutMs: 60_000,
      description: "the first worker applying batches",
    });
    assert.deepEqual(appliedBatchIds(second.stderr()), [], "the standby applies nothing");

    first.child.kill("SIGKILL");
    await first.exited;
    await waitForLog(second, "leading: this replica worker is the active one", 60_000);
    await waitFor(() => appliedBatchIds(second.stderr()).length >= 3, {
      timeoutMs: 60_000,
      description: "the second worker applying batches",
    });
    const ids = [...appliedBatchIds(first.stderr()), ...appliedBatchIds(second.stderr())];
    assert.equal(new Set(ids).size, ids.length, "no batch applied by both");

    load.kill("SIGINT");
    await new Promise((resolve) => load!.once("exit", resolve));
    // The second worker ticks the idle queue itself: it converges on the source.
    await waitFor(
      async () => {
        for (const table of PGBENCH_COMPARED) {
          const source = await checksum(fixture.db, table.name, table.columns, table.key);
          const target = await checksum(fixture.target, table.name, table.columns, table.key);
          if (source.md5 !== target.md5) return false;
        }
        return true;
      },
      { timeoutMs: 60_000, description: "the replica equal to the source" },
    );
    await assertReplicaEqual(fixture);
    assert.deepEqual(await stopRelay(second, 15_000), { code: 0, signal: null });
  });
});

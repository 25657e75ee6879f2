/**
 * `pgshovel status` shows a set's replicas: the active worker and a standby, the target's
 * position and lag, the batches it has still to apply (counted while the active worker is
 * frozen and the source ticks on), and a target it cannot reach as such, not as a failure.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { zkPaths } from "../../src/config/names.js";
import type { ClusterStatus, SetStatus } from "../../src/monitoring/status.js";
import { forceTick, type RelayProcess, stopRelay, waitForLog } from "../support/fixtures.js";
import { waitFor } from "../support/wait.js";
import { runCli } from "./helpers/admin.js";
import {
  appliedBatchIds,
  type ReplicateFixture,
  replicateFixture,
  startReplicate,
} from "./replicate-support.js";

async function status(
  fixture: ReplicateFixture,
  args: string[] = [],
): Promise<{ code: number | null; stdout: string }> {
  const result = await runCli(["status", fixture.set, ...args], {
    env: { PGSHOVEL_ZOOKEEPER_HOSTS: fixture.zkHosts, PGSHOVEL_CLUSTER: fixture.cluster },
  });
  return { code: result.code, stdout: result.stdout };
}

async function statusJson(fixture: ReplicateFixture): Promise<SetStatus> {
  const { stdout } = await status(fixture, ["--json"]);
  assert.ok(stdout.startsWith("{"), `status printed JSON: ${stdout}`);
  return (JSON.parse(stdout) as ClusterStatus).sets[0]!;
}

describe("pgshovel status with replicas", () => {
  let fixture: ReplicateFixture;
  const workers: RelayProcess[] = [];
  before(async () => {
    fixture = await replicateFixture();
  });
  after(async () => {
    for (const worker of workers) {
      worker.child.kill("SIGCONT");
      await stopRelay(worker, 15_000);
    }
    await fixture?.close();
  });

  test("the active worker, a standby, the position, lag and batches behind", async () => {
    // A long session: a worker frozen for a moment keeps its candidacy.
    const options = { logLevel: "debug", env: { PGSHOVEL_ZOOKEEPER_TIMEOUT: "30s" } };
    const active = startReplicate(fixture, ["--create-tables"], options);
    workers.push(active);
    await waitForLog(active, "leading: this replica worker is the active one", 60_000);
    const standby = startReplicate(fixture, [], options);
    workers.push(standby);
    await waitForLog(standby, "standing by: another replica worker is active", 60_000);
    await fixture.db.query(
      "INSERT INTO pgbench_history (tid, bid, aid, delta) VALUES (1, 1, 1, 1)",
    );
    await forceTick(fixture.db, fixture.queue);
    await waitFor(() => appliedBatchIds(active.stderr()).length >= 1, {
      timeoutMs: 60_000,
      description: "a batch applied",
    });

    const running = await statusJson(fixture);
    assert.equal(running.replicas.length, 1, JSON.stringify(running.replicas));
    const replica = running.replicas[0]!;
    assert.equal(replica.leader?.pid, active.pid);
    assert.deepEqual(
      replica.standbys.map((s) => s.pid),
      [standby.pid],
    );
    assert.equal(replica.feed.kind, "queue");
    assert.match(replica.feed.consumer ?? "", /^pgshovel_replica_/);
    assert.equal(replica.error, null);
    assert.ok(replica.position, "a position");
    assert.equal(replica.position.node, running.node);
    assert.equal(typeof replica.lagSeconds, "number");
    assert.ok(replica.lagSeconds! >= 0);
    assert.equal(typeof replica.batchesBehind, "number");
    assert.equal(replica.target, fixture.target.dsn.replace(/:[^:@/]*@/, ":***@"));

    // Frozen, the active worker applies nothing while the source ticks three times.
    active.child.kill("SIGSTOP");
    try {
      const before = await statusJson(fixture);
      const from = before.replicas[0]!.batchesBehind!;
      for (let i = 0; i < 3; i++) {
        await fixture.db.query(
          "INSERT INTO pgbench_history (tid, bid, aid, delta) VALUES (1, 1, 1, 1)",
        );
        await forceTick(fixture.db, fixture.queue);
      }
      const frozen = await statusJson(fixture);
      const behind = frozen.replicas[0]!;
      assert.ok(behind.batchesBehind! >= from + 3, `batches behind: ${behind.batchesBehind}`);
      assert.ok(BigInt(behind.eventsBehind ?? "0") >= 3n, `events behind: ${behind.eventsBehind}`);
      assert.equal(behind.position?.batch, before.replicas[0]!.position?.batch);

      const text = await status(fixture);
      assert.match(
        text.stdout,
        /replicas {3}target .* \(node [0-9a-f-]+\), from queue as pgshovel_replica_/,
      );
      assert.match(text.stdout, new RegExp(`active +\\S+ pid ${active.pid} worker `));
      assert.match(text.stdout, new RegExp(`standby +\\S+ pid ${standby.pid} worker `));
      assert.match(
        text.stdout,
        /position batch \d+, end tick \d+ at .*: lag [\d.]+[smhd], \d+ batches behind \(\d+ events\)/,
      );
    } finally {
      active.child.kill("SIGCONT");
    }
  });

  test("a target it cannot reach is shown as such; the rest of the report stands", async () => {
    const node = "00000000-0000-4000-8000-00000000dead";
    const path = zkPaths.replicaElection(fixture.cluster, fixture.set, node);
    await fixture.ctx.zk.ensurePath(path);
    const data = {
      worker: "w",
      pid: 1,
      host: "elsewhere",
      startedAt: new Date().toISOString(),
      target: "postgresql://someone:***@127.0.0.1:1/gone",
      from: "kafka",
      consumer: null,
    };
    await fixture.ctx.zk.createEphemeralSequential(
      `${path}/candidate-`,
      Buffer.from(JSON.stringify(data)),
    );
    const set = await statusJson(fixture);
    const gone = set.replicas.find((r) => r.targetNode === node);
    assert.ok(gone, JSON.stringify(set.replicas));
    assert.equal(gone.target, "postgresql://someone:***@127.0.0.1:1/gone");
    assert.ok(gone.error, "an error");
    assert.equal(gone.position, null);
    assert.equal(gone.feed.kind, "kafka");
    assert.ok(set.findings.some((f) => f.code === "REPLICA_UNREACHABLE"));
    assert.ok(set.replicas.some((r) => r.targetNode !== node && r.position !== null));
    const text = await status(fixture);
    assert.match(
      text.stdout,
      /target postgresql:\/\/someone:\*\*\*@127\.0\.0\.1:1\/gone .*from kafka:/,
    );
    assert.match(text.stdout, /position unreadable: /);
  });
});

/**
 * No two writers when ZooKeeper freezes (SIGSTOP: its connections stay open, nothing
 * answers): a relay under a steady write load stops at the silence bound and writes nothing
 * to its file once a session timeout has passed — not the rest of the batch in flight, not
 * its rollback, not an fsync's worth — for a freeze of three session timeouts; after SIGCONT it
 * leads again in a new session and the stream holds every row exactly once.
 */
import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { silenceBoundMs } from "../../src/cluster/liveness.js";
import { setupSet, startRelay, stopRelay, waitForLog } from "../support/fixtures.js";
import type { TestDatabase } from "../support/postgres.js";
import { startPrivateZooKeeper } from "../support/private-services.js";
import { waitFor } from "../support/wait.js";
import { assemble, readStreamFile, tempDirFor, waitForMutations } from "./relay-support.js";

const dir = tempDirFor("pgshovel-zk-freeze-");

/** The relay's `--zookeeper-timeout`; the private server grants it as the session timeout. */
const SESSION_MS = 4000;
const BOUND_MS = silenceBoundMs(SESSION_MS);
const FREEZE_MS = 3 * SESSION_MS;
/** Rows per inserting transaction of the load. */
const ROWS = 50;

const oneTable = async (db: { query(sql: string): Promise<unknown> }) => {
  await db.query("CREATE TABLE t (id int PRIMARY KEY, v text)");
};

/** Inserts ROWS rows per transaction until stopped; `rows()` is how many committed so far. */
function writeLoad(db: TestDatabase) {
  let committed = 0;
  let stopping = false;
  const done = (async () => {
    while (!stopping) {
      await db.query("INSERT INTO t SELECT g, 'x' FROM generate_series($1::int, $2::int) g", [
        committed + 1,
        committed + ROWS,
      ]);
      committed += ROWS;
      // Paces the load (a few thousand rows a second); nothing waits on it.
      await delay(5);
    }
  })();
  return {
    rows: () => committed,
    async stop(): Promise<number> {
      stopping = true;
      await done;
      return committed;
    },
  };
}

const occurrences = (haystack: string, text: string) => haystack.split(text).length - 1;

describe("relay: ZooKeeper frozen", () => {
  test("a file relay writes nothing from the silence bound until the thaw, then leads again; every row once", async () => {
    const zk = await startPrivateZooKeeper();
    const fixture = await setupSet({ prepare: oneTable, tables: ["t"], zkHosts: zk.hosts });
    const path = join(dir(), "frozen.jsonl");
    // Small fetches keep the relay busy inside its batches under the load, so the freeze
    // finds a batch in flight (its remaining writes, its rollback, its fsync).
    const relay = startRelay(fixture, [
      ...["--sink", `file:${path}`, "--zookeeper-timeout", `${SESSION_MS / 1000}s`],
      ...["--fetch-size", "5"],
    ]);
    const load = writeLoad(fixture.db);
    let stopped = false;
    try {
      await waitForLog(relay, "leading: this relay is the active one");
      await waitForMutations(path, 20 * ROWS, undefined, 60_000, relay);

      await zk.freeze();
      const frozenAt = Date.now();
      // The relay stops writing at the silence bound after ZooKeeper's last answer, which came
      // before the SIGSTOP; a write it had let through just before may land a little later on
      // a loaded machine. What must hold is that nothing lands once the session could have
      // expired (a session timeout after the freeze), when another relay could lead.
      await waitFor(() => Date.now() >= frozenAt + SESSION_MS, {
        description: "a session timeout to pass",
        intervalMs: 5,
      });
      const sizeAtBound = (await stat(path)).size;
      let grew: number | undefined;
      await waitFor(
        async () => {
          const size = (await stat(path)).size;
          if (size !== sizeAtBound) grew ??= Date.now() - frozenAt;
          return Date.now() >= frozenAt + FREEZE_MS;
        },
        { description: "the freeze to last", intervalMs: 20, timeoutMs: FREEZE_MS + 10_000 },
      );
      assert.equal(
        grew,
        undefined,
        `the file grew ${grew} ms into the freeze (bound ${BOUND_MS} ms, session ${SESSION_MS} ms); relay stderr: ${relay.stderr().slice(-2000)}`,
      );
      assert.match(relay.stderr(), /ZooKeeper has not answered for the silence bound/);
      assert.ok(load.rows() > 0);

      await zk.thaw();
      await waitFor(
        () => occurrences(relay.stderr(), "leading: this relay is the active one") >= 2,
        {
          timeoutMs: 60_000,
          get description() {
            return `the relay leading again (its stderr: ${relay.stderr().slice(-2000)})`;
          },
        },
      );
      const rows = await load.stop();
      stopped = true;
      await waitForMutations(path, rows, undefined, 180_000, relay);
      // Deduplicated by batch id (the batch abandoned at the bound comes again whole).
      const { batches } = assemble(await readStreamFile(path));
      const ids = batches.flatMap((b) => b.mutations.map((m) => Number(m.new!.id)));
      assert.equal(ids.length, rows, "every row once");
      assert.equal(new Set(ids).size, rows, "no row twice");
      assert.equal(relay.child.exitCode, null, "still running");
    } finally {
      if (!stopped) await load.stop().catch(() => 0);
      await zk.thaw();
      assert.equal((await stopRelay(relay)).code, 0, relay.stderr().slice(-4000));
      await fixture.close();
      await zk.destroy();
    }
  });
});

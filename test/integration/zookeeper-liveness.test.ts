/**
 * The ZooKeeper client against a private server frozen with SIGSTOP (its connections stay
 * open, nothing answers): silence is reported within the bound, operations keep their
 * deadline, and nothing of an abandoned connection survives the thaw.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ZooKeeper } from "../../src/cluster/zookeeper.js";
import { isPgshovelError } from "../../src/errors.js";
import { type PrivateZooKeeper, startPrivateZooKeeper } from "../support/private-services.js";
import { waitFor, withTimeout } from "../support/wait.js";
import { aliveConnections } from "../support/zookeeper.js";

/** How late past the bound silence may be reported: timers on a busy two-core machine. */
const MARGIN_MS = 1000;

describe("ZooKeeper client: a frozen server", () => {
  let server: PrivateZooKeeper;
  before(async () => {
    server = await startPrivateZooKeeper();
  });
  after(async () => {
    await server?.destroy();
  });

  test("silence is reported within the bound; after SIGCONT answers resume in the same session", async () => {
    const zk = await ZooKeeper.connect({
      hosts: server.hosts,
      timeoutMs: 10_000,
      sessionTimeoutMs: 6000,
    });
    try {
      assert.equal(zk.sessionTimeoutMs, 6000, "the server grants the asked session timeout");
      assert.equal(zk.silenceBoundMs, 4000);
      const session = zk.sessionId();
      // A quiet session is probed: answers keep coming without any request of ours.
      const firstAnswer = zk.lastAnsweredAt;
      await waitFor(() => zk.lastAnsweredAt > firstAnswer, {
        description: "a probe's answer",
        timeoutMs: 5000,
      });
      let silentSeen: { at: number; lastAnsweredAt: number; silentForMs: number } | undefined;
      zk.on("silent", (silentForMs) => {
        silentSeen = {
          at: Date.now(),
          lastAnsweredAt: zk.lastAnsweredAt,
          silentForMs: silentForMs ?? 0,
        };
      });
      const answering = new Promise<void>((resolve) => zk.on("answering", () => resolve()));

      await server.freeze();
      const frozenAt = Date.now();
      await withTimeout(zk.untilSilent(), zk.silenceBoundMs + MARGIN_MS * 3, "the silent event");
      assert.ok(silentSeen, "the silent event was emitted");
      assert.equal(zk.isSilent, true);
      // Not early: the server had been silent for the whole bound...
      assert.ok(
        silentSeen.silentForMs >= zk.silenceBoundMs,
        `silent for ${silentSeen.silentForMs} ms`,
      );
      assert.ok(silentSeen.at - silentSeen.lastAnsweredAt >= zk.silenceBoundMs);
      // ...and not late: within the bound (plus a margin) of the freeze.
      assert.ok(
        silentSeen.at - frozenAt <= zk.silenceBoundMs + MARGIN_MS,
        `silence reported ${silentSeen.at - frozenAt} ms after the freeze`,
      );

      await server.thaw();
      await withTimeout(answering, 10_000, "answers after SIGCONT");
      assert.equal(zk.isSilent, false);
      assert.ok((await zk.exists("/")) !== undefined);
      assert.equal(
        zk.sessionId(),
        session,
        "the session survived a freeze shorter than its timeout",
      );
    } finally {
      zk.close();
      await server.thaw();
    }
  });

  test("an operation on a frozen server fails at its deadline, naming the operation", async () => {
    const zk = await ZooKeeper.connect({
      hosts: server.hosts,
      timeoutMs: 10_000,
      sessionTimeoutMs: 6000,
      operationTimeoutMs: 2000,
    });
    try {
      await server.freeze();
      const started = Date.now();
      await assert.rejects(zk.get("/frozen"), (error: unknown) => {
        assert.ok(isPgshovelError(error, "ZOOKEEPER_UNAVAILABLE"), String(error));
        assert.equal(error.retryable, true);
        assert.match(error.message, /^reading \/frozen: no answer from ZooKeeper/);
        assert.match(error.message, new RegExp(server.hosts));
        return true;
      });
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 2000 - 50 && elapsed <= 2000 + MARGIN_MS, `failed after ${elapsed} ms`);
      // Closing fails what still waits at once.
      const waiting = zk.exists("/frozen");
      zk.close();
      await assert.rejects(waiting, (error: unknown) => {
        assert.ok(isPgshovelError(error, "ZOOKEEPER_UNAVAILABLE"));
        assert.match(error.message, /^checking \/frozen: the ZooKeeper session was closed/);
        return true;
      });
    } finally {
      zk.close();
      await server.thaw();
    }
  });

  test("a connection attempt abandoned on a frozen server leaves no stray reply for after SIGCONT", async () => {
    await server.freeze();
    try {
      await assert.rejects(
        ZooKeeper.connect({ hosts: server.hosts, timeoutMs: 1500 }),
        (error: unknown) =>
          isPgshovelError(error, "ZOOKEEPER_UNAVAILABLE") &&
          /could not connect to ZooKeeper at .* within 1500 ms/.test(error.message),
      );
    } finally {
      await server.thaw();
    }
    // The server now answers whatever reached it while frozen, then closes the connection.
    // An answer to the abandoned attempt, read as a reply, used to throw "Unknown code" out
    // of a socket handler and kill the process: wait until the server holds no connection but
    // this query's, then for a new session's round trip, which comes after any such answer.
    await waitFor(async () => (await aliveConnections(server.hosts)) <= 1, {
      description: "the server to have dealt with the abandoned connection",
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    const zk = await ZooKeeper.connect({ hosts: server.hosts, timeoutMs: 10_000 });
    try {
      assert.ok((await zk.exists("/")) !== undefined);
    } finally {
      zk.close();
    }
  });
});

/**
 * Error reporting against a loopback HTTP server standing in for Sentry: a relay given
 * --sentry-dsn reports a recoverable failure as a warning and the error that ends it as
 * an error, tagged with cluster, set, consumer and version, and no envelope holds the
 * database password or the DSN's secret.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { createSet, initializeCluster } from "../../src/cluster/admin.js";
import type { AdminContext } from "../../src/cluster/context.js";
import { ZooKeeper } from "../../src/cluster/zookeeper.js";
import { dbNames } from "../../src/config/names.js";
import { silentLogger } from "../../src/log.js";
import { SOFTWARE_VERSION } from "../../src/version.js";
import { stackEnv, uniqueName } from "../support/env.js";
import { startRelay, stopRelay, waitForLog } from "../support/fixtures.js";
import { createTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";
import { tempDirFor } from "./relay-support.js";

const dir = tempDirFor("pgshovel-sentry-");
const PASSWORD = "Db-Pa55word-NEVER-SENT";
const DSN_SECRET = "sentrysecret0042";

/** A stand-in for Sentry's ingestion endpoint: it keeps every request body, as text. */
async function fakeSentry(): Promise<{ port: number; bodies: string[]; close(): Promise<void> }> {
  const bodies: string[] = [];
  const read = async (request: IncomingMessage) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    return (request.headers["content-encoding"] === "gzip" ? gunzipSync(raw) : raw).toString(
      "utf8",
    );
  };
  const server = createServer((request, response) => {
    read(request).then((body) => {
      bodies.push(`${request.url}\n${JSON.stringify(request.headers)}\n${body}`);
      response.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    bodies,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The events of the envelopes received: each envelope's items of type "event". */
function events(
  bodies: string[],
): { level?: string; tags?: Record<string, string>; message?: unknown; exception?: unknown }[] {
  const found = [];
  for (const body of bodies) {
    const lines = body.split("\n").slice(2);
    for (let i = 1; i + 1 < lines.length; i += 2) {
      const header = JSON.parse(lines[i]!) as { type?: string };
      if (header.type === "event") found.push(JSON.parse(lines[i + 1]!));
    }
  }
  return found;
}

describe("error reporting", () => {
  test("warnings and the final error reach Sentry tagged, without the password", async () => {
    const sentry = await fakeSentry();
    const db = await createTestDatabase("sentry");
    await db.query("CREATE TABLE t (id int PRIMARY KEY)");
    const env = stackEnv();
    // The stack trusts loopback connections: the password is accepted and ignored.
    const dsn = `postgresql://${env.pgUser}:${PASSWORD}@${env.pgHost}:${env.pgPort}/${db.name}`;
    const cluster = uniqueName("sy").slice(0, 16);
    const zk = await ZooKeeper.connect({
      hosts: env.zookeeperHosts,
      timeoutMs: 10_000,
      operationTimeoutMs: 10_000,
    });
    const ctx: AdminContext = { zk, cluster, logger: silentLogger, zookeeperTimeoutMs: 10_000 };
    const fixture = { cluster, set: "s", zkHosts: env.zookeeperHosts };
    const relay = (async () => {
      await initializeCluster(ctx);
      await createSet(ctx, "s", { database: { dsn }, tables: [{ name: "t", schema: "public" }] });
      return startRelay(fixture, [
        "--sink",
        `file:${join(dir(), "s.jsonl")}`,
        "--sentry-dsn",
        `http://publickey:${DSN_SECRET}@127.0.0.1:${sentry.port}/1`,
      ]);
    })();
    const running = await relay;
    try {
      await waitForLog(running, "leading");
      await db.query("INSERT INTO t VALUES (1)");
      // A recoverable failure: the relay's connection is cut; it retries (a warning).
      await waitFor(
        async () => {
          const rows = await db.query<{ n: number }>(
            "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pgshovel-relay s'",
            [db.name],
          );
          return rows[0]!.n > 0;
        },
        { description: "the relay's connection to terminate" },
      );
      await waitForLog(running, "recoverable failure: retrying");
      // An unrecoverable one: the queue is gone while ZooKeeper still lists the set.
      await waitForLog(running, "reading the set's queue");
      await db.query("SELECT pgq.drop_queue($1, true)", [dbNames.queue(cluster, "s")]);
      const exit = await running.exited;
      assert.equal(exit.code, 1, running.stderr());

      const received = await waitFor(
        () => {
          const all = events(sentry.bodies);
          return (
            all.some((e) => e.level === "error") && all.some((e) => e.level === "warning") && all
          );
        },
        { description: `a warning and an error in Sentry (got ${sentry.bodies.length} requests)` },
      );
      for (const event of received) {
        assert.equal(event.tags?.cluster, cluster);
        assert.equal(event.tags?.set, "s");
        assert.equal(event.tags?.consumer, "pgshovel");
        assert.equal(event.tags?.version, SOFTWARE_VERSION);
      }
      const error = received.find((e) => e.level === "error");
      assert.match(JSON.stringify(error?.exception), /Not subscriber|does not exist|queue/i);
      const everything = sentry.bodies.join("\n");
      assert.ok(!everything.includes(PASSWORD), "the database password was sent");
      assert.ok(!everything.includes(DSN_SECRET), "the Sentry DSN's secret was sent");
    } finally {
      await stopRelay(running, 15_000);
      await zk.removeRecursive(`/${cluster}`).catch(() => {});
      zk.close();
      await db.drop();
      await sentry.close();
    }
  });
});

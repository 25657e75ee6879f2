/**
 * Proves the local stack (scripts/services.sh) and the test support helpers against the real
 * services: PgQ batches through a fresh database, ZooKeeper nodes, a Kafka round trip, and the
 * private throwaway instances used by disruptive tests.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import pg from "pg";
import { uniqueName } from "../support/env.js";
import { forceTick } from "../support/fixtures.js";
import { consumeUntil, createTopic, produce } from "../support/kafka.js";
import { createTestDatabase } from "../support/postgres.js";
import {
  startPrivateKafka,
  startPrivatePostgres,
  startPrivateZooKeeper,
} from "../support/private-services.js";
import { waitFor } from "../support/wait.js";
import { connectZk } from "../support/zookeeper.js";

describe("local stack", () => {
  test("PgQ: an event inserted after a consumer registered comes back in a batch", async () => {
    const db = await createTestDatabase("stack_pgq");
    try {
      const queue = uniqueName("q");
      const consumer = uniqueName("c");
      await db.query("SELECT pgq.create_queue($1)", [queue]);
      await db.query("SELECT pgq.register_consumer($1, $2)", [queue, consumer]);
      const [inserted] = await db.query<{ id: string }>(
        "SELECT pgq.insert_event($1, $2, $3, $4, $5, $6, $7)::text AS id",
        [queue, "I:id", '{"id": 1, "name": "ünïcode"}', "public.t", "e2", "e3", "e4"],
      );
      assert.ok(inserted);
      // pgqd may have counted the event in a tick taken before its commit (see forceTick).
      // That tick also makes a batch without the event: batches are read until one holds it.
      await forceTick(db, queue);
      type EventRow = {
        ev_id: string;
        ev_type: string;
        ev_data: string;
        ev_extra1: string;
        ev_extra2: string;
      };
      const { batch, events } = await waitFor(
        async () => {
          const [row] = await db.query<{ batch_id: string | null }>(
            "SELECT batch_id::text FROM pgq.next_batch_info($1, $2)",
            [queue, consumer],
          );
          if (!row?.batch_id) return undefined;
          const events = await db.query<EventRow>(
            "SELECT ev_id::text, ev_type, ev_data, ev_extra1, ev_extra2 FROM pgq.get_batch_events($1)",
            [row.batch_id],
          );
          if (events.length > 0) return { batch: row.batch_id, events };
          await db.query("SELECT pgq.finish_batch($1)", [row.batch_id]);
          return undefined;
        },
        {
          description: `a batch with the event for consumer ${consumer} on queue ${queue}`,
          timeoutMs: 20_000,
        },
      );
      assert.equal(events.length, 1);
      const [event] = events;
      assert.equal(event?.ev_id, inserted.id);
      assert.equal(event?.ev_type, "I:id");
      assert.deepEqual(JSON.parse(event?.ev_data ?? "null"), { id: 1, name: "ünïcode" });
      assert.equal(event?.ev_extra1, "public.t");
      assert.equal(event?.ev_extra2, "e2");
      const [finished] = await db.query<{ r: number }>("SELECT pgq.finish_batch($1) AS r", [batch]);
      assert.equal(finished?.r, 1);
    } finally {
      await db.drop();
    }
  });

  test("PostgreSQL: prepared transactions are enabled and password_required members need a password", async () => {
    const db = await createTestDatabase("stack_pg", { pgq: false });
    try {
      const [setting] = await db.query<{ max_prepared_transactions: string }>(
        "SHOW max_prepared_transactions",
      );
      assert.ok(Number(setting?.max_prepared_transactions) > 0);
      const role = uniqueName("locked");
      await db.query(`CREATE ROLE ${role} LOGIN PASSWORD 'right' IN ROLE password_required`);
      try {
        const wrong = new pg.Client({
          connectionString: db.dsn.replace(/^postgresql:\/\/[^@]+@/, `postgresql://${role}:wrong@`),
        });
        await assert.rejects(wrong.connect(), /password authentication failed/);
        const right = new pg.Client({
          connectionString: db.dsn.replace(/^postgresql:\/\/[^@]+@/, `postgresql://${role}:right@`),
        });
        await right.connect();
        await right.end();
      } finally {
        await db.query(`DROP ROLE ${role}`);
      }
    } finally {
      await db.drop();
    }
  });

  test("ZooKeeper: a node is created, read and deleted", async () => {
    const zk = await connectZk();
    const root = `/${uniqueName("stack_zk")}`;
    try {
      await zk.create(root, "parent");
      await zk.create(`${root}/child`, Buffer.from([0, 1, 2, 255]));
      assert.equal(await zk.getString(root), "parent");
      assert.deepEqual((await zk.get(`${root}/child`))?.data, Buffer.from([0, 1, 2, 255]));
      assert.deepEqual(await zk.children(root), ["child"]);
      await zk.removeRecursive(root);
      assert.equal(await zk.exists(root), null);
    } finally {
      await zk.removeRecursive(root).catch(() => {});
      zk.close();
    }
  });

  test("Kafka: a record is produced and consumed on a fresh topic", async () => {
    const topic = uniqueName("stack_topic");
    await createTopic(topic, 2);
    const value = JSON.stringify({ topic, at: Date.now() });
    await produce(topic, [{ key: "k1", value, headers: { h: "v" } }]);
    const records = await consumeUntil(topic, (rs) => rs.length >= 1, { timeoutMs: 30_000 });
    assert.equal(records.length, 1);
    const [record] = records;
    assert.equal(record?.key?.toString(), "k1");
    assert.equal(record?.value?.toString(), value);
    assert.equal(headerValue(record), "v");
  });

  test("private ZooKeeper: starts, answers, survives a restart with its data, is destroyed", async () => {
    const zkServer = await startPrivateZooKeeper();
    try {
      const zk = await connectZk({ hosts: zkServer.hosts });
      try {
        await zk.create("/private_node", "kept");
      } finally {
        zk.close();
      }
      await zkServer.kill();
      await zkServer.start();
      const again = await connectZk({ hosts: zkServer.hosts });
      try {
        assert.equal(await again.getString("/private_node"), "kept");
      } finally {
        again.close();
      }
    } finally {
      await zkServer.destroy();
    }
    await assert.rejects(connectZk({ hosts: zkServer.hosts, connectTimeoutMs: 1_500 }));
  });

  test("private PostgreSQL: starts with PgQ and prepared transactions, is destroyed", async () => {
    const server = await startPrivatePostgres();
    try {
      const db = await createTestDatabase("private_pg", { server: server.server });
      try {
        const [row] = await db.query<{ v: string; mpt: string }>(
          "SELECT pgq.version() AS v, current_setting('max_prepared_transactions') AS mpt",
        );
        assert.match(row?.v ?? "", /^3\./);
        assert.ok(Number(row?.mpt) > 0);
      } finally {
        await db.drop();
      }
      await server.stop();
      await server.start();
      const client = new pg.Client({ connectionString: server.dsn() });
      await client.connect();
      await client.end();
    } finally {
      await server.destroy();
    }
    const client = new pg.Client({
      connectionString: server.dsn(),
      connectionTimeoutMillis: 2_000,
    });
    await assert.rejects(client.connect());
  });

  test("private Kafka: starts, round-trips a record, is destroyed", async () => {
    const kafka = await startPrivateKafka();
    try {
      const topic = uniqueName("private_topic");
      await createTopic(topic, 1, { brokers: kafka.brokers });
      await produce(topic, [{ value: "private" }], { brokers: kafka.brokers });
      const records = await consumeUntil(topic, (rs) => rs.length >= 1, { brokers: kafka.brokers });
      assert.equal(records[0]?.value?.toString(), "private");
    } finally {
      await kafka.destroy();
    }
  });
});

function headerValue(record: { headerEntries?: Array<[Buffer, Buffer]> } | undefined): string {
  const entry = record?.headerEntries?.find(([k]) => k.toString() === "h");
  return entry ? entry[1].toString() : "";
}

/**
 * What the capture triggers write into the set's PgQ queue, read back with a PgQ consumer:
 * INSERT, UPDATE, DELETE, a primary key change, an update of unmonitored columns only, TRUNCATE.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { pino } from "pino";
import { createSet, initializeCluster, updateSet } from "../../src/cluster/admin.js";
import { dbNames } from "../../src/config/names.js";
import { createTestDatabase } from "../support/postgres.js";
import {
  clusterFixture,
  readEvents,
  registerConsumer,
  setConfig,
  withCaptureSet,
} from "./helpers/admin.js";

describe("capture: events", () => {
  test("INSERT, UPDATE, DELETE, primary key change, unmonitored update, TRUNCATE", async () => {
    await withCaptureSet(
      "cap_events",
      [
        "CREATE SCHEMA app",
        'CREATE TABLE app."Accounts" (id int PRIMARY KEY, owner text, balance numeric, note text)',
      ],
      [{ name: "Accounts", schema: "app", columns: ["owner", "balance"] }],
      async (db, queue) => {
        const client = await db.connect();
        try {
          await client.query("BEGIN");
          await client.query(
            `INSERT INTO app."Accounts" VALUES (1, 'ann', 10.50, 'n1'), (2, NULL, 0, 'n2')`,
          );
          const [{ txid }] = (await client.query("SELECT txid_current()::text AS txid")).rows;
          await client.query("COMMIT");
          await db.query(`UPDATE app."Accounts" SET balance = 11 WHERE id = 1`);
          await db.query(`UPDATE app."Accounts" SET note = 'changed' WHERE id = 1`); // unmonitored
          await db.query(`UPDATE app."Accounts" SET owner = 'ann' WHERE id = 1`); // same value
          await db.query(`UPDATE app."Accounts" SET id = 3 WHERE id = 1`); // primary key change
          await db.query(`DELETE FROM app."Accounts" WHERE id = 2`);
          // rolled back: never captured
          await client.query("BEGIN");
          await client.query(`INSERT INTO app."Accounts" VALUES (9, 'ghost', 0, '')`);
          await client.query("ROLLBACK");
          await db.query(`TRUNCATE app."Accounts"`);

          const events = await readEvents(db, queue);
          assert.deepEqual(
            events.map((e) => [e.type, e.data]),
            [
              ["INSERT", { old: null, new: { id: 1, owner: "ann", balance: "10.50" } }],
              ["INSERT", { old: null, new: { id: 2, owner: null, balance: "0" } }],
              [
                "UPDATE",
                {
                  old: { id: 1, owner: "ann", balance: "10.50" },
                  new: { id: 1, owner: "ann", balance: "11" },
                },
              ],
              [
                "UPDATE",
                {
                  old: { id: 1, owner: "ann", balance: "11" },
                  new: { id: 3, owner: "ann", balance: "11" },
                },
              ],
              ["DELETE", { old: { id: 2, owner: null, balance: "0" }, new: null }],
              ["TRUNCATE", {}],
            ],
          );
          for (const event of events) {
            assert.equal(event.schema, "app");
            assert.equal(event.table, "Accounts");
            assert.deepEqual(event.identity, ["id"]);
            assert.equal(event.configVersion, "0");
          }
          // one transaction, one txid; later statements are later transactions
          assert.equal(events[0]?.txid, txid);
          assert.equal(events[1]?.txid, txid);
          assert.ok(BigInt(events[2]!.txid) > BigInt(txid!));
        } finally {
          await client.end();
        }
      },
    );
  });

  test("an application role without PgQ privileges can write to a captured table", async () => {
    const role = `app_${Math.random().toString(36).slice(2, 10)}`;
    await withCaptureSet(
      "cap_role",
      [
        "CREATE TABLE items (id int PRIMARY KEY, name text)",
        `CREATE ROLE ${role} LOGIN`,
        `GRANT ALL ON items TO ${role}`,
      ],
      [{ name: "items", schema: "public" }],
      async (db, queue) => {
        const client = await db.connect();
        try {
          await client.query(`SET ROLE ${role}`);
          await client.query("INSERT INTO items VALUES (1, 'as the application')");
          await client.query("UPDATE items SET name = 'changed' WHERE id = 1");
        } finally {
          await client.end();
        }
        const events = await readEvents(db, queue);
        assert.deepEqual(
          events.map((e) => e.type),
          ["INSERT", "UPDATE"],
        );
      },
    ).finally(async () => {
      const admin = await createTestDatabase("cap_role_cleanup", { pgq: false });
      await admin.query(`DROP ROLE IF EXISTS ${role}`);
      await admin.drop();
    });
  });

  test("a DSN user that is no superuser and may not use the C function: set create says so and captures in PL/pgSQL", async () => {
    const role = `dsn_${Math.random().toString(36).slice(2, 10)}`;
    const f = await clusterFixture();
    const db = await createTestDatabase("cap_nosuper");
    const warnings: string[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => warnings.push(line) });
    try {
      const [{ name }] = (await db.query<{ name: string }>(
        "SELECT current_database() AS name",
      )) as [{ name: string }];
      // What a DBA gives a set's user: PgQ's admin role, a schema of its own, its tables. The
      // extension is there, but EXECUTE on its function is not granted.
      for (const sql of [
        `CREATE ROLE ${role} LOGIN`,
        `GRANT pgq_admin TO ${role}`,
        `GRANT CREATE ON DATABASE ${name} TO ${role}`,
        "CREATE EXTENSION pgshovel_capture",
        "CREATE TABLE t (id int PRIMARY KEY, v text)",
        "CREATE TABLE u (id int PRIMARY KEY, v text)",
        `ALTER TABLE t OWNER TO ${role}`,
        `ALTER TABLE u OWNER TO ${role}`,
      ])
        await db.query(sql);
      await initializeCluster(f.ctx);
      const dsn = db.dsn.replace("//postgres@", `//${role}@`);
      assert.notEqual(dsn, db.dsn);
      await createSet(
        { ...f.ctx, logger },
        "s1",
        setConfig(dsn, ["t", { name: "u", schema: "public", capture: "statement" }]),
      );
      assert.ok(
        warnings.some((w) =>
          /permission denied for function pgshovel_capture\.capture_statement/.test(w),
        ),
        warnings.join(""),
      );
      const triggers = await db.query<{ name: string; fn: string }>(
        `SELECT c.relname || '.' || t.tgname AS name, p.proname AS fn FROM pg_trigger t
           JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid
          WHERE NOT t.tgisinternal ORDER BY 1`,
      );
      const base = `pgs_${f.cluster}_s1`;
      // without the option: row mode; capture: statement: the PL/pgSQL statement function
      assert.deepEqual(
        triggers.map((t) => t.name),
        [
          `t.${base}`,
          `t.${base}_t`,
          `u.${base}`,
          `u.${base}_d`,
          `u.${base}_i`,
          `u.${base}_t`,
          `u.${base}_u`,
        ],
      );
      assert.ok(triggers.every((t) => t.fn.startsWith("capture_s1_")));
      const queue = dbNames.queue(f.cluster, "s1");
      await registerConsumer(db, queue);
      await db.query("INSERT INTO t VALUES (1, 'a')");
      await db.query("INSERT INTO u SELECT g, 'b' FROM generate_series(1, 3) g");
      const events = await readEvents(db, queue);
      assert.deepEqual(
        events.map((e) => [e.table, e.type]),
        [
          ["t", "INSERT"],
          ["u", "INSERT"],
          ["u", "INSERT"],
          ["u", "INSERT"],
        ],
      );
      // Granted the function, the same user's set update moves both tables onto it.
      await db.query(`GRANT USAGE ON SCHEMA pgshovel_capture TO ${role}`);
      await db.query(`GRANT EXECUTE ON FUNCTION pgshovel_capture.capture_statement() TO ${role}`);
      await updateSet(
        { ...f.ctx, logger },
        "s1",
        setConfig(dsn, ["t", { name: "u", schema: "public", capture: "statement" }]),
      );
      const onC = await db.query<{ table: string }>(
        `SELECT DISTINCT c.relname AS table FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
           JOIN pg_proc p ON p.oid = t.tgfoid WHERE p.proname = 'capture_statement' ORDER BY 1`,
      );
      assert.deepEqual(
        onC.map((r) => r.table),
        ["t", "u"],
      );
      await db.query("UPDATE t SET v = 'c'");
      assert.deepEqual(
        (await readEvents(db, queue)).map((e) => [e.table, e.type, e.data.new?.v]),
        [["t", "UPDATE", "c"]],
      );
    } finally {
      await f.close();
      await db.drop();
      const admin = await createTestDatabase("cap_nosuper_cleanup", { pgq: false });
      await admin.query(`DROP ROLE IF EXISTS ${role}`);
      await admin.drop();
    }
  });

  test("given primary keys identify a table without one; every column is captured by default", async () => {
    await withCaptureSet(
      "cap_pk",
      ["CREATE TABLE ledger (region text, seq int8, amount numeric, memo text)"],
      [{ name: "ledger", schema: "public", primary_keys: ["region", "seq"] }],
      async (db, queue, f) => {
        await db.query("INSERT INTO ledger VALUES ('eu', 9007199254740993, 1.5, 'm')");
        await db.query("UPDATE ledger SET memo = 'n' WHERE seq = 9007199254740993");
        // narrowing the columns takes effect at once and the events carry the new version
        await updateSet(
          f.ctx,
          "s1",
          setConfig(db.dsn, [
            {
              name: "ledger",
              schema: "public",
              primary_keys: ["region", "seq"],
              columns: ["amount"],
            },
          ]),
        );
        await db.query("UPDATE ledger SET memo = 'o'");
        await db.query("UPDATE ledger SET amount = 2");
        const events = await readEvents(db, queue);
        assert.deepEqual(
          events.map((e) => [e.type, e.identity, e.configVersion, e.data]),
          [
            [
              "INSERT",
              ["region", "seq"],
              "0",
              {
                old: null,
                new: { region: "eu", seq: "9007199254740993", amount: "1.5", memo: "m" },
              },
            ],
            [
              "UPDATE",
              ["region", "seq"],
              "0",
              {
                old: { region: "eu", seq: "9007199254740993", amount: "1.5", memo: "m" },
                new: { region: "eu", seq: "9007199254740993", amount: "1.5", memo: "n" },
              },
            ],
            [
              "UPDATE",
              ["region", "seq"],
              "1",
              {
                old: { region: "eu", seq: "9007199254740993", amount: "1.5" },
                new: { region: "eu", seq: "9007199254740993", amount: "2" },
              },
            ],
          ],
        );
      },
    );
  });
});

/**
 * Bad input never corrupts state (invariant 7): each case fails with an error naming its cause,
 * and leaves no znode, trigger, queue, capture function, prepared transaction or transaction
 * record behind.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createSet, dropSet, initializeCluster, updateSet } from "../../src/cluster/admin.js";
import { dbNames, zkPaths } from "../../src/config/names.js";
import { parseSetConfig } from "../../src/config/set-config.js";
import { type ErrorCode, isPgshovelError } from "../../src/errors.js";
import { uniqueName } from "../support/env.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import { freePort, startPrivatePostgres } from "../support/private-services.js";
import {
  assertNothingLeft,
  type ClusterFixture,
  clusterFixture,
  leftovers,
  setConfig,
} from "./helpers/admin.js";

async function withCluster(
  prefix: string,
  body: (f: ClusterFixture, db: TestDatabase) => Promise<void>,
  options: { initialize?: boolean } = {},
): Promise<void> {
  const fixture = await clusterFixture();
  const db = await createTestDatabase(prefix);
  try {
    if (options.initialize ?? true) await initializeCluster(fixture.ctx);
    await db.query("CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric)");
    await db.query("CREATE TABLE logs (at timestamptz, line text)");
    await db.query("CREATE SCHEMA app");
    await db.query("CREATE TABLE app.users (id int PRIMARY KEY, name text)");
    await body(fixture, db);
  } finally {
    await fixture.close();
    await db.drop();
  }
}

/** Asserts PROMISE fails with CODE and a message matching MESSAGE. */
async function rejectsWith(
  promise: Promise<unknown>,
  code: ErrorCode,
  message: RegExp,
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isPgshovelError(error), `not a PgshovelError: ${String(error)}`);
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  });
}

describe("administration: bad input leaves nothing behind", () => {
  const catalogCases: [string, Parameters<typeof setConfig>[1], ErrorCode, RegExp][] = [
    ["unknown table", ["accounts", "nosuch"], "NOT_FOUND", /table public\.nosuch does not exist/],
    [
      "unknown schema",
      [{ name: "users", schema: "nosuch" }],
      "NOT_FOUND",
      /table nosuch\.users: schema "nosuch" does not exist/,
    ],
    [
      "unknown monitored column",
      [{ name: "accounts", schema: "public", columns: ["owner", "colour"] }],
      "NOT_FOUND",
      /table public\.accounts: monitored column "colour" does not exist/,
    ],
    [
      "unknown primary key column",
      [{ name: "accounts", schema: "public", primary_keys: ["uid"] }],
      "NOT_FOUND",
      /table public\.accounts: primary key column "uid" does not exist/,
    ],
    [
      "table without a primary key and none given",
      ["accounts", "logs"],
      "INVALID_CONFIGURATION",
      /table public\.logs has no primary key/,
    ],
    [
      "a column listed twice",
      [{ name: "accounts", schema: "public", columns: ["owner", "owner"] }],
      "INVALID_ARGUMENT",
      /monitored column "owner" is listed twice/,
    ],
  ];
  for (const [what, tables, code, message] of catalogCases) {
    test(`set create: ${what}`, async () => {
      await withCluster("bad_catalog", async (f, db) => {
        await rejectsWith(createSet(f.ctx, "s1", setConfig(db.dsn, tables)), code, message);
        await assertNothingLeft(db, f.zk, f.cluster, "s1");
        // not even the cluster schema: the whole prepare was rolled back
        const schemas = await db.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [
          dbNames.schema(f.cluster),
        ]);
        assert.equal(schemas.length, 0);
      });
    });
  }

  test("set update with an unknown column keeps the previous configuration intact", async () => {
    await withCluster("bad_update", async (f, db) => {
      await createSet(f.ctx, "s1", setConfig(db.dsn, ["accounts"]));
      const before = await leftovers(db, f.zk, f.cluster, "s1");
      const znode = await f.zk.get(zkPaths.set(f.cluster, "s1"));
      await rejectsWith(
        updateSet(
          f.ctx,
          "s1",
          setConfig(db.dsn, ["accounts", { name: "users", schema: "app", columns: ["nick"] }]),
        ),
        "NOT_FOUND",
        /table app\.users: monitored column "nick" does not exist/,
      );
      assert.deepEqual(await leftovers(db, f.zk, f.cluster, "s1"), before);
      const after = await f.zk.get(zkPaths.set(f.cluster, "s1"));
      assert.equal(after?.stat.version, znode?.stat.version);
      assert.deepEqual(after?.data, znode?.data);
    });
  });

  test("configuration files: listed twice, empty list, unknown key, invalid YAML", () => {
    const base = "database:\n  dsn: postgresql://app@127.0.0.1/app\n";
    const cases: [string, RegExp][] = [
      [
        `${base}tables:\n  - name: a\n  - name: a\n    schema: public\n`,
        /f\.yaml: table public\.a is listed twice/,
      ],
      [
        `${base}tables: []\n`,
        /f\.yaml: invalid set configuration: tables: must list at least one table/,
      ],
      [
        `${base}tables:\n  - name: a\n    primary_key: [id]\n`,
        /f\.yaml: invalid set configuration: tables\.0: unknown key\(s\) "primary_key"/,
      ],
      [
        `${base}tables:\n  - name: a\n   schema: [x\n`,
        /^f\.yaml: invalid YAML at line 5, column 1: [^\n]*indicator$/,
      ],
      [`${base}tables:\n  - name: a\ndatabse: {}\n`, /unknown key\(s\) "databse"/],
      [`tables:\n  - name: a\n`, /database: /],
    ];
    for (const [text, message] of cases) {
      assert.throws(
        () => parseSetConfig(text, "f.yaml"),
        (error: unknown) =>
          isPgshovelError(error, "INVALID_ARGUMENT") && message.test(error.message),
        text,
      );
    }
    // JSON is accepted too
    assert.deepEqual(
      parseSetConfig('{"database": {"dsn": "postgresql://x/y"}, "tables": [{"name": "a"}]}', "j"),
      {
        database: { dsn: "postgresql://x/y" },
        tables: [{ name: "a", schema: "public" }],
      },
    );
  });

  test("declared primary keys must be unique and never NULL: the error names the table, columns and a key", async () => {
    await withCluster("bad_pk", async (f, db) => {
      await db.query("CREATE TABLE dup (region text, seq int, memo text)");
      await db.query("INSERT INTO dup VALUES ('eu', 1, 'a'), ('eu', 2, 'b'), ('eu', 2, 'c')");
      await db.query("CREATE TABLE nul (code text, memo text)");
      await db.query("CREATE UNIQUE INDEX ON nul (code)");
      await db.query("INSERT INTO nul VALUES ('x', 'a'), (NULL, 'b')");
      const declared = (name: string, keys: string[]) => [
        { name, schema: "public", primary_keys: keys },
      ];
      await rejectsWith(
        createSet(f.ctx, "s1", setConfig(db.dsn, declared("dup", ["region"]))),
        "INVALID_CONFIGURATION",
        /^table public\.dup: primary key columns \(region\) are not unique: 3 rows have \{"region" : "eu"\}$/,
      );
      await rejectsWith(
        createSet(f.ctx, "s1", setConfig(db.dsn, declared("dup", ["region", "seq"]))),
        "INVALID_CONFIGURATION",
        /^table public\.dup: primary key columns \(region, seq\) are not unique: 2 rows have \{"region" : "eu", "seq" : 2\}$/,
      );
      // A unique index does not keep NULLs out.
      await rejectsWith(
        createSet(f.ctx, "s1", setConfig(db.dsn, declared("nul", ["code"]))),
        "INVALID_CONFIGURATION",
        /^table public\.nul: primary key columns \(code\) hold NULL in a row: \{"code" : null\}$/,
      );
      await assertNothingLeft(db, f.zk, f.cluster, "s1");
      // Once the data identifies its rows, the same declarations are accepted.
      await db.query("DELETE FROM dup WHERE memo = 'c'");
      await db.query("DELETE FROM nul WHERE code IS NULL");
      const created = await createSet(
        f.ctx,
        "s1",
        setConfig(db.dsn, [...declared("dup", ["region", "seq"]), ...declared("nul", ["code"])]),
      );
      assert.deepEqual(
        created.tables.map((t) => t.primary_keys),
        [["region", "seq"], ["code"]],
      );
    });
  });

  test("invalid set names are refused before anything is touched", async () => {
    await withCluster("bad_name", async (f, db) => {
      for (const name of ["Upper", "with-dash", "a".repeat(41), "", "semi;colon", 'q"uote']) {
        await rejectsWith(
          createSet(f.ctx, name, setConfig(db.dsn, ["accounts"])),
          "INVALID_ARGUMENT",
          /invalid set name .*: use 1 to 40 characters from \[a-z0-9_\]/,
        );
      }
      assert.deepEqual(await f.zk.children(zkPaths.sets(f.cluster)), []);
      assert.deepEqual(await f.zk.children(zkPaths.transactions(f.cluster)), []);
    });
  });

  test("cluster not initialized", async () => {
    await withCluster(
      "bad_noinit",
      async (f, db) => {
        await rejectsWith(
          createSet(f.ctx, "s1", setConfig(db.dsn, ["accounts"])),
          "NOT_FOUND",
          new RegExp(`cluster "${f.cluster}" is not initialized`),
        );
        assert.equal(await f.zk.exists(`/${f.cluster}`), null);
        await assertNothingLeft(db, f.zk, f.cluster, "s1");
      },
      { initialize: false },
    );
  });

  test("set already exists (create) and does not exist (update, drop)", async () => {
    await withCluster("bad_exists", async (f, db) => {
      await createSet(f.ctx, "s1", setConfig(db.dsn, ["accounts"]));
      const before = await leftovers(db, f.zk, f.cluster, "s1");
      await rejectsWith(
        createSet(f.ctx, "s1", setConfig(db.dsn, [{ name: "users", schema: "app" }])),
        "ALREADY_EXISTS",
        /set "s1" already exists/,
      );
      assert.deepEqual(await leftovers(db, f.zk, f.cluster, "s1"), before);
      await rejectsWith(
        updateSet(f.ctx, "s2", setConfig(db.dsn, ["accounts"])),
        "NOT_FOUND",
        /set "s2" does not exist/,
      );
      await rejectsWith(dropSet(f.ctx, "s2"), "NOT_FOUND", /set "s2" does not exist/);
      await assertNothingLeft(db, f.zk, f.cluster, "s2");
    });
  });

  test("cluster record of another software version", async () => {
    await withCluster("bad_version", async (f, db) => {
      const path = zkPaths.cluster(f.cluster);
      const record = JSON.parse((await f.zk.getString(path)) ?? "null");
      await f.zk.set(path, JSON.stringify({ ...record, version: "99.1.0" }));
      await rejectsWith(
        createSet(f.ctx, "s1", setConfig(db.dsn, ["accounts"])),
        "VERSION_MISMATCH",
        /is at version 99\.1\.0 but this pgshovel is/,
      );
      await assertNothingLeft(db, f.zk, f.cluster, "s1");
    });
  });

  test("database unreachable", async () => {
    await withCluster("bad_unreach", async (f, db) => {
      const port = await freePort();
      await rejectsWith(
        createSet(f.ctx, "s1", setConfig(`postgresql://app:pw1@127.0.0.1:${port}/x`, ["a"])),
        "DATABASE_UNAVAILABLE",
        new RegExp(
          `connecting to postgresql://app:\\*\\*\\*@127\\.0\\.0\\.1:${port}/x: .*ECONNREFUSED`,
        ),
      );
      await assertNothingLeft(db, f.zk, f.cluster, "s1");
    });
  });

  test("database does not exist", async () => {
    await withCluster("bad_nodb", async (f, db) => {
      const dsn = db.dsn.replace(/\/[^/]+$/, "/no_such_database");
      await rejectsWith(
        createSet(f.ctx, "s1", setConfig(dsn, ["accounts"])),
        "NOT_FOUND",
        /database "no_such_database" does not exist/,
      );
      await assertNothingLeft(db, f.zk, f.cluster, "s1");
    });
  });

  test("authentication failed: the message says so and never shows the password", async () => {
    await withCluster("bad_auth", async (f, db) => {
      const role = uniqueName("locked");
      await db.query(
        `CREATE ROLE ${role} LOGIN SUPERUSER PASSWORD 'right' IN ROLE password_required`,
      );
      try {
        const dsn = db.dsn.replace(/^postgresql:\/\/[^@]+@/, `postgresql://${role}:Wr0ngPw@`);
        await assert.rejects(createSet(f.ctx, "s1", setConfig(dsn, ["accounts"])), (error) => {
          assert.ok(isPgshovelError(error, "DATABASE_UNAVAILABLE"));
          assert.match(error.message, /authentication failed/);
          assert.match(error.hint ?? "", /user and password/);
          assert.doesNotMatch(`${error.message} ${error.hint}`, /Wr0ngPw/);
          return true;
        });
        await assertNothingLeft(db, f.zk, f.cluster, "s1");
      } finally {
        await db.query(`DROP ROLE ${role}`);
      }
    });
  });

  test("max_prepared_transactions = 0 is refused with what to do", async () => {
    const server = await startPrivatePostgres();
    const f = await clusterFixture();
    try {
      // postgresql.auto.conf is read after the stack's pgshovel.conf, so it wins
      const admin = await createTestDatabase("bad_mpt", { server: server.server });
      await admin.query("ALTER SYSTEM SET max_prepared_transactions = 0");
      await admin.drop();
      await server.stop();
      await server.start();
      const db = await createTestDatabase("bad_mpt", { server: server.server });
      try {
        await db.query("CREATE TABLE accounts (id int PRIMARY KEY)");
        await initializeCluster(f.ctx);
        await assert.rejects(createSet(f.ctx, "s1", setConfig(db.dsn, ["accounts"])), (error) => {
          assert.ok(isPgshovelError(error, "DATABASE_NOT_READY"));
          assert.match(error.message, /max_prepared_transactions is 0/);
          assert.match(error.hint ?? "", /set max_prepared_transactions/);
          return true;
        });
        await assertNothingLeft(db, f.zk, f.cluster, "s1");
      } finally {
        await db.drop();
      }
    } finally {
      await f.close();
      await server.destroy();
    }
  });

  test("PgQ not installed", { skip: notTestableReason() }, () => {});
});

/**
 * PgQ's extension files live in the server's shared directory, fixed at compile time and shared
 * by the stack and every private server (PostgreSQL 15 has no extension_control_path): a server
 * without PgQ cannot be made here without removing it from the machine.
 */
function notTestableReason(): string {
  return "cannot run a PostgreSQL 15 without PgQ: its extension files are installed system-wide for every server here";
}

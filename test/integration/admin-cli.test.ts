/**
 * The CLI surface of `pgshovel cluster …` and `pgshovel set …`, through bin/pgshovel: exit codes,
 * stdout and stderr, options from the environment (a flag wins), passwords never printed.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parse } from "yaml";
import { zkPaths } from "../../src/config/names.js";
import { SOFTWARE_VERSION } from "../../src/version.js";
import { stackEnv, uniqueName } from "../support/env.js";
import { adminQuery, createTestDatabase } from "../support/postgres.js";
import { freePort } from "../support/private-services.js";
import { connectZk, type TestZk } from "../support/zookeeper.js";
import { assertNothingLeft, clusterName, runCli } from "./helpers/admin.js";

const PASSWORD = "Pa55-w0rd-SECRET";

describe("administration: CLI", () => {
  let dir: string;
  let zk: TestZk;
  const clusters: string[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "pgshovel-cli-"));
    zk = await connectZk();
  });
  after(async () => {
    for (const cluster of clusters) await zk.removeRecursive(`/${cluster}`).catch(() => {});
    zk.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A fresh cluster name and the environment pointing the CLI at it. */
  function freshCluster(): { cluster: string; env: Record<string, string> } {
    const cluster = clusterName();
    clusters.push(cluster);
    return {
      cluster,
      env: {
        PGSHOVEL_ZOOKEEPER_HOSTS: stackEnv().zookeeperHosts,
        PGSHOVEL_CLUSTER: cluster,
        PGSHOVEL_LOG_LEVEL: "debug",
      },
    };
  }

  async function configFile(name: string, text: string): Promise<string> {
    const path = join(dir, `${uniqueName(name)}.yaml`);
    await writeFile(path, text);
    return path;
  }

  test("--help, --version and usage errors", async () => {
    const help = await runCli(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: pgshovel/);
    for (const option of [
      "cluster",
      "zookeeper-hosts",
      "zookeeper-timeout",
      "log-level",
      "log-format",
    ]) {
      assert.match(help.stdout, new RegExp(`--${option}.*`));
      assert.match(
        help.stdout,
        new RegExp(`PGSHOVEL_${option.toUpperCase().replaceAll("-", "_")}`),
      );
    }
    const setHelp = await runCli(["set", "--help"]);
    assert.equal(setHelp.code, 0);
    for (const command of ["create", "list", "inspect", "update\\|upgrade", "drop"]) {
      assert.match(setHelp.stdout, new RegExp(`\\n  ${command} `));
    }
    const clusterHelp = await runCli(["cluster", "--help"]);
    for (const command of ["initialize", "upgrade", "recover"]) {
      assert.match(clusterHelp.stdout, new RegExp(`\\n  ${command}`));
    }
    const version = await runCli(["--version"]);
    assert.equal(version.code, 0);
    assert.equal(version.stdout.trim(), SOFTWARE_VERSION);
    const unknown = await runCli(["set", "lst"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'lst'/);
    const badCluster = await runCli(["--cluster", "Bad-Name", "set", "list"]);
    assert.equal(badCluster.code, 2);
    assert.match(badCluster.stderr, /invalid cluster name "Bad-Name"/);
    const badTimeout = await runCli(["set", "list"], {
      env: { PGSHOVEL_ZOOKEEPER_TIMEOUT: "soon" },
    });
    assert.equal(badTimeout.code, 2);
    assert.match(badTimeout.stderr, /"soon" is not a duration/);
  });

  test("the whole life of a set; the password is never printed", async () => {
    const { cluster, env } = freshCluster();
    const db = await createTestDatabase("cli_life");
    const role = uniqueName("app");
    try {
      await db.query("CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric)");
      await db.query("CREATE TABLE orders (id int PRIMARY KEY, total numeric)");
      await db.query(
        `CREATE ROLE ${role} LOGIN SUPERUSER PASSWORD '${PASSWORD}' IN ROLE password_required`,
      );
      const dsn = db.dsn.replace(/^postgresql:\/\/[^@]+@/, `postgresql://${role}:${PASSWORD}@`);
      const shown = db.dsn.replace(/^postgresql:\/\/[^@]+@/, `postgresql://${role}:***@`);
      const outputs: string[] = [];
      const cli = async (args: string[], stdin?: string) => {
        const result = await runCli(args, { env, ...(stdin ? { stdin } : {}) });
        outputs.push(result.stdout, result.stderr);
        return result;
      };

      const init = await cli(["cluster", "initialize"]);
      assert.equal(init.code, 0, init.stderr);
      assert.equal(init.stdout, `initialized cluster at version ${SOFTWARE_VERSION}\n`);
      const again = await cli(["cluster", "initialize"]);
      assert.equal(again.code, 1);
      assert.equal(again.stdout, "");
      assert.match(
        again.stderr,
        new RegExp(`pgshovel: error: cluster "${cluster}" is already initialized\\nhint: `),
      );

      const file = await configFile(
        "accounts",
        `database:\n  dsn: ${dsn}\ntables:\n  - name: accounts\n`,
      );
      const created = await cli(["set", "create", "s1", file]);
      assert.equal(created.code, 0, created.stderr);
      assert.equal(created.stdout, "created set s1 with 1 table(s)\n");

      const list = await cli(["set", "list"]);
      assert.equal(list.code, 0, list.stderr);
      const lines = list.stdout.trimEnd().split("\n");
      assert.match(lines[0] ?? "", /^NAME\s+DATABASE\s+TABLES\s+VERSION$/);
      assert.deepEqual(lines[1]?.split(/\s+/), ["s1", shown, "public.accounts", "0"]);
      const json = await cli(["set", "list", "--json"]);
      assert.deepEqual(JSON.parse(json.stdout), [
        { name: "s1", database: shown, tables: ["public.accounts"], version: 0 },
      ]);

      // update from stdin, through the `upgrade` alias: add a table, monitor fewer columns
      const update = await cli(
        ["set", "upgrade", "s1", "-"],
        `database:\n  dsn: ${dsn}\ntables:\n  - name: accounts\n    columns: [balance]\n  - name: orders\n`,
      );
      assert.equal(update.code, 0, update.stderr);
      assert.equal(update.stdout, "updated set s1 to version 1\n");

      const inspect = await cli(["set", "inspect", "s1"]);
      assert.equal(inspect.code, 0, inspect.stderr);
      assert.match(inspect.stderr, /^version: 1$/m);
      assert.deepEqual(parse(inspect.stdout), {
        database: { dsn: shown, node: parse(inspect.stdout).database.node },
        tables: [
          { schema: "public", name: "accounts", primary_keys: ["id"], columns: ["id", "balance"] },
          { schema: "public", name: "orders", primary_keys: ["id"], columns: ["id", "total"] },
        ],
      });
      assert.match(parse(inspect.stdout).database.node, /^[0-9a-f-]{36}$/);

      // a stale --expected-version is refused
      const stale = await cli(["set", "update", "s1", file, "--expected-version", "0"]);
      assert.equal(stale.code, 1);
      assert.match(stale.stderr, /set s1 is at version 1, not 0/);
      const staleEnv = await runCli(["set", "update", "s1", file], {
        env: { ...env, PGSHOVEL_EXPECTED_VERSION: "0" },
      });
      assert.equal(staleEnv.code, 1);
      assert.match(staleEnv.stderr, /set s1 is at version 1, not 0/);
      const junk = await cli(["set", "update", "s1", file, "--expected-version", "one"]);
      assert.equal(junk.code, 2);
      assert.match(junk.stderr, /"one" is not a configuration version/);

      // the upgrade and recover commands on a healthy cluster
      const upgrade = await cli(["cluster", "upgrade"]);
      assert.equal(upgrade.code, 0, upgrade.stderr);
      assert.equal(
        upgrade.stdout,
        `upgraded cluster from ${SOFTWARE_VERSION} to ${SOFTWARE_VERSION}\n`,
      );
      const recover = await cli(["cluster", "recover"]);
      assert.equal(recover.code, 0, recover.stderr);
      assert.equal(recover.stdout, "committed 0, rolled back 0, in progress 0, failed 0\n");

      // orders goes away: an update still naming it fails and says why; without it, it works
      await db.query("ALTER TABLE orders RENAME TO orders_old");
      const missing = await cli(
        ["set", "update", "s1", "-"],
        `database:\n  dsn: ${dsn}\ntables:\n  - name: orders\n`,
      );
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /pgshovel: error: table public\.orders does not exist/);
      const shrink = await cli(["set", "update", "s1", file]);
      assert.equal(shrink.code, 0, shrink.stderr);
      assert.equal(shrink.stdout, "updated set s1 to version 2\n");

      const drop = await cli(["set", "drop", "s1"]);
      assert.equal(drop.code, 0, drop.stderr);
      assert.equal(drop.stdout, "dropped set s1\n");
      await assertNothingLeft(db, zk, cluster, "s1");
      const dropAgain = await cli(["set", "drop", "s1"]);
      assert.equal(dropAgain.code, 1);
      assert.match(dropAgain.stderr, /set "s1" does not exist/);

      for (const output of outputs) assert.doesNotMatch(output, new RegExp(PASSWORD));
      // the debug logs went to stderr and said something
      assert.ok(outputs.some((o) => /set created/.test(o)));
    } finally {
      await db.drop();
      await adminQuery(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
    }
  });

  test("a flag beats its environment variable", async () => {
    const { cluster, env } = freshCluster();
    assert.equal((await runCli(["cluster", "initialize"], { env })).code, 0);
    const other = clusterName();
    // env names a cluster that does not exist, the flag the real one
    const flagWins = await runCli(["--cluster", cluster, "set", "list", "--json"], {
      env: { ...env, PGSHOVEL_CLUSTER: other },
    });
    assert.equal(flagWins.code, 0, flagWins.stderr);
    assert.equal(flagWins.stdout, "[]\n");
    // and the other way round: the flag's cluster is the one reported missing
    const flagMissing = await runCli(["set", "list", "--cluster", other], { env });
    assert.equal(flagMissing.code, 1);
    assert.match(flagMissing.stderr, new RegExp(`cluster "${other}" is not initialized`));
    // --json from PGSHOVEL_JSON
    const envJson = await runCli(["set", "list"], { env: { ...env, PGSHOVEL_JSON: "1" } });
    assert.equal(envJson.stdout, "[]\n");
    // ZooKeeper hosts: a dead env value loses to a good flag
    const port = await freePort();
    const hosts = await runCli(["--zookeeper-hosts", stackEnv().zookeeperHosts, "set", "list"], {
      env: { ...env, PGSHOVEL_ZOOKEEPER_HOSTS: `127.0.0.1:${port}` },
    });
    assert.equal(hosts.code, 0, hosts.stderr);
  });

  test("ZooKeeper unreachable: fails within --zookeeper-timeout, naming the hosts", async () => {
    const port = await freePort();
    const result = await runCli(["--zookeeper-timeout", "1500ms", "set", "list"], {
      env: { PGSHOVEL_ZOOKEEPER_HOSTS: `127.0.0.1:${port}` },
      timeoutMs: 20_000,
    });
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(`could not connect to ZooKeeper at 127\\.0\\.0\\.1:${port} within 1500 ms`),
    );
    assert.match(result.stderr, /hint: check --zookeeper-hosts/);
    // It gave up at its own timeout rather than waiting on (the default is 10 s): the margin
    // is for starting a Node process on a loaded machine, not a second try.
    assert.ok(result.elapsedMs < 1500 + 8000, `took ${result.elapsedMs} ms`);
  });

  test("bad input on the command line leaves nothing behind", async () => {
    const { cluster, env } = freshCluster();
    const db = await createTestDatabase("cli_bad");
    try {
      await db.query("CREATE TABLE accounts (id int PRIMARY KEY, owner text)");
      assert.equal((await runCli(["cluster", "initialize"], { env })).code, 0);
      const cases: [string[], string | undefined, RegExp][] = [
        [
          ["set", "create", "s1", "-"],
          `database:\n  dsn: ${db.dsn}\ntables:\n  - name: accounts\n    primary_key: [id]\n`,
          /<stdin>: invalid set configuration: tables\.0: unknown key\(s\) "primary_key"/,
        ],
        [
          ["set", "create", "s1", "-"],
          `database:\n  dsn: ${db.dsn}\ntables: [\n`,
          /<stdin>: invalid YAML at line \d+, column \d+/,
        ],
        [
          ["set", "create", "s1", "-"],
          `database:\n  dsn: ${db.dsn}\ntables: []\n`,
          /tables: must list at least one table/,
        ],
        [
          ["set", "create", "s1", "-"],
          `database:\n  dsn: ${db.dsn}\ntables:\n  - name: accounts\n  - name: accounts\n`,
          /table public\.accounts is listed twice/,
        ],
        [
          ["set", "create", "s1", "-"],
          `database:\n  dsn: ${db.dsn}\ntables:\n  - name: nosuch\n`,
          /table public\.nosuch does not exist/,
        ],
        [
          ["set", "create", "S-1", "-"],
          `database:\n  dsn: ${db.dsn}\ntables:\n  - name: accounts\n`,
          /invalid set name "S-1"/,
        ],
        [
          ["set", "create", "s1", join(dir, "missing.yaml")],
          undefined,
          /cannot read set configuration .*missing\.yaml/,
        ],
        [
          ["set", "create", "s1", "-"],
          `database:\n  dsn: host=localhost password=${PASSWORD}\ntables:\n  - name: accounts\n`,
          /unsupported DSN "host=localhost password=\*\*\*"/,
        ],
        [["set", "inspect", "s1"], undefined, /set "s1" does not exist/],
      ];
      for (const [args, stdin, message] of cases) {
        const result = await runCli(args, { env, ...(stdin ? { stdin } : {}) });
        assert.equal(result.code, 1, `${args.join(" ")}: ${result.stderr}`);
        assert.match(result.stderr, message);
        assert.doesNotMatch(result.stderr, new RegExp(PASSWORD));
        assert.equal(result.stdout, "");
      }
      await assertNothingLeft(db, zk, cluster, "s1");
    } finally {
      await db.drop();
    }
  });

  test("set drop --force with an unreachable database warns about what was left", async () => {
    const { cluster, env } = freshCluster();
    const db = await createTestDatabase("cli_force");
    try {
      await db.query("CREATE TABLE accounts (id int PRIMARY KEY, owner text)");
      assert.equal((await runCli(["cluster", "initialize"], { env })).code, 0);
      const create = await runCli(["set", "create", "s1"], {
        env,
        stdin: `database:\n  dsn: ${db.dsn}\ntables:\n  - name: accounts\n`,
      });
      assert.equal(create.code, 0, create.stderr);
      await db.drop(); // the database is gone for good
      const refused = await runCli(["set", "drop", "s1"], { env });
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /database ".*" does not exist|connecting to/);
      assert.ok(await zk.exists(zkPaths.set(cluster, "s1")));
      // a missing database is NOT_FOUND rather than unreachable: --force must cover it too
      const forced = await runCli(["set", "drop", "s1", "--force"], { env });
      assert.equal(forced.code, 0, forced.stderr);
      assert.equal(forced.stdout, "dropped set s1\n");
      assert.match(
        forced.stderr,
        /warning: the queue and triggers of set s1 in .* were left behind/,
      );
      assert.equal(await zk.exists(zkPaths.set(cluster, "s1")), null);
      assert.deepEqual(await zk.children(zkPaths.transactions(cluster)), []);
    } finally {
      await db.drop();
    }
  });
});

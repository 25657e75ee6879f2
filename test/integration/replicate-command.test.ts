import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { repoRoot } from "../support/env.js";
import { pgbench } from "../support/fixtures.js";
import {
  assertReplicaEqual,
  logLines,
  type ReplicateFixture,
  replicateFixture,
  runReplicate,
} from "./replicate-support.js";

const execFileAsync = promisify(execFile);
const PGSHOVEL = join(repoRoot, "bin", "pgshovel");

describe("pgshovel replicate: the command", () => {
  test("--help explains every option", async () => {
    const { stdout } = await execFileAsync(PGSHOVEL, ["replicate", "--help"]);
    for (const flag of [
      "--target <dsn>",
      "--from <source>",
      "--consumer-id <id>",
      "--codec <codec>",
      "--jobs <n>",
      "--create-tables",
      "--until-caught-up",
      "PGSHOVEL_TARGET",
    ]) {
      assert.ok(stdout.includes(flag), `help mentions ${flag}`);
    }
  });

  test("a mistyped option exits 2 and names it", async () => {
    const failed = await execFileAsync(PGSHOVEL, [
      "replicate",
      "s",
      "--target",
      "postgresql://nobody@127.0.0.1:1/none",
      "--until-caugth-up",
    ]).then(
      () => assert.fail("replicate accepted an unknown option"),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(failed.code, 2);
    assert.match(failed.stderr, /unknown option '--until-caugth-up'/);
  });

  test("a source that is not a DSN, or an unknown --from, exits 2", async () => {
    for (const args of [
      ["--target", "host=localhost"],
      ["--target", "postgresql://x@127.0.0.1:1/x", "--from", "carrier-pigeon"],
    ]) {
      const code = await execFileAsync(PGSHOVEL, ["replicate", "s", ...args]).then(
        () => 0,
        (error: { code: number }) => error.code,
      );
      assert.equal(code, 2, args.join(" "));
    }
  });
});

describe("pgshovel replicate --until-caught-up under pgbench", () => {
  let fixture: ReplicateFixture;
  before(async () => {
    fixture = await replicateFixture();
  });
  after(async () => {
    await fixture?.close();
  });

  test("a set that does not exist: exit 1 naming it, nothing written to the target", async () => {
    const result = await runReplicate({ ...fixture, set: "no_such_set" }, ["--until-caught-up"]);
    assert.equal(result.code, 1, result.stderr.slice(-3000));
    assert.match(result.stderr, /set "no_such_set" does not exist in cluster/);
    const schemas = await fixture.target.query(
      "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'pgshovel_%'",
    );
    assert.deepEqual(schemas, []);
  });

  for (const jobs of ["1", "2"]) {
    test(`bootstraps and catches up with --jobs ${jobs}: exit 0, equal row for row`, async () => {
      if (jobs === "2") {
        // A second replica of the same source: start again from an empty target.
        await fixture.target.query("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
        await fixture.target.query(`DROP SCHEMA pgshovel_${fixture.cluster} CASCADE`);
      }
      const load = pgbench(fixture.db, ["-n", "-c", "4", "-T", "4"]);
      try {
        const first = await runReplicate(fixture, [
          "--create-tables",
          "--until-caught-up",
          "--jobs",
          jobs,
        ]);
        assert.equal(first.code, 0, first.stderr.slice(-3000));
        assert.equal(logLines(first.stderr, "table copied").length, 4);
      } finally {
        await load;
      }
      // pgbench went on after the first run caught up: a second run applies the rest.
      const second = await runReplicate(fixture, ["--until-caught-up"]);
      assert.equal(second.code, 0, second.stderr.slice(-3000));
      assert.equal(logLines(second.stderr, "table copied").length, 0, "nothing copied again");
      await assertReplicaEqual(fixture);
    });
  }
});

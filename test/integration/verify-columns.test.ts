/**
 * `pgshovel set verify` compares the captured columns only: a set that captures some of a
 * table's columns is OK whatever the others hold on either side, and a captured column that
 * differs is named, its repair writing captured columns alone.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { updateSet } from "../../src/cluster/admin.js";
import { editTarget, runVerify, type VerifyFixture, verifyFixture } from "./verify-support.js";

describe("pgshovel set verify: a set with column filters", () => {
  let fixture: VerifyFixture;
  before(async () => {
    fixture = await verifyFixture({
      tables: ["t"],
      prepare: async (db) => {
        await db.query("CREATE TABLE t (id int PRIMARY KEY, v text, secret text)");
        await db.query("INSERT INTO t SELECT g, 'v' || g, 's' || g FROM generate_series(1, 50) g");
      },
      beforeWorker: async (base) => {
        await updateSet(base.ctx, "s", {
          database: { dsn: base.db.dsn },
          tables: [{ schema: "public", name: "t", columns: ["id", "v"] }],
        });
      },
    });
  });
  after(async () => {
    await fixture?.close();
  });

  test("columns outside the set's filter are not compared; a captured one is", async () => {
    await fixture.target.query("ALTER TABLE t ADD COLUMN secret text DEFAULT 'not the same'");
    await fixture.db.query("UPDATE t SET secret = 'changed on the source' WHERE id <= 10");
    const equal = await runVerify(fixture);
    assert.equal(equal.code, 0, equal.stdout + equal.stderr);
    assert.match(equal.stdout, /^OK {4}public\.t {2}50 rows$/m);

    await editTarget(fixture.target, ["UPDATE t SET v = 'by hand' WHERE id = 3"]);
    const repair = await runVerify(fixture, ["--repair"]);
    assert.equal(repair.code, 1, repair.stderr);
    assert.match(repair.stderr, /^ +different +\(id\)=\(3\)$/m);
    assert.match(
      repair.stdout,
      /^UPDATE "public"\."t" SET "v" = CAST\('v3' AS text\) WHERE "id" = CAST\('3' AS integer\);$/m,
    );
    assert.doesNotMatch(repair.stdout, /secret/);
  });
});

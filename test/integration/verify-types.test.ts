/**
 * `pgshovel set verify` over a row of every built-in type: a value that differs only in
 * a microsecond, one bit of a bytea, a JSON null against an SQL NULL or the sign of a zero
 * is a DIFF, and the repair's literals, cast to each column's type, make the rows equal.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ALL_TYPES_COLUMNS, ALL_TYPES_SETUP, allTypesRowsAsText } from "./helpers/all-types.js";
import { editTarget, runVerify, type VerifyFixture, verifyFixture } from "./verify-support.js";

describe("pgshovel set verify: every built-in type", () => {
  let fixture: VerifyFixture;
  before(async () => {
    const values = ALL_TYPES_COLUMNS.map(([, , v]) => v).join(", ");
    fixture = await verifyFixture({
      tables: ["everything"],
      prepare: async (db) => {
        for (const statement of ALL_TYPES_SETUP) await db.query(statement);
        await db.query(
          `CREATE TABLE everything (id int8 PRIMARY KEY, ${ALL_TYPES_COLUMNS.map(([n, t]) => `${n} ${t}`).join(", ")})`,
        );
        await db.query(`INSERT INTO everything VALUES (1, ${values}), (3, ${values})`);
        await db.query("INSERT INTO everything (id) VALUES (2)");
      },
      prepareTarget: async (db) => {
        for (const statement of ALL_TYPES_SETUP) await db.query(statement);
      },
    });
  });
  after(async () => {
    await fixture?.close();
  });

  test("equal after the copy", async () => {
    const run = await runVerify(fixture);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^OK {4}public\.everything {2}3 rows$/m);
  });

  const cases: [string, string, string][] = [
    [
      "a microsecond",
      "UPDATE everything SET c_timestamptz = c_timestamptz + interval '1 microsecond' WHERE id = 1",
      "1",
    ],
    [
      "one bit of a bytea",
      "UPDATE everything SET c_bytea = set_bit(c_bytea, 0, 1 - get_bit(c_bytea, 0)) WHERE id = 3",
      "3",
    ],
    ["SQL NULL for a JSON null", "UPDATE everything SET c_json_null = NULL WHERE id = 1", "1"],
    ["a JSON null for SQL NULL", "UPDATE everything SET c_jsonb_null = 'null' WHERE id = 2", "2"],
    ["0 for -0", "UPDATE everything SET c_float8_negzero = 0 WHERE id = 3", "3"],
  ];
  for (const [what, statement, id] of cases) {
    test(`${what}: DIFF naming the row; the repair makes it OK`, async () => {
      await editTarget(fixture.target, [statement]);
      const run = await runVerify(fixture);
      assert.equal(run.code, 1, run.stdout + run.stderr);
      assert.match(run.stdout, /0 missing on target, 0 extra on target, 1 different$/m);
      assert.match(run.stdout, new RegExp(`^ +different +\\(id\\)=\\(${id}\\)$`, "m"));
      const repaired = await runVerify(fixture, ["--repair", "--apply"]);
      assert.equal(repaired.code, 1, repaired.stdout + repaired.stderr);
      assert.match(
        repaired.stdout,
        /^repaired in one transaction: 0 deleted, 1 updated, 0 inserted$/m,
      );
      const again = await runVerify(fixture);
      assert.equal(again.code, 0, again.stdout + again.stderr);
    });
  }

  test("rows deleted and inserted by hand come back through the repair's literals, value for value", async () => {
    await editTarget(fixture.target, [
      "DELETE FROM everything WHERE id IN (1, 2)",
      "INSERT INTO everything (id, c_text) VALUES (5, 'only here')",
    ]);
    const repaired = await runVerify(fixture, ["--repair", "--apply"]);
    assert.equal(repaired.code, 1, repaired.stdout + repaired.stderr);
    assert.match(
      repaired.stdout,
      /^repaired in one transaction: 1 deleted, 0 updated, 2 inserted$/m,
    );
    assert.equal((await runVerify(fixture)).code, 0);
    assert.deepEqual(
      await allTypesRowsAsText(fixture.target),
      await allTypesRowsAsText(fixture.db),
    );
  });
});

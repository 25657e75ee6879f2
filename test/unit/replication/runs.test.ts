import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isPgshovelError } from "../../../src/errors.js";
import { copyField, RowRun, TruncateRun, toText } from "../../../src/replication/runs.js";
import type { ReplicaTable } from "../../../src/replication/target-schema.js";
import type { Mutation, Operation, Row } from "../../../src/stream/types.js";

const TABLE: ReplicaTable = {
  schema: "public",
  name: "t",
  identity: ["id"],
  columns: [
    { name: "id", type: "bigint" },
    { name: "doc", type: "json" },
    { name: "flag", type: "boolean" },
  ],
};

let nextId = 1n;
function mutation(operation: Operation, old: Row | null, row: Row | null): Mutation {
  return {
    id: nextId++,
    schema: "public",
    table: "t",
    operation,
    identity: ["id"],
    old,
    new: row,
    transaction: 1000n,
    time: "2026-01-01T00:00:00.000000Z",
  };
}

const row = (id: string, doc: string | null = "{}", flag: boolean | null = true): Row => ({
  id,
  doc,
  flag,
});

describe("runs", () => {
  test("values become text, SQL NULL stays null, a JSON null stays the string null", () => {
    assert.equal(toText(null), null);
    assert.equal(toText("null"), "null");
    assert.equal(toText(true), "true");
    assert.equal(toText(-32768), "-32768");
    assert.equal(toText("9223372036854775807"), "9223372036854775807");
  });

  test("an INSERT run is one statement over one array per column", () => {
    const run = new RowRun(TABLE, "INSERT");
    for (const id of ["1", "2", "3"]) {
      const m = mutation("INSERT", null, row(id, id === "2" ? "null" : null));
      assert.ok(run.accepts(m, TABLE));
      run.add(m);
    }
    const statement = run.statement();
    assert.match(statement.text, /^INSERT INTO "public"\."t" \("id", "doc", "flag"\)/);
    assert.match(statement.text, /CAST\(v\.a1 AS json\)/);
    assert.deepEqual(statement.values, [
      ["1", "2", "3"],
      [null, "null", null],
      ["true", "true", "true"],
    ]);
    assert.equal(run.statement().name, statement.name, "one name per text");
  });

  test("a run is cut by a key seen again, another table or operation, or its bounds", () => {
    const run = new RowRun(TABLE, "INSERT", { rows: 3, chars: 1_000 });
    run.add(mutation("INSERT", null, row("1")));
    assert.equal(run.accepts(mutation("INSERT", null, row("1")), TABLE), false);
    assert.equal(run.accepts(mutation("DELETE", row("2"), null), TABLE), false);
    assert.equal(run.accepts(mutation("INSERT", null, row("2")), { ...TABLE }), false);
    run.add(mutation("INSERT", null, row("2")));
    run.add(mutation("INSERT", null, row("3")));
    assert.equal(run.accepts(mutation("INSERT", null, row("4")), TABLE), false, "3 rows");
    const wide = new RowRun(TABLE, "INSERT", { rows: 100, chars: 10 });
    wide.add(mutation("INSERT", null, row("1", "x".repeat(20))));
    assert.equal(wide.accepts(mutation("INSERT", null, row("2")), TABLE), false, "10 chars");
  });

  test("an UPDATE run watches old and new keys: a key change is ordered", () => {
    const run = new RowRun(TABLE, "UPDATE");
    run.add(mutation("UPDATE", row("1"), row("101")));
    // 2 → 1 must wait for 1 → 101; 101 → 102 must wait too
    assert.equal(run.accepts(mutation("UPDATE", row("2"), row("1")), TABLE), false);
    assert.equal(run.accepts(mutation("UPDATE", row("101"), row("102")), TABLE), false);
    assert.equal(run.accepts(mutation("UPDATE", row("2"), row("102")), TABLE), true);
    run.add(mutation("UPDATE", row("2"), row("102")));
    const statement = run.statement();
    assert.match(statement.text, /^UPDATE "public"\."t" AS d/);
    assert.match(statement.text, /WHERE d\."id" = CAST\(v\.k0 AS bigint\) RETURNING v\.n/);
    assert.deepEqual(statement.values, [
      ["101", "102"],
      ["{}", "{}"],
      ["true", "true"],
      ["1", "2"],
    ]);
    assert.equal(run.keyAt(2), "(id)=(2)");
  });

  test("a DELETE run sends the old keys only", () => {
    const run = new RowRun(TABLE, "DELETE");
    run.add(mutation("DELETE", row("7"), null));
    const statement = run.statement();
    assert.match(statement.text, /^DELETE FROM "public"\."t" AS d/);
    assert.deepEqual(statement.values, [["7"]]);
  });

  test("an UPDATE or DELETE run through a staging table: typed columns, ordinals, one merge", () => {
    const update = new RowRun(TABLE, "UPDATE");
    update.add(mutation("UPDATE", row("1"), row("101", null)));
    update.add(mutation("UPDATE", row("2"), row("2", "a\tb", false)));
    const staged = update.staged();
    assert.match(staged.stage, /^pgshovel_stage_[0-9a-f]{20}$/);
    assert.equal(
      staged.create,
      `CREATE TEMPORARY TABLE ${staged.stage} (n int4, a0 bigint, a1 json, a2 boolean, k0 bigint)`,
    );
    assert.deepEqual(staged.copy, {
      text: `COPY pg_temp.${staged.stage} FROM STDIN`,
      data: "1\t101\t\\N\ttrue\t1\n2\t2\ta\\tb\tfalse\t2\n",
    });
    assert.match(staged.merge, /^UPDATE "public"\."t" AS d\s+SET "id" = s\.a0, "doc" = s\.a1/);
    assert.match(staged.merge, /WHERE d\."id" = s\.k0 RETURNING s\.n$/);
    assert.equal(staged.empty, `TRUNCATE pg_temp.${staged.stage}`);

    const remove = new RowRun(TABLE, "DELETE");
    remove.add(mutation("DELETE", row("7"), null));
    const deleted = remove.staged();
    assert.notEqual(deleted.stage, staged.stage, "one staging table per operation");
    assert.match(deleted.create, /\(n int4, k0 bigint\)$/);
    assert.equal(deleted.copy.data, "1\t7\n");
    assert.equal(
      deleted.merge,
      `DELETE FROM "public"."t" AS d USING pg_temp.${deleted.stage} AS s WHERE d."id" = s.k0 RETURNING s.n`,
    );
    assert.throws(() => new RowRun(TABLE, "INSERT").staged(), /copied straight/);
  });

  test("a row without a captured column is refused, naming it", () => {
    const run = new RowRun(TABLE, "INSERT");
    assert.throws(
      () => run.add(mutation("INSERT", null, { id: "1", doc: null })),
      (error: unknown) =>
        isPgshovelError(error, "INVALID_CONFIGURATION") && /"flag"/.test(String(error)),
    );
  });

  test("an INSERT run as COPY text: NULL is \\N, special characters escaped", () => {
    assert.equal(copyField(null), "\\N");
    assert.equal(copyField("\\N"), "\\\\N", "the text \\N is not NULL");
    assert.equal(copyField("a\tb\nc\rd\\e"), "a\\tb\\nc\\rd\\\\e");
    assert.equal(copyField("héllo 👋"), "héllo 👋");
    const run = new RowRun(TABLE, "INSERT");
    run.add(mutation("INSERT", null, row("1", "null", false)));
    run.add(mutation("INSERT", null, row("2", null, null)));
    assert.deepEqual(run.copy(), {
      text: 'COPY "public"."t" ("id", "doc", "flag") FROM STDIN',
      data: "1\tnull\tfalse\n2\t\\N\t\\N\n",
    });
  });

  test("consecutive TRUNCATEs become one statement", () => {
    const run = new TruncateRun();
    const other: ReplicaTable = { ...TABLE, name: "u" };
    run.add(TABLE);
    run.add(other);
    run.add(TABLE);
    assert.equal(run.statement(), 'TRUNCATE "public"."t", "public"."u"');
  });
});

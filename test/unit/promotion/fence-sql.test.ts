import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { dbNames, MAX_CLUSTER_NAME, MAX_SET_NAME } from "../../../src/config/names.js";
import {
  coversAll,
  fenceStatements,
  lockStatement,
  unfenceStatement,
} from "../../../src/promotion/fence-sql.js";
import { promotionNames } from "../../../src/promotion/names.js";

const longest = { cluster: "c".repeat(MAX_CLUSTER_NAME), set: "s".repeat(MAX_SET_NAME) };
const tables = [
  { schema: "public", name: "orders" },
  { schema: "sales", name: 'odd "name"' },
];

describe("the fence's SQL", () => {
  test("its trigger name fits PostgreSQL's 63 bytes and is never a capture trigger's", () => {
    assert.ok(promotionNames.fenceTrigger(longest.cluster, longest.set).length <= 63);
    // A set named like another's truncate trigger suffix must not meet the fence's name.
    for (const set of ["x", "x_t", "t"]) {
      const fence = promotionNames.fenceTrigger("c", set);
      for (const other of ["x", "x_t", "t"]) {
        assert.notEqual(fence, dbNames.trigger("c", other));
        assert.notEqual(fence, dbNames.truncateTrigger("c", other));
      }
    }
  });

  test("one statement trigger per table, before every kind of write, and one function", () => {
    const statements = fenceStatements("prod", "orders", tables, "2026-01-01T00:00:00Z");
    assert.equal(statements.filter((s) => s.startsWith("CREATE OR REPLACE FUNCTION")).length, 1);
    const triggers = statements.filter((s) => s.startsWith("CREATE TRIGGER"));
    assert.equal(triggers.length, 2);
    for (const trigger of triggers) {
      assert.match(
        trigger,
        /BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON .* FOR EACH STATEMENT/s,
      );
    }
    assert.match(triggers[1]!, /ON "sales"\."odd ""name"""/);
    assert.match(statements[0]!, /ERRCODE = '25006'/);
    assert.match(statements[0]!, /set unfence orders/);
    assert.equal(
      unfenceStatement("prod", "orders"),
      'DROP FUNCTION IF EXISTS "pgshovel_prod"."fence_orders"() CASCADE',
    );
    assert.equal(
      lockStatement(tables),
      'LOCK TABLE "public"."orders", "sales"."odd ""name""" IN SHARE ROW EXCLUSIVE MODE',
    );
  });

  test("a fence covers a set when every one of its tables carries the trigger", () => {
    assert.equal(coversAll(["public.orders", 'sales.odd "name"'], tables), true);
    assert.equal(coversAll(["public.orders"], tables), false);
  });
});

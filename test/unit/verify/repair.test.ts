import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ReplicaTable } from "../../../src/replication/target-schema.js";
import { repairScript } from "../../../src/verify/repair.js";

const TABLE: ReplicaTable = {
  schema: "public",
  name: 'odd "name"',
  identity: ["id", "k"],
  columns: [
    { name: "id", type: "bigint" },
    { name: "k", type: "text" },
    { name: "v", type: "text" },
    { name: "j", type: "json" },
  ],
};

describe("repairScript", () => {
  test("one transaction: deletes, updates, inserts; quoted names, typed literals, NULL kept", () => {
    const script = repairScript(
      [
        {
          table: TABLE,
          differences: [
            {
              kind: "missing",
              key: { id: "1", k: "a" },
              source: ["1", "a", "it's \\ here", "null"],
            },
            { kind: "extra", key: { id: "2", k: "b'" } },
            { kind: "different", key: { id: "3", k: "c" }, source: ["3", "c", null, "{}"] },
          ],
        },
      ],
      ["a header"],
    );
    assert.deepEqual([script.deleted, script.updated, script.inserted], [1, 1, 1]);
    assert.equal(
      script.sql,
      [
        "-- a header",
        "BEGIN;",
        "SET LOCAL session_replication_role = replica;",
        "SET LOCAL standard_conforming_strings = on;",
        "SET LOCAL DateStyle = 'ISO, MDY';",
        "SET LOCAL IntervalStyle = 'postgres';",
        "SET LOCAL TimeZone = 'UTC';",
        '-- public.odd "name": 1 extra, 1 different, 1 missing on the target',
        `DELETE FROM "public"."odd ""name""" WHERE "id" = CAST('2' AS bigint) AND "k" = CAST('b''' AS text);`,
        `UPDATE "public"."odd ""name""" SET "v" = NULL, "j" = CAST('{}' AS json) WHERE "id" = CAST('3' AS bigint) AND "k" = CAST('c' AS text);`,
        `INSERT INTO "public"."odd ""name""" ("id", "k", "v", "j") VALUES (CAST('1' AS bigint), CAST('a' AS text), CAST('it''s \\ here' AS text), CAST('null' AS json));`,
        "COMMIT;",
        "",
      ].join("\n"),
    );
  });

  test("nothing to repair: an empty transaction", () => {
    const script = repairScript([]);
    assert.match(script.sql, /^BEGIN;\n(SET LOCAL .*\n)+COMMIT;\n$/);
  });
});

/**
 * The SQL that attaches a table to the C capture function: its columns view and its three
 * statement triggers, whose arguments are in the order ext/pgshovel_capture reads them.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { nativeTriggersSql } from "../../../src/capture/native.js";
import type { CaptureSpec } from "../../../src/capture/spec.js";
import { packedHeaders } from "../../../src/capture/statement-sql.js";

const spec: CaptureSpec = {
  cluster: "c1",
  set: "s1",
  configVersion: 7,
  mode: "statement",
  old: "key",
  native: true,
  queue: {
    name: "pgshovel_c1_s1",
    id: 5,
    dataPrefix: "pgq.event_5",
    tables: 3,
    eventSeq: "pgq.event_5_id_seq",
  },
  table: {
    schema: "app",
    name: "it's",
    relid: 16384,
    primary_keys: ["id"],
    columns: ["id", "name", "flag"],
    columnTypes: [
      { name: "id", typeOid: 23, type: "integer" },
      { name: "name", typeOid: 25, type: "text" },
      { name: "flag", typeOid: 16, type: "boolean" },
    ],
  },
};

/** The string literals of a trigger's argument list, unquoted. */
function argumentsOf(sql: string): string[] {
  const list = /capture_statement\((.*)\)$/s.exec(sql)?.[1] ?? "";
  return [...list.matchAll(/'((?:[^']|'')*)'/g)].map((m) => m[1]!.replaceAll("''", "'"));
}

describe("capture: the C function's triggers", () => {
  const [view, ...triggers] = nativeTriggersSql(spec, `app."it's"`);

  test("a view over the monitored columns, named as the capture function", () => {
    assert.equal(
      view,
      `CREATE VIEW "pgshovel_c1"."capture_s1_16384" AS SELECT "id", "name", "flag" FROM app."it's" WHERE false`,
    );
  });

  test("one statement trigger per operation, with the transition tables it reads", () => {
    assert.equal(triggers.length, 3);
    assert.match(
      triggers[0]!,
      /^CREATE TRIGGER "pgs_c1_s1_i"\s+AFTER INSERT ON app."it's" REFERENCING NEW TABLE AS pgs_new\s+FOR EACH STATEMENT EXECUTE FUNCTION pgshovel_capture\.capture_statement\(/,
    );
    assert.match(
      triggers[1]!,
      /AFTER UPDATE ON .* REFERENCING OLD TABLE AS pgs_old NEW TABLE AS pgs_new/,
    );
    assert.match(triggers[2]!, /AFTER DELETE ON .* REFERENCING OLD TABLE AS pgs_old\s/);
  });

  test("the arguments: queue, event fields, header, old image, kinds (identity upper case), columns", () => {
    const headers = packedHeaders(spec);
    for (const [i, op] of (["INSERT", "UPDATE", "DELETE"] as const).entries()) {
      assert.deepEqual(argumentsOf(triggers[i]!), [
        "pgshovel_c1_s1",
        "5",
        "pgq.event_5",
        "pgq.event_5_id_seq",
        "app",
        "it's",
        "7",
        '["id"]',
        `${op} packed`,
        JSON.stringify(headers[op]),
        "key",
        "Ntb",
        "id",
        "name",
        "flag",
      ]);
    }
    // under old: key a DELETE's header names the identity only, an UPDATE's carries the mask
    assert.deepEqual(headers.DELETE.old, [["id", "n"]]);
    assert.equal(headers.UPDATE.mask, true);
  });
});

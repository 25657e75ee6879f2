import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseDuration } from "../../../src/cli/options.js";
import { checkClusterName, checkSetName, dbNames } from "../../../src/config/names.js";
import { hidePassword, parseSetConfig } from "../../../src/config/set-config.js";
import { isPgshovelError } from "../../../src/errors.js";
import { compareVersions } from "../../../src/version.js";

describe("set configuration parsing", () => {
  test("applies defaults and accepts JSON as well as YAML", () => {
    const yaml = parseSetConfig(
      "database:\n  dsn: postgresql://a@h/db\ntables:\n  - name: t\n",
      "f.yaml",
    );
    assert.deepEqual(yaml, {
      database: { dsn: "postgresql://a@h/db" },
      tables: [{ name: "t", schema: "public" }],
    });
    const json = parseSetConfig(
      '{"database":{"dsn":"postgresql://a@h/db"},"tables":[{"name":"t","columns":["x"]}]}',
      "f.json",
    );
    assert.deepEqual(json.tables, [{ name: "t", schema: "public", columns: ["x"] }]);
  });

  const rejects = (text: string, pattern: RegExp) =>
    assert.throws(
      () => parseSetConfig(text, "set.yaml"),
      (error: unknown) => isPgshovelError(error, "INVALID_ARGUMENT") && pattern.test(error.message),
    );

  test("names the unknown key of a typo", () => {
    rejects(
      "database:\n  dsn: x\ntables:\n  - name: t\n    primary_key: [id]\n",
      /tables\.0: unknown key\(s\) "primary_key"/,
    );
  });
  test("says where the YAML is broken", () =>
    rejects("database: [\n", /set\.yaml: invalid YAML at line \d+, column \d+/));
  test("refuses an empty table list", () =>
    rejects("database:\n  dsn: x\ntables: []\n", /tables: must list at least one table/));
  test("refuses a table listed twice", () =>
    rejects(
      "database:\n  dsn: x\ntables:\n  - name: t\n  - name: t\n    schema: public\n",
      /table public\.t is listed twice/,
    ));
  test("refuses a missing database", () => rejects("tables:\n  - name: t\n", /database/));
});

describe("names", () => {
  test("set and cluster names are plain identifiers of bounded length", () => {
    assert.equal(checkSetName("orders_2"), "orders_2");
    for (const bad of ["Orders", "a-b", "", "x".repeat(41), "a;drop"]) {
      assert.throws(() => checkSetName(bad), /invalid set name/);
    }
    assert.throws(() => checkClusterName("x".repeat(17)), /invalid cluster name/);
  });
  test("derived database names fit PostgreSQL's 63 bytes at the longest", () => {
    const cluster = "c".repeat(16);
    const set = "s".repeat(40);
    assert.ok(dbNames.truncateTrigger(cluster, set).length <= 63);
    assert.ok(dbNames.captureFunction(set, 4294967295).length <= 63);
  });
});

describe("passwords", () => {
  test("are hidden in URIs and key/value DSNs", () => {
    assert.equal(
      hidePassword("postgresql://app:s3cret@db:5432/x"),
      "postgresql://app:***@db:5432/x",
    );
    assert.equal(
      hidePassword("postgresql://app@db/x?password=s3cret"),
      "postgresql://app@db/x?password=***",
    );
    assert.equal(hidePassword("host=db password=s3cret user=app"), "host=db password=*** user=app");
    assert.equal(hidePassword("postgresql://app@db/x"), "postgresql://app@db/x");
  });
});

describe("small parsers", () => {
  test("durations", () => {
    assert.equal(parseDuration("10s"), 10_000);
    assert.equal(parseDuration("500ms"), 500);
    assert.equal(parseDuration("2m"), 120_000);
    assert.equal(parseDuration("3"), 3000);
    assert.throws(() => parseDuration("ten"), /not a duration/);
  });
  test("versions compare numerically", () => {
    assert.ok(compareVersions("0.10.0", "0.9.9") > 0);
    assert.equal(compareVersions("1.2", "1.2.0"), 0);
    assert.ok(compareVersions("0.1.0", "1.0.0") < 0);
  });
});

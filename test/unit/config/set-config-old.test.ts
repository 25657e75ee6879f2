import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseSetConfig } from "../../../src/config/set-config.js";
import { isPgshovelError } from "../../../src/errors.js";

const config = (old: string) =>
  `database:\n  dsn: postgresql://a@h/db\ntables:\n  - name: t\n    old: ${old}\n`;

describe("set configuration: old", () => {
  test("takes full or key, and is absent by default", () => {
    assert.equal(parseSetConfig(config("key"), "s.yaml").tables[0]!.old, "key");
    assert.equal(parseSetConfig(config("full"), "s.yaml").tables[0]!.old, "full");
    const plain = parseSetConfig("database:\n  dsn: x\ntables:\n  - name: t\n", "s.yaml");
    assert.equal(plain.tables[0]!.old, undefined);
  });

  test("refuses anything else, naming the path", () => {
    assert.throws(
      () => parseSetConfig(config("changed"), "s.yaml"),
      (error: unknown) =>
        isPgshovelError(error, "INVALID_ARGUMENT") &&
        /tables\.0\.old: must be "full" or "key"/.test(error.message),
    );
  });
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseSetConfig } from "../../../src/config/set-config.js";
import { isPgshovelError } from "../../../src/errors.js";

const config = (capture: string) =>
  `database:\n  dsn: postgresql://a@h/db\ntables:\n  - name: t\n    capture: ${capture}\n`;

describe("set configuration: capture", () => {
  test("takes row or statement, and is absent by default", () => {
    assert.equal(parseSetConfig(config("statement"), "s.yaml").tables[0]!.capture, "statement");
    assert.equal(parseSetConfig(config("row"), "s.yaml").tables[0]!.capture, "row");
    const plain = parseSetConfig("database:\n  dsn: x\ntables:\n  - name: t\n", "s.yaml");
    assert.equal(plain.tables[0]!.capture, undefined);
  });

  test("refuses anything else, naming the path", () => {
    assert.throws(
      () => parseSetConfig(config("bulk"), "s.yaml"),
      (error: unknown) =>
        isPgshovelError(error, "INVALID_ARGUMENT") &&
        /tables\.0\.capture: must be "row" or "statement"/.test(error.message),
    );
  });
});

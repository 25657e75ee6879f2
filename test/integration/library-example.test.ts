/**
 * The library example of docs/library.md, docs/examples/replica-like-consumer.ts, run as a
 * program against a real relay's stream file: it counts each table's mutations in its own
 * database with the position in the same transaction, and a second run resumes after the
 * stored position without counting a batch twice.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import { repoRoot } from "../support/env.js";
import { setupSet, startRelay, stopRelay } from "../support/fixtures.js";
import { createTestDatabase } from "../support/postgres.js";
import { tempDirFor, waitForMutations } from "./relay-support.js";

const run = promisify(execFile);
const dir = tempDirFor("pgshovel-library-example-");
const EXAMPLE = join(repoRoot, "dist", "docs", "examples", "replica-like-consumer.js");

describe("docs/examples/replica-like-consumer.ts", () => {
  test("counts every mutation once, across a restart from its stored position", async () => {
    const fixture = await setupSet({
      tables: ["t"],
      prepare: (db) => db.query("CREATE TABLE t (id int PRIMARY KEY, v text)").then(() => {}),
    });
    const counts = await createTestDatabase("example_counts", { pgq: false });
    const path = join(dir(), "stream.jsonl");
    const relay = startRelay(fixture, ["--sink", `file:${path}`]);
    const example = async () => {
      const { stdout } = await run(process.execPath, [EXAMPLE, counts.dsn, path]);
      return JSON.parse(stdout) as { delivered: number; duplicates: number };
    };
    const counted = async () =>
      (
        await counts.query<{ mutations: string }>("SELECT mutations::text FROM mutation_counts")
      ).map((r) => Number(r.mutations));
    try {
      for (let i = 0; i < 5; i++) {
        await fixture.db.query(
          `INSERT INTO t SELECT g, 'x' FROM generate_series(${i * 10 + 1}, ${i * 10 + 10}) g`,
        );
      }
      await waitForMutations(path, 50, undefined, 60_000, relay);
      const first = await example();
      assert.ok(first.delivered >= 1);
      assert.deepEqual(await counted(), [50]);

      await fixture.db.query("UPDATE t SET v = 'y' WHERE id <= 30");
      await fixture.db.query("DELETE FROM t WHERE id > 40");
      await waitForMutations(path, 90, undefined, 60_000, relay);
      const second = await example();
      assert.ok(second.delivered >= 1, "the new batches");
      assert.equal(second.duplicates, 0, "read from after the stored batch");
      assert.deepEqual(await counted(), [90], "no batch counted twice");
    } finally {
      assert.equal((await stopRelay(relay, 30_000)).code, 0, relay.stderr().slice(-2000));
      await counts.drop();
      await fixture.close();
    }
  });
});

/**
 * `old: key`: UPDATE and DELETE events carry the identity columns and, for an UPDATE, the
 * columns that changed, on either capture path; a replica applying such a stream with
 * BatchApplier ends equal to its source, whether the rows came one to an event (row mode) or packed
 * (statement mode).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { bootstrapFromQueue } from "../../src/replication/queue-replica.js";
import { readEvents, registerConsumer } from "./helpers/admin.js";
import { catchUp, checksum, replicaFixture } from "./replication-support.js";

describe("capture: old: key", () => {
  for (const capture of ["row", "statement"] as const) {
    test(`narrow before-images, and a replica applying them equals its source (capture: ${capture})`, async () => {
      const fixture = await replicaFixture({
        tables: [{ name: "items", schema: "public", old: "key", capture }],
        prepare: async (db) => {
          await db.query(
            "CREATE TABLE items (id int8 PRIMARY KEY, name text, qty int4, note text, at timestamptz)",
          );
          await db.query(
            "INSERT INTO items SELECT g, 'n' || g, g, NULL, '2026-01-01' FROM generate_series(1, 2000) g",
          );
        },
      });
      try {
        await registerConsumer(fixture.source, fixture.queue);
        await bootstrapFromQueue({ ...fixture.replica, createTables: true });
        const db = fixture.source;
        await db.query("UPDATE items SET qty = qty + 1, note = 'x' WHERE id <= 3"); // bulk path
        await db.query("UPDATE items SET note = NULL WHERE id = 1"); // a change to NULL
        await db.query("UPDATE items SET id = id + 1000000 WHERE id <= 500"); // key changes
        await db.query("UPDATE items SET name = 'renamed' WHERE id = 1000002"); // one row
        await db.query("DELETE FROM items WHERE id % 3 = 0");
        await db.query("INSERT INTO items VALUES (7, 'back', 1, 'n', now())");
        await db.query("UPDATE items SET qty = qty * 2 WHERE id % 5 = 0");
        const events = await readEvents(db, fixture.queue);
        const olds = (from: number, to: number) =>
          events
            .slice(from, to)
            .map((e) => e.data.old!)
            .sort((a, b) => Number(a.id) - Number(b.id));
        assert.deepEqual(olds(0, 3), [
          { id: "1", qty: 1, note: null },
          { id: "2", qty: 2, note: null },
          { id: "3", qty: 3, note: null },
        ]);
        assert.deepEqual(olds(3, 4), [{ id: "1", note: "x" }]);
        for (const old of olds(4, 504)) {
          assert.deepEqual(Object.keys(old), ["id"], "a key change: the old key only");
        }
        assert.deepEqual(olds(504, 505), [{ id: "1000002", name: "n2" }]);
        const deleted = events.find((e) => e.type === "DELETE")!;
        assert.deepEqual(Object.keys(deleted.data.old!), ["id"], "a DELETE carries the key only");
        await catchUp(fixture);
        const columns = ["id", "name", "qty", "note", "at"];
        const [src, dst] = await Promise.all(
          [fixture.source, fixture.target].map((d) => checksum(d, "items", columns, ["id"])),
        );
        assert.deepEqual(dst, src, "target equals source");
      } finally {
        await fixture.close();
      }
    });
  }
});

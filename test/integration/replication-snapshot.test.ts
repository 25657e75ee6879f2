/** The replica's visibility rule agrees with PostgreSQL's own pg_visible_in_snapshot. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatSnapshot, parseSnapshot, visible } from "../../src/stream/snapshot.js";
import type { Snapshot } from "../../src/stream/types.js";
import { createTestDatabase } from "../support/postgres.js";

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("snapshot visibility", () => {
  test("matches pg_visible_in_snapshot on generated snapshots and txids", async () => {
    const db = await createTestDatabase("repl_snap", { pgq: false });
    try {
      const next = random(20260101);
      const int = (n: number) => BigInt(Math.floor(next() * n));
      const snapshots: string[] = [];
      const txids: string[] = [];
      const ours: boolean[] = [];
      for (let i = 0; i < 400; i++) {
        // small txids, and txids past 2^32 (epochs) up to near the 64-bit range
        const base = [3n, 4_294_967_000n, 9_000_000_000_000_000_000n][i % 3]!;
        const xmin = base + int(1000);
        const xmax = xmin + int(i % 7 === 0 ? 1 : 40);
        const xip: bigint[] = [];
        for (let x = xmin; x < xmax; x++) if (next() < 0.3) xip.push(x);
        const snapshot: Snapshot = { xmin, xmax, xip };
        const text = formatSnapshot(snapshot);
        assert.deepEqual(parseSnapshot(text), snapshot);
        for (let j = 0; j < 3; j++) {
          const txid = xmin - 3n + int(Number(xmax - xmin) + 6);
          snapshots.push(text);
          txids.push(txid.toString());
          ours.push(visible(txid, snapshot));
        }
      }
      const rows = await db.query<{ visible: boolean }>(
        `SELECT pg_visible_in_snapshot(t::xid8, s::pg_snapshot) AS visible
           FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(t, s, n) ORDER BY n`,
        [txids, snapshots],
      );
      assert.equal(rows.length, ours.length);
      const disagreements = rows
        .map((row, i) => ({
          postgres: row.visible,
          ours: ours[i],
          txid: txids[i],
          s: snapshots[i],
        }))
        .filter((c) => c.postgres !== c.ours);
      assert.deepEqual(disagreements, []);
      assert.ok(ours.some(Boolean) && ours.some((v) => !v), "both outcomes are exercised");
    } finally {
      await db.drop();
    }
  });

  test("a transaction running when the snapshot was taken is not visible in it", async () => {
    const db = await createTestDatabase("repl_snap_live", { pgq: false });
    const running = await db.connect();
    try {
      await db.query("CREATE TABLE t (id int)");
      const [before] = await db.query<{ txid: string }>(
        "INSERT INTO t VALUES (1) RETURNING pg_current_xact_id()::text AS txid",
      );
      await running.query("BEGIN");
      const { rows } = await running.query<{ txid: string }>(
        "INSERT INTO t VALUES (2) RETURNING pg_current_xact_id()::text AS txid",
      );
      const [taken] = await db.query<{ s: string }>("SELECT pg_current_snapshot()::text AS s");
      await running.query("COMMIT");
      const [after] = await db.query<{ txid: string }>(
        "INSERT INTO t VALUES (3) RETURNING pg_current_xact_id()::text AS txid",
      );
      const snapshot = parseSnapshot(taken!.s);
      const cases = [before!.txid, rows[0]!.txid, after!.txid];
      assert.deepEqual(
        cases.map((txid) => visible(BigInt(txid), snapshot)),
        [true, false, false],
      );
      const [check] = await db.query<{ v: boolean[] }>(
        "SELECT array_agg(pg_visible_in_snapshot(t::xid8, $2::pg_snapshot) ORDER BY n) AS v FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n)",
        [cases, taken!.s],
      );
      assert.deepEqual(check!.v, [true, false, false]);
    } finally {
      await running.end().catch(() => {});
      await db.drop();
    }
  });
});

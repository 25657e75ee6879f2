/**
 * A quick apply figure for the replica (not part of `make bench`):
 * `node dist/bench/replication-apply.js [--rows N]` with the stack's environment.
 *
 * 1. The applier alone on generated mutations (INSERT, UPDATE, DELETE runs), as it ships
 *    (COPY, and a staging table for UPDATE and DELETE) and with every run over arrays,
 *    compared with a hand-written staging table (analyzed before each statement) and
 *    one statement per row.
 * 2. End to end from a set's PgQ queue: the source writes N inserts and N updates,
 *    then `applyQueueBatches` reads, decodes and applies them.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { BatchApplier } from "../src/replication/apply.js";
import { applyQueueBatches, bootstrapFromQueue } from "../src/replication/queue-replica.js";
import { DEFAULT_RUN_LIMITS } from "../src/replication/runs.js";
import type { ReplicaTable } from "../src/replication/target-schema.js";
import { installReplicaState, recordCopied } from "../src/replication/target-state.js";
import { parseSnapshot } from "../src/stream/snapshot.js";
import type { Begin, Mutation, Operation, Row } from "../src/stream/types.js";
import { setupSet } from "../test/support/fixtures.js";
import { createTestDatabase, type TestDatabase } from "../test/support/postgres.js";

const TABLE: ReplicaTable = {
  schema: "public",
  name: "t",
  identity: ["id"],
  columns: [
    { name: "id", type: "bigint" },
    { name: "name", type: "text" },
    { name: "qty", type: "integer" },
    { name: "note", type: "text" },
  ],
};
const DDL = "CREATE TABLE t (id int8 PRIMARY KEY, name text, qty int4, note text)";
const RUN = 5_000;
const TICK = { id: 1n, snapshot: parseSnapshot("1:1:"), time: "2026-01-01T00:00:00.000000Z" };
const BEGIN: Begin = { start: TICK, end: TICK };

function row(i: number, round: number): Row {
  return {
    id: String(i),
    name: `name-${i}-${round}`,
    qty: (i * 7 + round) % 1000,
    note: "n".repeat(40),
  };
}

function mutation(operation: Operation, i: number): Mutation {
  return {
    id: BigInt(i),
    schema: "public",
    table: "t",
    operation,
    identity: ["id"],
    old: operation === "INSERT" ? null : row(i, 0),
    new: operation === "DELETE" ? null : row(i, 1),
    transaction: 100n,
    time: TICK.time,
  };
}

async function* generate(operation: Operation, rows: number): AsyncGenerator<Mutation> {
  for (let i = 1; i <= rows; i++) yield mutation(operation, i);
}

const rates = new Map<string, number[]>();

async function timed(what: string, rows: number, body: () => Promise<unknown>): Promise<void> {
  const started = process.hrtime.bigint();
  await body();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  rates.set(what, [...(rates.get(what) ?? []), rows / seconds]);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** A fresh target with table t recorded as copied, so that nothing is skipped. */
async function freshTarget(): Promise<{ db: TestDatabase; client: pg.Client }> {
  const db = await createTestDatabase("bench_repl", { pgq: false });
  await db.query(DDL);
  const client = await db.connect();
  await installReplicaState(client, "bench");
  await recordCopied(client, "bench", "s", TABLE, parseSnapshot("1:1:"), 0n);
  return { db, client };
}

/**
 * The applier itself: every run over arrays, or (as it ships) INSERT runs through COPY and
 * UPDATE and DELETE runs through a staging table.
 */
async function applier(rows: number, copyInserts: boolean): Promise<void> {
  const { db, client } = await freshTarget();
  try {
    const limits = copyInserts
      ? DEFAULT_RUN_LIMITS
      : { ...DEFAULT_RUN_LIMITS, copyInsertsFrom: Infinity, stageFrom: Infinity };
    const applier = new BatchApplier(client, {
      cluster: "bench",
      set: "s",
      tables: [TABLE],
      limits,
    });
    let id = 1n;
    for (const operation of ["INSERT", "UPDATE", "DELETE"] as const) {
      const label = copyInserts
        ? operation === "INSERT"
          ? "applier: COPY straight into the table, INSERT"
          : `applier: COPY into a staging table, ${operation}`
        : `applier: arrays (unnest), ${operation}`;
      const batch = {
        node: "00000000-0000-4000-8000-000000000000",
        id: id++,
        begin: BEGIN,
        mutations: generate(operation, rows),
      };
      await timed(label, rows, () => applier.apply(batch));
    }
  } finally {
    await client.end();
    await db.drop();
  }
}

function copyText(values: (string | number | boolean | null)[]): string {
  return `${values
    .map((v) =>
      v === null
        ? "\\N"
        : String(v).replace(
            /[\\\n\r\t]/g,
            (c) => ({ "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" })[c]!,
          ),
    )
    .join("\t")}\n`;
}

/** The alternative: each run copied into a temporary table, then one statement from it. */
async function staging(rows: number): Promise<void> {
  const { db, client } = await freshTarget();
  try {
    await client.query(
      "CREATE TEMP TABLE stage (id int8, name text, qty int4, note text, old_id int8)",
    );
    const statements: Record<string, string> = {
      INSERT: "INSERT INTO t SELECT id, name, qty, note FROM stage",
      UPDATE:
        "UPDATE t SET id = s.id, name = s.name, qty = s.qty, note = s.note FROM stage s WHERE t.id = s.old_id",
      DELETE: "DELETE FROM t USING stage s WHERE t.id = s.old_id",
    };
    for (const operation of ["INSERT", "UPDATE", "DELETE"] as const) {
      await timed(`hand-written staging table, ${operation}`, rows, async () => {
        await client.query("BEGIN");
        for (let first = 1; first <= rows; first += RUN) {
          const lines: string[] = [];
          for (let i = first; i < Math.min(first + RUN, rows + 1); i++) {
            const m = mutation(operation, i);
            const r = m.new ?? { id: null, name: null, qty: null, note: null };
            lines.push(copyText([r.id!, r.name!, r.qty!, r.note!, m.old?.id ?? null]));
          }
          await client.query("TRUNCATE stage");
          await pipeline(
            Readable.from([lines.join("")]),
            client.query(copyFrom("COPY stage FROM STDIN")),
          );
          // without statistics the planner joins the staging table badly
          if (operation !== "INSERT") await client.query("ANALYZE stage");
          const result = await client.query(statements[operation]!);
          if (result.rowCount !== lines.length)
            throw new Error(`${operation}: ${result.rowCount} rows`);
        }
        await client.query("COMMIT");
      });
    }
  } finally {
    await client.end();
    await db.drop();
  }
}

/** For scale: one prepared statement per row. */
async function rowByRow(rows: number): Promise<void> {
  const { db, client } = await freshTarget();
  try {
    await timed("one statement per row, INSERT", rows, async () => {
      await client.query("BEGIN");
      for (let i = 1; i <= rows; i++) {
        const r = row(i, 1);
        await client.query({
          name: "ins",
          text: "INSERT INTO t VALUES ($1, $2, $3, $4)",
          values: [r.id, r.name, r.qty, r.note],
        });
      }
      await client.query("COMMIT");
    });
  } finally {
    await client.end();
    await db.drop();
  }
}

/** From the queue: the source's trigger, PgQ, decoding and the applier together. */
async function endToEnd(rows: number): Promise<void> {
  const set = await setupSet({
    prefix: "bench_repl_src",
    tables: ["t"],
    prepare: (db) => db.query(DDL).then(() => {}),
  });
  const target = await createTestDatabase("bench_repl_dst", { pgq: false });
  try {
    const replica = {
      sourceDsn: set.db.dsn,
      targetDsn: target.dsn,
      cluster: set.cluster,
      set: "s",
      tables: [{ name: "t", schema: "public" }],
    };
    await bootstrapFromQueue({ ...replica, createTables: true });
    await set.db.query(
      `INSERT INTO t SELECT g, 'name-' || g, g % 1000, repeat('n', 40) FROM generate_series(1, ${rows / 2}) g`,
    );
    await set.db.query("UPDATE t SET qty = qty + 1, name = name || '!'");
    await set.db.query("SELECT pgq.force_tick($1), pgq.ticker($1)", [`pgshovel_${set.cluster}_s`]);
    await timed("end to end from PgQ (inserts, then updates)", rows, () =>
      applyQueueBatches(replica),
    );
  } finally {
    await target.drop();
    await set.close();
  }
}

const { values } = parseArgs({
  options: {
    rows: { type: "string", default: "200000" },
    rounds: { type: "string", default: "3" },
  },
});
const rows = Number(values.rows);
console.log(
  `replica apply: ${rows.toLocaleString("en")} mutations per line, runs of ${RUN}, median of ${values.rounds} alternating rounds`,
);
for (let round = 0; round < Number(values.rounds); round++) {
  // alternate which goes first: on a shared machine the order would weigh otherwise
  for (const copyInserts of round % 2 ? [true, false] : [false, true]) {
    await applier(rows, copyInserts);
  }
  await staging(rows);
  await endToEnd(rows);
}
await rowByRow(Math.min(rows, 20_000));
for (const [what, list] of rates) {
  console.log(
    `${what.padEnd(48)} ${Math.round(median(list)).toLocaleString("en").padStart(10)} rows/s`,
  );
}

/**
 * A consumer of a pgshovel stream file that keeps, in its own PostgreSQL database, how many
 * mutations each table has seen, and stores its stream position in the same transaction as
 * the counts: stopped or killed anywhere, it resumes after the last batch it committed and
 * never counts a batch twice.
 *
 *   node dist/docs/examples/replica-like-consumer.js postgresql://…/counts orders.jsonl
 */
import pg from "pg";
import { type BatchHandler, readStreamFile, StreamingAssembler } from "pgshovel";

const [dsn, path] = process.argv.slice(2);
if (dsn === undefined || path === undefined) throw new Error("usage: DSN STREAM-FILE");
const db = new pg.Client({ connectionString: dsn });
await db.connect();
await db.query(`CREATE TABLE IF NOT EXISTS mutation_counts (
                  table_name text PRIMARY KEY, mutations bigint NOT NULL)`);
await db.query(`CREATE TABLE IF NOT EXISTS stream_progress (
                  node uuid PRIMARY KEY, batch_id bigint NOT NULL, position bigint NOT NULL)`);

// Where the last run stopped: the batch to skip up to, and the byte to read on from.
const stored = await db.query<{ node: string; batch_id: string; position: string }>(
  "SELECT node, batch_id::text, position::text FROM stream_progress",
);
const row = stored.rows[0];
const counts = new Map<string, number>();

const handler: BatchHandler = {
  async begin() {
    counts.clear();
    return "apply";
  },
  mutation(mutation) {
    const table = `${mutation.schema}.${mutation.table}`;
    counts.set(table, (counts.get(table) ?? 0) + 1);
  },
  async commit(batch, position) {
    // The counts and the position commit together, or neither does.
    await db.query("BEGIN");
    for (const [table, n] of counts) {
      await db.query(
        `INSERT INTO mutation_counts VALUES ($1, $2)
         ON CONFLICT (table_name) DO UPDATE SET mutations = mutation_counts.mutations + $2`,
        [table, n],
      );
    }
    await db.query(
      `INSERT INTO stream_progress VALUES ($1, $2, $3)
       ON CONFLICT (node) DO UPDATE SET batch_id = $2, position = $3`,
      [batch.node, batch.id.toString(), String(position)],
    );
    await db.query("COMMIT");
  },
  rollback() {
    counts.clear(); // the batch comes again whole
  },
};

const assembler = new StreamingAssembler(handler, {
  delivered: row === undefined ? [] : [[row.node, BigInt(row.batch_id)]],
  midStream: row !== undefined,
});
await assembler.consume(
  readStreamFile(path, { codec: "json", ...(row === undefined ? {} : { from: BigInt(row.position) }) }),
);
console.log(JSON.stringify(assembler.stats));
await db.end();

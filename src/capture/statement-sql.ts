import { ident, literal } from "../config/names.js";
import { type Field, PACK_ROWS, PACKED_SUFFIX, type PackedHeader } from "./packed.js";
import { fieldKind, identityText, imageExpression } from "./row-json.js";
import {
  type CaptureSpec,
  eventExtras,
  eventTableDispatch,
  identityColumns,
  keyChangeSetting,
  qualified,
  queueTableBlock,
} from "./spec.js";

/**
 * PL/pgSQL plans each statement of the function once per session and keeps that plan, sized
 * for the transition tables it first saw: a hash join sized for 200 000 rows costs
 * milliseconds to set up for one row, and a nested loop planned for one row is quadratic
 * for 200 000. Small and large UPDATE statements therefore run two queries, each keeping a
 * plan made for its kind: below SMALL rows a nested loop costs at most SMALL² comparisons.
 */
const SMALL = 16;

/** The old fields of a packed DELETE: every monitored column, or under `old: key` the identity's, in the table's order. */
export function deletedFields(spec: CaptureSpec): CaptureSpec["table"]["columnTypes"] {
  const { table } = spec;
  return spec.old === "key"
    ? table.columnTypes.filter((c) => table.primary_keys.includes(c.name))
    : table.columnTypes;
}

/** The header line of each operation's packed events (docs/capture.md, "Packed events"). */
export function packedHeaders(
  spec: CaptureSpec,
): Record<"INSERT" | "UPDATE" | "DELETE", PackedHeader> {
  const cols = spec.table.columnTypes;
  const fields = (of: typeof cols): Field[] => of.map((c) => [c.name, fieldKind(c)]);
  return {
    INSERT: { old: null, new: fields(cols) },
    DELETE: { old: fields(deletedFields(spec)), new: null },
    UPDATE: { old: fields(cols), new: fields(cols), ...(spec.old === "key" ? { mask: true } : {}) },
  };
}

/**
 * The statement-level half of a capture function: every event of an INSERT, UPDATE or
 * DELETE statement built from its transition tables (`pgs_old`, `pgs_new`) in one
 * INSERT … SELECT into the queue's current event table.
 *
 * It keeps the rules of `pgq.insert_event_raw`: the current table is read from
 * `pgq.queue.queue_cur_table` when the statement's events are written (as that function
 * reads it per event), every event takes `nextval` of the queue's event sequence (which is
 * also how the ticker sees new events), `ev_txid` is the table's default `txid_current()`,
 * `ev_time` is `now()`. A queue whose inserts are disabled or limited per transaction, or
 * whose current table is not one the function knows, goes through `insert_event_raw` per
 * event, so PgQ enforces those rules itself.
 */
export function statementBranch(spec: CaptureSpec): string {
  const { table, queue } = spec;
  const cols = table.columnTypes;
  const identity = identityColumns(table);
  const extras = eventExtras(spec);
  const seq = `pg_catalog.nextval(${literal(queue.eventSeq)}::pg_catalog.regclass)`;
  // Each row takes its own event id, as a one-row event would; the rows are then packed,
  // PACK_ROWS ids at most to an event (docs/capture.md, "Packed events").
  const rowsOf = (record: string, from: string) =>
    `SELECT ${seq} AS id, ${record}::pg_catalog.text AS line FROM ${from}`;
  const oldFields = deletedFields(spec);
  const record = (values: string[]) => `ROW(${values.join(", ")})`;
  // A text field as the one-row event has it, `::text` (which drops a char(n) value's padding,
  // where the type's output keeps it): the two paths' values are the same by construction.
  const value = (row: string, c: (typeof cols)[number]) =>
    fieldKind(c) === "t" ? `${row}.${ident(c.name)}::pg_catalog.text` : `${row}.${ident(c.name)}`;
  const values = (row: string, of: typeof cols) => of.map((c) => value(row, c));
  const inserts = rowsOf(record(values("n", cols)), "pgs_new n");
  const deletes = rowsOf(record(values("o", oldFields)), "pgs_old o");
  // An UPDATE under `old: key`: a presence mask, then the old values (NULL where left out),
  // then the new row.
  const changed = (c: (typeof cols)[number]) =>
    `${imageExpression("o", [c])} OPERATOR(pg_catalog.*<>) ${imageExpression("n", [c])}`;
  const isKey = (c: (typeof cols)[number]) => table.primary_keys.includes(c.name);
  const updateRecord =
    spec.old === "key"
      ? record([
          `(${cols.map((c) => (isKey(c) ? "'1'" : `CASE WHEN ${changed(c)} THEN '1' ELSE '0' END`)).join(" OPERATOR(pg_catalog.||) ")})`,
          ...cols.map((c) =>
            isKey(c) ? value("o", c) : `CASE WHEN ${changed(c)} THEN ${value("o", c)} END`,
          ),
          ...values("n", cols),
        ])
      : record([...values("o", cols), ...values("n", cols)]);
  const headers = packedHeaders(spec);
  // Transition tables do not pair rows: an UPDATE pairs them by identity. That is right for
  // every row whose key did not change (its key names one row before and after); the rows
  // whose key changed were captured one by one by the row trigger, and are left out here.
  // Compared under "C": equality is the same bytes as under any deterministic collation,
  // and a merge join's sort by strcoll cost more than the rest of the join.
  const keyJoin = identity
    .map(
      (c) =>
        `o.${ident(c.name)}::pg_catalog.text COLLATE pg_catalog."C" OPERATOR(pg_catalog.=) n.${ident(c.name)}::pg_catalog.text COLLATE pg_catalog."C"`,
    )
    .join(" AND ");
  // A FULL JOIN, filtered back to the matched pairs through COALESCE (which the planner cannot
  // use to make it an inner join), because PL/pgSQL keeps the plan it made for the first
  // statement: a nested loop planned for one row would be quadratic for the next bulk
  // UPDATE. A full join can only be a hash or merge join, fine at any size.
  const updates = `${rowsOf(
    updateRecord,
    `(SELECT true AS "pgshovel paired", * FROM pgs_old) o FULL JOIN (SELECT true AS "pgshovel paired", * FROM pgs_new) n ON ${keyJoin}`,
  )}
     WHERE COALESCE(o."pgshovel paired", false) AND COALESCE(n."pgshovel paired", false)
       AND ${imageExpression("o", cols)} OPERATOR(pg_catalog.*<>) ${imageExpression("n", cols)}`;
  // For a few rows the plain join, planned once for the first small statement (a nested
  // loop over a handful of rows sets up nothing): what a single-row UPDATE pays.
  const smallUpdates = `${rowsOf(updateRecord, `pgs_old o JOIN pgs_new n ON ${keyJoin}`)}
     WHERE ${imageExpression("o", cols)} OPERATOR(pg_catalog.*<>) ${imageExpression("n", cols)}`;
  // CASE: only a one-row event's ev_data is JSON, and only CASE fixes what is evaluated first.
  const movedKey = `CASE WHEN ev.ev_type = 'UPDATE' THEN pg_catalog.json_build_array(${identity
    .map((c) => `(ev.ev_data::pg_catalog.json -> 'new') ->> ${literal(c.name)}`)
    .join(", ")})::pg_catalog.text END`;
  const moved = `SELECT FROM ${qualified(queue.dataPrefix)} ev
      WHERE ev.ev_txid = pg_catalog.txid_current() AND ev.ev_id >= $1::int8
        AND ev.ev_type = 'UPDATE' AND ev.ev_extra1 = ${literal(table.schema)} AND ev.ev_extra2 = ${literal(table.name)}
        AND ${movedKey} OPERATOR(pg_catalog.=) ${identityText("n", identity)}`;
  const updatesExceptMoved = `${updates}
       AND NOT EXISTS (${moved})`;
  // `dynamic`: planned on each call (EXECUTE … USING first_key_change), for the rare statement
  // with key changes, whose anti-join's best plan depends on how many keys changed.
  const dispatch = (op: keyof typeof headers, rows: string, dynamic = false) => {
    const run = (sql: string) =>
      dynamic ? `EXECUTE ${literal(sql)} USING first_key_change;` : `${sql};`;
    const header = literal(`${JSON.stringify(headers[op])}\n`);
    const events = `SELECT pg_catalog.min(p.id) AS ev_id, ${literal(op + PACKED_SUFFIX)} AS ev_type,
          ${header} OPERATOR(pg_catalog.||) pg_catalog.string_agg(p.id::pg_catalog.text OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) p.line, E'\\n') AS ev_data
        FROM (${rows}) p GROUP BY p.id OPERATOR(pg_catalog./) ${PACK_ROWS}`;
    const viaPgq = run(
      `SELECT pgq.insert_event_raw(${literal(queue.name)}, e.ev_id, pg_catalog.now(), NULL, NULL, e.ev_type, e.ev_data, ${extras}) FROM (${events}) e`,
    ).replace(/^SELECT /, "PERFORM ");
    return eventTableDispatch(
      queue,
      viaPgq,
      (target) =>
        run(`INSERT INTO ${target} (ev_id, ev_time, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4)
        SELECT e.ev_id, pg_catalog.now(), e.ev_type, e.ev_data, ${extras}
          FROM (${events}) e`),
      "      ",
    ).trimStart();
  };
  const setting = literal(keyChangeSetting(spec));
  return `
  IF TG_LEVEL = 'STATEMENT' THEN
${queueTableBlock(queue, "    ")}
    IF TG_OP = 'INSERT' THEN
      ${dispatch("INSERT", inserts)}
    ELSIF TG_OP = 'DELETE' THEN
      ${dispatch("DELETE", deletes)}
    ELSE
      first_key_change := pg_catalog.current_setting(${setting}, true);
      IF COALESCE(first_key_change, '') <> '' THEN
        PERFORM pg_catalog.set_config(${setting}, '', true);
        ${dispatch("UPDATE", updatesExceptMoved, true)}
      ELSIF (SELECT pg_catalog.count(*) FROM (SELECT FROM pgs_new LIMIT ${SMALL}) s) < ${SMALL} THEN
        ${dispatch("UPDATE", smallUpdates)}
      ELSE
        ${dispatch("UPDATE", updates)}
      END IF;
    END IF;
    RETURN NULL;
  END IF;`;
}

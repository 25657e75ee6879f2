import { ident, literal } from "../config/names.js";
import { eventDataExpression, identityText, imageExpression, rowExpression } from "./row-json.js";
import {
  type CaptureSpec,
  eventExtras,
  identityColumns,
  keyChangeSetting,
  oldImageExpression,
  qualified,
} from "./spec.js";

/**
 * PL/pgSQL plans each statement of the function once per session and keeps that plan, sized
 * for the transition tables it first saw: a hash join sized for 200 000 rows costs
 * milliseconds to set up for one row, and a nested loop planned for one row is quadratic
 * for 200 000. Small and large UPDATE statements therefore run two queries, each keeping a
 * plan made for its kind: below SMALL rows a nested loop costs at most SMALL² comparisons.
 */
const SMALL = 16;

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
  const newRow = (row: string) => rowExpression(row, cols);
  const inserts = `SELECT 'INSERT' AS ev_type, ${eventDataExpression(null, newRow("n"))} AS ev_data FROM pgs_new n`;
  const deletes = `SELECT 'DELETE' AS ev_type, ${eventDataExpression(oldImageExpression(spec, "o"), null)} AS ev_data FROM pgs_old o`;
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
  const updates = `SELECT 'UPDATE' AS ev_type, ${eventDataExpression(oldImageExpression(spec, "o", "n"), newRow("n"))} AS ev_data
      FROM (SELECT true AS "pgshovel paired", * FROM pgs_old) o FULL JOIN (SELECT true AS "pgshovel paired", * FROM pgs_new) n ON ${keyJoin}
     WHERE COALESCE(o."pgshovel paired", false) AND COALESCE(n."pgshovel paired", false)
       AND ${imageExpression("o", cols)} OPERATOR(pg_catalog.*<>) ${imageExpression("n", cols)}`;
  // For a few rows the plain join, planned once for the first small statement (a nested
  // loop over a handful of rows sets up nothing): what a single-row UPDATE pays.
  const smallUpdates = `SELECT 'UPDATE' AS ev_type, ${eventDataExpression(oldImageExpression(spec, "o", "n"), newRow("n"))} AS ev_data
      FROM pgs_old o JOIN pgs_new n ON ${keyJoin}
     WHERE ${imageExpression("o", cols)} OPERATOR(pg_catalog.*<>) ${imageExpression("n", cols)}`;
  const movedKey = `pg_catalog.json_build_array(${identity
    .map((c) => `(ev.ev_data::pg_catalog.json -> 'new') ->> ${literal(c.name)}`)
    .join(", ")})::pg_catalog.text`;
  const moved = `SELECT FROM ${qualified(queue.dataPrefix)} ev
      WHERE ev.ev_txid = pg_catalog.txid_current() AND ev.ev_id >= $1::int8
        AND ev.ev_type = 'UPDATE' AND ev.ev_extra1 = ${literal(table.schema)} AND ev.ev_extra2 = ${literal(table.name)}
        AND ${movedKey} OPERATOR(pg_catalog.=) ${identityText("n", identity)}`;
  const updatesExceptMoved = `${updates}
       AND NOT EXISTS (${moved})`;
  // `dynamic`: planned on each call (EXECUTE … USING first_key_change), for the rare statement
  // with key changes, whose anti-join's best plan depends on how many keys changed.
  const dispatch = (events: string, dynamic = false) => {
    const run = (sql: string) =>
      dynamic ? `EXECUTE ${literal(sql)} USING first_key_change;` : `${sql};`;
    const viaPgq = run(
      `SELECT pgq.insert_event_raw(${literal(queue.name)}, NULL, pg_catalog.now(), NULL, NULL, e.ev_type, e.ev_data, ${extras}) FROM (${events}) e`,
    ).replace(/^SELECT /, "PERFORM ");
    const branches = Array.from({ length: queue.tables }, (_, n) => {
      const target = qualified(`${queue.dataPrefix}_${n}`);
      return `ELSIF q.cur = ${n} THEN
        ${run(`INSERT INTO ${target} (ev_id, ev_time, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4)
        SELECT pg_catalog.nextval(${literal(queue.eventSeq)}::pg_catalog.regclass), pg_catalog.now(), e.ev_type, e.ev_data, ${extras}
          FROM (${events}) e`)}`;
    });
    return `IF q.via_pgq THEN
        ${viaPgq}
      ${branches.join("\n      ")}
      ELSE
        ${viaPgq}
      END IF;`;
  };
  const setting = literal(keyChangeSetting(spec));
  return `
  IF TG_LEVEL = 'STATEMENT' THEN
    SELECT queue_cur_table AS cur, (queue_disable_insert OR queue_per_tx_limit IS NOT NULL) AS via_pgq
      INTO q FROM pgq.queue WHERE queue_id = ${queue.id};
    IF TG_OP = 'INSERT' THEN
      ${dispatch(inserts)}
    ELSIF TG_OP = 'DELETE' THEN
      ${dispatch(deletes)}
    ELSE
      first_key_change := pg_catalog.current_setting(${setting}, true);
      IF COALESCE(first_key_change, '') <> '' THEN
        PERFORM pg_catalog.set_config(${setting}, '', true);
        ${dispatch(updatesExceptMoved, true)}
      ELSIF (SELECT pg_catalog.count(*) FROM (SELECT FROM pgs_new LIMIT ${SMALL}) s) < ${SMALL} THEN
        ${dispatch(smallUpdates)}
      ELSE
        ${dispatch(updates)}
      END IF;
    END IF;
    RETURN NULL;
  END IF;`;
}

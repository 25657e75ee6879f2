/**
 * Starting a replica without a copy: after a switchover the old primary already holds every
 * row of the new one (both were proven equal while the set was fenced), so a replica in the
 * reverse direction can take its tables as they are. That is exact only if nothing captured
 * by the set lies behind the replica's mark: the set's queue must have captured nothing at
 * all, which its event sequence, never called, proves.
 */
import { dbNames } from "../config/names.js";
import { hidePassword } from "../config/set-config.js";
import { closeQuietly, connect, query } from "../database/postgres.js";
import { PgshovelError } from "../errors.js";
import { parseSnapshot } from "../stream/snapshot.js";
import type { BootstrapResult } from "./bootstrap.js";
import { recordCopied, type TableName } from "./target-state.js";

/** What {@link adoptTables} needs. */
export interface AdoptOptions {
  sourceDsn: string;
  targetDsn: string;
  cluster: string;
  set: string;
  tables: TableName[];
}

/**
 * Records `tables` as copied without copying them, under a source snapshot taken now (after
 * the mark): no change in the stream is visible in it, so none is skipped. Refused with
 * POSITION_LOST when the set's queue has captured anything, since a change captured before
 * the mark would reach the target neither way.
 */
export async function adoptTables(options: AdoptOptions): Promise<BootstrapResult> {
  const { sourceDsn, targetDsn, cluster, set, tables } = options;
  const queue = dbNames.queue(cluster, set);
  const source = await connect(sourceDsn, { applicationName: "pgshovel-replica" });
  let snapshot: string;
  try {
    const doing = `checking that queue ${queue} has captured nothing`;
    // The snapshot first: a change visible in it called the sequence before the check below.
    snapshot = (
      await query<{ snapshot: string }>(
        source,
        "SELECT pg_current_snapshot()::text AS snapshot",
        [],
        doing,
      )
    ).rows[0]!.snapshot;
    const used = await query<{ last: string | null }>(
      source,
      "SELECT pg_sequence_last_value(queue_event_seq::regclass)::text AS last FROM pgq.queue WHERE queue_name = $1",
      [queue],
      doing,
    );
    if (used.rowCount === 0) {
      throw new PgshovelError(
        "NOT_FOUND",
        `queue ${queue} does not exist in ${hidePassword(sourceDsn)}`,
      );
    }
    const last = used.rows[0]!.last;
    if (last !== null) {
      throw new PgshovelError(
        "POSITION_LOST",
        `cannot start the replica of set ${set} without a copy: its queue ${queue} has captured changes already (event sequence at ${last}), and those made before the replica's mark would reach it neither through a copy nor through the stream`,
        {
          hint: `bootstrap the target instead: empty its tables (SET session_replication_role = replica; TRUNCATE …) and run replicate without --no-copy; or compare it first with \`pgshovel set verify ${set} --target …\` and repair the differences before starting over with a copy`,
        },
      );
    }
  } finally {
    await closeQuietly(source);
  }
  const target = await connect(targetDsn, { applicationName: "pgshovel-replica" });
  const doing = "recording the tables taken without a copy";
  try {
    await query(target, "BEGIN", [], doing);
    for (const table of tables) {
      await recordCopied(target, cluster, set, table, parseSnapshot(snapshot), 0n);
    }
    await query(target, "COMMIT", [], doing);
  } catch (error) {
    await query(target, "ROLLBACK", [], doing).catch(() => {});
    throw error;
  } finally {
    await closeQuietly(target);
  }
  return {
    snapshot: parseSnapshot(snapshot),
    copied: tables.map((table) => ({ table, rows: 0n })),
    alreadyCopied: [],
  };
}

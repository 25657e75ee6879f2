/**
 * A promoted replica's record in its target, `pgshovel_<cluster>.replica_promotion`: one row
 * per set the target left when it became a primary. A replica worker reads it after it has
 * won its election, and refuses to apply that set again.
 */
import { dbNames, ident } from "../config/names.js";
import { type PgClient, query } from "../database/postgres.js";
import { PgshovelError } from "../errors.js";
import { promotionNames } from "./names.js";

/** What a promotion recorded. */
export interface PromotionRecord {
  promotedAt: string;
  /** The last source batch the replica had applied. */
  batch: string | null;
  /** Whether the source was read (sequences, fence, missing transactions) when promoted. */
  sourceReached: boolean;
}

function table(cluster: string): string {
  return `${ident(dbNames.schema(cluster))}.${ident(promotionNames.replicaPromotion)}`;
}

/** Creates the promotion table when missing; inside the caller's transaction. */
export async function installPromotionState(client: PgClient, cluster: string): Promise<void> {
  await query(
    client,
    `CREATE TABLE IF NOT EXISTS ${table(cluster)} (
       set_name text PRIMARY KEY,
       source_node uuid,
       batch_id bigint,
       end_tick_id bigint,
       source_reached boolean NOT NULL,
       sequences jsonb NOT NULL,
       promoted_at timestamptz NOT NULL DEFAULT now())`,
    [],
    "installing the promotion state",
  );
}

/** Records the promotion of the target for `set`; inside the caller's transaction. */
export async function writePromotion(
  client: PgClient,
  cluster: string,
  set: string,
  row: {
    node: string | null;
    batch: bigint | null;
    endTick: bigint | null;
    sourceReached: boolean;
    sequences: unknown;
  },
): Promise<void> {
  await query(
    client,
    `INSERT INTO ${table(cluster)} (set_name, source_node, batch_id, end_tick_id, source_reached, sequences)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [
      set,
      row.node,
      row.batch?.toString() ?? null,
      row.endTick?.toString() ?? null,
      row.sourceReached,
      JSON.stringify(row.sequences),
    ],
    `recording the promotion for set ${set}`,
  );
}

/** The target's promotion for `set`, or undefined (also when the table does not exist). */
export async function readPromotion(
  client: PgClient,
  cluster: string,
  set: string,
): Promise<PromotionRecord | undefined> {
  const exists = await query<{ found: string | null }>(
    client,
    "SELECT to_regclass($1)::text AS found",
    [table(cluster)],
    "looking for the promotion state",
  );
  if (exists.rows[0]?.found === null || exists.rows[0] === undefined) return undefined;
  const result = await query<{ at: string; batch: string | null; reached: boolean }>(
    client,
    `SELECT promoted_at::text AS at, batch_id::text AS batch, source_reached AS reached
       FROM ${table(cluster)} WHERE set_name = $1`,
    [set],
    "reading the promotion state",
  );
  const row = result.rows[0];
  return row ? { promotedAt: row.at, batch: row.batch, sourceReached: row.reached } : undefined;
}

/** The error of a worker started for a set on a target that was promoted out of it. */
export function promotedTarget(set: string, target: string, at: string): PgshovelError {
  return new PgshovelError(
    "INVALID_CONFIGURATION",
    `the target ${target} was promoted to primary at ${at}: it no longer replicates set ${set}, and a replica worker refuses to apply to it`,
    {
      hint: `a promoted database takes its own writes; to make it a replica of ${set} again, rebuild it: empty its tables and delete the set's rows in replica_tables, replica_position, replica_mark and replica_promotion of its pgshovel schema`,
    },
  );
}

/** Fails with {@link promotedTarget} when the target was promoted for `set`. */
export async function refusePromoted(
  client: PgClient,
  cluster: string,
  set: string,
  target: string,
): Promise<void> {
  const promotion = await readPromotion(client, cluster, set);
  if (promotion) throw promotedTarget(set, target, promotion.promotedAt);
}

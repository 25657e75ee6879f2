/**
 * Pure checks on the batches a replica receives: that each follows the stored position
 * without a gap, and how far behind the source the replica is.
 */
import { PgshovelError } from "../errors.js";
import type { Begin, Uuid } from "../stream/types.js";
import type { ReplicaPosition } from "./target-state.js";

/** The part of a batch these checks read. */
export interface BatchHead {
  node: Uuid;
  id: bigint;
  begin: Begin;
}

/**
 * Fails with POSITION_LOST unless `batch` can follow `position`: a consumer's batches are
 * contiguous (each starts at the tick the one before ended at), so a batch not applied yet
 * must start exactly at the stored end tick. A batch at or below the stored id was applied
 * before and is skipped (a crash came between the target's commit and the feed's finish).
 */
export function checkContinuity(position: ReplicaPosition | undefined, batch: BatchHead): void {
  if (!position) return;
  if (batch.node !== position.node) {
    throw new PgshovelError(
      "POSITION_LOST",
      `batch ${batch.id} comes from source node ${batch.node}, but the replica follows node ${position.node}`,
      {
        hint: "the set now reads another database: a replica follows one source; rebuild it from the new one",
      },
    );
  }
  if (batch.id <= position.batch) return;
  if (batch.begin.start.id !== position.endTick) {
    throw new PgshovelError(
      "POSITION_LOST",
      `batch ${batch.id} starts at tick ${batch.begin.start.id}, but the replica stands at tick ${position.endTick} (batch ${position.batch}): the transactions in between would be lost`,
      {
        hint: "the stream lost its place (an unregistered and re-registered PgQ consumer, a topic cut by retention): rebuild the replica — truncate its tables and delete the set's rows in the target's replica_tables, replica_position and replica_mark",
      },
    );
  }
}

/** The position a batch leaves once applied. */
export function positionAfter(batch: BatchHead & { position?: bigint | null }): ReplicaPosition {
  return {
    node: batch.node,
    batch: batch.id,
    endTick: batch.begin.end.id,
    endSnapshot: batch.begin.end.snapshot,
    endTime: batch.begin.end.time,
    stream: batch.position ?? null,
  };
}

/** Seconds from a tick's time (ISO 8601, as the stream carries it) to `now`; never negative. */
export function lagSeconds(tickTime: string, now = Date.now()): number {
  const at = Date.parse(tickTime);
  if (Number.isNaN(at)) return 0;
  return Math.max(0, (now - at) / 1000);
}

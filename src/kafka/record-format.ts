/**
 * What a pgshovel record carries besides its value: the key and header names that the
 * sink writes and readers use to skip records without decoding them (docs/kafka.md).
 */
import type { BatchRef } from "../stream/types.js";

/** Record header names. */
export const HEADERS = {
  kind: "pgshovel-kind",
  schema: "pgshovel-schema",
  table: "pgshovel-table",
  operation: "pgshovel-operation",
} as const;

/** The record key of every message of a batch: "<node id>:<batch id>". */
export function recordKey(batch: BatchRef): string {
  return `${batch.node}:${batch.id}`;
}

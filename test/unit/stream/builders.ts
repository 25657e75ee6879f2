import type { Message, Mutation } from "../../../src/stream/index.js";
import { NODE } from "./sample.js";

/** Message builders for assembler tests: publishers with contiguous sequences. */

/** A second source database. */
export const OTHER_NODE = "11111111-2222-4333-8444-555555555555";
const TICK = {
  id: 1n,
  snapshot: { xmin: 1n, xmax: 1n, xip: [] },
  time: "2026-11-24T03:45:27.000000Z",
};
const BEGIN = { start: TICK, end: { ...TICK, id: 2n } };

/** Builds messages for one publisher with contiguous sequences. */
export function publisher(id: string, first = 0n) {
  let sequence = first;
  const message = (batchId: bigint, body: Message["body"], node = NODE): Message => ({
    header: { publisher: id, sequence: sequence++, timestamp: "2026-11-24T03:45:28.000000Z" },
    batch: { node, id: batchId },
    body,
  });
  return {
    begin: (batchId: bigint, node?: string) =>
      message(batchId, { kind: "begin", begin: BEGIN }, node),
    insert: (batchId: bigint, eventId: bigint, node?: string) =>
      message(batchId, { kind: "mutation", mutation: insertMutation(eventId) }, node),
    commit: (batchId: bigint, node?: string) => message(batchId, { kind: "commit" }, node),
    rollback: (batchId: bigint, node?: string) => message(batchId, { kind: "rollback" }, node),
    skip: () => {
      sequence++;
    },
  };
}

/** An INSERT of row `id` in transaction 5. */
export function insertMutation(id: bigint): Mutation {
  return {
    id,
    schema: "public",
    table: "t",
    operation: "INSERT",
    identity: ["id"],
    old: null,
    new: { id: Number(id) },
    transaction: 5n,
    time: "2026-11-24T03:45:27.000000Z",
  };
}

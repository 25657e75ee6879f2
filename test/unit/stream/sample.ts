import type { Begin, Message, Mutation, Row } from "../../../src/stream/index.js";

/** The short stream behind the golden files in test/fixtures/stream/. */

export const NODE = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
export const PUBLISHER_A = "0b8e7a52-1c3d-4e5f-9a6b-7c8d9e0f1a2b";
export const PUBLISHER_B = "f3e2d1c0-b9a8-4766-8554-433221100fed";

/** One column per Value shape the contract promises to carry losslessly. */
export const EVERY_SHAPE: Row = {
  id: 42,
  small: -32768,
  big: "9223372036854775807",
  amount: "1234567890123456789012345678901234567890.0123456789",
  negative_zero: "-0",
  not_a_number: "NaN",
  infinite: "-Infinity",
  json_null: "null",
  sql_null: null,
  document: '{"a": [1, 2.5, "x"], "b": null}',
  note: 'héllo 👋🏽 e\u0301 中文 "quoted" \\ tab\t line\nbreak \u2028',
  empty: "",
  flag: true,
  off: false,
  created: "2026-11-24 03:45:27.123456+00",
  blob: "\\x00ff10",
  tags: '{1,2,NULL,"a b"}',
};

function begin(startId: bigint, endId: bigint): Begin {
  return {
    start: {
      id: startId,
      snapshot: { xmin: 9000n, xmax: 9005n, xip: [9001n, 9003n] },
      time: "2026-11-24T03:45:26.000001Z",
    },
    end: {
      id: endId,
      snapshot: { xmin: 9010n, xmax: 9010n, xip: [] },
      time: "2026-11-24T03:45:27.999999Z",
    },
  };
}

function mutation(
  id: bigint,
  operation: Mutation["operation"],
  old: Row | null,
  row: Row | null,
): Mutation {
  return {
    id,
    schema: "public",
    table: "accounts",
    operation,
    identity: ["id"],
    old,
    new: row,
    transaction: 9004n,
    time: "2026-11-24T03:45:27.123456Z",
  };
}

function message(
  publisher: string,
  sequence: bigint,
  batchId: bigint,
  body: Message["body"],
): Message {
  const micros = String(100 + Number(sequence)).padStart(6, "0");
  return {
    header: { publisher, sequence, timestamp: `2026-11-24T03:45:28.${micros}Z` },
    batch: { node: NODE, id: batchId },
    body,
  };
}

/**
 * Batch 7 committed; batch 8 rolled back by publisher A, which then dies; a new
 * publisher B re-sends batch 8 whole from sequence 0 and commits it.
 */
export const SAMPLE_STREAM: Message[] = [
  message(PUBLISHER_A, 0n, 7n, { kind: "begin", begin: begin(11n, 12n) }),
  message(PUBLISHER_A, 1n, 7n, {
    kind: "mutation",
    mutation: mutation(101n, "INSERT", null, EVERY_SHAPE),
  }),
  message(PUBLISHER_A, 2n, 7n, {
    kind: "mutation",
    mutation: mutation(102n, "UPDATE", { id: 42, note: "before" }, { id: 42, note: "after" }),
  }),
  message(PUBLISHER_A, 3n, 7n, {
    kind: "mutation",
    mutation: mutation(103n, "DELETE", { id: 42 }, null),
  }),
  message(PUBLISHER_A, 4n, 7n, { kind: "commit" }),
  message(PUBLISHER_A, 5n, 8n, { kind: "begin", begin: begin(12n, 13n) }),
  message(PUBLISHER_A, 6n, 8n, {
    kind: "mutation",
    mutation: mutation(104n, "TRUNCATE", null, null),
  }),
  message(PUBLISHER_A, 7n, 8n, { kind: "rollback" }),
  message(PUBLISHER_B, 0n, 8n, { kind: "begin", begin: begin(12n, 13n) }),
  message(PUBLISHER_B, 1n, 8n, {
    kind: "mutation",
    mutation: mutation(104n, "TRUNCATE", null, null),
  }),
  message(PUBLISHER_B, 2n, 8n, { kind: "commit" }),
];

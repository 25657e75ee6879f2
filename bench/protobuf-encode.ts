/**
 * Micro-benchmark of the protobuf encoder: the hand-written encodeProtobuf
 * against the create() + toBinary() encoder it replaced (encodeProtobufReference),
 * on the same mutation messages, in alternating rounds.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/protobuf-encode.js [MESSAGES] [ROUNDS]
 */
import { encodeProtobuf } from "../src/stream/codec-protobuf.js";
import { timestampFromParts } from "../src/stream/timestamp.js";
import type { Message, Mutation, Row } from "../src/stream/types.js";
import { encodeProtobufReference } from "../test/support/protobuf-reference.js";

const MESSAGES = Number(process.argv[2] ?? 200_000);
const ROUNDS = Number(process.argv[3] ?? 3);

const NODE = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
const PUBLISHER = "0b8e7a52-1c3d-4e5f-9a6b-7c8d9e0f1a2b";
const EPOCH_SECONDS = 1_795_491_927; // 2026-11-24T03:45:27Z

/**
 * A row of the throughput benchmark's table (bench/backlog.ts: id int8, account
 * int4, owner text, balance numeric, at timestamptz) as the capture trigger
 * hands it over: int8 and numeric as text, int4 as a number.
 */
function rowOf(g: number): Row {
  return {
    id: String(g),
    account: g % 1000,
    owner: `owner ${g}`,
    balance: (g * 1.25).toFixed(2),
    at: "2026-11-24 03:45:27.123456+00",
  };
}

/** Mostly inserts, some updates (old and new rows) and deletes, as a change stream has. */
function mutationOf(g: number): Mutation {
  const kind = g % 20;
  const operation = kind < 16 ? "INSERT" : kind < 19 ? "UPDATE" : "DELETE";
  return {
    id: BigInt(1_000_000 + g),
    schema: "public",
    table: "pgshovel_bench_rows",
    operation,
    identity: ["id"],
    old: operation === "INSERT" ? null : rowOf(g),
    new: operation === "DELETE" ? null : rowOf(g + 1),
    transaction: BigInt(5_000_000 + Math.floor(g / 100)),
    time: timestampFromParts(EPOCH_SECONDS + Math.floor(g / 1000), (g * 37) % 1_000_000),
  };
}

function messageOf(g: number): Message {
  return {
    header: {
      publisher: PUBLISHER,
      sequence: BigInt(g),
      timestamp: timestampFromParts(EPOCH_SECONDS + 1 + Math.floor(g / 1000), g % 1000),
    },
    batch: { node: NODE, id: BigInt(700 + Math.floor(g / 5000)) },
    body: { kind: "mutation", mutation: mutationOf(g) },
  };
}

/** Encodes every message once; returns messages per second and the bytes written. */
function run(encode: (m: Message) => Uint8Array, messages: Message[]): [number, number] {
  let bytes = 0;
  const started = process.hrtime.bigint();
  for (const message of messages) bytes += encode(message).byteLength;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return [messages.length / seconds, bytes];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function fmt(rate: number): string {
  return `${Math.round(rate).toLocaleString("en-US")} msg/s`;
}

function main(): void {
  const messages = Array.from({ length: MESSAGES }, (_, g) => messageOf(g));
  for (const message of messages.slice(0, 1000)) {
    const a = Buffer.from(encodeProtobuf(message));
    if (!a.equals(encodeProtobufReference(message))) throw new Error("the encoders disagree");
  }
  console.log(`${MESSAGES.toLocaleString("en-US")} mutation messages, ${ROUNDS} rounds each`);
  const reference: number[] = [];
  const handWritten: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const [ref, refBytes] = run(encodeProtobufReference, messages);
    const [hand, handBytes] = run(encodeProtobuf, messages);
    if (refBytes !== handBytes) throw new Error("the encoders wrote different amounts");
    reference.push(ref);
    handWritten.push(hand);
    console.log(
      `round ${round}: reference ${fmt(ref)}, new ${fmt(hand)}, ratio ${(hand / ref).toFixed(2)}` +
        ` (${(refBytes / MESSAGES).toFixed(1)} bytes/msg)`,
    );
  }
  const ref = median(reference);
  const hand = median(handWritten);
  console.log(
    `median: reference ${fmt(ref)}, new ${fmt(hand)}, ratio new/reference ${(hand / ref).toFixed(2)}`,
  );
}

main();

import { fromBinary } from "@bufbuild/protobuf";
import type { Timestamp as PbTimestamp } from "@bufbuild/protobuf/wkt";
import {
  checkInt64,
  checkString,
  checkStrings,
  checkTimestamp,
  checkUuid,
  checkValue,
  decodeFail,
  describe,
  encodeFail,
  setColumn,
} from "./checks.js";
import * as pb from "./gen/pgshovel/stream/v1/stream_pb.js";
import { type TimestampParts, timestampFromParts, timestampToParts } from "./timestamp.js";
import type { Body, Message, Mutation, Operation, Row, Tick, Timestamp, Value } from "./types.js";
import { varintSize, WireWriter } from "./wire-writer.js";

/**
 * The protobuf codec: domain {@link Message} ↔ pgshovel.stream.v1.Message
 * (proto/pgshovel/stream/v1/stream.proto). Times travel as
 * google.protobuf.Timestamp whose nanos are whole microseconds.
 */

const FROM_PB_OPERATION: Partial<Record<number, Operation>> = {
  [pb.Operation.INSERT]: "INSERT",
  [pb.Operation.UPDATE]: "UPDATE",
  [pb.Operation.DELETE]: "DELETE",
  [pb.Operation.TRUNCATE]: "TRUNCATE",
};

// Encoding ------------------------------------------------------------------
//
// The encoder writes the wire format of pgshovel.stream.v1.Message itself,
// straight into one reused buffer: create() + toBinary() built a message object
// per nested message and per column value, and a fresh, copy-on-grow buffer per
// message, which made protobuf encoding a large share of the relay's CPU.
//
// The bytes are exactly those of toBinary (see test/support/protobuf-reference.ts, which
// the unit tests compare against): fields in field-number order, proto3 zero
// values of plain fields omitted, members of a oneof and message fields always
// written once set, `xip` packed, map entries with both key and value, and
// every length prefix the shortest varint.

/** Tags (field number << 3 | wire type) of the fields written below; all fit one byte. */
const VARINT_1 = 0x08;
const LEN_1 = 0x0a;
const VARINT_2 = 0x10;
const LEN_2 = 0x12;
const VARINT_3 = 0x18;
const LEN_3 = 0x1a;
const VARINT_4 = 0x20;
const LEN_4 = 0x22;
const LEN_5 = 0x2a;
const LEN_6 = 0x32;
const LEN_7 = 0x3a;
const VARINT_8 = 0x40;
const LEN_9 = 0x4a;

/**
 * The writer not in use. A getter in a row could call the encoder again while
 * it is encoding: such a nested call takes a writer of its own.
 */
let idleWriter: WireWriter | undefined = new WireWriter();

/** Encodes a message as protobuf binary (one pgshovel.stream.v1.Message). */
export function encodeProtobuf(msg: Message): Uint8Array {
  const w = idleWriter ?? new WireWriter();
  idleWriter = undefined;
  try {
    w.pos = 0;
    writeMessage(w, msg);
    return w.finish();
  } finally {
    idleWriter = w;
  }
}

/** Message: header = 1, batch = 2, then the body (oneof: begin = 3 … rollback = 6). */
function writeMessage(w: WireWriter, msg: Message): void {
  const { header, batch } = msg;
  // The checks run in the order of the previous create()-based encoder, so that
  // a message with several faults reports the same one.
  w.byte(LEN_1);
  let at = w.fork(1);
  writeString(w, LEN_1, checkUuid(header.publisher, "header.publisher", encodeFail));
  writeUint64(w, VARINT_2, checkInt64(header.sequence, "uint64", "header.sequence", encodeFail));
  writeTimestamp(w, LEN_3, timestampParts(header.timestamp, "header.timestamp"));
  w.join(at, 1);

  w.byte(LEN_2);
  at = w.fork(1);
  writeString(w, LEN_1, checkUuid(batch.node, "batch.node", encodeFail));
  writeInt64(w, VARINT_2, checkInt64(batch.id, "int64", "batch.id", encodeFail));
  w.join(at, 1);

  writeBody(w, msg.body);
}

function writeBody(w: WireWriter, body: Body): void {
  switch (body.kind) {
    case "begin": {
      w.byte(LEN_3);
      const at = w.fork(1);
      writeTick(w, LEN_1, body.begin.start, "begin.start");
      writeTick(w, LEN_2, body.begin.end, "begin.end");
      w.join(at, 1);
      break;
    }
    case "mutation":
      writeMutation(w, body.mutation);
      break;
    case "commit":
      // An empty message, present: its tag and a zero length.
      w.byte(LEN_5);
      w.byte(0);
      break;
    case "rollback":
      w.byte(LEN_6);
      w.byte(0);
      break;
    default:
      encodeFail("body.kind", `unknown body kind ${describe((body as { kind: unknown }).kind)}`);
  }
}

/** A string field, omitted when empty (proto3). */
function writeString(w: WireWriter, tag: number, s: string): void {
  if (s === "") return;
  w.byte(tag);
  w.string(s);
}

/** A uint64 field, omitted when zero (proto3). */
function writeUint64(w: WireWriter, tag: number, v: bigint): void {
  if (v === 0n) return;
  w.byte(tag);
  w.uint64(v);
}

/** An int64 field, omitted when zero (proto3). */
function writeInt64(w: WireWriter, tag: number, v: bigint): void {
  if (v === 0n) return;
  w.byte(tag);
  w.int64(v);
}

/** Checks a {@link Timestamp} and splits it into what google.protobuf.Timestamp holds. */
function timestampParts(ts: Timestamp, path: string): TimestampParts {
  return timestampToParts(checkTimestamp(ts, path, encodeFail));
}

/** google.protobuf.Timestamp: seconds = 1 (int64), nanos = 2 (int32), zeros omitted. */
function writeTimestamp(w: WireWriter, tag: number, { seconds, micros }: TimestampParts): void {
  w.byte(tag);
  // At most 1 + 10 + 1 + 5 bytes: the one-byte prefix is always right.
  const at = w.fork(1);
  if (seconds !== 0) {
    w.byte(VARINT_1);
    w.int64Safe(seconds);
  }
  if (micros !== 0) {
    w.byte(VARINT_2);
    w.varint32(micros * 1000);
  }
  w.join(at, 1);
}

/** Tick: id = 1, snapshot = 2 (Snapshot: xmin = 1, xmax = 2, packed xip = 3), time = 3. */
function writeTick(w: WireWriter, tag: number, tick: Tick, path: string): void {
  const { snapshot } = tick;
  const id = checkInt64(tick.id, "int64", `${path}.id`, encodeFail);
  const xmin = checkInt64(snapshot.xmin, "uint64", `${path}.snapshot.xmin`, encodeFail);
  const xmax = checkInt64(snapshot.xmax, "uint64", `${path}.snapshot.xmax`, encodeFail);
  // Ticks come twice per batch: plain code is fast enough here.
  const xip = snapshot.xip.map((txid, i) =>
    checkInt64(txid, "uint64", `${path}.snapshot.xip[${i}]`, encodeFail),
  );
  const time = timestampParts(tick.time, `${path}.time`);

  w.byte(tag);
  const tickAt = w.fork(1);
  writeInt64(w, VARINT_1, id);
  w.byte(LEN_2);
  const snapshotAt = w.fork(1);
  writeUint64(w, VARINT_1, xmin);
  writeUint64(w, VARINT_2, xmax);
  if (xip.length > 0) {
    w.byte(LEN_3);
    const xipAt = w.fork(1);
    for (const txid of xip) w.uint64(txid);
    w.join(xipAt, 1);
  }
  w.join(snapshotAt, 1);
  writeTimestamp(w, LEN_3, time);
  w.join(tickAt, 1);
}

/** The pgshovel.stream.v1.Operation number of an operation, or undefined. */
function operationNumber(operation: Operation): number | undefined {
  switch (operation) {
    case "INSERT":
      return pb.Operation.INSERT;
    case "UPDATE":
      return pb.Operation.UPDATE;
    case "DELETE":
      return pb.Operation.DELETE;
    case "TRUNCATE":
      return pb.Operation.TRUNCATE;
    default:
      return undefined;
  }
}

/**
 * Mutation: id = 1, schema = 2, table = 3, operation = 4, identity = 5,
 * old = 6, new = 7, transaction = 8, time = 9.
 */
function writeMutation(w: WireWriter, m: Mutation): void {
  const operation = operationNumber(m.operation);
  if (operation === undefined)
    encodeFail("mutation.operation", `unknown operation ${describe(m.operation)}`);
  // Every field but the rows is checked first, as the previous encoder did.
  const id = checkInt64(m.id, "int64", "mutation.id", encodeFail);
  const schema = checkString(m.schema, "mutation.schema", encodeFail);
  const table = checkString(m.table, "mutation.table", encodeFail);
  const identity = checkStrings(m.identity, "mutation.identity", encodeFail);
  const transaction = checkInt64(m.transaction, "uint64", "mutation.transaction", encodeFail);
  const time = timestampParts(m.time, "mutation.time");

  w.byte(LEN_4);
  const reserve = w.mutationPrefix;
  const at = w.fork(reserve);
  writeInt64(w, VARINT_1, id);
  writeString(w, LEN_2, schema);
  writeString(w, LEN_3, table);
  w.byte(VARINT_4);
  w.varint32(operation);
  // Repeated strings are written one by one, empty ones too.
  for (let i = 0; i < identity.length; i++) {
    w.byte(LEN_5);
    w.string(identity[i] as string);
  }
  if (m.old !== null) writeRow(w, LEN_6, m.old, "mutation.old");
  if (m.new !== null) writeRow(w, LEN_7, m.new, "mutation.new");
  writeUint64(w, VARINT_8, transaction);
  writeTimestamp(w, LEN_9, time);
  w.mutationPrefix = w.join(at, reserve);
}

/**
 * Row: map<string, Value> columns = 1, one entry per column.
 *
 * toBinary wrote the entries in the key order of the object it was handed,
 * which the old encoder filled column by column: array-index names ("0", "17")
 * in ascending order first, then the others in `for…in` order. `for…in` over a
 * row yields that same order unless the row inherits enumerable columns (or is
 * a proxy); only then are the entries sorted, by {@link writeRowSorted}.
 */
function writeRow(w: WireWriter, tag: number, row: Row, path: string): void {
  if (typeof row !== "object") encodeFail(path, `expected a row or null, got ${describe(row)}`);
  w.byte(tag);
  const reserve = w.rowPrefix;
  const at = w.fork(reserve);
  let lastIndex = -1;
  let named = false;
  for (const column in row) {
    const value = checkValue(row[column], `${path}.${column}`, encodeFail);
    const index = arrayIndex(column);
    if (index < 0) {
      named = true;
    } else if (named || index <= lastIndex) {
      w.pos = at + reserve;
      writeRowSorted(w, row, path);
      break;
    } else {
      lastIndex = index;
    }
    writeColumn(w, column, value);
  }
  w.rowPrefix = w.join(at, reserve);
}

/**
 * The entries of a row whose `for…in` order is not the order toBinary used:
 * reads (and checks) the row again from its first column, then sorts.
 */
function writeRowSorted(w: WireWriter, row: Row, path: string): void {
  const indexed: { index: number; column: string; value: Value }[] = [];
  const named: { column: string; value: Value }[] = [];
  for (const column in row) {
    const value = checkValue(row[column], `${path}.${column}`, encodeFail);
    const index = arrayIndex(column);
    if (index < 0) named.push({ column, value });
    else indexed.push({ index, column, value });
  }
  indexed.sort((a, b) => a.index - b.index);
  for (const { column, value } of indexed) writeColumn(w, column, value);
  for (const { column, value } of named) writeColumn(w, column, value);
}

/** `key` as an array index (an integer below 2^32 − 1 in canonical form), or −1. */
function arrayIndex(key: string): number {
  const c = key.charCodeAt(0);
  if (!(c >= 0x30 && c <= 0x39)) return -1;
  const n = Number(key);
  return Number.isInteger(n) && n < 0xffffffff && String(n) === key ? n : -1;
}

/**
 * One map entry: key = 1 (the column name), value = 2 (a Value whose oneof kind
 * is null = 1, boolean = 2, integer = 3 as sint32, text = 4). A oneof member is
 * written even when it is a zero value.
 */
function writeColumn(w: WireWriter, column: string, value: Value): void {
  // Length prefixes are guessed from the ASCII case, exact for ASCII text.
  const textSize = typeof value === "string" ? 1 + varintSize(value.length) + value.length : 0;
  const textReserve = varintSize(textSize);
  const keySize = 1 + varintSize(column.length) + column.length;
  // A non-text value is at most 7 bytes with its tag and length.
  const reserve = varintSize(keySize + (textSize === 0 ? 7 : 1 + textReserve + textSize));
  w.byte(LEN_1);
  const at = w.fork(reserve);
  w.byte(LEN_1);
  w.string(column);
  w.byte(LEN_2);
  switch (typeof value) {
    case "string": {
      const valueAt = w.fork(textReserve);
      w.byte(LEN_4);
      w.string(value);
      w.join(valueAt, textReserve);
      break;
    }
    case "boolean":
      w.ensure(3);
      w.buf[w.pos++] = 2;
      w.buf[w.pos++] = VARINT_2;
      w.buf[w.pos++] = value ? 1 : 0;
      break;
    case "number": {
      const zigzag = ((value << 1) ^ (value >> 31)) >>> 0;
      w.byte(1 + varintSize(zigzag));
      w.byte(VARINT_3);
      w.varint32(zigzag);
      break;
    }
    default:
      // SQL NULL: google.protobuf.NullValue.NULL_VALUE, which is 0.
      w.ensure(3);
      w.buf[w.pos++] = 2;
      w.buf[w.pos++] = VARINT_1;
      w.buf[w.pos++] = 0;
  }
  w.join(at, reserve);
}

// Decoding ------------------------------------------------------------------

/** Decodes one protobuf-encoded pgshovel.stream.v1.Message; unknown fields are ignored. */
export function decodeProtobuf(bytes: Uint8Array): Message {
  let msg: pb.Message;
  try {
    msg = fromBinary(pb.MessageSchema, bytes);
  } catch (error) {
    return decodeFail("(message)", `not a valid protobuf message: ${(error as Error).message}`);
  }
  const { header, batch } = msg;
  if (header === undefined) return decodeFail("header", "missing");
  if (batch === undefined) return decodeFail("batch", "missing");
  return {
    header: {
      publisher: checkUuid(header.publisher, "header.publisher", decodeFail),
      sequence: header.sequence,
      timestamp: fromPbTimestamp(header.timestamp, "header.timestamp"),
    },
    batch: {
      node: checkUuid(batch.node, "batch.node", decodeFail),
      id: batch.id,
    },
    body: fromPbBody(msg.body),
  };
}

function fromPbBody(body: pb.Message["body"]): Body {
  switch (body.case) {
    case "begin":
      return {
        kind: "begin",
        begin: {
          start: fromPbTick(body.value.start, "begin.start"),
          end: fromPbTick(body.value.end, "begin.end"),
        },
      };
    case "mutation":
      return { kind: "mutation", mutation: fromPbMutation(body.value) };
    case "commit":
      return { kind: "commit" };
    case "rollback":
      return { kind: "rollback" };
    default:
      return decodeFail("(body)", "missing: expected one of begin, mutation, commit, rollback");
  }
}

function fromPbTimestamp(ts: PbTimestamp | undefined, path: string): Timestamp {
  if (ts === undefined) return decodeFail(path, "missing");
  if (ts.nanos < 0 || ts.nanos > 999_999_999 || ts.nanos % 1000 !== 0) {
    return decodeFail(path, `nanos ${ts.nanos} is not a whole number of microseconds`);
  }
  // 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of google.protobuf.Timestamp.
  if (ts.seconds < -62135596800n || ts.seconds > 253402300799n) {
    return decodeFail(path, `seconds ${ts.seconds} is outside years 0001–9999`);
  }
  return timestampFromParts(Number(ts.seconds), ts.nanos / 1000);
}

function fromPbTick(tick: pb.Tick | undefined, path: string): Tick {
  if (tick === undefined) return decodeFail(path, "missing");
  const { snapshot } = tick;
  if (snapshot === undefined) return decodeFail(`${path}.snapshot`, "missing");
  return {
    id: tick.id,
    snapshot: { xmin: snapshot.xmin, xmax: snapshot.xmax, xip: snapshot.xip },
    time: fromPbTimestamp(tick.time, `${path}.time`),
  };
}

function fromPbMutation(m: pb.Mutation): Mutation {
  const operation = FROM_PB_OPERATION[m.operation];
  if (operation === undefined)
    return decodeFail("mutation.operation", `unknown operation ${m.operation}`);
  return {
    id: m.id,
    schema: m.schema,
    table: m.table,
    operation,
    identity: m.identity,
    old: m.old === undefined ? null : fromPbRow(m.old, "mutation.old"),
    new: m.new === undefined ? null : fromPbRow(m.new, "mutation.new"),
    transaction: m.transaction,
    time: fromPbTimestamp(m.time, "mutation.time"),
  };
}

function fromPbRow(row: pb.Row, path: string): Row {
  const out: Row = {};
  for (const column of Object.keys(row.columns)) {
    const kind = row.columns[column]?.kind;
    let value: Value;
    switch (kind?.case) {
      case "text":
      case "boolean":
      case "integer":
        value = kind.value;
        break;
      case "null":
        value = null;
        break;
      default:
        return decodeFail(`${path}.${column}`, "value without a kind");
    }
    setColumn(out, column, value);
  }
  return out;
}

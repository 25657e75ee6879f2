import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { NullValue, type Timestamp as PbTimestamp, TimestampSchema } from "@bufbuild/protobuf/wkt";
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
import { timestampFromParts, timestampToParts } from "./timestamp.js";
import type { Body, Message, Mutation, Operation, Row, Tick, Timestamp, Value } from "./types.js";

/**
 * The protobuf codec: domain {@link Message} ↔ pgshovel.stream.v1.Message
 * (proto/pgshovel/stream/v1/stream.proto). Times travel as
 * google.protobuf.Timestamp whose nanos are whole microseconds.
 */

const TO_PB_OPERATION: Record<Operation, pb.Operation> = {
  INSERT: pb.Operation.INSERT,
  UPDATE: pb.Operation.UPDATE,
  DELETE: pb.Operation.DELETE,
  TRUNCATE: pb.Operation.TRUNCATE,
};

const FROM_PB_OPERATION: Partial<Record<number, Operation>> = {
  [pb.Operation.INSERT]: "INSERT",
  [pb.Operation.UPDATE]: "UPDATE",
  [pb.Operation.DELETE]: "DELETE",
  [pb.Operation.TRUNCATE]: "TRUNCATE",
};

// Encoding ------------------------------------------------------------------

/** Encodes a message as protobuf binary (one pgshovel.stream.v1.Message). */
export function encodeProtobuf(msg: Message): Uint8Array {
  const { header, batch } = msg;
  const out = create(pb.MessageSchema, {
    header: {
      publisher: checkUuid(header.publisher, "header.publisher", encodeFail),
      sequence: checkInt64(header.sequence, "uint64", "header.sequence", encodeFail),
      timestamp: toPbTimestamp(header.timestamp, "header.timestamp"),
    },
    batch: {
      node: checkUuid(batch.node, "batch.node", encodeFail),
      id: checkInt64(batch.id, "int64", "batch.id", encodeFail),
    },
  });
  out.body = toPbBody(msg.body);
  return toBinary(pb.MessageSchema, out);
}

function toPbBody(body: Body): pb.Message["body"] {
  switch (body.kind) {
    case "begin":
      return {
        case: "begin",
        value: create(pb.BeginSchema, {
          start: toPbTick(body.begin.start, "begin.start"),
          end: toPbTick(body.begin.end, "begin.end"),
        }),
      };
    case "mutation":
      return { case: "mutation", value: toPbMutation(body.mutation) };
    case "commit":
      return { case: "commit", value: create(pb.CommitSchema) };
    case "rollback":
      return { case: "rollback", value: create(pb.RollbackSchema) };
    default:
      return encodeFail(
        "body.kind",
        `unknown body kind ${describe((body as { kind: unknown }).kind)}`,
      );
  }
}

function toPbTimestamp(ts: Timestamp, path: string): PbTimestamp {
  const { seconds, micros } = timestampToParts(checkTimestamp(ts, path, encodeFail));
  return create(TimestampSchema, { seconds: BigInt(seconds), nanos: micros * 1000 });
}

function toPbTick(tick: Tick, path: string): pb.Tick {
  const { snapshot } = tick;
  return create(pb.TickSchema, {
    id: checkInt64(tick.id, "int64", `${path}.id`, encodeFail),
    snapshot: {
      xmin: checkInt64(snapshot.xmin, "uint64", `${path}.snapshot.xmin`, encodeFail),
      xmax: checkInt64(snapshot.xmax, "uint64", `${path}.snapshot.xmax`, encodeFail),
      xip: snapshot.xip.map((txid, i) =>
        checkInt64(txid, "uint64", `${path}.snapshot.xip[${i}]`, encodeFail),
      ),
    },
    time: toPbTimestamp(tick.time, `${path}.time`),
  });
}

function toPbMutation(m: Mutation): pb.Mutation {
  const operation = TO_PB_OPERATION[m.operation];
  if (operation === undefined)
    encodeFail("mutation.operation", `unknown operation ${describe(m.operation)}`);
  const out = create(pb.MutationSchema, {
    id: checkInt64(m.id, "int64", "mutation.id", encodeFail),
    schema: checkString(m.schema, "mutation.schema", encodeFail),
    table: checkString(m.table, "mutation.table", encodeFail),
    operation,
    identity: checkStrings(m.identity, "mutation.identity", encodeFail),
    transaction: checkInt64(m.transaction, "uint64", "mutation.transaction", encodeFail),
    time: toPbTimestamp(m.time, "mutation.time"),
  });
  if (m.old !== null) out.old = toPbRow(m.old, "mutation.old");
  if (m.new !== null) out.new = toPbRow(m.new, "mutation.new");
  return out;
}

function toPbRow(row: Row, path: string): pb.Row {
  if (typeof row !== "object")
    return encodeFail(path, `expected a row or null, got ${describe(row)}`);
  const out = create(pb.RowSchema);
  for (const column in row) {
    const value = checkValue(row[column], `${path}.${column}`, encodeFail);
    const pbValue = create(pb.ValueSchema, { kind: toPbValueKind(value) });
    if (column === "__proto__") {
      Object.defineProperty(out.columns, column, {
        value: pbValue,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else {
      out.columns[column] = pbValue;
    }
  }
  return out;
}

function toPbValueKind(value: Value): pb.Value["kind"] {
  switch (typeof value) {
    case "string":
      return { case: "text", value };
    case "boolean":
      return { case: "boolean", value };
    case "number":
      return { case: "integer", value };
    default:
      return { case: "null", value: NullValue.NULL_VALUE };
  }
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

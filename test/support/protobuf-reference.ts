/**
 * The protobuf encoder that the hand-written one in src/stream/codec-protobuf.ts
 * replaced: create() + toBinary() of @bufbuild/protobuf, with the same checks. The
 * unit tests and bench/protobuf-encode.ts hold encodeProtobuf to it, byte for byte.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { NullValue, type Timestamp as PbTimestamp, TimestampSchema } from "@bufbuild/protobuf/wkt";
import {
  checkInt64,
  checkString,
  checkStrings,
  checkTimestamp,
  checkUuid,
  checkValue,
  describe,
  encodeFail,
} from "../../src/stream/checks.js";
import * as pb from "../../src/stream/gen/pgshovel/stream/v1/stream_pb.js";
import { timestampToParts } from "../../src/stream/timestamp.js";
import type {
  Body,
  Message,
  Mutation,
  Operation,
  Row,
  Tick,
  Timestamp,
  Value,
} from "../../src/stream/types.js";

const TO_PB_OPERATION: Record<Operation, pb.Operation> = {
  INSERT: pb.Operation.INSERT,
  UPDATE: pb.Operation.UPDATE,
  DELETE: pb.Operation.DELETE,
  TRUNCATE: pb.Operation.TRUNCATE,
};

/** Encodes `msg` the reference way. */
export function encodeProtobufReference(msg: Message): Uint8Array {
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

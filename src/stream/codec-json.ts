import {
  checkInt64,
  checkRow,
  checkString,
  checkStrings,
  checkTimestamp,
  checkUuid,
  decodeFail,
  describe,
  encodeFail,
  isInt32,
  parseInt64Text,
} from "./checks.js";
import {
  type BatchRef,
  type Begin,
  type Body,
  type Header,
  type Message,
  type Mutation,
  OPERATIONS,
  type Operation,
  ROWS_JSON,
  type Row,
  type Snapshot,
  type Tick,
} from "./types.js";

/**
 * The JSON codec: one message per line. 64-bit integers are strings of decimal
 * digits; rows are objects keyed by column name, `null` when not applicable.
 * The encoder is written by hand because the relay runs it for every message:
 * it builds one string and lets JSON.stringify escape only the free-form text.
 * The line carries no newline: framing belongs to the sink.
 */

// Encoding ------------------------------------------------------------------

const BODY_KEYS = ["begin", "mutation", "commit", "rollback"] as const;

/** Encodes a message as one line of JSON, without a trailing newline. */
export function encodeJson(msg: Message): string {
  const { header, batch, body } = msg;
  let out = '{"header":{"publisher":"';
  out += checkUuid(header.publisher, "header.publisher", encodeFail);
  out += '","sequence":"';
  out += checkInt64(header.sequence, "uint64", "header.sequence", encodeFail);
  out += '","timestamp":"';
  out += checkTimestamp(header.timestamp, "header.timestamp", encodeFail);
  out += '"},"batch":{"node":"';
  out += checkUuid(batch.node, "batch.node", encodeFail);
  out += '","id":"';
  out += checkInt64(batch.id, "int64", "batch.id", encodeFail);
  out += '"},';
  switch (body.kind) {
    case "begin":
      out += '"begin":{"start":';
      out += encodeTick(body.begin.start, "begin.start");
      out += ',"end":';
      out += encodeTick(body.begin.end, "begin.end");
      return `${out}}}`;
    case "mutation":
      return `${out}"mutation":${encodeMutation(body.mutation)}}`;
    case "commit":
      return `${out}"commit":{}}`;
    case "rollback":
      return `${out}"rollback":{}}`;
    default:
      return encodeFail(
        "body.kind",
        `unknown body kind ${describe((body as { kind: unknown }).kind)}`,
      );
  }
}

function encodeTick(tick: Tick, path: string): string {
  const { snapshot } = tick;
  let out = '{"id":"';
  out += checkInt64(tick.id, "int64", `${path}.id`, encodeFail);
  out += '","snapshot":{"xmin":"';
  out += checkInt64(snapshot.xmin, "uint64", `${path}.snapshot.xmin`, encodeFail);
  out += '","xmax":"';
  out += checkInt64(snapshot.xmax, "uint64", `${path}.snapshot.xmax`, encodeFail);
  out += '","xip":[';
  for (let i = 0; i < snapshot.xip.length; i++) {
    if (i > 0) out += ",";
    out += `"${checkInt64(snapshot.xip[i], "uint64", `${path}.snapshot.xip[${i}]`, encodeFail)}"`;
  }
  out += ']},"time":"';
  out += checkTimestamp(tick.time, `${path}.time`, encodeFail);
  return `${out}"}`;
}

function encodeMutation(m: Mutation): string {
  if (!OPERATIONS.includes(m.operation)) {
    encodeFail("mutation.operation", `unknown operation ${describe(m.operation)}`);
  }
  let out = '{"id":"';
  out += checkInt64(m.id, "int64", "mutation.id", encodeFail);
  out += '","schema":';
  out += JSON.stringify(checkString(m.schema, "mutation.schema", encodeFail));
  out += ',"table":';
  out += JSON.stringify(checkString(m.table, "mutation.table", encodeFail));
  out += ',"operation":"';
  out += m.operation;
  out += '","identity":[';
  const identity = checkStrings(m.identity, "mutation.identity", encodeFail);
  for (let i = 0; i < identity.length; i++) {
    if (i > 0) out += ",";
    out += JSON.stringify(identity[i]);
  }
  const rows = m[ROWS_JSON];
  if (rows !== undefined) {
    // The capture trigger's JSON, already in this codec's mapping: copied, not re-encoded.
    out += "],";
    out += rows;
  } else {
    out += '],"old":';
    out += encodeRow(m.old, "mutation.old");
    out += ',"new":';
    out += encodeRow(m.new, "mutation.new");
  }
  out += ',"transaction":"';
  out += checkInt64(m.transaction, "uint64", "mutation.transaction", encodeFail);
  out += '","time":"';
  out += checkTimestamp(m.time, "mutation.time", encodeFail);
  return `${out}"}`;
}

function encodeRow(row: Row | null, path: string): string {
  if (row === null) return "null";
  if (typeof row !== "object")
    return encodeFail(path, `expected a row or null, got ${describe(row)}`);
  let out = "{";
  let first = true;
  for (const column in row) {
    if (first) first = false;
    else out += ",";
    out += JSON.stringify(column);
    out += ":";
    const value = row[column];
    switch (typeof value) {
      case "string":
        out += JSON.stringify(value);
        break;
      case "boolean":
        out += value ? "true" : "false";
        break;
      case "number":
        if (!isInt32(value)) {
          encodeFail(
            `${path}.${column}`,
            `${value} is not an int2/int4 value (other numbers travel as text)`,
          );
        }
        out += String(value);
        break;
      default:
        if (value !== null) {
          encodeFail(
            `${path}.${column}`,
            `expected null, a boolean, an integer or a string, got ${describe(value)}`,
          );
        }
        out += "null";
    }
  }
  return `${out}}`;
}

// Decoding ------------------------------------------------------------------

type JsonObject = Record<string, unknown>;

function object(v: unknown, path: string): JsonObject {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    return decodeFail(path, `expected an object, got ${describe(v)}`);
  }
  return v as JsonObject;
}

function field(o: JsonObject, key: string, path: string): unknown {
  const v = o[key];
  if (v === undefined) return decodeFail(path ? `${path}.${key}` : key, "missing");
  return v;
}

/** Decodes one line of JSON (a trailing newline is tolerated); unknown fields are ignored. */
export function decodeJson(line: string): Message {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (error) {
    return decodeFail("(message)", `not valid JSON: ${(error as Error).message}`);
  }
  const root = object(parsed, "(message)");
  const header = decodeHeader(object(field(root, "header", ""), "header"));
  const batch = decodeBatchRef(object(field(root, "batch", ""), "batch"));
  return { header, batch, body: decodeBody(root) };
}

function decodeHeader(o: JsonObject): Header {
  return {
    publisher: checkUuid(field(o, "publisher", "header"), "header.publisher", decodeFail),
    sequence: parseInt64Text(
      field(o, "sequence", "header"),
      "uint64",
      "header.sequence",
      decodeFail,
    ),
    timestamp: checkTimestamp(field(o, "timestamp", "header"), "header.timestamp", decodeFail),
  };
}

function decodeBatchRef(o: JsonObject): BatchRef {
  return {
    node: checkUuid(field(o, "node", "batch"), "batch.node", decodeFail),
    id: parseInt64Text(field(o, "id", "batch"), "int64", "batch.id", decodeFail),
  };
}

function decodeBody(root: JsonObject): Body {
  const present = BODY_KEYS.filter((key) => root[key] !== undefined);
  if (present.length === 0) {
    return decodeFail("(body)", `missing: expected one of ${BODY_KEYS.join(", ")}`);
  }
  if (present.length > 1) return decodeFail("(body)", `two bodies: ${present.join(" and ")}`);
  const kind = present[0]!;
  const value = object(root[kind], kind);
  switch (kind) {
    case "begin":
      return { kind, begin: decodeBegin(value) };
    case "mutation":
      return { kind, mutation: decodeMutation(value) };
    case "commit":
      return { kind };
    case "rollback":
      return { kind };
  }
}

function decodeBegin(o: JsonObject): Begin {
  return {
    start: decodeTick(object(field(o, "start", "begin"), "begin.start"), "begin.start"),
    end: decodeTick(object(field(o, "end", "begin"), "begin.end"), "begin.end"),
  };
}

function decodeTick(o: JsonObject, path: string): Tick {
  return {
    id: parseInt64Text(field(o, "id", path), "int64", `${path}.id`, decodeFail),
    snapshot: decodeSnapshot(
      object(field(o, "snapshot", path), `${path}.snapshot`),
      `${path}.snapshot`,
    ),
    time: checkTimestamp(field(o, "time", path), `${path}.time`, decodeFail),
  };
}

function decodeSnapshot(o: JsonObject, path: string): Snapshot {
  const xip = field(o, "xip", path);
  if (!Array.isArray(xip))
    return decodeFail(`${path}.xip`, `expected an array, got ${describe(xip)}`);
  return {
    xmin: parseInt64Text(field(o, "xmin", path), "uint64", `${path}.xmin`, decodeFail),
    xmax: parseInt64Text(field(o, "xmax", path), "uint64", `${path}.xmax`, decodeFail),
    xip: xip.map((txid: unknown, i) =>
      parseInt64Text(txid, "uint64", `${path}.xip[${i}]`, decodeFail),
    ),
  };
}

function decodeOperation(v: unknown): Operation {
  if (typeof v === "string" && OPERATIONS.includes(v as Operation)) return v as Operation;
  return decodeFail("mutation.operation", `unknown operation ${describe(v)}`);
}

function decodeMutation(o: JsonObject): Mutation {
  const p = "mutation";
  return {
    id: parseInt64Text(field(o, "id", p), "int64", "mutation.id", decodeFail),
    schema: checkString(field(o, "schema", p), "mutation.schema", decodeFail),
    table: checkString(field(o, "table", p), "mutation.table", decodeFail),
    operation: decodeOperation(field(o, "operation", p)),
    identity: checkStrings(field(o, "identity", p), "mutation.identity", decodeFail),
    old: checkRow(field(o, "old", p), "mutation.old", decodeFail),
    new: checkRow(field(o, "new", p), "mutation.new", decodeFail),
    transaction: parseInt64Text(
      field(o, "transaction", p),
      "uint64",
      "mutation.transaction",
      decodeFail,
    ),
    time: checkTimestamp(field(o, "time", p), "mutation.time", decodeFail),
  };
}

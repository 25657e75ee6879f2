import assert from "node:assert/strict";
import { test } from "node:test";
import { PgshovelError } from "../../../src/errors.js";
import {
  type Body,
  decodeProtobuf,
  encodeProtobuf,
  type Message,
  type Mutation,
  type Row,
  type Tick,
  timestampFromParts,
  type Value,
} from "../../../src/stream/index.js";
import { encodeProtobufReference } from "../../support/protobuf-reference.js";

// The hand-written protobuf encoder must write exactly the bytes of the
// create() + toBinary() encoder it replaced (test/support/protobuf-reference.ts):
// the golden files pin a few messages, these tests pin everything else.

const NODE = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
const PUBLISHER = "0b8e7a52-1c3d-4e5f-9a6b-7c8d9e0f1a2b";
const TIME = "2026-11-24T03:45:27.123456Z";

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** Asserts that both encoders write the same bytes for `msg`, and that they decode back. */
function assertSameBytes(msg: Message, what = ""): void {
  const expected = encodeProtobufReference(msg);
  const got = encodeProtobuf(msg);
  // Hex first: a mismatch shows where it starts.
  assert.equal(hex(got), hex(expected), what);
  assert.ok(got instanceof Uint8Array && !Buffer.isBuffer(got), "a plain Uint8Array");
  assert.equal(got.byteOffset, 0, "its own buffer");
  assert.equal(got.buffer.byteLength, got.byteLength, "exactly the encoded bytes");
}

/** Asserts that both encoders refuse `msg` with the same error. */
function assertSameError(msg: Message, pattern: RegExp): void {
  const errorOf = (encode: (m: Message) => Uint8Array): PgshovelError => {
    try {
      encode(msg);
    } catch (error) {
      assert.ok(error instanceof PgshovelError, `expected a PgshovelError, got ${String(error)}`);
      return error;
    }
    return assert.fail(`expected ${pattern} to be thrown`);
  };
  const expected = errorOf(encodeProtobufReference);
  const got = errorOf(encodeProtobuf);
  assert.equal(got.code, "INVALID_ARGUMENT");
  assert.equal(got.code, expected.code);
  assert.equal(got.message, expected.message);
  assert.match(got.message, pattern);
}

function messageOf(body: Body, sequence = 7n, batchId = 42n): Message {
  return {
    header: { publisher: PUBLISHER, sequence, timestamp: TIME },
    batch: { node: NODE, id: batchId },
    body,
  };
}

function mutationOf(fields: Partial<Mutation> = {}): Mutation {
  return {
    id: 1001n,
    schema: "public",
    table: "accounts",
    operation: "INSERT",
    identity: ["id"],
    old: null,
    new: { id: 1, owner: "owner 1" },
    transaction: 9004n,
    time: TIME,
    ...fields,
  };
}

function tickOf(id: bigint, xip: bigint[], time = TIME): Tick {
  return { id, snapshot: { xmin: 9000n, xmax: 9010n, xip }, time };
}

function beginOf(start: Tick, end: Tick): Message {
  return messageOf({ kind: "begin", begin: { start, end } });
}

function insertOf(row: Row): Message {
  return messageOf({ kind: "mutation", mutation: mutationOf({ new: row }) });
}

/** A row with one column per entry of `values`, named c0, c1, … */
function rowOf(values: Value[]): Row {
  const row: Row = {};
  values.forEach((value, i) => {
    row[`c${i}`] = value;
  });
  return row;
}

test("every body kind is encoded as toBinary encodes it", () => {
  assertSameBytes(beginOf(tickOf(5n, []), tickOf(6n, [])), "begin, empty xip");
  assertSameBytes(beginOf(tickOf(5n, [9001n, 9003n]), tickOf(6n, [])), "begin, xip");
  assertSameBytes(
    beginOf(tickOf(0n, [0n, 1n, 127n, 128n, 2n ** 32n, UINT64_MAX]), tickOf(-1n, [9n])),
    "begin, wide xip and ids",
  );
  const manyXip = Array.from({ length: 5000 }, (_, i) => 2n ** 40n + BigInt(i));
  assertSameBytes(beginOf(tickOf(5n, manyXip), tickOf(6n, manyXip)), "begin, long xip");
  for (const operation of ["INSERT", "UPDATE", "DELETE", "TRUNCATE"] as const) {
    assertSameBytes(messageOf({ kind: "mutation", mutation: mutationOf({ operation }) }));
  }
  assertSameBytes(messageOf({ kind: "commit" }), "commit");
  assertSameBytes(messageOf({ kind: "rollback" }), "rollback");
});

test("64-bit integers: zero, boundaries of the varint lengths, int64 min/max, uint64 max", () => {
  const unsigned = [0n, 1n, 127n, 128n, 16383n, 16384n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n];
  unsigned.push(2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, UINT64_MAX - 1n, UINT64_MAX);
  const signed = [0n, 1n, -1n, -2n, -127n, -128n, -(2n ** 31n), -(2n ** 32n), -(2n ** 32n) - 1n];
  signed.push(-(2n ** 53n) + 1n, -(2n ** 53n), -(2n ** 53n) - 1n, 2n ** 53n, INT64_MIN, INT64_MAX);
  signed.push(INT64_MIN + 1n, INT64_MAX - 1n);
  for (const u of unsigned) {
    assertSameBytes(messageOf({ kind: "commit" }, u), `sequence ${u}`);
    assertSameBytes(
      messageOf({ kind: "mutation", mutation: mutationOf({ transaction: u }) }),
      `transaction ${u}`,
    );
    assertSameBytes(beginOf(tickOf(1n, [u, u]), tickOf(2n, [])), `xip ${u}`);
  }
  for (const s of signed) {
    assertSameBytes(messageOf({ kind: "rollback" }, 0n, s), `batch id ${s}`);
    assertSameBytes(messageOf({ kind: "mutation", mutation: mutationOf({ id: s }) }), `id ${s}`);
    assertSameBytes(beginOf(tickOf(s, []), tickOf(s, [1n])), `tick id ${s}`);
  }
});

test("timestamps before and at 1970, with and without microseconds, across the range", () => {
  for (const ts of [
    "0001-01-01T00:00:00.000000Z",
    "0001-01-01T00:00:00.000001Z",
    "1900-02-28T12:00:00.500000Z",
    "1969-12-31T23:59:59.999999Z",
    "1969-12-31T23:59:59.000000Z",
    "1970-01-01T00:00:00.000000Z",
    "1970-01-01T00:00:00.000001Z",
    "1970-01-01T00:00:01.000000Z",
    "2000-02-29T12:34:56.000001Z",
    TIME,
    "2038-01-19T03:14:08.000000Z",
    "9999-12-31T23:59:59.999999Z",
  ]) {
    const message = messageOf({ kind: "mutation", mutation: mutationOf({ time: ts }) });
    message.header.timestamp = ts;
    assertSameBytes(message, ts);
    assertSameBytes(beginOf(tickOf(1n, [], ts), tickOf(2n, [], ts)), ts);
  }
});

test("row values: null, booleans, int32, empty, multi-byte, astral and lone-surrogate text", () => {
  const values: Value[] = [null, true, false, 0, -0, 1, -1, 63, 64, -64, -65, 8191, 8192];
  values.push(2 ** 31 - 1, -(2 ** 31), 2 ** 30, -(2 ** 30) - 1, 32767, -32768);
  values.push("", "x", "null", "héllo", "中文", "👋🏽", "e\u0301", "\u0000", "\u007f", "\u0080");
  values.push("\u07ff", "\u0800", "\uffff", "\ud800", "\udc00", "a\ud800b", "\udbff\udfff");
  values.push("\udfff\ud800", `${"x".repeat(40)}\ud83d`);
  for (const value of values) assertSameBytes(insertOf({ v: value }), JSON.stringify(value));
  assertSameBytes(insertOf(rowOf(values)), "all in one row");
});

test("rows: empty, absent, old and new, many columns, odd and index-like column names", () => {
  assertSameBytes(insertOf({}), "empty row");
  const update = mutationOf({
    operation: "UPDATE",
    old: { id: 1, v: "a" },
    new: { id: 1, v: "b" },
  });
  assertSameBytes(messageOf({ kind: "mutation", mutation: update }), "update");
  const del = mutationOf({ operation: "DELETE", old: { id: 1 }, new: null });
  assertSameBytes(messageOf({ kind: "mutation", mutation: del }), "delete");
  const truncate = mutationOf({ operation: "TRUNCATE", identity: [], old: null, new: null });
  assertSameBytes(messageOf({ kind: "mutation", mutation: truncate }), "truncate");
  assertSameBytes(insertOf(rowOf(Array.from({ length: 1000 }, (_, i) => i))), "1000 columns");
  assertSameBytes(insertOf({ "": "", é: 1, "👋": null, "a b": true }), "odd names");
  const indexLike: Row = { b: 1, 10: 2, a: 3, 2: 4, "01": 5, "1.5": 6, "-1": 7, 4294967294: 8 };
  indexLike["4294967295"] = 9;
  indexLike["1e3"] = 10;
  indexLike[" 3"] = 11;
  assertSameBytes(insertOf(indexLike), "index-like names");
});

test("a column named __proto__ and rows that inherit columns", () => {
  const row: Row = { first: 1 };
  Object.defineProperty(row, "__proto__", {
    value: "x",
    enumerable: true,
    writable: true,
    configurable: true,
  });
  row.other = 2;
  assertSameBytes(insertOf(row), "__proto__");
  // for…in also yields inherited columns, after the own ones; the old encoder
  // copied them into an object, which put index-like names first.
  const inherited = Object.create({ z: "inherited", 5: true, shadowed: 0 }) as Row;
  Object.assign(inherited, { a: 1, 7: "own index", shadowed: 1 });
  assertSameBytes(insertOf(inherited), "inherited");
  const inheritedNamed = Object.assign(Object.create({ z: "inherited" }) as Row, { a: 1 });
  assertSameBytes(insertOf(inheritedNamed), "inherited, names only");
  assertSameBytes(insertOf(Object.create(null) as Row), "null prototype");
});

test("strings across the varint length boundaries, ASCII and not", () => {
  const lengths = [0, 1, 42, 125, 126, 127, 128, 129, 255, 256, 257, 300, 16381, 16382];
  lengths.push(16383, 16384, 16385, 70000, 2097151, 2097152);
  for (const n of lengths) {
    const ascii = "a".repeat(n);
    assertSameBytes(insertOf({ v: ascii }), `ascii ${n}`);
    assertSameBytes(insertOf({ [ascii]: 1 }), `ascii name ${n}`);
    assertSameBytes(
      messageOf({ kind: "mutation", mutation: mutationOf({ schema: ascii, identity: [ascii] }) }),
      `ascii schema ${n}`,
    );
    if (n > 0) {
      // Non-ASCII at the end: the ASCII copy gives up late, the length prefix grows.
      assertSameBytes(insertOf({ v: `${"a".repeat(n - 1)}é` }), `é at the end ${n}`);
      assertSameBytes(insertOf({ v: "é".repeat(n) }), `é × ${n}`);
      assertSameBytes(insertOf({ v: "中".repeat(n) }), `中 × ${n}`);
      assertSameBytes(insertOf({ v: "\ud800".repeat(n) }), `lone surrogate × ${n}`);
    }
  }
  // The writer's buffer grows well past what it keeps between messages, then shrinks.
  assertSameBytes(insertOf({ big: "€".repeat(1_500_000), after: "x" }), "4.5 MB");
  assertSameBytes(insertOf({ small: "x" }), "after a big one");
});

test("strings of the mutation: empty schema, table and identity entries", () => {
  const empty = mutationOf({ schema: "", table: "", identity: ["", "id", ""] });
  assertSameBytes(messageOf({ kind: "mutation", mutation: empty }));
  const unicode = mutationOf({ schema: "schéma", table: "表", identity: ["ключ", "\ud800"] });
  assertSameBytes(messageOf({ kind: "mutation", mutation: unicode }));
});

test("consecutive calls return independent buffers", () => {
  const a = insertOf({ v: "first message", n: 1 });
  const b = insertOf({ v: "the second message, which is longer", n: 2, more: "x".repeat(5000) });
  const bytesA = encodeProtobuf(a);
  const copyA = Uint8Array.from(bytesA);
  const bytesB = encodeProtobuf(b);
  const bytesA2 = encodeProtobuf(a);
  assert.deepEqual(bytesA, copyA, "encoding B left A's bytes alone");
  assert.notEqual(bytesA.buffer, bytesB.buffer);
  assert.notEqual(bytesA.buffer, bytesA2.buffer);
  assert.deepEqual(bytesA2, copyA);
  bytesA2.fill(0);
  assert.deepEqual(encodeProtobuf(a), copyA, "scribbling on a result does not reach the writer");
  assert.deepEqual(decodeProtobuf(bytesB), b);
});

test("a row whose getter encodes another message (re-entry) still encodes right", () => {
  const inner = insertOf({ inner: "message" });
  const innerBytes: Uint8Array[] = [];
  const row: Row = { before: "b" };
  Object.defineProperty(row, "v", {
    enumerable: true,
    get: () => {
      innerBytes.push(encodeProtobuf(inner));
      return "value";
    },
  });
  row.after = "a";
  assertSameBytes(insertOf(row));
  assert.ok(innerBytes.length > 0);
  for (const bytes of innerBytes) assert.equal(hex(bytes), hex(encodeProtobufReference(inner)));
});

test("faults are refused with the reference encoder's errors, the first fault first", () => {
  const bad = (change: (m: Message & { body: { kind: "mutation" } }) => void): Message => {
    const message = insertOf({ id: 1, v: "x" }) as Message & { body: { kind: "mutation" } };
    change(message);
    return message;
  };
  const asAny = (v: unknown) => v as never;
  assertSameError(
    bad((m) => {
      m.header.publisher = "nope";
    }),
    /header\.publisher: expected a lowercase UUID/,
  );
  assertSameError(
    bad((m) => {
      m.header.sequence = -1n;
    }),
    /header\.sequence: -1 is out of the uint64 range/,
  );
  assertSameError(
    bad((m) => {
      m.header.sequence = asAny(1);
    }),
    /header\.sequence: expected a bigint/,
  );
  assertSameError(
    bad((m) => {
      m.header.timestamp = "2026-11-24T03:45:27.123Z";
    }),
    /header\.timestamp/,
  );
  assertSameError(
    bad((m) => {
      m.batch.node = asAny(undefined);
    }),
    /batch\.node/,
  );
  assertSameError(
    bad((m) => {
      m.batch.id = 2n ** 63n;
    }),
    /batch\.id: .* out of the int64 range/,
  );
  assertSameError(
    bad((m) => {
      m.body = asAny({ kind: "checkpoint" });
    }),
    /body\.kind: unknown body kind "checkpoint"/,
  );
  assertSameError(
    bad((m) => {
      m.body.mutation.operation = asAny("UPSERT");
    }),
    /mutation\.operation: unknown operation "UPSERT"/,
  );
  assertSameError(
    bad((m) => {
      m.body.mutation.id = INT64_MIN - 1n;
    }),
    /mutation\.id/,
  );
  assertSameError(
    bad((m) => {
      m.body.mutation.schema = asAny(null);
    }),
    /mutation\.schema: expected a string/,
  );
  assertSameError(
    bad((m) => {
      m.body.mutation.table = asAny(3);
    }),
    /mutation\.table: expected a string/,
  );
  assertSameError(
    bad((m) => {
      m.body.mutation.identity = asAny(["id", 3]);
    }),
    /mutation\.identity\[1\]: expected a string/,
  );
  assertSameError(
    bad((m) => {
      m.body.mutation.identity = asAny("id");
    }),
    /mutation\.identity: expected an array of strings/,
  );
  assertSameError(
    bad((m) => {
      m.body.mutation.transaction = UINT64_MAX + 1n;
    }),
    /mutation\.transaction/,
  );
  assertSameError(
    bad((m) => {
      m.body.mutation.time = "2026-02-29T00:00:00.000000Z";
    }),
    /mutation\.time/,
  );
  assertSameError(
    bad((m) => {
      m.body.mutation.old = asAny("x");
    }),
    /mutation\.old: expected a row or null, got "x"/,
  );
  assertSameError(
    bad((m) => {
      m.body.mutation.new = asAny(undefined);
    }),
    /mutation\.new: expected a row or null, got nothing/,
  );
  for (const value of [1.5, 2 ** 31, Number.NaN, 1n, {}, [], undefined, () => 1]) {
    assertSameError(
      bad((m) => {
        m.body.mutation.new = asAny({ id: 1, price: value });
      }),
      /mutation\.new\.price: /,
    );
  }
  // Several faults: the rows are checked last, the old row before the new one.
  assertSameError(
    bad((m) => {
      m.body.mutation.old = asAny({ a: 1.5 });
      m.body.mutation.new = asAny({ b: 1.5 });
      m.body.mutation.time = "bad";
    }),
    /mutation\.time/,
  );
  assertSameError(
    bad((m) => {
      m.body.mutation.old = asAny({ a: 1.5 });
      m.body.mutation.new = asAny({ b: 1.5 });
    }),
    /mutation\.old\.a/,
  );
  assertSameError(
    bad((m) => {
      m.body.mutation.new = asAny({ ok: 1, b: 1.5, c: 2.5 });
    }),
    /mutation\.new\.b/,
  );
  const begin = (change: (start: Tick, end: Tick) => void): Message => {
    const start = tickOf(1n, [9001n]);
    const end = tickOf(2n, [9002n]);
    change(start, end);
    return beginOf(start, end);
  };
  assertSameError(
    begin((s) => {
      s.id = 2n ** 63n;
    }),
    /begin\.start\.id/,
  );
  assertSameError(
    begin((_, e) => {
      e.snapshot.xmin = -1n;
    }),
    /begin\.end\.snapshot\.xmin/,
  );
  assertSameError(
    begin((s) => {
      s.snapshot.xmax = asAny(5);
    }),
    /begin\.start\.snapshot\.xmax/,
  );
  assertSameError(
    begin((s, e) => {
      s.snapshot.xip = [1n, -2n];
      e.id = -(2n ** 64n);
    }),
    /begin\.start\.snapshot\.xip\[1\]/,
  );
  assertSameError(
    begin((_, e) => {
      e.time = "9999-12-31T24:00:00.000000Z";
    }),
    /begin\.end\.time/,
  );
  // After a fault the writer starts over cleanly.
  assertSameBytes(insertOf({ id: 1, v: "x" }));
});

// Random messages ------------------------------------------------------------

/** mulberry32: a small, seeded, deterministic PRNG giving numbers in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Builders of random message parts from one PRNG. */
class RandomMessages {
  readonly #random: () => number;

  constructor(seed: number) {
    this.#random = prng(seed);
  }

  int(n: number): number {
    return Math.floor(this.#random() * n);
  }

  chance(p: number): boolean {
    return this.#random() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  /** A uniform 64-bit unsigned integer. */
  uint64Bits(): bigint {
    return (BigInt(this.int(2 ** 32)) << 32n) | BigInt(this.int(2 ** 32));
  }

  uint64(): bigint {
    switch (this.int(6)) {
      case 0:
        return this.pick([0n, 1n, 127n, 128n, UINT64_MAX]);
      case 1:
        return BigInt(this.int(2 ** 32));
      case 2:
        return BigInt(this.int(2 ** 53));
      case 3:
        return BigInt(this.int(1_000_000));
      default:
        return this.uint64Bits();
    }
  }

  int64(): bigint {
    switch (this.int(5)) {
      case 0:
        return this.pick([0n, -1n, 1n, INT64_MIN, INT64_MAX, -(2n ** 53n), 2n ** 53n]);
      case 1:
        return BigInt(this.int(2 ** 33)) - 2n ** 32n;
      case 2:
        return BigInt(this.int(2 ** 53)) * (this.chance(0.5) ? -1n : 1n);
      default:
        return BigInt.asIntN(64, this.uint64Bits());
    }
  }

  timestamp(): string {
    // 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
    const seconds = this.chance(0.05)
      ? this.pick([0, -1, 1])
      : -62135596800 + this.int(253402300799 + 62135596800 + 1);
    const micros = this.chance(0.2) ? 0 : this.int(1_000_000);
    return timestampFromParts(seconds, micros);
  }

  char(): string {
    switch (this.int(12)) {
      case 0:
        return String.fromCharCode(0x80 + this.int(0x780)); // two UTF-8 bytes
      case 1:
        return String.fromCharCode(0x800 + this.int(0xd800 - 0x800)); // three
      case 2:
        return String.fromCodePoint(0x10000 + this.int(0x100000)); // a surrogate pair, four
      case 3:
        return String.fromCharCode(0xd800 + this.int(0x800)); // a lone surrogate
      case 4:
        return String.fromCharCode(0xe000 + this.int(0x2000));
      default:
        return String.fromCharCode(this.int(0x80));
    }
  }

  text(): string {
    const roll = this.#random();
    const length =
      roll < 0.7
        ? this.int(20)
        : roll < 0.9
          ? 20 + this.int(300)
          : roll < 0.98
            ? 300 + this.int(3000)
            : 3000 + this.int(20000);
    // Mostly ASCII text, as in real rows, with some non-ASCII mixed in.
    const ascii = this.chance(0.6);
    let s = "";
    for (let i = 0; i < length; i++) {
      s += ascii || this.chance(0.8) ? String.fromCharCode(32 + this.int(95)) : this.char();
    }
    return s;
  }

  value(): Value {
    switch (this.int(8)) {
      case 0:
        return null;
      case 1:
        return this.chance(0.5);
      case 2:
        return this.pick([0, -1, 1, 2 ** 31 - 1, -(2 ** 31), 63, 64, -64, -65]);
      case 3:
        return this.int(2 ** 32) - 2 ** 31;
      default:
        return this.text();
    }
  }

  columnName(): string {
    switch (this.int(10)) {
      case 0:
        return String(this.int(50));
      case 1:
        return this.text();
      default:
        return `col_${this.int(40)}`;
    }
  }

  row(): Row {
    const row: Row = {};
    const columns = this.chance(0.1) ? 0 : this.int(this.chance(0.05) ? 200 : 12);
    for (let i = 0; i < columns; i++) {
      const name = this.columnName();
      const value = this.value();
      if (name === "__proto__") {
        Object.defineProperty(row, name, { value, enumerable: true, writable: true });
      } else {
        row[name] = value;
      }
    }
    return row;
  }

  tick(): Tick {
    const xip = Array.from({ length: this.chance(0.3) ? 0 : this.int(30) }, () => this.uint64());
    return {
      id: this.int64(),
      snapshot: { xmin: this.uint64(), xmax: this.uint64(), xip },
      time: this.timestamp(),
    };
  }

  mutation(): Mutation {
    const operation = this.pick(["INSERT", "UPDATE", "DELETE", "TRUNCATE"] as const);
    return {
      id: this.int64(),
      schema: this.chance(0.05) ? "" : this.text(),
      table: this.chance(0.05) ? "" : this.text(),
      operation,
      identity: Array.from({ length: this.int(4) }, () => this.text()),
      old: this.chance(0.5) ? this.row() : null,
      new: this.chance(0.5) ? this.row() : null,
      transaction: this.uint64(),
      time: this.timestamp(),
    };
  }

  body(): Body {
    switch (this.int(10)) {
      case 0:
        return { kind: "begin", begin: { start: this.tick(), end: this.tick() } };
      case 1:
        return { kind: "commit" };
      case 2:
        return { kind: "rollback" };
      default:
        return { kind: "mutation", mutation: this.mutation() };
    }
  }

  message(): Message {
    const uuid = () => this.pick([NODE, PUBLISHER, "00000000-0000-0000-0000-000000000000"]);
    return {
      header: { publisher: uuid(), sequence: this.uint64(), timestamp: this.timestamp() },
      batch: { node: uuid(), id: this.int64() },
      body: this.body(),
    };
  }
}

test("thousands of random messages (seeded) are encoded as toBinary encodes them", () => {
  const random = new RandomMessages(0x5eed);
  for (let i = 0; i < 4000; i++) {
    const message = random.message();
    assertSameBytes(message, `random message ${i}`);
  }
});

test("random messages decode to messages that encode to the same bytes", () => {
  // Not decode(encode(m)) = m: lone surrogates come back as U+FFFD, which UTF-8 encodes alike.
  const random = new RandomMessages(20261124);
  for (let i = 0; i < 300; i++) {
    const bytes = encodeProtobuf(random.message());
    assert.equal(hex(encodeProtobuf(decodeProtobuf(bytes))), hex(bytes), `random message ${i}`);
  }
});

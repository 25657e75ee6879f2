import { PgshovelError } from "../errors.js";
import { timestampProblem } from "./timestamp.js";
import type { Row, Value } from "./types.js";

/** Reports a bad field: `path` names it ("mutation.new.price"), `problem` says what is wrong. */
export type Fail = (path: string, problem: string) => never;

/** The failure of a decoder: PgshovelError("DECODE_ERROR"). */
export const decodeFail: Fail = (path, problem) => {
  throw new PgshovelError("DECODE_ERROR", `cannot decode stream message: ${path}: ${problem}`);
};

/** The failure of an encoder handed a message outside the contract: PgshovelError("INVALID_ARGUMENT"). */
export const encodeFail: Fail = (path, problem) => {
  throw new PgshovelError("INVALID_ARGUMENT", `cannot encode stream message: ${path}: ${problem}`);
};

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
const INT64_TEXT = /^(?:0|-?[1-9][0-9]{0,18})$/;
const UINT64_TEXT = /^(?:0|[1-9][0-9]{0,19})$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Which range a 64-bit field has: PostgreSQL bigint ids are signed, txids and sequences unsigned. */
export type Int64Kind = "int64" | "uint64";

/** Checks that `v` is a bigint within the range of `kind`. */
export function checkInt64(v: unknown, kind: Int64Kind, path: string, fail: Fail): bigint {
  if (typeof v !== "bigint") return fail(path, `expected a bigint, got ${typeof v}`);
  if (kind === "int64" ? v < INT64_MIN || v > INT64_MAX : v < 0n || v > UINT64_MAX) {
    return fail(path, `${v} is out of the ${kind} range`);
  }
  return v;
}

/** Parses a 64-bit integer written as a JSON string of decimal digits. */
export function parseInt64Text(v: unknown, kind: Int64Kind, path: string, fail: Fail): bigint {
  if (typeof v !== "string") {
    return fail(path, `expected a string of decimal digits, got ${describe(v)}`);
  }
  if (!(kind === "int64" ? INT64_TEXT : UINT64_TEXT).test(v)) {
    return fail(path, `expected a string of decimal digits, got ${JSON.stringify(v)}`);
  }
  return checkInt64(BigInt(v), kind, path, fail);
}

/**
 * Remembers the last two values that passed a check. A relay encodes every message
 * with the same publisher and node, and with a header timestamp that changes once per
 * millisecond, so most checks of those fields become one string comparison.
 */
class RecentlyValid {
  #a: string | undefined;
  #b: string | undefined;

  has(v: unknown): boolean {
    return v === this.#a || v === this.#b;
  }

  add(v: string): void {
    this.#b = this.#a;
    this.#a = v;
  }
}

const validUuids = new RecentlyValid();
const validTimestamps = new RecentlyValid();

/** Checks a canonical lowercase UUID string. */
export function checkUuid(v: unknown, path: string, fail: Fail): string {
  if (validUuids.has(v)) return v as string;
  if (typeof v !== "string" || !UUID.test(v)) {
    return fail(path, `expected a lowercase UUID, got ${describe(v)}`);
  }
  validUuids.add(v);
  return v;
}

/** Checks a microsecond RFC 3339 UTC time string. */
export function checkTimestamp(v: unknown, path: string, fail: Fail): string {
  if (validTimestamps.has(v)) return v as string;
  const problem = timestampProblem(v);
  if (problem !== undefined) return fail(path, problem);
  validTimestamps.add(v as string);
  return v as string;
}

/** Checks a string field. */
export function checkString(v: unknown, path: string, fail: Fail): string {
  return typeof v === "string" ? v : fail(path, `expected a string, got ${describe(v)}`);
}

/** Checks an array of strings. */
export function checkStrings(v: unknown, path: string, fail: Fail): string[] {
  if (!Array.isArray(v)) return fail(path, `expected an array of strings, got ${describe(v)}`);
  for (let i = 0; i < v.length; i++) checkString(v[i], `${path}[${i}]`, fail);
  return v as string[];
}

/** True when `v` is an integer in the int4 range (the only numbers a {@link Value} holds). */
export function isInt32(v: number): boolean {
  return (v | 0) === v;
}

/** Checks one column value against the {@link Value} rules. */
export function checkValue(v: unknown, path: string, fail: Fail): Value {
  switch (typeof v) {
    case "string":
    case "boolean":
      return v;
    case "number":
      return isInt32(v)
        ? v
        : fail(path, `${v} is not an int2/int4 value (other numbers travel as text)`);
    case "object":
      if (v === null) return v;
      return fail(path, `expected null, a boolean, an integer or a string, got ${describe(v)}`);
    default:
      return fail(path, `expected null, a boolean, an integer or a string, got ${describe(v)}`);
  }
}

/** Checks a row (or null) in place and returns it. */
export function checkRow(v: unknown, path: string, fail: Fail): Row | null {
  if (v === null) return null;
  if (typeof v !== "object" || Array.isArray(v)) {
    return fail(path, `expected an object of columns or null, got ${describe(v)}`);
  }
  const row = v as Record<string, unknown>;
  for (const column of Object.keys(row)) checkValue(row[column], `${path}.${column}`, fail);
  return row as Row;
}

/** Sets a column even when its name is "__proto__", which a plain assignment would swallow. */
export function setColumn(row: Row, column: string, value: Value): void {
  if (column === "__proto__") {
    Object.defineProperty(row, column, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else {
    row[column] = value;
  }
}

/** A short description of an unexpected value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v);
  if (typeof v === "object") return "an object";
  if (typeof v === "undefined") return "nothing";
  return `${typeof v} ${String(v)}`;
}

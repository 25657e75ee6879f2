import type { Timestamp } from "./types.js";

/**
 * Microsecond-precision RFC 3339 UTC times ("2026-11-24T03:45:27.123456Z"),
 * checked and converted by plain arithmetic: no Date objects on the hot path,
 * and the whole 0001–9999 range of google.protobuf.Timestamp.
 */

const LENGTH = "2026-11-24T03:45:27.123456Z".length;
const SEPARATORS: ReadonlyArray<readonly [number, number]> = [
  [4, 0x2d], // -
  [7, 0x2d], // -
  [10, 0x54], // T
  [13, 0x3a], // :
  [16, 0x3a], // :
  [19, 0x2e], // .
  [26, 0x5a], // Z
];
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Seconds since the Unix epoch and the microseconds within that second. */
export interface TimestampParts {
  /** Whole seconds since 1970-01-01T00:00:00Z (negative before it). */
  seconds: number;
  /** 0 to 999999. */
  micros: number;
}

function digits(s: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = s.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

/** Why `s` is not a {@link Timestamp}, or undefined when it is one. */
export function timestampProblem(s: unknown): string | undefined {
  if (typeof s !== "string") return "expected an RFC 3339 UTC time string";
  if (s.length !== LENGTH) return `expected YYYY-MM-DDTHH:MM:SS.ffffffZ, got ${JSON.stringify(s)}`;
  for (const [at, code] of SEPARATORS) {
    if (s.charCodeAt(at) !== code)
      return `expected YYYY-MM-DDTHH:MM:SS.ffffffZ, got ${JSON.stringify(s)}`;
  }
  const year = digits(s, 0, 4);
  const month = digits(s, 5, 7);
  const day = digits(s, 8, 10);
  const hour = digits(s, 11, 13);
  const minute = digits(s, 14, 16);
  const second = digits(s, 17, 19);
  const micros = digits(s, 20, 26);
  if (year < 1 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23) {
    return `not a valid time: ${JSON.stringify(s)}`;
  }
  if (minute < 0 || minute > 59 || second < 0 || second > 59 || micros < 0) {
    return `not a valid time: ${JSON.stringify(s)}`;
  }
  const monthDays = month === 2 && isLeapYear(year) ? 29 : (DAYS_IN_MONTH[month - 1] ?? 0);
  if (day > monthDays) return `not a valid date: ${JSON.stringify(s)}`;
  return undefined;
}

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian).
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

/** Splits a valid {@link Timestamp} into epoch seconds and microseconds. */
export function timestampToParts(ts: Timestamp): TimestampParts {
  const days = daysFromCivil(digits(ts, 0, 4), digits(ts, 5, 7), digits(ts, 8, 10));
  const seconds =
    days * 86400 + digits(ts, 11, 13) * 3600 + digits(ts, 14, 16) * 60 + digits(ts, 17, 19);
  return { seconds, micros: digits(ts, 20, 26) };
}

/** Formats epoch seconds and microseconds (0–999999) as a {@link Timestamp}. */
export function timestampFromParts(seconds: number, micros: number): Timestamp {
  const days = Math.floor(seconds / 86400);
  const secondOfDay = seconds - days * 86400;
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const hour = Math.floor(secondOfDay / 3600);
  const minute = Math.floor((secondOfDay % 3600) / 60);
  const second = secondOfDay % 60;
  return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(hour, 2)}:${pad(minute, 2)}:${pad(second, 2)}.${pad(micros, 6)}Z`;
}

/** The {@link Timestamp} of a Date (whose precision is the millisecond). */
export function timestampFromDate(date: Date): Timestamp {
  const ms = date.getTime();
  const seconds = Math.floor(ms / 1000);
  return timestampFromParts(seconds, (ms - seconds * 1000) * 1000);
}

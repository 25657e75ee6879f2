/**
 * Transaction snapshots as pure data: parsing PostgreSQL's `pg_snapshot` text and the
 * visibility rule a replica uses to tell which source transactions its bootstrap copy
 * already holds. No I/O here.
 */
import { PgshovelError } from "../errors.js";
import type { Snapshot } from "./types.js";

const SNAPSHOT_TEXT = /^(\d+):(\d+):((?:\d+(?:,\d+)*)?)$/;

/**
 * Parses `xmin:xmax:xip1,xip2,…` (the text form of `pg_snapshot` and `txid_snapshot`).
 * Refuses anything else, including an xip outside [xmin, xmax), with INVALID_ARGUMENT.
 */
export function parseSnapshot(text: string): Snapshot {
  const match = SNAPSHOT_TEXT.exec(text);
  if (!match) {
    throw new PgshovelError("INVALID_ARGUMENT", `not a snapshot: ${JSON.stringify(text)}`, {
      hint: "a snapshot is written xmin:xmax:xip,… as pg_current_snapshot() prints it",
    });
  }
  const xmin = BigInt(match[1]!);
  const xmax = BigInt(match[2]!);
  const xip = match[3] === "" ? [] : match[3]!.split(",").map((x) => BigInt(x));
  if (xmin > xmax || xip.some((x) => x < xmin || x >= xmax)) {
    throw new PgshovelError(
      "INVALID_ARGUMENT",
      `inconsistent snapshot ${JSON.stringify(text)}: needs xmin <= xip < xmax`,
    );
  }
  // PostgreSQL prints xip ascending; sorting keeps `visible` correct for any input order.
  xip.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { xmin, xmax, xip };
}

/** The text form of a snapshot, as PostgreSQL prints it. */
export function formatSnapshot(snapshot: Snapshot): string {
  return `${snapshot.xmin}:${snapshot.xmax}:${snapshot.xip.join(",")}`;
}

function includes(sorted: bigint[], value: bigint): boolean {
  let low = 0;
  let high = sorted.length - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const at = sorted[middle]!;
    if (at === value) return true;
    if (at < value) low = middle + 1;
    else high = middle - 1;
  }
  return false;
}

/**
 * Whether transaction `txid` had committed for `snapshot`: below xmin, or below xmax
 * and not listed as running. The rule of PostgreSQL's `pg_visible_in_snapshot`.
 */
export function visible(txid: bigint, snapshot: Snapshot): boolean {
  if (txid < snapshot.xmin) return true;
  if (txid >= snapshot.xmax) return false;
  return !includes(snapshot.xip, txid);
}

/**
 * True when no transaction of a batch that starts at `start` (or of any later batch)
 * can be visible in `copy`. A batch holds transactions not visible at its start tick,
 * so each has txid >= start.xmin; once start.xmin >= copy.xmax each is >= copy.xmax too.
 */
export function pastSnapshot(start: Snapshot, copy: Snapshot): boolean {
  return start.xmin >= copy.xmax;
}

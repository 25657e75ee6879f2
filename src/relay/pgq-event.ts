/**
 * PgQ rows to stream values: pure functions over what the capture trigger
 * (src/capture/sql.ts) writes into the queue and what PgQ reports of its ticks.
 */
import {
  PACKED_SUFFIX,
  type PackedLayout,
  type PackedRecord,
  recordRows,
  recordRowsJson,
  unpackRecords,
} from "../capture/packed.js";
import { PgshovelError } from "../errors.js";
import {
  type Mutation,
  type Operation,
  ROWS_JSON,
  type Row,
  type Timestamp,
} from "../stream/types.js";

/**
 * One event row of a batch, with PgQ's column names (a FETCH returns them so;
 * keeping them spares a copy per event). The trigger also writes the set's
 * configuration version into ev_extra3; nothing downstream needs it, so it is not read.
 */
export interface QueueEvent {
  ev_id: string;
  /** timestamptz as PostgreSQL prints it. */
  ev_time: string;
  ev_txid: string;
  /** The operation. */
  ev_type: string;
  /** `{"old" : row, "new" : row}` as JSON text. */
  ev_data: string;
  /** The table's schema. */
  ev_extra1: string;
  /** The table's name. */
  ev_extra2: string;
  /** The identity column names as a JSON array. */
  ev_extra4: string;
}

/** The columns of {@link QueueEvent}, for a SELECT. */
export const QUEUE_EVENT_COLUMNS =
  "ev_id, ev_time, ev_txid, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra4";

/** Converts PostgreSQL's ISO timestamptz output in UTC ("2026-11-24 03:45:27.1234+00") to a stream Timestamp. */
export function toTimestamp(text: string): Timestamp {
  const match = /^(\d{4,}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?\+00$/.exec(text);
  if (!match)
    throw new PgshovelError(
      "INTERNAL",
      `unexpected timestamp ${JSON.stringify(text)} from PostgreSQL`,
    );
  return `${match[1]}T${match[2]}.${(match[3] ?? "").padEnd(6, "0")}Z`;
}

const OPERATIONS = new Set<string>(["INSERT", "UPDATE", "DELETE", "TRUNCATE"]);

/** What the capture trigger writes into ev_data: `{"old" : …, "new" : …}`, both members always. */
const ROWS_PREFIX = '{"old" : ';

/**
 * A mutation read from the queue. Its rows stay the trigger's JSON text until
 * someone reads `old` or `new`: the JSON codec copies that text into the stream
 * ({@link ROWS_JSON}), so a JSON relay never parses rows at all.
 */
class CapturedMutation implements Mutation {
  #data: string;
  #rows: { old?: Row | null; new?: Row | null } | undefined;
  [ROWS_JSON]: string | undefined;

  constructor(
    readonly id: bigint,
    readonly schema: string,
    readonly table: string,
    readonly operation: Operation,
    readonly identity: string[],
    data: string,
    readonly transaction: bigint,
    readonly time: string,
  ) {
    this.#data = data;
    // Events written before the trigger always carried both members (or by TRUNCATE)
    // have no such text: they are parsed and encoded like any other mutation.
    this[ROWS_JSON] =
      data.startsWith(ROWS_PREFIX) && data.endsWith("}") ? data.slice(1, -1) : undefined;
  }

  private rows(): { old?: Row | null; new?: Row | null } {
    this.#rows ??= JSON.parse(this.#data) as { old?: Row | null; new?: Row | null };
    return this.#rows;
  }

  get old(): Row | null {
    return this.rows().old ?? null;
  }

  set old(row: Row | null) {
    this.rows().old = row;
    this[ROWS_JSON] = undefined;
  }

  get new(): Row | null {
    return this.rows().new ?? null;
  }

  set new(row: Row | null) {
    this.rows().new = row;
    this[ROWS_JSON] = undefined;
  }
}

/**
 * Turns a PgQ event written by the capture trigger into stream mutations: one for a one-row
 * event, one per row, in id order, for a packed event of statement mode
 * (src/capture/packed.ts). `identityCache` maps ev_extra4's text to its parsed list, so
 * that the events of one table share one list (and parse it once).
 */
export function toMutations(event: QueueEvent, identityCache: Map<string, string[]>): Mutation[] {
  let identity = identityCache.get(event.ev_extra4);
  if (!identity) {
    identity = JSON.parse(event.ev_extra4) as string[];
    identityCache.set(event.ev_extra4, identity);
  }
  const type = event.ev_type;
  if (OPERATIONS.has(type)) {
    return [
      new CapturedMutation(
        BigInt(event.ev_id),
        event.ev_extra1,
        event.ev_extra2,
        type as Operation,
        identity,
        event.ev_data,
        BigInt(event.ev_txid),
        toTimestamp(event.ev_time),
      ),
    ];
  }
  const operation = type.endsWith(PACKED_SUFFIX) ? type.slice(0, -PACKED_SUFFIX.length) : "";
  if (operation !== "INSERT" && operation !== "UPDATE" && operation !== "DELETE") {
    throw new PgshovelError(
      "INTERNAL",
      `event ${event.ev_id} has unknown type ${JSON.stringify(type)}`,
    );
  }
  const transaction = BigInt(event.ev_txid);
  const time = toTimestamp(event.ev_time);
  const { layout, records } = unpackRecords(event.ev_data);
  return records.map(
    (record) =>
      new PackedMutation(
        event.ev_extra1,
        event.ev_extra2,
        operation,
        identity,
        transaction,
        time,
        layout,
        record,
      ),
  );
}

/**
 * A row of a packed event. Its images are built when read, as rows (`old`, `new`) or, for the
 * JSON codec, straight as JSON text ({@link ROWS_JSON}), so that a JSON relay builds no rows.
 */
class PackedMutation implements Mutation {
  readonly id: bigint;
  #layout: PackedLayout;
  #record: PackedRecord;
  #rows: { old: Row | null; new: Row | null } | undefined;
  #json: string | undefined;
  #edited = false;

  constructor(
    readonly schema: string,
    readonly table: string,
    readonly operation: Operation,
    readonly identity: string[],
    readonly transaction: bigint,
    readonly time: string,
    layout: PackedLayout,
    record: PackedRecord,
  ) {
    this.id = record.id;
    this.#layout = layout;
    this.#record = record;
  }

  private rows(): { old: Row | null; new: Row | null } {
    this.#rows ??= recordRows(this.#layout, this.#record);
    return this.#rows;
  }

  get [ROWS_JSON](): string | undefined {
    if (this.#edited) return undefined;
    this.#json ??= recordRowsJson(this.#layout, this.#record);
    return this.#json;
  }

  get old(): Row | null {
    return this.rows().old;
  }

  set old(row: Row | null) {
    this.rows().old = row;
    this.#edited = true;
  }

  get new(): Row | null {
    return this.rows().new;
  }

  set new(row: Row | null) {
    this.rows().new = row;
    this.#edited = true;
  }
}

/**
 * Runs: consecutive mutations of one table and one operation, turned into one
 * set-based statement — over array parameters, or from a staging table filled by COPY.
 * Pure: building statements does no I/O.
 */
import { createHash } from "node:crypto";
import { ident } from "../config/names.js";
import { PgshovelError } from "../errors.js";
import type { Mutation, Row, Value } from "../stream/types.js";
import type { ReplicaTable } from "./target-schema.js";
import { display, qualified } from "./target-state.js";

/** A statement ready for `client.query`, named so that the target parses it once per connection. */
export interface RunStatement {
  name: string;
  text: string;
  values: (string | null)[][];
}

/** Bounds that cut a run, so memory stays flat whatever the batch's size. */
export interface RunLimits {
  /** Most rows in one statement. */
  rows: number;
  /** Most characters of values in one statement. */
  chars: number;
  /**
   * INSERT runs of at least this many rows are written with COPY instead of one
   * INSERT over arrays (faster once the run is big enough: see docs/replication.md).
   */
  copyInsertsFrom?: number;
  /**
   * UPDATE and DELETE runs of at least this many rows are copied into a staging table and
   * merged from it by one statement, instead of one statement over arrays (faster once the
   * run is big enough: see docs/replication.md).
   */
  stageFrom?: number;
}

/**
 * The default bounds: 5,000 rows or 16 M characters; INSERT runs of 64 rows or more use
 * COPY, UPDATE and DELETE runs of 64 rows or more a staging table.
 */
export const DEFAULT_RUN_LIMITS: RunLimits = {
  rows: 5_000,
  chars: 16 << 20,
  copyInsertsFrom: 64,
  stageFrom: 64,
};

/** An UPDATE or DELETE run through a staging table: made once per connection, emptied after each run. */
export interface StagedRun {
  /** The temporary table's name (in pg_temp), one per table, operation and columns. */
  stage: string;
  /** Creates the staging table. */
  create: string;
  /** COPY into the staging table, and its data in COPY's text format. */
  copy: { text: string; data: string };
  /** The UPDATE … FROM or DELETE … USING the staging table; returns the ordinal of each matched row. */
  merge: string;
  /** Empties the staging table for the next run. */
  empty: string;
}

/** A value as the text PostgreSQL reads back through a cast to the column's type. */
export function toText(value: Value): string | null {
  if (value === null) return null;
  if (typeof value === "string") return value;
  return String(value);
}

const COPY_ESCAPES: Record<string, string> = {
  "\\": "\\\\",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
};

/** A value in COPY's text format: \N for NULL; backslash, newline, CR and tab escaped. */
export function copyField(value: string | null): string {
  if (value === null) return "\\N";
  return /[\\\n\r\t]/.test(value) ? value.replace(/[\\\n\r\t]/g, (c) => COPY_ESCAPES[c]!) : value;
}

function named(text: string): RunStatement["name"] {
  return `pgshovel_${createHash("sha1").update(text).digest("hex").slice(0, 20)}`;
}

/** Consecutive INSERTs, UPDATEs or DELETEs of one table, with no key twice. */
export class RowRun {
  readonly keys = new Set<string>();
  /** UPDATEs that kept their key, by key: a later one of the same key overwrites the row. */
  private readonly kept = new Map<string, number>();
  /** Per statement parameter, one text value per row. */
  private readonly arrays: (string | null)[][];
  /** For error messages: the row holding each row's key (formatted only when needed). */
  private readonly keyRows: Row[] = [];
  private chars = 0;
  private memo: { mutation: Mutation; keys: string[] } | undefined;

  constructor(
    readonly table: ReplicaTable,
    readonly operation: "INSERT" | "UPDATE" | "DELETE",
    private readonly limits: RunLimits = DEFAULT_RUN_LIMITS,
  ) {
    const width =
      operation === "INSERT"
        ? table.columns.length
        : operation === "UPDATE"
          ? table.columns.length + table.identity.length
          : table.identity.length;
    this.arrays = Array.from({ length: width }, () => []);
  }

  get size(): number {
    return this.keyRows.length;
  }

  /** Keys a mutation touches: the old key (UPDATE, DELETE) and the new one (INSERT, UPDATE). */
  private touched(mutation: Mutation): string[] {
    // Asked by accepts and then by add for the same mutation: computed once.
    if (this.memo?.mutation === mutation) return this.memo.keys;
    const keys: string[] = [];
    if (this.operation !== "INSERT") keys.push(this.key(mutation, "old"));
    if (this.operation !== "DELETE") keys.push(this.key(mutation, "new"));
    this.memo = { mutation, keys };
    return keys;
  }

  private row(mutation: Mutation, which: "old" | "new"): Row {
    const row = mutation[which];
    if (!row) {
      throw new PgshovelError(
        "DECODE_ERROR",
        `event ${mutation.id} (${mutation.operation} on ${display(this.table)}) has no ${which} row`,
      );
    }
    return row;
  }

  private key(mutation: Mutation, which: "old" | "new"): string {
    const row = this.row(mutation, which);
    const { identity } = this.table;
    if (identity.length === 1) {
      // One key column (the common case): its text, without building an array.
      const value = row[identity[0]!] ?? null;
      return typeof value === "string" ? value : JSON.stringify(value);
    }
    return JSON.stringify(identity.map((column) => row[column] ?? null));
  }

  /**
   * Whether `mutation` may join this run: same table and operation, room left, and no
   * key it touches touched already — changes to one key keep their order across
   * statements (for an UPDATE both keys count, so a primary-key change is ordered too).
   */
  accepts(mutation: Mutation, table: ReplicaTable): boolean {
    if (table !== this.table || mutation.operation !== this.operation) return false;
    if (this.size >= this.limits.rows || this.chars >= this.limits.chars) return false;
    if (this.mergesWith(mutation) !== undefined) return true;
    return this.touched(mutation).every((key) => !this.keys.has(key));
  }

  /**
   * The position of an UPDATE in this run that `mutation` may replace: both keep the same
   * key, so applying only the later row gives the same result (the new row is whole).
   */
  private mergesWith(mutation: Mutation): number | undefined {
    if (this.operation !== "UPDATE") return undefined;
    const [old, now] = this.touched(mutation);
    return old === now ? this.kept.get(old!) : undefined;
  }

  add(mutation: Mutation): void {
    const merged = this.mergesWith(mutation);
    if (merged !== undefined) {
      const row = this.row(mutation, "new");
      this.table.columns.forEach((column, at) => {
        const value = row[column.name];
        if (value === undefined) this.missing(mutation, column.name, "new");
        this.arrays[at]![merged] = toText(value);
      });
      return;
    }
    const touched = this.touched(mutation);
    for (const key of touched) this.keys.add(key);
    if (this.operation === "UPDATE" && touched[0] === touched[1]) {
      this.kept.set(touched[0]!, this.size);
    }
    let at = 0;
    const push = (value: Value | undefined, column: string, which: "old" | "new") => {
      if (value === undefined) this.missing(mutation, column, which);
      const text = toText(value);
      if (text !== null) this.chars += text.length;
      this.arrays[at++]!.push(text);
    };
    if (this.operation !== "DELETE") {
      const row = this.row(mutation, "new");
      for (const column of this.table.columns) push(row[column.name], column.name, "new");
    }
    const keyRow = this.row(mutation, this.operation === "INSERT" ? "new" : "old");
    if (this.operation !== "INSERT") {
      for (const column of this.table.identity) push(keyRow[column], column, "old");
    }
    this.keyRows.push(keyRow);
  }

  private missing(mutation: Mutation, column: string, which: "old" | "new"): never {
    throw new PgshovelError(
      "INVALID_CONFIGURATION",
      `event ${mutation.id} (${mutation.operation} on ${display(this.table)}) has no column ${JSON.stringify(column)} in its ${which} row`,
      {
        hint: "the set's captured columns changed: restart the replica with the set's current tables",
      },
    );
  }

  /** The key of the row at 1-based position `ordinal`, for error messages. */
  keyAt(ordinal: number): string {
    const row = this.keyRows[ordinal - 1];
    if (!row) return "(unknown)";
    const { identity } = this.table;
    return `(${identity.join(", ")})=(${identity.map((c) => String(row[c])).join(", ")})`;
  }

  /** An INSERT run as COPY: the statement and its data in COPY's text format. */
  copy(): { text: string; data: string } {
    const columns = this.table.columns.map((c) => ident(c.name)).join(", ");
    const lines: string[] = [];
    for (let row = 0; row < this.size; row++) {
      lines.push(this.arrays.map((values) => copyField(values[row] ?? null)).join("\t"));
    }
    lines.push("");
    return {
      text: `COPY ${qualified(this.table)} (${columns}) FROM STDIN`,
      data: lines.join("\n"),
    };
  }

  /**
   * An UPDATE or DELETE run as a staging table, COPY and one merge. Its columns have the
   * target's types, so COPY reads each value as the cast of the array form would, and the
   * join on the key can use the target's index.
   */
  staged(): StagedRun {
    if (this.operation === "INSERT") {
      throw new PgshovelError("INTERNAL", "an INSERT run is copied straight into its table");
    }
    const { table } = this;
    const types = new Map(table.columns.map((column) => [column.name, column.type]));
    const keyAliases = table.identity.map((_, i) => `k${i}`);
    const keyColumns = table.identity.map((c, i) => `${keyAliases[i]} ${types.get(c)!}`);
    const aliases = this.operation === "UPDATE" ? table.columns.map((_, i) => `a${i}`) : [];
    const valueColumns = table.columns.map((c, i) => `${aliases[i]} ${c.type}`);
    const columns = [
      "n int4",
      ...(this.operation === "UPDATE" ? valueColumns : []),
      ...keyColumns,
    ].join(", ");
    const stage = named(`${qualified(table)} ${this.operation} (${columns})`).replace(
      "pgshovel_",
      "pgshovel_stage_",
    );
    const staged = `pg_temp.${stage}`;
    const lines: string[] = [];
    for (let row = 0; row < this.size; row++) {
      const fields = [String(row + 1)];
      for (const values of this.arrays) fields.push(copyField(values[row] ?? null));
      lines.push(fields.join("\t"));
    }
    lines.push("");
    const target = qualified(table);
    const match = table.identity.map((c, i) => `d.${ident(c)} = s.${keyAliases[i]}`).join(" AND ");
    const merge =
      this.operation === "UPDATE"
        ? `UPDATE ${target} AS d
            SET ${table.columns.map((c, i) => `${ident(c.name)} = s.${aliases[i]}`).join(", ")}
           FROM ${staged} AS s WHERE ${match} RETURNING s.n`
        : `DELETE FROM ${target} AS d USING ${staged} AS s WHERE ${match} RETURNING s.n`;
    return {
      stage,
      create: `CREATE TEMPORARY TABLE ${stage} (${columns})`,
      copy: { text: `COPY ${staged} FROM STDIN`, data: lines.join("\n") },
      merge,
      empty: `TRUNCATE ${staged}`,
    };
  }

  /** One statement for the whole run; UPDATE and DELETE return the ordinal of each matched row. */
  statement(): RunStatement {
    const { table } = this;
    const types = new Map(table.columns.map((column) => [column.name, column.type]));
    const arrays = this.arrays.map((_, i) => `$${i + 1}::text[]`).join(", ");
    const target = qualified(table);
    const cast = (alias: string, type: string) => `CAST(v.${alias} AS ${type})`;
    let text: string;
    if (this.operation === "INSERT") {
      const aliases = table.columns.map((_, i) => `a${i}`);
      text = `INSERT INTO ${target} (${table.columns.map((c) => ident(c.name)).join(", ")})
        SELECT ${table.columns.map((c, i) => cast(aliases[i]!, c.type)).join(", ")}
          FROM unnest(${arrays}) AS v(${aliases.join(", ")})`;
    } else {
      const keyAliases = table.identity.map((_, i) => `k${i}`);
      const match = table.identity
        .map((c, i) => `d.${ident(c)} = ${cast(keyAliases[i]!, types.get(c)!)}`)
        .join(" AND ");
      if (this.operation === "UPDATE") {
        const aliases = table.columns.map((_, i) => `a${i}`);
        text = `UPDATE ${target} AS d
            SET ${table.columns.map((c, i) => `${ident(c.name)} = ${cast(aliases[i]!, c.type)}`).join(", ")}
           FROM unnest(${arrays}) WITH ORDINALITY AS v(${[...aliases, ...keyAliases].join(", ")}, n)
          WHERE ${match} RETURNING v.n`;
      } else {
        text = `DELETE FROM ${target} AS d
          USING unnest(${arrays}) WITH ORDINALITY AS v(${keyAliases.join(", ")}, n)
          WHERE ${match} RETURNING v.n`;
      }
    }
    return { name: named(text), text, values: this.arrays };
  }
}

/** Consecutive TRUNCATEs: one statement, so tables tied by foreign keys truncate together. */
export class TruncateRun {
  readonly operation = "TRUNCATE";
  readonly tables: ReplicaTable[] = [];

  accepts(mutation: Mutation): boolean {
    return mutation.operation === "TRUNCATE";
  }

  add(table: ReplicaTable): void {
    if (!this.tables.includes(table)) this.tables.push(table);
  }

  get size(): number {
    return this.tables.length;
  }

  statement(): string {
    return `TRUNCATE ${this.tables.map(qualified).join(", ")}`;
  }
}

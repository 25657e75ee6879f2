/**
 * The SQL that makes a target's tables equal to the source at the verified point: one
 * transaction, with `session_replication_role = replica` (the target's triggers and
 * foreign keys do not fire, as when the replica applies a batch) and the session settings
 * the values were read in, every value a quoted literal cast to its column's type. Pure.
 */
import { ident, literal } from "../config/names.js";
import type { ReplicaTable } from "../replication/target-schema.js";
import { display, qualified } from "../replication/target-state.js";
import type { RowDifference } from "./types.js";

/** The differences of one table, all of them, for a repair. */
export interface TableRepair {
  table: ReplicaTable;
  differences: RowDifference[];
}

/** The script and what it does. */
export interface RepairScript {
  sql: string;
  deleted: number;
  updated: number;
  inserted: number;
}

function value(text: string | null, type: string): string {
  return text === null ? "NULL" : `CAST(${literal(text)} AS ${type})`;
}

function keyCondition(table: ReplicaTable, key: Record<string, string | null>): string {
  return table.identity
    .map((name) => {
      const type = table.columns.find((c) => c.name === name)!.type;
      return `${ident(name)} = ${value(key[name] ?? null, type)}`;
    })
    .join(" AND ");
}

function statementsOf(repair: TableRepair): { lines: string[]; counts: [number, number, number] } {
  const { table } = repair;
  const lines: string[] = [];
  const of = (kind: RowDifference["kind"]) => repair.differences.filter((d) => d.kind === kind);
  const extra = of("extra");
  const different = of("different");
  const missing = of("missing");
  for (const row of extra) {
    lines.push(`DELETE FROM ${qualified(table)} WHERE ${keyCondition(table, row.key)};`);
  }
  const others = table.columns
    .map((column, i) => ({ column, i }))
    .filter(({ column }) => !table.identity.includes(column.name));
  for (const row of different) {
    const set = others
      .map(
        ({ column, i }) => `${ident(column.name)} = ${value(row.source![i] ?? null, column.type)}`,
      )
      .join(", ");
    lines.push(`UPDATE ${qualified(table)} SET ${set} WHERE ${keyCondition(table, row.key)};`);
  }
  const names = table.columns.map((column) => ident(column.name)).join(", ");
  for (const row of missing) {
    const values = table.columns.map((column, i) => value(row.source![i] ?? null, column.type));
    lines.push(`INSERT INTO ${qualified(table)} (${names}) VALUES (${values.join(", ")});`);
  }
  if (lines.length > 0) {
    lines.unshift(
      `-- ${display(table)}: ${extra.length} extra, ${different.length} different, ${missing.length} missing on the target`,
    );
  }
  return { lines, counts: [extra.length, different.length, missing.length] };
}

/** The repair script for the tables' differences; `header` lines become SQL comments. */
export function repairScript(repairs: TableRepair[], header: string[] = []): RepairScript {
  const script: RepairScript = { sql: "", deleted: 0, updated: 0, inserted: 0 };
  const lines = [
    ...header.map((line) => `-- ${line}`),
    "BEGIN;",
    "SET LOCAL session_replication_role = replica;",
    "SET LOCAL standard_conforming_strings = on;",
    "SET LOCAL DateStyle = 'ISO, MDY';",
    "SET LOCAL IntervalStyle = 'postgres';",
    "SET LOCAL TimeZone = 'UTC';",
  ];
  for (const repair of repairs) {
    const { lines: statements, counts } = statementsOf(repair);
    lines.push(...statements);
    script.deleted += counts[0];
    script.updated += counts[1];
    script.inserted += counts[2];
  }
  lines.push("COMMIT;");
  script.sql = `${lines.join("\n")}\n`;
  return script;
}

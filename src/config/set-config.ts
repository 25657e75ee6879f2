import { parseDocument } from "yaml";
import { z } from "zod";
import { PgshovelError } from "../errors.js";

const columnName = z.string().min(1, "must not be empty");

const tableSchema = z
  .object({
    name: z.string().min(1, "must not be empty"),
    schema: z.string().min(1, "must not be empty").default("public"),
    primary_keys: z.array(columnName).min(1, "must list at least one column").optional(),
    columns: z.array(columnName).min(1, "must list at least one column").optional(),
    old: z.enum(["full", "key"], { message: 'must be "full" or "key"' }).optional(),
    capture: z.enum(["row", "statement"], { message: 'must be "row" or "statement"' }).optional(),
  })
  .strict();

/** The schema of a set configuration file, as a user writes it. */
export const setConfigSchema = z
  .object({
    database: z.object({ dsn: z.string().min(1, "must not be empty") }).strict(),
    tables: z.array(tableSchema).min(1, "must list at least one table"),
  })
  .strict();

/** A set configuration as written by the user, validated but not yet checked against the database. */
export type SetConfigInput = z.infer<typeof setConfigSchema>;

/** One table of a set, resolved against the database catalog. */
export interface ResolvedTable {
  schema: string;
  name: string;
  primary_keys: string[];
  /** Monitored columns, always including the primary key columns. */
  columns: string[];
  /** The before-image of UPDATE and DELETE events: every monitored column (absent: "full"), or the key and the changed columns. */
  old?: "full" | "key";
  /** Row triggers (absent: "row") or statement triggers over transition tables, see docs/capture.md. */
  capture?: "row" | "statement";
}

/** A set configuration as stored in ZooKeeper. */
export interface StoredSetConfig {
  database: { dsn: string; node: string };
  tables: ResolvedTable[];
  /** Identifies the administrative operation that wrote this version. */
  operation: string;
}

/** Parses YAML or JSON text of a set configuration; errors name the path and position. */
export function parseSetConfig(text: string, source: string): SetConfigInput {
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0) {
    const first = document.errors[0]!;
    const where = first.linePos?.[0]
      ? ` at line ${first.linePos[0].line}, column ${first.linePos[0].col}`
      : "";
    throw new PgshovelError(
      "INVALID_ARGUMENT",
      // prettyErrors appends its own " at line L, column C:" and a code excerpt: keep the reason only.
      `${source}: invalid YAML${where}: ${first.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "")}`,
    );
  }
  const parsed = setConfigSchema.safeParse(document.toJS());
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => {
      const path = issue.path.length > 0 ? issue.path.join(".") : "(top level)";
      if (issue.code === "unrecognized_keys") {
        return `${path}: unknown key(s) ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}`;
      }
      return `${path}: ${issue.message}`;
    });
    throw new PgshovelError(
      "INVALID_ARGUMENT",
      `${source}: invalid set configuration: ${issues.join("; ")}`,
      {
        hint: "see docs/set-configuration.md for the keys a set configuration takes",
      },
    );
  }
  const seen = new Set<string>();
  for (const table of parsed.data.tables) {
    const key = `${table.schema}.${table.name}`;
    if (seen.has(key)) {
      throw new PgshovelError("INVALID_ARGUMENT", `${source}: table ${key} is listed twice`);
    }
    seen.add(key);
  }
  return parsed.data;
}

/** Replaces the password of a libpq URI or key/value DSN with "***". */
export function hidePassword(dsn: string): string {
  if (/^postgres(ql)?:\/\//i.test(dsn)) {
    try {
      const url = new URL(dsn);
      if (url.password) url.password = "***";
      url.searchParams.forEach((_value, key) => {
        if (key.toLowerCase() === "password") url.searchParams.set(key, "***");
      });
      return url.toString();
    } catch {
      return dsn.replace(/:[^:@/]*@/, ":***@");
    }
  }
  return dsn.replace(/(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)/gi, "$1***");
}

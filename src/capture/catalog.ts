import { ident, literal } from "../config/names.js";
import type { ResolvedTable, SetConfigInput } from "../config/set-config.js";
import { type PgClient, query } from "../database/postgres.js";
import { PgshovelError } from "../errors.js";

/** A column of a captured table as the catalog describes it. */
export interface CatalogColumn {
  name: string;
  typeOid: number;
  type: string;
}

/** A captured table resolved against the catalog: its OID and column types. */
export interface CatalogTable extends ResolvedTable {
  relid: number;
  columnTypes: CatalogColumn[];
}

/**
 * A declared key must identify rows: unique and never NULL, as a primary key would be. A
 * unique index over exactly those columns proves uniqueness (and NOT NULL columns the rest)
 * without reading the table; otherwise the table is searched for one offending row.
 */
async function checkDeclaredKey(
  client: PgClient,
  target: {
    relid: number;
    qualified: string;
    table: SetConfigInput["tables"][number];
    keys: string[];
  },
): Promise<void> {
  const { relid, qualified, keys } = target;
  const doing = `checking the primary key columns of ${qualified}`;
  const facts = await query<{ unique_index: boolean; not_null: boolean }>(
    client,
    `SELECT EXISTS (
              SELECT 1 FROM pg_index i
               WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
                 AND i.indnkeyatts = cardinality($2::text[])
                 AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
                        FROM unnest(i.indkey[0:i.indnkeyatts - 1]) AS k(attnum)
                        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)
                     = (SELECT array_agg(c ORDER BY c) FROM unnest($2::text[]) AS c)
            ) AS unique_index,
            (SELECT bool_and(attnotnull) FROM pg_attribute
              WHERE attrelid = $1 AND attname = ANY($2::text[])) AS not_null`,
    [relid, keys],
    doing,
  );
  const { unique_index: uniqueIndex, not_null: notNull } = facts.rows[0]!;
  if (uniqueIndex && notNull) return;
  const table = `${ident(target.table.schema)}.${ident(target.table.name)}`;
  const columns = keys.map(ident);
  const keyJson = `json_build_object(${keys.map((k, i) => `${literal(k)}, ${columns[i]}`).join(", ")})::text`;
  const listed = keys.join(", ");
  const hint =
    "list under primary_keys columns that are unique and never NULL, or give the table a primary key";
  if (!notNull) {
    const nulls = await query<{ key: string }>(
      client,
      `SELECT ${keyJson} AS key FROM ${table} WHERE ${columns.map((c) => `${c} IS NULL`).join(" OR ")} LIMIT 1`,
      [],
      doing,
    );
    if (nulls.rows[0]) {
      throw new PgshovelError(
        "INVALID_CONFIGURATION",
        `table ${qualified}: primary key columns (${listed}) hold NULL in a row: ${nulls.rows[0].key}`,
        { hint },
      );
    }
  }
  if (!uniqueIndex) {
    const duplicates = await query<{ key: string; rows: string }>(
      client,
      `SELECT ${keyJson} AS key, count(*)::text AS rows FROM ${table}
        GROUP BY ${columns.join(", ")} HAVING count(*) > 1 LIMIT 1`,
      [],
      doing,
    );
    const duplicate = duplicates.rows[0];
    if (duplicate) {
      throw new PgshovelError(
        "INVALID_CONFIGURATION",
        `table ${qualified}: primary key columns (${listed}) are not unique: ${duplicate.rows} rows have ${duplicate.key}`,
        { hint },
      );
    }
  }
}

/**
 * Resolves each table of a set configuration against the database catalog:
 * the table, its primary key and its monitored columns must exist.
 */
export async function resolveTables(
  client: PgClient,
  tables: SetConfigInput["tables"],
): Promise<CatalogTable[]> {
  const resolved: CatalogTable[] = [];
  for (const table of tables) {
    const qualified = `${table.schema}.${table.name}`;
    const schema = await query(
      client,
      "SELECT 1 FROM pg_namespace WHERE nspname = $1",
      [table.schema],
      "reading the catalog",
    );
    if (schema.rowCount === 0) {
      throw new PgshovelError(
        "NOT_FOUND",
        `table ${qualified}: schema ${JSON.stringify(table.schema)} does not exist`,
      );
    }
    const relation = await query<{ relid: number; relkind: string }>(
      client,
      `SELECT c.oid::int AS relid, c.relkind::text AS relkind
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = $2`,
      [table.schema, table.name],
      "reading the catalog",
    );
    const row = relation.rows[0];
    if (!row) throw new PgshovelError("NOT_FOUND", `table ${qualified} does not exist`);
    if (row.relkind !== "r" && row.relkind !== "p") {
      throw new PgshovelError(
        "INVALID_CONFIGURATION",
        `${qualified} is not a table (relkind ${row.relkind})`,
      );
    }
    const columns = await query<CatalogColumn>(
      client,
      `SELECT attname::text AS name, atttypid::int AS "typeOid", format_type(atttypid, atttypmod) AS type
         FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
      [row.relid],
      "reading the catalog",
    );
    const byName = new Map(columns.rows.map((column) => [column.name, column]));
    const checkColumns = (names: string[], what: string) => {
      const seen = new Set<string>();
      for (const name of names) {
        if (!byName.has(name)) {
          throw new PgshovelError(
            "NOT_FOUND",
            `table ${qualified}: ${what} column ${JSON.stringify(name)} does not exist`,
            {
              hint: `the table has: ${[...byName.keys()].join(", ")}`,
            },
          );
        }
        if (seen.has(name)) {
          throw new PgshovelError(
            "INVALID_ARGUMENT",
            `table ${qualified}: ${what} column ${JSON.stringify(name)} is listed twice`,
          );
        }
        seen.add(name);
      }
    };
    let primaryKeys = table.primary_keys;
    if (primaryKeys) {
      checkColumns(primaryKeys, "primary key");
      await checkDeclaredKey(client, { relid: row.relid, qualified, table, keys: primaryKeys });
    } else {
      const pk = await query<{ name: string }>(
        client,
        `SELECT a.attname::text AS name
           FROM pg_index i
           CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
          WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord`,
        [row.relid],
        "reading the catalog",
      );
      if (pk.rowCount === 0) {
        throw new PgshovelError("INVALID_CONFIGURATION", `table ${qualified} has no primary key`, {
          hint: "add a primary key to the table or list its identifying columns under primary_keys",
        });
      }
      primaryKeys = pk.rows.map((r) => r.name);
    }
    let monitored: string[];
    if (table.columns) {
      checkColumns(table.columns, "monitored");
      // Identity columns are always captured, first, so every event identifies its row.
      monitored = [...primaryKeys, ...table.columns.filter((c) => !primaryKeys.includes(c))];
    } else {
      monitored = columns.rows.map((c) => c.name);
    }
    resolved.push({
      schema: table.schema,
      name: table.name,
      primary_keys: primaryKeys,
      columns: monitored,
      relid: row.relid,
      columnTypes: monitored.map((name) => byName.get(name)!),
      ...(table.old === "key" ? { old: "key" as const } : {}),
      ...(table.capture ? { capture: table.capture } : {}),
    });
  }
  return resolved;
}

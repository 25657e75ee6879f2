/**
 * `pgshovel set verify SET --target DSN`: compares a replica with its source at one
 * consistent point, prints OK or DIFF per table, and with --repair the SQL that makes the
 * replica equal (or, with --apply, applies it). Exit codes as diff(1) has them: 0 equal,
 * 1 different, 2 trouble (a usage error, a database or ZooKeeper that failed, a replica
 * that did not reach the point), so that a script never takes trouble for a difference.
 */
import type { Command } from "commander";
import { describeError } from "../errors.js";
import type { TableVerdict, VerifyReport } from "../verify/types.js";
import { verifySet } from "../verify/verifier.js";
import { withAdmin } from "./context.js";
import { option, parseDuration, parsePositiveInt, parseSet, targetOption } from "./options.js";

/** Options of `set verify`, parsed. */
interface VerifyFlags {
  target: string;
  table?: string[];
  repair?: boolean;
  apply?: boolean;
  json?: boolean;
  waitTimeout: number;
  lockTimeout: number;
  maxKeys: number;
}

/** Exit code of a verify that could not decide. */
export const VERIFY_TROUBLE = 2;

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(",").filter((name) => name.length > 0)];
}

function keyText(key: Record<string, string | null>): string {
  const names = Object.keys(key);
  return `(${names.join(", ")})=(${names.map((n) => key[n] ?? "NULL").join(", ")})`;
}

function tableLines(verdict: TableVerdict): string[] {
  const name = `${verdict.schema}.${verdict.name}`;
  if (verdict.equal) return [`OK    ${name}  ${verdict.sourceRows} rows`];
  const lines = [
    `DIFF  ${name}  source ${verdict.sourceRows} rows, target ${verdict.targetRows} rows: ${verdict.missing} missing on target, ${verdict.extra} extra on target, ${verdict.different} different`,
  ];
  for (const row of verdict.keys) lines.push(`      ${row.kind.padEnd(9)}  ${keyText(row.key)}`);
  const more = verdict.missing + verdict.extra + verdict.different - verdict.keys.length;
  if (more > 0) lines.push(`      … and ${more} more`);
  return lines;
}

/** The report for people. */
function reportText(report: VerifyReport): string {
  const { point } = report;
  const lines = [
    `set ${report.set} verified at tick ${point.tick} (target at tick ${point.targetTick}; source tables locked ${point.lockedMs} ms; ${report.elapsedMs} ms in all)`,
    ...report.tables.flatMap(tableLines),
  ];
  const differing = report.tables.filter((t) => !t.equal).length;
  lines.push(
    differing === 0
      ? `OK: ${report.tables.length} table(s) equal`
      : `DIFF: ${differing} of ${report.tables.length} table(s) differ`,
  );
  const repair = report.repair;
  if (repair?.applied) {
    lines.push(
      `repaired in one transaction: ${repair.deleted} deleted, ${repair.updated} updated, ${repair.inserted} inserted`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** One JSON document: bigints as strings. */
function reportJson(report: VerifyReport): string {
  return `${JSON.stringify(report, (_key, value: unknown) => (typeof value === "bigint" ? value.toString() : value), 2)}\n`;
}

async function runVerify(set: string, flags: VerifyFlags, command: Command): Promise<void> {
  if (flags.apply && !flags.repair) command.error("error: --apply needs --repair", { exitCode: 2 });
  let report: VerifyReport;
  try {
    report = await withAdmin(command, (ctx) =>
      verifySet(ctx, set, flags.target, {
        tables: flags.table,
        waitTimeoutMs: flags.waitTimeout,
        lockTimeoutMs: flags.lockTimeout,
        maxKeys: flags.maxKeys,
        ...(flags.repair ? { repair: flags.apply ? "apply" : "sql" } : {}),
      }),
    );
  } catch (error) {
    process.stderr.write(`pgshovel: error: ${describeError(error)}\n`);
    process.exitCode = VERIFY_TROUBLE;
    return;
  }
  if (flags.json) {
    process.stdout.write(reportJson(report));
  } else if (flags.repair && !flags.apply) {
    // The script alone on stdout, so that `… --repair > repair.sql` keeps it.
    process.stderr.write(reportText(report));
    process.stdout.write(
      report.repair?.sql ??
        `-- set ${set}: the target equals the source at tick ${report.point.tick}\n`,
    );
  } else {
    process.stdout.write(reportText(report));
  }
  process.exitCode = report.equal ? 0 : 1;
}

/** Adds `set verify SET` to the `set` command. */
export function addVerifyCommand(set: Command): void {
  set
    .command("verify")
    .description(
      "compare a replica with its source at one consistent point (captured columns only): OK or DIFF per table; exit 0 equal, 1 different, 2 trouble",
    )
    .argument("<name>", "set name", parseSet)
    .addOption(targetOption())
    .addOption(
      option(
        "--table <name>",
        "only this table of the set (schema.name; repeat or separate with commas)",
      ).argParser(collect),
    )
    .addOption(
      option("--repair", "print the SQL that makes the target equal (the report goes to stderr)"),
    )
    .addOption(
      option(
        "--apply",
        "with --repair: apply it in one transaction, the replica held at the verified point",
      ),
    )
    .addOption(option("--json", "print one JSON document"))
    .addOption(
      option(
        "--wait-timeout <duration>",
        "how long the replica may take to reach the verified point",
      )
        .default(60_000, "60s")
        .argParser(parseDuration),
    )
    .addOption(
      option(
        "--lock-timeout <duration>",
        "how long each attempt to lock the source tables may wait for writers",
      )
        .default(5_000, "5s")
        .argParser(parseDuration),
    )
    .addOption(
      option("--max-keys <n>", "differing keys listed per table")
        .default(20)
        .argParser(parsePositiveInt),
    )
    .action(async (name: string, flags: VerifyFlags, command: Command) => {
      await runVerify(name, flags, command);
    });
}

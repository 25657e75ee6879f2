import { readFile } from "node:fs/promises";
import { type Command, InvalidArgumentError } from "commander";
import { stringify } from "yaml";
import {
  createSet,
  dropCluster,
  dropSet,
  initializeCluster,
  inspectSet,
  listSets,
  recoverCluster,
  updateSet,
  upgradeCluster,
} from "../cluster/admin.js";
import { parseSetConfig, type SetConfigInput } from "../config/set-config.js";
import { PgshovelError } from "../errors.js";
import { globals, withAdmin } from "./context.js";
import { option } from "./options.js";
import { addPromotionCommands } from "./promotion-commands.js";
import { addVerifyCommand } from "./verify-command.js";

async function readConfig(file: string | undefined): Promise<SetConfigInput> {
  if (file === undefined || file === "-") {
    if (process.stdin.isTTY) {
      throw new PgshovelError("INVALID_ARGUMENT", "no set configuration given", {
        hint: "pass a YAML file, or - and pipe it on stdin",
      });
    }
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return parseSetConfig(Buffer.concat(chunks).toString("utf8"), "<stdin>");
  }
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new PgshovelError(
      "INVALID_ARGUMENT",
      `cannot read set configuration ${file}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return parseSetConfig(text, file);
}

function parseVersion(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0)
    throw new InvalidArgumentError(
      `${JSON.stringify(text)} is not a configuration version (0, 1, …)`,
    );
  return value;
}

/** Adds `cluster …` and `set …` to the program. */
export function addAdminCommands(program: Command): void {
  const cluster = program.command("cluster").description("manage the cluster record in ZooKeeper");
  cluster
    .command("initialize")
    .description("create the cluster: its record (software version) and its sets node")
    .action(async (_options, command: Command) => {
      const record = await withAdmin(command, (ctx) => initializeCluster(ctx));
      process.stdout.write(`initialized cluster at version ${record.version}\n`);
    });
  cluster
    .command("upgrade")
    .description(
      "record this software version and reinstall database-side objects on every set's database, atomically",
    )
    .addOption(option("--force", "allow a downgrade to an older version"))
    .action(async (options: { force?: boolean }, command: Command) => {
      const result = await withAdmin(command, (ctx) =>
        upgradeCluster(ctx, { force: options.force === true }),
      );
      process.stdout.write(`upgraded cluster from ${result.from} to ${result.to}\n`);
    });
  cluster
    .command("drop")
    .description(
      "remove the whole cluster: every set's triggers and queue, the pgshovel_<cluster> schema of every set's database, and the cluster's znodes, atomically",
    )
    .addOption(option("--force", "drop even while relays of the cluster are running (they stop)"))
    .action(async (options: { force?: boolean }, command: Command) => {
      const report = await withAdmin(command, (ctx) =>
        dropCluster(ctx, { force: options.force === true }),
      );
      process.stdout.write(
        `dropped cluster ${globals(command).cluster}: ${report.sets.length} set(s) in ${report.databases} database(s)\n`,
      );
      if (report.relays.length > 0) {
        process.stderr.write(
          `warning: ${report.relays.length} running relay(s) lost their set and stop: ${[...new Set(report.relays)].join(", ")}\n`,
        );
      }
    });
  cluster
    .command("recover")
    .description(
      "resolve configuration changes interrupted between prepare and commit (set create, update, drop and cluster upgrade do it first)",
    )
    .action(async (_options, command: Command) => {
      const report = await withAdmin(command, (ctx) => recoverCluster(ctx));
      process.stdout.write(
        `committed ${report.committed.length}, rolled back ${report.rolledBack.length}, in progress ${report.inProgress.length}, failed ${report.failed.length}\n`,
      );
      if (report.failed.length > 0) {
        throw new PgshovelError(
          "DATABASE_UNAVAILABLE",
          `could not resolve ${report.failed.length} interrupted change(s); see the log`,
        );
      }
    });

  const set = program.command("set").description("manage replication sets");
  set
    .command("create")
    .description(
      "create a replication set from a YAML (or JSON) configuration file, or - for stdin",
    )
    .argument("<name>", "set name ([a-z0-9_], at most 40 characters)")
    .argument("[file]", "configuration file, or - for stdin", "-")
    .action(async (name: string, file: string, _options, command: Command) => {
      const config = await readConfig(file);
      const stored = await withAdmin(command, (ctx) => createSet(ctx, name, config));
      process.stdout.write(`created set ${name} with ${stored.tables.length} table(s)\n`);
    });
  set
    .command("update")
    .alias("upgrade")
    .description("apply a new configuration to a set (tables, columns, database)")
    .argument("<name>", "set name")
    .argument("[file]", "configuration file, or - for stdin", "-")
    .addOption(
      // option(): like every option, it can come from the environment (PGSHOVEL_EXPECTED_VERSION).
      option(
        "--expected-version <n>",
        "fail unless the set is at this configuration version",
      ).argParser(parseVersion),
    )
    .addOption(
      option(
        "--force",
        "move the set to another database even though its old queue holds events not yet relayed (they are dropped)",
      ),
    )
    .action(
      async (
        name: string,
        file: string,
        options: { expectedVersion?: number; force?: boolean },
        command: Command,
      ) => {
        const config = await readConfig(file);
        const result = await withAdmin(command, (ctx) =>
          updateSet(ctx, name, config, {
            force: options.force === true,
            ...(options.expectedVersion === undefined
              ? {}
              : { expectedVersion: options.expectedVersion }),
          }),
        );
        process.stdout.write(`updated set ${name} to version ${result.version}\n`);
        if (result.droppedEvents > 0) {
          process.stderr.write(
            `warning: the set moved; ${result.droppedEvents} event(s) not yet relayed were dropped with its old queue\n`,
          );
        }
      },
    );
  set
    .command("drop")
    .description("remove a set's triggers, queue and configuration")
    .argument("<name>", "set name")
    .addOption(option("--force", "remove the configuration even when the database is unreachable"))
    .action(async (name: string, options: { force?: boolean }, command: Command) => {
      const result = await withAdmin(command, (ctx) =>
        dropSet(ctx, name, { force: options.force === true }),
      );
      process.stdout.write(`dropped set ${name}\n`);
      if (result.leftBehind) process.stderr.write(`warning: ${result.leftBehind}\n`);
    });
  set
    .command("list")
    .description("list the sets: name, database (password hidden), tables, configuration version")
    .addOption(option("--json", "print JSON"))
    .action(async (options: { json?: boolean }, command: Command) => {
      const sets = await withAdmin(command, (ctx) => listSets(ctx));
      if (options.json) {
        process.stdout.write(`${JSON.stringify(sets, null, 2)}\n`);
        return;
      }
      const rows = [
        ["NAME", "DATABASE", "TABLES", "VERSION"],
        ...sets.map((s) => [s.name, s.database, s.tables.join(","), String(s.version)]),
      ];
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const row of rows)
        process.stdout.write(
          `${row
            .map((cell, i) => cell.padEnd(widths[i]!))
            .join("  ")
            .trimEnd()}\n`,
        );
    });
  set
    .command("inspect")
    .description(
      "print a set's stored configuration as YAML (password hidden); its version goes to stderr",
    )
    .argument("<name>", "set name")
    .action(async (name: string, _options, command: Command) => {
      const result = await withAdmin(command, (ctx) => inspectSet(ctx, name));
      const { operation: _operation, ...shown } = result.config;
      process.stdout.write(stringify(shown));
      process.stderr.write(`version: ${result.version}\n`);
    });
  addVerifyCommand(set);
  addPromotionCommands(set);
}

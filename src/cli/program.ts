import { Command, CommanderError } from "commander";
import { describeError, PgshovelError } from "../errors.js";
import { SOFTWARE_VERSION } from "../version.js";
import { addAdminCommands } from "./admin-commands.js";
import { addConsumersCommand } from "./consumers-command.js";
import { addGlobalOptions } from "./options.js";
import { addRelayCommand, relayProgram } from "./relay-command.js";
import { addReplicateCommand } from "./replicate-command.js";
import { addStatusCommand } from "./status-command.js";
import { addStreamCommand } from "./stream-command.js";

/** Builds the command tree of one of pgshovel's programs. */
export function buildProgram(entry: string): Command {
  const program =
    entry === "pgshovel-stream-relay"
      ? relayProgram(entry, "stdout")
      : entry === "pgshovel-kafka-relay"
        ? relayProgram(entry, "kafka")
        : new Command("pgshovel").description(
            "change data capture for PostgreSQL: transaction-exact streams through PgQ",
          );
  addGlobalOptions(program);
  program.version(SOFTWARE_VERSION, "--version", "print the version");
  program.showHelpAfterError("(add --help for usage)");
  program.exitOverride();
  if (entry === "pgshovel") {
    addAdminCommands(program);
    addRelayCommand(program);
    addReplicateCommand(program);
    addStreamCommand(program);
    addStatusCommand(program);
    addConsumersCommand(program);
  }
  return program;
}

/** Runs a program with `argv` (without node and script), returning the exit code. */
export async function run(entry: string, argv: string[]): Promise<number> {
  const program = buildProgram(entry);
  try {
    await program.parseAsync(argv, { from: "user" });
    // A command may end without an error and still say something is wrong (status).
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? 0 : 2;
    }
    process.stderr.write(`${entry}: error: ${describeError(error)}\n`);
    if (!(error instanceof PgshovelError) && error instanceof Error && error.stack) {
      process.stderr.write(`${error.stack}\n`);
    }
    return 1;
  }
}

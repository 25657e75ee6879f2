import { type Command, InvalidArgumentError, Option } from "commander";
import { checkClusterName, checkSetName } from "../config/names.js";
import { hidePassword } from "../config/set-config.js";
import { PgshovelError } from "../errors.js";
import { LOG_FORMATS, LOG_LEVELS } from "../log.js";

/** The environment variable that sets a long option: `--zookeeper-hosts` → `PGSHOVEL_ZOOKEEPER_HOSTS`. */
export function envName(long: string): string {
  return `PGSHOVEL_${long.replace(/^--/, "").replaceAll("-", "_").toUpperCase()}`;
}

/** An option that can also come from its `PGSHOVEL_*` environment variable (a flag wins). */
export function option(flags: string, description: string): Option {
  const created = new Option(flags, description);
  if (created.long) created.env(envName(created.long));
  return created;
}

/** Parses durations such as `10s`, `500ms`, `2m` or a bare number of seconds into milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!match)
    throw new InvalidArgumentError(
      `${JSON.stringify(text)} is not a duration (e.g. 10s, 500ms, 2m)`,
    );
  const value = Number(match[1]);
  const unit = match[2] ?? "s";
  return Math.round(value * (unit === "ms" ? 1 : unit === "s" ? 1000 : 60_000));
}

/** Parses a positive integer option. */
export function parsePositiveInt(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0)
    throw new InvalidArgumentError(`${JSON.stringify(text)} is not a positive integer`);
  return value;
}

function parseCluster(text: string): string {
  try {
    return checkClusterName(text);
  } catch (error) {
    throw new InvalidArgumentError(error instanceof PgshovelError ? error.message : String(error));
  }
}

/** Options every command takes, parsed. */
export interface GlobalOptions {
  cluster: string;
  zookeeperHosts: string;
  zookeeperTimeout: number;
  logLevel: (typeof LOG_LEVELS)[number];
  logFormat: (typeof LOG_FORMATS)[number];
}

/** Adds the global options to the root command. */
export function addGlobalOptions(program: Command): Command {
  return program
    .addOption(
      option("--cluster <name>", "cluster name ([a-z0-9_], at most 16 characters)")
        .default("default")
        .argParser(parseCluster),
    )
    .addOption(
      option(
        "--zookeeper-hosts <hosts>",
        "ZooKeeper connection string: host:port[,host:port…][/chroot]",
      ).default("127.0.0.1:2181"),
    )
    .addOption(
      option(
        "--zookeeper-timeout <duration>",
        "how long to wait for ZooKeeper (connecting, each operation) before failing, and the session timeout asked for (e.g. 10s, 500ms)",
      )
        .default(10_000, "10s")
        .argParser(parseDuration),
    )
    .addOption(option("--log-level <level>", "log level").choices(LOG_LEVELS).default("info"))
    .addOption(
      option("--log-format <format>", "log format (logs always go to stderr)")
        .choices(LOG_FORMATS)
        .default("pretty"),
    );
}

/** A PgQ consumer id given on the command line. */
export function parseConsumer(text: string): string {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(text)) {
    throw new InvalidArgumentError(
      `${JSON.stringify(text)} is not a consumer id: use 1 to 64 characters from [A-Za-z0-9_.-]`,
    );
  }
  return text;
}

/** A set name given on the command line, checked as every set name is. */
export function parseSet(text: string): string {
  try {
    return checkSetName(text);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

/** `--max-zookeeper-pause`: how long a long-running command rides out a ZooKeeper outage. */
export function maxZookeeperPauseOption(): Option {
  return option(
    "--max-zookeeper-pause <duration>",
    "give up when ZooKeeper stays unreachable, or no new session opens after an expiry, this long",
  )
    .default(60_000, "60s")
    .argParser(parseDuration);
}

/** A PostgreSQL DSN given on the command line (`--target`, `--source`): a postgresql:// URL. */
export function parseDsn(text: string): string {
  if (!/^postgres(ql)?:\/\//i.test(text)) {
    throw new InvalidArgumentError(
      `${JSON.stringify(hidePassword(text))} is not a DSN: write it as postgresql://user:password@host:port/database`,
    );
  }
  return text;
}

/** `--target DSN`, required: the replica database a command works on. */
export function targetOption(
  description = "the replica database, postgresql://user:password@host:port/db",
): Option {
  return option("--target <dsn>", description).argParser(parseDsn).makeOptionMandatory();
}

import { type Command, InvalidArgumentError } from "commander";
import { PgshovelError } from "../errors.js";
import { type ListenAddress, parseListenAddress } from "../monitoring/listen-address.js";
import { option, parseDuration } from "./options.js";

/** The operations options of a long-running command, parsed. */
export interface OperationsFlags {
  metricsListen?: ListenAddress;
  healthStallAfter: number;
  sentryDsn?: string;
  progressInterval: number;
}

function parseListen(text: string): ListenAddress {
  try {
    return parseListenAddress(text);
  } catch (error) {
    throw new InvalidArgumentError(error instanceof PgshovelError ? error.message : String(error));
  }
}

/** Adds --metrics-listen, --health-stall-after, --sentry-dsn (and the hidden --progress-interval). */
export function addOperationsOptions(command: Command): void {
  command
    .addOption(
      option(
        "--metrics-listen <address>",
        "serve /metrics (Prometheus) and /health on HOST:PORT (off by default)",
      ).argParser(parseListen),
    )
    .addOption(
      option(
        "--health-stall-after <duration>",
        "/health fails when the leader makes no progress for this long while events are pending",
      )
        .default(60_000, "60s")
        .argParser(parseDuration),
    )
    .addOption(
      option("--sentry-dsn <dsn>", "report errors and warnings to Sentry (prefer the variable)"),
    )
    .addOption(
      option("--progress-interval <duration>", "period of the progress log line")
        .default(60_000, "60s")
        .argParser(parseDuration)
        .hideHelp(),
    );
}

import { setTimeout as delay } from "node:timers/promises";
import { type Command, InvalidArgumentError } from "commander";
import { checkSetName } from "../config/names.js";
import { describeError } from "../errors.js";
import { type ClusterStatus, collectStatus, type StatusOptions } from "../monitoring/status.js";
import { renderStatus } from "../monitoring/status-text.js";
import { CODEC_NAMES, type CodecName } from "../stream/codec.js";
import { withAdmin } from "./context.js";
import { option, parseDuration } from "./options.js";
import { addKafkaConnectionOptions, kafkaConnectionFrom } from "./sinks.js";

/** Options of `pgshovel status`, parsed. */
interface StatusFlags {
  json?: boolean;
  watch?: boolean;
  interval: number;
  maxLag: number;
  staleConsumerAfter: number;
  expectStandby?: boolean;
  codec: CodecName;
  kafkaBrokers?: string;
  [kafkaOption: string]: unknown;
}

function parseSet(text: string): string {
  try {
    return checkSetName(text);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

const CLEAR = "\x1b[2J\x1b[H";

/** Adds `status [SET]` to the program. */
export function addStatusCommand(program: Command): void {
  const command = program
    .command("status")
    .description(
      "show the sets, their relays (leader, standbys), PgQ queue and consumers, topic, and replicas (workers, position, lag, batches behind), with a verdict: exits 0 when all is OK, 1 otherwise (read-only)",
    )
    .argument("[set]", "only this set", parseSet)
    .addOption(option("--json", "print JSON (shape in docs/monitoring.md)"))
    .addOption(option("--watch", "redraw every --interval until Ctrl-C"))
    .addOption(
      option("--interval <duration>", "refresh period of --watch")
        .default(2_000, "2s")
        .argParser(parseDuration),
    )
    .addOption(
      option("--max-lag <duration>", "FAIL when a relayed consumer lags more while events wait")
        .default(60_000, "60s")
        .argParser(parseDuration),
    )
    .addOption(
      option(
        "--stale-consumer-after <duration>",
        "WARN about a consumer without a relay not seen for this long",
      )
        .default(900_000, "15m")
        .argParser(parseDuration),
    )
    .addOption(option("--expect-standby", "WARN when a relayed consumer has no standby relay"))
    .addOption(
      option("--codec <codec>", "codec the Kafka relays write with")
        .choices(CODEC_NAMES)
        .default("protobuf"),
    );
  addKafkaConnectionOptions(command);
  command.action(async (set: string | undefined, flags: StatusFlags, cmd: Command) => {
    const options: StatusOptions = {
      set,
      thresholds: {
        maxLagSeconds: flags.maxLag / 1000,
        staleConsumerAfterSeconds: flags.staleConsumerAfter / 1000,
        expectStandby: flags.expectStandby === true,
      },
      kafka:
        flags.kafkaBrokers === undefined
          ? undefined
          : { connection: kafkaConnectionFrom(flags), codec: flags.codec },
      connectTimeoutMs: 5_000,
    };
    const show = (status: ClusterStatus) =>
      flags.json
        ? `${JSON.stringify(status, null, flags.watch ? undefined : 2)}\n`
        : renderStatus(status);
    if (!flags.watch) {
      const status = await withAdmin(cmd, (ctx) => collectStatus(ctx, options));
      process.stdout.write(show(status));
      // Scripts read the verdict from the exit code; run() returns it.
      process.exitCode = status.verdict === "OK" ? 0 : 1;
      return;
    }
    await watch(cmd, options, show, flags);
  });
}

/** Redraws until SIGINT or SIGTERM; a round that fails shows the error and the next one tries again. */
async function watch(
  cmd: Command,
  options: StatusOptions,
  show: (status: ClusterStatus) => string,
  flags: StatusFlags,
): Promise<void> {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  const redraw = process.stdout.isTTY && !flags.json;
  try {
    await withAdmin(cmd, async (ctx) => {
      while (!controller.signal.aborted) {
        let output: string;
        try {
          output = show(await collectStatus(ctx, options));
        } catch (error) {
          output = `pgshovel: status failed: ${describeError(error)}\n`;
        }
        process.stdout.write(redraw ? `${CLEAR}${output}` : output);
        await delay(flags.interval, undefined, { signal: controller.signal }).catch(() => {});
      }
    });
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
  process.exitCode = 0;
}

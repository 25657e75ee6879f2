import { type Logger, pino } from "pino";
import pretty from "pino-pretty";

/** A structured logger; pgshovel always logs to stderr so that stdout can carry a stream. */
export type { Logger };

/** Log levels accepted by `--log-level`. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
/** Log formats accepted by `--log-format`. */
export const LOG_FORMATS = ["json", "pretty"] as const;

/** Creates the process logger writing to stderr. */
export function createLogger(options: {
  level: (typeof LOG_LEVELS)[number];
  format: (typeof LOG_FORMATS)[number];
}): Logger {
  const redact = { paths: ["password", "*.password", "dsn", "*.dsn"], censor: "[hidden]" };
  if (options.format === "pretty") {
    return pino(
      { level: options.level, redact },
      pretty({ destination: 2, sync: true, colorize: false, ignore: "pid,hostname" }),
    );
  }
  return pino({ level: options.level, redact }, pino.destination({ dest: 2, sync: true }));
}

/** A logger that discards everything: the library default. */
export const silentLogger: Logger = pino({ level: "silent" });

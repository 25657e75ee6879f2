/**
 * Error reporting to Sentry for the long-running commands (`--sentry-dsn`). `@sentry/node`
 * is loaded only when a DSN is given. Events carry the cluster, set, consumer and version
 * as tags; a scrubber removes passwords (and the DSN's own secret) before anything is sent.
 */
import type { Bindings, ChildLoggerOptions } from "pino";
import { describeError, PgshovelError } from "../errors.js";
import type { Logger } from "../log.js";
import { SOFTWARE_VERSION } from "../version.js";
import { scrubText, scrubValue } from "./scrub.js";

/** Where a long-running command reports errors and warnings. */
export interface ErrorReporter {
  /** Reports an error (the command's fatal one, say). */
  error(error: unknown, extra?: Record<string, unknown>): void;
  /** Reports a warning, e.g. a log line at warn level. */
  warning(message: string, extra?: Record<string, unknown>): void;
  /** Sends what is queued; resolves after at most `timeoutMs`. */
  flush(timeoutMs?: number): Promise<void>;
}

/** Options of {@link startErrorReporting}. */
export interface ErrorReportingOptions {
  dsn: string;
  /** Tags of every event: cluster, set, consumer… (the version is added). */
  tags: Record<string, string>;
  /** Literal secrets to scrub wherever they appear (a SASL password, say). */
  secrets?: readonly string[];
  logger: Logger;
}

/** Starts reporting to Sentry; throws INVALID_ARGUMENT for a DSN Sentry does not accept. */
export async function startErrorReporting(options: ErrorReportingOptions): Promise<ErrorReporter> {
  checkDsn(options.dsn);
  const Sentry = await import("@sentry/node");
  const secrets = [...(options.secrets ?? []), ...dsnSecret(options.dsn)];
  const client = Sentry.initWithoutDefaultIntegrations({
    dsn: options.dsn,
    release: `pgshovel@${SOFTWARE_VERSION}`,
    integrations: [Sentry.linkedErrorsIntegration()],
    initialScope: { tags: { ...options.tags, version: SOFTWARE_VERSION } },
    beforeSend: (event) => scrubValue(event, secrets),
    beforeBreadcrumb: (breadcrumb) => scrubValue(breadcrumb, secrets),
  });
  if (!client?.getDsn()) {
    throw new PgshovelError("INVALID_ARGUMENT", `Sentry refused the DSN ${scrubText(options.dsn)}`);
  }
  options.logger.info({ sentry: scrubText(options.dsn) }, "reporting errors to Sentry");
  return {
    error(error, extra) {
      Sentry.captureException(error, extra ? { extra } : undefined);
    },
    warning(message, extra) {
      Sentry.captureMessage(message, { level: "warning", ...(extra ? { extra } : {}) });
    },
    async flush(timeoutMs = 2_000) {
      await Sentry.flush(timeoutMs).catch(() => false);
    },
  };
}

/** `http(s)://KEY[:SECRET]@HOST[:PORT]/[PATH/]PROJECT`, as Sentry parses it. */
const SENTRY_DSN = /^https?:\/\/\w+(?::\w+)?@(?:\[[:.%\w]+\]|[\w.-]+)(?::\d+)?\/(?:.+\/)?\d+$/;

/** Checks a DSN before Sentry sees it: Sentry would print a bad one whole, secret included. */
function checkDsn(dsn: string): void {
  if (!SENTRY_DSN.test(dsn)) {
    throw new PgshovelError("INVALID_ARGUMENT", `${scrubText(dsn)} is not a Sentry DSN`, {
      hint: "a DSN looks like https://KEY@HOST/PROJECT",
    });
  }
}

/** The secret part of an old-style DSN (`https://key:secret@host/1`), if any. */
function dsnSecret(dsn: string): string[] {
  const secret = /^https?:\/\/\w+:(\w+)@/.exec(dsn)?.[1];
  return secret ? [secret] : [];
}

const REPORTED = new Set(["warn", "error", "fatal"]);

/**
 * `logger`, whose warn, error and fatal lines (its children's too) are also reported:
 * the message as the event, the line's fields as extra data (scrubbed by the reporter).
 */
export function reportingLogger(logger: Logger, reporter: ErrorReporter): Logger {
  return new Proxy(logger, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== "function") return value;
      if (property === "child") {
        return (bindings: Bindings, options?: ChildLoggerOptions<never>) =>
          reportingLogger(target.child(bindings, options), reporter);
      }
      if (typeof property !== "string" || !REPORTED.has(property)) return value.bind(target);
      return (...args: unknown[]) => {
        report(reporter, property, args);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

function report(reporter: ErrorReporter, level: string, args: unknown[]): void {
  const [first, second] = args;
  const fields = typeof first === "object" && first !== null ? first : undefined;
  const message =
    typeof first === "string" ? first : typeof second === "string" ? second : "(no message)";
  const extra = fields instanceof Error ? { err: describeError(fields) } : { ...fields };
  if (level === "warn") reporter.warning(message, extra);
  else if (fields instanceof Error) reporter.error(fields, { message });
  else reporter.error(new Error(message), extra);
}

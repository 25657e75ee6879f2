/** bin/pgshovel as a running process, for tests that act while a command or relay runs. */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { join } from "node:path";
import { repoRoot } from "../../support/env.js";
import { waitFor } from "../../support/wait.js";

/** A running bin/pgshovel. */
export interface CliProcess {
  child: ChildProcessWithoutNullStreams;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Waits until stderr matches PATTERN. */
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

/** Starts bin/pgshovel with ARGS; the environment is the test's minus PGSHOVEL_*, plus ENV. */
export function startCli(args: string[], env: Record<string, string>): CliProcess {
  const clean: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("PGSHOVEL_")) clean[key] = value;
  }
  const child = spawn(join(repoRoot, "bin", "pgshovel"), args, { env: { ...clean, ...env } });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });
  child.stdout.resume();
  child.stdin.end();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    stderr: () => stderr,
    exited,
    waitForStderr: async (pattern, timeoutMs = 30_000) => {
      await waitFor(() => pattern.test(stderr), {
        timeoutMs,
        get description() {
          return `${pattern} on stderr of pgshovel ${args.join(" ")} (so far: ${stderr.slice(-2000)})`;
        },
      });
    },
  };
}

/** Sends SIGTERM unless the process has exited, and waits for its exit. */
export async function stopCli(
  cli: CliProcess,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill("SIGTERM");
  return cli.exited;
}

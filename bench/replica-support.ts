/**
 * What the replica figures share: a spawned `pgshovel replicate`, run to its
 * end with `--until-caught-up` and timed, and the peak resident size of a process.
 */
import { readFile } from "node:fs/promises";
import {
  RELAY_KILL_AFTER_MS,
  type RelayProcess,
  type SetFixture,
  startPgshovel,
  stopRelay,
} from "../test/support/fixtures.js";
import { nowMs } from "./stats.js";

/** Starts `pgshovel replicate SET --target TARGET …ARGS` in the fixture's cluster. */
export function startReplicate(
  fixture: Pick<SetFixture, "cluster" | "zkHosts" | "set">,
  target: string,
  args: string[] = [],
): RelayProcess {
  return startPgshovel(fixture, ["replicate", fixture.set, "--target", target, ...args]);
}

/**
 * Runs `replicate … --until-caught-up` to its end and returns the seconds from
 * spawn to exit (the process's start-up included). A non-zero exit is an error.
 */
export async function replicateUntilCaughtUp(
  fixture: Pick<SetFixture, "cluster" | "zkHosts" | "set">,
  target: string,
  args: string[] = [],
  timeoutMs = 900_000,
): Promise<number> {
  const started = nowMs();
  const worker = startReplicate(fixture, target, ["--until-caught-up", ...args]);
  const killer = setTimeout(() => worker.child.kill("SIGKILL"), timeoutMs);
  try {
    const exit = await worker.exited;
    const seconds = (nowMs() - started) / 1000;
    if (exit.code !== 0) {
      throw new Error(
        `replicate exited with ${exit.code ?? exit.signal}: ${worker.stderr().slice(-2000)}`,
      );
    }
    return seconds;
  } finally {
    clearTimeout(killer);
    await stopRelay(worker, RELAY_KILL_AFTER_MS);
  }
}

/** VmHWM (the peak resident size so far) of `pid`, in MB. */
export async function peakResidentMB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const match = /^VmHWM:\s+(\d+) kB/m.exec(status);
  if (!match) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return (Number(match[1]) * 1024) / 1e6;
}

/** The machine's 1-minute load average, read when a figure starts and ends (the noise). */
export async function loadAverage(): Promise<number> {
  const text = await readFile("/proc/loadavg", "utf8");
  return Number(text.split(" ")[0]);
}

/**
 * Runs a page's blocks (the convention of doc-blocks.ts) as one bash script: each sh block is
 * sourced in turn by the same shell with errexit and pipefail on, its output kept in a log of
 * its own, its exit status and expected texts checked before the next block starts. The shell
 * leads a process group of its own, so whatever the page started in the background can be
 * stopped whatever happened.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { DocBlock } from "./doc-blocks.js";
import { waitFor } from "./wait.js";

/** What runDocBlocks runs, and where. */
export interface DocRunOptions {
  /** The page's name in failure messages (its blocks' lines refer to it). */
  source: string;
  blocks: DocBlock[];
  /** The shell's starting directory. */
  cwd: string;
  /** The shell's whole environment. */
  env: Record<string, string>;
  /** Bash run before the first block (what the page tells its reader to have done). */
  prelude: string;
  /** Where the script, the block files and the logs go (not inside cwd). */
  stateDir: string;
  /** The whole run's limit. */
  timeoutMs: number;
}

/** How a run went. */
export interface DocRunResult {
  /** Undefined when every block ran as the page says; otherwise what went wrong, and where. */
  failure?: string;
  /** The output of each block that ran, by the line of its opening fence. */
  outputs: Map<number, string>;
}

const q = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;

/** The script that runs BLOCKS, with its block files; returns the script's path. */
async function writeScript(options: DocRunOptions): Promise<string> {
  const state = options.stateDir;
  await mkdir(state, { recursive: true });
  const lines = [
    "set -o pipefail -E",
    `__state=${q(state)}`,
    `trap 'printf "%s\\n" "line $LINENO of the block: $BASH_COMMAND" > "$__state/command"' ERR`,
    options.prelude,
  ];
  for (const block of options.blocks) {
    const name = `block-${block.line}`;
    if (block.file !== undefined) {
      await writeFile(join(state, name), block.body);
      lines.push(
        `printf '%s\\n' ${block.line} > "$__state/current"`,
        `cp "$__state/${name}" ${q(block.file)}`,
      );
      continue;
    }
    if (block.lang !== "sh") continue;
    await writeFile(join(state, `${name}.sh`), block.body);
    lines.push(
      `printf '%s\\n' ${block.line} > "$__state/current"; rm -f "$__state/command"`,
      block.exit === 0 ? "set -e" : "",
      `source "$__state/${name}.sh" > "$__state/${name}.log" 2>&1`,
      `__rc=$?; set +e`,
      `if [ "$__rc" != ${block.exit} ]; then printf '%s\\n' "$__rc" > "$__state/status"; exit 213; fi`,
    );
    for (const [k, text] of block.expect.entries()) {
      await writeFile(join(state, `${name}.expect-${k}`), `${text}\n`);
      lines.push(
        `grep -qF -f "$__state/${name}.expect-${k}" "$__state/${name}.log" || { printf '%s\\n' ${k} > "$__state/missing"; exit 214; }`,
      );
    }
  }
  lines.push(
    `__left=$(jobs -rp | tr '\\n' ' ')`,
    `if [ -n "$__left" ]; then printf '%s\\n' "$__left" > "$__state/left"; exit 215; fi`,
    `: > "$__state/complete"`,
  );
  const script = join(state, "page.sh");
  await writeFile(script, `${lines.join("\n")}\n`);
  return script;
}

async function readIf(path: string): Promise<string | undefined> {
  return existsSync(path) ? (await readFile(path, "utf8")).trim() : undefined;
}

/** Stops the process group PGID (SIGTERM, then SIGKILL after GRACEMS). */
async function stopGroup(pgid: number, graceMs: number): Promise<void> {
  const alive = (): boolean => {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  process.kill(-pgid, "SIGTERM");
  await waitFor(() => !alive(), {
    description: "the page's processes to stop",
    timeoutMs: graceMs,
  }).catch(() => {
    if (alive()) process.kill(-pgid, "SIGKILL");
  });
}

/** What went wrong in the block at LINE, with its output. */
async function describeFailure(options: DocRunOptions, line: number, why: string): Promise<string> {
  const block = options.blocks.find((b) => b.line === line);
  const log = (await readIf(join(options.stateDir, `block-${line}.log`))) ?? "";
  const command = await readIf(join(options.stateDir, "command"));
  return [
    `${options.source}:${line}: the block ${why}`,
    ...(command ? [`failed command: ${command}`] : []),
    "--- block ---",
    (block?.body ?? "").trimEnd(),
    "--- its output (last 60 lines) ---",
    log.split("\n").slice(-60).join("\n"),
  ].join("\n");
}

/** Runs the page's blocks and reports the first thing that did not go as the page says. */
export async function runDocBlocks(options: DocRunOptions): Promise<DocRunResult> {
  const script = await writeScript(options);
  const child = spawn("bash", [script], {
    cwd: options.cwd,
    env: options.env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let shellOutput = "";
  child.stdout.on("data", (chunk: Buffer) => (shellOutput += chunk.toString("utf8")));
  child.stderr.on("data", (chunk: Buffer) => (shellOutput += chunk.toString("utf8")));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    // "exit", not "close": processes the page left in the background hold the pipes open.
    child.once("exit", (code) => resolve(code));
  });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), options.timeoutMs);
  });
  const code = await Promise.race([exited, timedOut]);
  clearTimeout(timer);
  if (child.pid !== undefined) await stopGroup(child.pid, 15_000);
  await exited;

  const state = options.stateDir;
  const outputs = new Map<number, string>();
  for (const block of options.blocks) {
    const log = await readIf(join(state, `block-${block.line}.log`));
    if (log !== undefined) outputs.set(block.line, log);
  }
  if (existsSync(join(state, "complete"))) return { outputs };
  const current = Number(await readIf(join(state, "current")));
  let why: string;
  if (code === "timeout") why = `was still running after ${options.timeoutMs} ms`;
  else if (code === 213) {
    const block = options.blocks.find((b) => b.line === current);
    why = `ended with status ${await readIf(join(state, "status"))}, not ${block?.exit ?? 0}`;
  } else if (code === 214) {
    const k = Number(await readIf(join(state, "missing")));
    const text = options.blocks.find((b) => b.line === current)?.expect[k];
    why = `ran, but its output does not hold ${JSON.stringify(text)}`;
  } else if (code === 215) {
    return {
      outputs,
      failure: `${options.source}: the page left processes running (pids ${await readIf(join(state, "left"))}): a later block must stop what an earlier one started`,
    };
  } else why = `failed: the shell exited with status ${code}`;
  if (!Number.isInteger(current) || current === 0) {
    return { outputs, failure: `${options.source}: the prelude failed (${code}): ${shellOutput}` };
  }
  return { outputs, failure: await describeFailure(options, current, why) };
}

/**
 * Summarizes a V8 CPU profile (`node --cpu-prof`, or `run.js --profile DIR`):
 * the functions with the most self time, and self time by package or file.
 *
 *   node dist/bench/profile-summary.js PROFILE.cpuprofile [TOP]
 */
import { readFile } from "node:fs/promises";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code lives: a package name, a project file, or a V8/Node category. */
function origin(url: string): string {
  if (url === "") return "(native/V8)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const own = /\/dist\/(.+)$/.exec(url);
  if (own) return own[1]!;
  if (url.startsWith("node:")) return "node:*";
  return url;
}

async function main(): Promise<void> {
  const [path, topText] = process.argv.slice(2);
  if (!path) throw new Error("usage: profile-summary.js PROFILE.cpuprofile [TOP]");
  const top = Number(topText ?? 25);
  const profile = JSON.parse(await readFile(path, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    self.set(id, (self.get(id) ?? 0) + delta);
    total += delta;
  });
  const byFunction = new Map<string, number>();
  const byOrigin = new Map<string, number>();
  for (const [id, time] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const name = `${functionName || "(anonymous)"} ${origin(url)}${url ? `:${lineNumber + 1}` : ""}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + time);
    const where =
      functionName === "(idle)"
        ? "(idle)"
        : functionName === "(garbage collector)"
          ? "(garbage collector)"
          : origin(url);
    byOrigin.set(where, (byOrigin.get(where) ?? 0) + time);
  }
  const pct = (t: number) => `${((100 * t) / total).toFixed(1).padStart(5)} %`;
  console.log(`total ${(total / 1e6).toFixed(2)} s sampled`);
  console.log("\nself time by function:");
  for (const [name, time] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${pct(time)}  ${name}`);
  }
  console.log("\nself time by package / file:");
  for (const [name, time] of [...byOrigin].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${pct(time)}  ${name}`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});

/**
 * The published package as a user gets it: `npm pack`, installed into a fresh project, a
 * consumer of `pgshovel` and `pgshovel/stream` compiled strictly with the library's type
 * declarations checked (skipLibCheck off), then run. Proves that every type the
 * declarations import is installed with the package (@types/pg and
 * @types/node-zookeeper-client for our own, @types/debug for @platformatic/kafka's), and
 * that the exports map resolves.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { repoRoot } from "../support/env.js";

const run = promisify(execFile);

/** The version of a package installed in this repository (the consumer uses the same). */
async function installedVersion(name: string): Promise<string> {
  const manifest = join(repoRoot, "node_modules", name, "package.json");
  return (JSON.parse(await readFile(manifest, "utf8")) as { version: string }).version;
}

const CONSUMER = `
import { type AdminContext, isPgshovelError, PgshovelError, SOFTWARE_VERSION, ZooKeeper } from "pgshovel";
import { BatchAssembler, decodeJson, encodeJson, type Message } from "pgshovel/stream";

const header = { publisher: "0b8e7a52-1c3d-4e5f-9a6b-7c8d9e0f1a2b", timestamp: "2026-11-24T03:45:27.000001Z" };
const batch = { node: "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b", id: 7n };
const messages: Message[] = [
  {
    header: { ...header, sequence: 0n },
    batch,
    body: {
      kind: "begin",
      begin: {
        start: { id: 1n, snapshot: { xmin: 10n, xmax: 10n, xip: [] }, time: header.timestamp },
        end: { id: 2n, snapshot: { xmin: 12n, xmax: 12n, xip: [] }, time: header.timestamp },
      },
    },
  },
  {
    header: { ...header, sequence: 1n },
    batch,
    body: {
      kind: "mutation",
      mutation: {
        id: 1n, schema: "public", table: "t", operation: "INSERT", identity: ["id"],
        old: null, new: { id: "9007199254740993", name: "ünïcode" },
        transaction: 11n, time: header.timestamp,
      },
    },
  },
  { header: { ...header, sequence: 2n }, batch, body: { kind: "commit" } },
];
const assembler = new BatchAssembler();
let committed = 0;
for (const message of messages) {
  const decoded = decodeJson(encodeJson(message));
  if (assembler.push(decoded)) committed += 1;
}
const error = new PgshovelError("INVALID_ARGUMENT", "a test error");
const context: Pick<AdminContext, "cluster"> = { cluster: "c" };
console.log(JSON.stringify({
  committed,
  version: SOFTWARE_VERSION,
  isError: isPgshovelError(error),
  code: error.code,
  connect: typeof ZooKeeper.connect,
  cluster: context.cluster,
}));
`;

describe("the published package", () => {
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "pgshovel-package-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("installs, type-checks strictly with its declarations, and runs", async () => {
    const packed = await run("npm", ["pack", "--json", "--pack-destination", dir], {
      cwd: repoRoot,
      maxBuffer: 16 << 20,
    });
    const [{ filename }] = JSON.parse(packed.stdout) as [{ filename: string }];
    const project = join(dir, "consumer");
    await mkdir(join(project, "src"), { recursive: true });
    await writeFile(
      join(project, "package.json"),
      JSON.stringify({ name: "consumer", version: "1.0.0", private: true, type: "module" }),
    );
    await writeFile(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2023",
          // Without DOM, as a Node project: @platformatic/kafka's declarations read
          // RequestInit["dispatcher"], which Node's RequestInit has and DOM's lacks.
          lib: ["ES2023"],
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          skipLibCheck: false,
          types: ["node"],
          outDir: "dist",
        },
        include: ["src"],
      }),
    );
    await writeFile(join(project, "src", "consumer.ts"), CONSUMER);
    // The same TypeScript and Node types as this repository: from the npm cache when warm.
    await run(
      "npm",
      [
        "install",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        join(dir, filename),
        `typescript@${await installedVersion("typescript")}`,
        `@types/node@${await installedVersion("@types/node")}`,
      ],
      { cwd: project, maxBuffer: 16 << 20 },
    );
    const compiled = await run(
      process.execPath,
      [join(project, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"],
      { cwd: project },
    ).catch((error: { stdout?: string; stderr?: string }) => {
      throw new Error(`tsc failed on the consumer:\n${error.stdout ?? ""}${error.stderr ?? ""}`);
    });
    assert.equal(compiled.stdout, "");
    const ran = await run(process.execPath, [join(project, "dist", "consumer.js")], {
      cwd: project,
    });
    assert.deepEqual(JSON.parse(ran.stdout), {
      committed: 1,
      version: JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")).version,
      isError: true,
      code: "INVALID_ARGUMENT",
      connect: "function",
      cluster: "c",
    });
  });
});

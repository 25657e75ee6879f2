/**
 * docs/tutorial.md cannot rot: its sh blocks run, in order, in one bash shell against the
 * local stack, as its first pages tell a reader to (the clone in $repo, the stack's
 * environment, a scratch directory); each block must end as the page says and print what it
 * promises, and the page must stop what it started and remove what it made. A second test
 * shows the runner failing on a broken page.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import pg from "pg";
import { parseDocBlocks } from "../support/doc-blocks.js";
import { runDocBlocks } from "../support/doc-commands.js";
import { adminDsn, repoRoot, stackEnv } from "../support/env.js";
import { deleteTopic } from "../support/kafka.js";
import { adminQuery, dropDatabase } from "../support/postgres.js";
import { connectZk } from "../support/zookeeper.js";
import { startCli } from "./helpers/cli-process.js";

/** The names the page uses (its own, so that it meets no other test). */
const CLUSTER = "tutorial";
const DATABASES = ["tutorial_shop", "tutorial_replica"];
const TOPIC = "tutorial.pgbench.mutations";
/** PGSHOVEL_TEST_KEEP_TUTORIAL=1 keeps the scratch directory (blocks, logs) and what the page made. */
const KEEP = process.env.PGSHOVEL_TEST_KEEP_TUTORIAL === "1";

/** The shell's environment: the stack's variables and what a terminal has, nothing else. */
function pageEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    const kept = ["PATH", "HOME", "USER", "LANG", "TMPDIR"].includes(key);
    if (kept || key.startsWith("LC_") || /^PG[A-Z]+$/.test(key) || key.startsWith("PGSHOVEL_")) {
      env[key] = value;
    }
  }
  return env;
}

/** Removes whatever a run of the page left: its processes are gone by then. */
async function removeLeftovers(): Promise<void> {
  const env = stackEnv();
  const drop = startCli(
    ["--cluster", CLUSTER, "--log-level", "silent", "cluster", "drop", "--force"],
    {
      PGSHOVEL_ZOOKEEPER_HOSTS: env.zookeeperHosts,
    },
  );
  await drop.exited;
  const zk = await connectZk({ hosts: env.zookeeperHosts });
  try {
    if (await zk.exists(`/${CLUSTER}`)) await zk.removeRecursive(`/${CLUSTER}`);
  } finally {
    zk.close();
  }
  for (const name of DATABASES) await dropDatabase(name);
  await deleteTopic(TOPIC).catch(() => {});
}

async function leftovers(): Promise<string[]> {
  const env = stackEnv();
  const found: string[] = [];
  const dbs = await adminQuery<{ datname: string }>(
    "SELECT datname FROM pg_database WHERE datname = ANY($1)",
    [DATABASES],
  );
  found.push(...dbs.map((d) => `database ${d.datname}`));
  const zk = await connectZk({ hosts: env.zookeeperHosts });
  try {
    if (await zk.exists(`/${CLUSTER}`)) found.push(`znode /${CLUSTER}`);
  } finally {
    zk.close();
  }
  return found;
}

describe("docs/tutorial.md", () => {
  test("every sh block runs as the page says, and the page cleans up after itself", async () => {
    // Two runs of this page against one stack would share its names: they take turns.
    const lock = new pg.Client({ connectionString: adminDsn() });
    await lock.connect();
    await lock.query("SELECT pg_advisory_lock(hashtext('pgshovel docs/tutorial.md'))");
    const scratch = await mkdtemp(join(tmpdir(), "pgshovel-tutorial-"));
    try {
      await removeLeftovers();
      const source = "docs/tutorial.md";
      const blocks = parseDocBlocks(await readFile(join(repoRoot, source), "utf8"), source);
      assert.ok(blocks.filter((b) => b.lang === "sh").length >= 10, "the page has runnable blocks");
      const result = await runDocBlocks({
        source,
        blocks,
        cwd: scratch,
        stateDir: join(scratch, "state"),
        env: pageEnv(),
        prelude: `repo=${JSON.stringify(repoRoot)}\nmkdir -p work && cd work`,
        timeoutMs: 180_000,
      });
      assert.equal(result.failure, undefined, result.failure);
      assert.deepEqual(await leftovers(), [], "the page removed what it made");
    } finally {
      if (KEEP) console.log(`kept: ${scratch}`);
      else {
        await removeLeftovers().catch(() => {});
        await rm(scratch, { recursive: true, force: true });
      }
      await lock.end();
    }
  });

  test("a broken command, a missing line or a process left running fails the page", async () => {
    const scratch = await mkdtemp(join(tmpdir(), "pgshovel-doc-runner-"));
    const run = async (page: string) =>
      runDocBlocks({
        source: "page.md",
        blocks: parseDocBlocks(page, "page.md"),
        cwd: scratch,
        stateDir: join(scratch, `state-${Math.random().toString(36).slice(2)}`),
        env: pageEnv(),
        prelude: "",
        timeoutMs: 30_000,
      });
    try {
      const ok = await run(
        '```sh\nx=1\n```\n\n```text\nshown\n```\n\n```sh expect="two"\necho "$x" two\n```\n',
      );
      assert.equal(ok.failure, undefined, ok.failure);
      assert.equal(ok.outputs.get(9), "1 two");

      const broken = await run(
        "```sh\necho first\n```\n\n```sh\ncat no-such-file\necho after\n```\n",
      );
      assert.match(broken.failure ?? "", /^page\.md:5: the block failed/);
      assert.match(broken.failure ?? "", /failed command: line 1 of the block: cat no-such-file/);

      const missing = await run('```sh expect="absent"\necho present\n```\n');
      assert.match(
        missing.failure ?? "",
        /page\.md:1: the block ran, but its output does not hold "absent"/,
      );

      const status = await run("```sh exit=1\ntrue\n```\n");
      assert.match(status.failure ?? "", /page\.md:1: the block ended with status 0, not 1/);

      const left = await run("```sh\nsleep 60 &\n```\n");
      assert.match(left.failure ?? "", /left processes running/);

      assert.throws(
        () => parseDocBlocks("```bash\nls\n```\n", "page.md"),
        /page\.md:1: a fence of language "bash"/,
      );
      assert.throws(
        () => parseDocBlocks("```\nls\n```\n", "page.md"),
        /page\.md:1: a fence of language ""/,
      );
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });
});

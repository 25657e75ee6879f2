/**
 * The local stack's connection settings, read from the environment that `make services`
 * writes to .services/env. Integration tests import this instead of hard-coding ports.
 */
import { randomBytes } from "node:crypto";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export interface StackEnv {
  pgHost: string;
  pgPort: number;
  pgUser: string;
  zookeeperHosts: string;
  kafkaBrokers: string[];
  /** Absolute path of the stack's state directory (.services). */
  stackDir: string;
}

const HINT = "run `make services` and source .services/env (set -a; source .services/env; set +a)";

/** The repository root (works from test/support and from dist/test/support). */
export const repoRoot: string = (() => {
  const here = dirname(fileURLToPath(import.meta.url));
  const parts = here.split("/");
  const distAt = parts.lastIndexOf("dist");
  if (distAt > 0) return parts.slice(0, distAt).join("/");
  return resolve(here, "..", "..");
})();

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new Error(`environment variable ${name} is not set: ${HINT}`);
  }
  return value;
}

let cached: StackEnv | undefined;

/** The stack settings; throws a clear error naming the missing variable when not set. */
export function stackEnv(): StackEnv {
  if (cached) return cached;
  const port = Number(required("PGPORT"));
  if (!Number.isInteger(port) || port <= 0) throw new Error(`PGPORT is not a port number: ${HINT}`);
  cached = {
    pgHost: required("PGHOST"),
    pgPort: port,
    pgUser: required("PGUSER"),
    zookeeperHosts: required("PGSHOVEL_ZOOKEEPER_HOSTS"),
    kafkaBrokers: required("PGSHOVEL_KAFKA_BROKERS")
      .split(",")
      .map((b) => b.trim())
      .filter((b) => b !== ""),
    stackDir: process.env.PGSHOVEL_STACK_DIR || resolve(repoRoot, ".services"),
  };
  return cached;
}

let counter = 0;
const processTag = randomBytes(3).toString("hex");

/**
 * A name unique per call and per process: lowercase [a-z0-9_], at most 30 characters,
 * usable as a database, queue, topic, znode or consumer name.
 */
export function uniqueName(prefix: string): string {
  counter += 1;
  let head = prefix
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, "_")
    .replace(/^_+|_+$/g, "");
  if (!/^[a-z]/.test(head)) head = `t${head}`;
  const suffix = `_${processTag}${counter.toString(36)}`;
  return head.slice(0, 30 - suffix.length) + suffix;
}

/** A libpq URL for the stack's superuser on DATABASE. */
export function adminDsn(database = "postgres"): string {
  const env = stackEnv();
  return `postgresql://${encodeURIComponent(env.pgUser)}@${env.pgHost}:${env.pgPort}/${encodeURIComponent(database)}`;
}

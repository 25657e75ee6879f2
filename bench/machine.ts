/** What the figures were measured on: they mean little without it. */
import { readFile } from "node:fs/promises";
import os from "node:os";
import pg from "pg";

/** The machine and software a benchmark run used. */
export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  postgres: string;
  /** PostgreSQL settings that change the figures a lot. */
  postgresSettings: Record<string, string>;
}

async function cpuModel(): Promise<string> {
  const text = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  const line = text.split("\n").find((l) => l.startsWith("model name"));
  return line?.split(":")[1]?.trim() ?? os.cpus()[0]?.model ?? "unknown";
}

/** Reads the machine's description; `dsn` reaches the PostgreSQL server under test. */
export async function describeMachine(dsn: string): Promise<MachineInfo> {
  const client = new pg.Client({ connectionString: dsn });
  await client.connect();
  try {
    const version = await client.query<{ server_version: string }>("SHOW server_version");
    const settings = await client.query<{ name: string; setting: string; unit: string | null }>(
      `SELECT name, setting, unit FROM pg_settings
        WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'wal_level', 'max_wal_size')
        ORDER BY name`,
    );
    return {
      cpu: await cpuModel(),
      cores: os.cpus().length,
      memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
      kernel: os.release(),
      node: process.version,
      postgres: version.rows[0]?.server_version ?? "unknown",
      postgresSettings: Object.fromEntries(
        settings.rows.map((r) => [r.name, r.unit ? `${r.setting} (${r.unit})` : r.setting]),
      ),
    };
  } finally {
    await client.end();
  }
}

import type { Command } from "commander";
import type { AdminContext } from "../cluster/context.js";
import { requireSet } from "../cluster/records.js";
import { dbNames } from "../config/names.js";
import { closeQuietly, connect } from "../database/postgres.js";
import { PgshovelError } from "../errors.js";
import { readConsumers, unregisterConsumer } from "../monitoring/pgq-info.js";
import { readRelays } from "../monitoring/status.js";
import { duration, table } from "../monitoring/status-text.js";
import { withAdmin } from "./context.js";
import { option } from "./options.js";

/** Options of `set consumers`, parsed. */
interface ConsumersFlags {
  unregister?: string;
  force?: boolean;
  json?: boolean;
}

async function consumers(ctx: AdminContext, set: string, flags: ConsumersFlags): Promise<string> {
  const { config } = await requireSet(ctx, set);
  const queue = dbNames.queue(ctx.cluster, set);
  const relays = await readRelays(ctx, set);
  const running = new Map(relays.map((r) => [r.consumer, 1 + r.standbys.length]));
  const client = await connect(config.database.dsn, { applicationName: "pgshovel consumers" });
  try {
    const id = flags.unregister;
    if (id !== undefined) {
      if (running.has(id) && !flags.force) {
        throw new PgshovelError(
          "CONFLICT",
          `consumer ${id} of set ${set} is in use: ${running.get(id)} relay(s) run for it`,
          {
            hint: "stop its relays first, or add --force (a running relay then fails and, restarted, starts again from the queue's latest tick)",
          },
        );
      }
      if (!(await unregisterConsumer(client, queue, id))) {
        throw new PgshovelError("NOT_FOUND", `consumer ${id} is not registered on queue ${queue}`, {
          hint: "`pgshovel set consumers SET` lists the registered consumers",
        });
      }
      return flags.json
        ? `${JSON.stringify({ unregistered: id, queue })}\n`
        : `unregistered consumer ${id} from queue ${queue}\n`;
    }
    const list = (await readConsumers(client, queue)).map((c) => ({
      ...c,
      relays: running.get(c.name) ?? 0,
    }));
    if (flags.json) return `${JSON.stringify(list, null, 2)}\n`;
    const rows = [
      ["CONSUMER", "RELAYS", "LAG", "LAST SEEN", "PENDING", "ROTATION"],
      ...list.map((c) => [
        c.name,
        String(c.relays),
        duration(c.lagSeconds),
        duration(c.lastSeenSeconds),
        c.pendingEvents ?? "-",
        c.blocksRotation ? "BLOCKS" : "ok",
      ]),
    ];
    return `${table(rows).join("\n")}\n`;
  } finally {
    await closeQuietly(client);
  }
}

/** Adds `set consumers SET` to the `set` command that the admin commands made. */
export function addConsumersCommand(program: Command): void {
  const set = program.commands.find((c) => c.name() === "set");
  if (!set) throw new PgshovelError("INTERNAL", "the set command is missing");
  set
    .command("consumers")
    .description(
      "list the PgQ consumers of a set's queue (lag, last seen, pending events, relays) or unregister one that is retired: a registered consumer keeps its events for ever",
    )
    .argument("<name>", "set name")
    .addOption(option("--unregister <id>", "unregister this consumer (pgq.unregister_consumer)"))
    .addOption(option("--force", "unregister even while relays run for the consumer"))
    .addOption(option("--json", "print JSON"))
    .action(async (name: string, flags: ConsumersFlags, command: Command) => {
      process.stdout.write(await withAdmin(command, (ctx) => consumers(ctx, name, flags)));
    });
}

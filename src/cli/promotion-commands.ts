/**
 * `set fence`, `set unfence`, `set promote` and `set missing`: the commands of a planned
 * switchover and of an unplanned failover (docs/replication.md has the procedures).
 */
import { type Command, InvalidArgumentError } from "commander";
import type { AdminContext } from "../cluster/context.js";
import { requireSet } from "../cluster/records.js";
import { hidePassword } from "../config/set-config.js";
import { PgshovelError } from "../errors.js";
import {
  FENCE_SQLSTATE,
  fenceSet,
  promoteReplica,
  readFence,
  unfenceSet,
} from "../promotion/index.js";
import { findMissingTransactions, type MissingReport } from "../promotion/missing.js";
import type { PromoteResult } from "../promotion/promote.js";
import { globals, withAdmin } from "./context.js";
import { option, parseDsn, parseDuration, targetOption } from "./options.js";

function parseGap(text: string): bigint {
  if (!/^\d{1,18}$/.test(text)) {
    throw new InvalidArgumentError(`${JSON.stringify(text)} is not a sequence gap (0, 1000, …)`);
  }
  return BigInt(text);
}

const out = (line: string) => process.stdout.write(`${line}\n`);

function printPromotion(set: string, target: string, result: PromoteResult): void {
  if (result.already) {
    out(
      `${target} was promoted out of set ${set} already, at ${result.already.promotedAt}: nothing to do`,
    );
    return;
  }
  const p = result.position!;
  out(
    `promoted ${target}: it no longer replicates set ${set}, and no replica worker will apply ${set} to it again`,
  );
  out(`  last batch applied: ${p.batch} (end tick ${p.endTick}, ${p.endTime})`);
  if (result.sourceUnreachable) {
    out(`  the source could not be reached (${result.sourceUnreachable}):`);
    out("  sequences were moved past the target's own highest values only, plus the gap;");
    out(
      `  once the old source is readable, \`pgshovel set missing ${set} --target … --source …\` lists what the new primary lacks`,
    );
  } else {
    out(
      `  the source was reached: fenced ${result.fence ? `since ${result.fence.fenced_at} (tick ${result.fence.tick ?? "not taken"})` : "NO"}, transactions missing: ${result.missing ?? "unknown"}`,
    );
  }
  for (const forced of result.forced) out(`  forced past: ${forced}`);
  for (const s of result.sequences) {
    const seen = `source ${s.source ?? "-"}, target max ${s.targetMax ?? "-"}`;
    out(
      `  sequence ${s.sequence} (${s.column}): ${s.setTo === null ? `left alone, ${s.skipped}` : `set to ${s.setTo}`} (${seen})`,
    );
  }
  if (result.sequences.length === 0) out("  no sequence is owned by the set's captured columns");
}

/** A mutation as `set missing --json` prints it. */
function missingJson(report: MissingReport, set: string) {
  return {
    set,
    queue: report.queue,
    replica: {
      batch: report.position.batch.toString(),
      end_tick: report.position.endTick.toString(),
      end_tick_time: report.position.endTime,
      end_tick_snapshot: `${report.position.endSnapshot.xmin}:${report.position.endSnapshot.xmax}:${report.position.endSnapshot.xip.join(",")}`,
    },
    complete: report.complete,
    rotated_since: report.rotatedSince,
    lowest_consumer_tick: report.lowestConsumerTick?.toString() ?? null,
    transactions: report.transactions.map((t) => ({
      txid: t.txid.toString(),
      changes: t.mutations.map((m) => ({
        event: m.id.toString(),
        time: m.time,
        operation: m.operation,
        schema: m.schema,
        table: m.table,
        identity: m.identity,
        old: m.old,
        new: m.new,
      })),
    })),
  };
}

function printMissing(report: MissingReport, set: string, source: string): void {
  const p = report.position;
  const changes = report.transactions.reduce((n, t) => n + t.mutations.length, 0);
  out(`set ${set}: the replica stands at batch ${p.batch} (end tick ${p.endTick}, ${p.endTime})`);
  out(
    `${source} holds ${report.transactions.length} transaction(s) it lacks, ${changes} change(s):`,
  );
  for (const t of report.transactions) {
    out(
      `transaction ${t.txid} (${t.mutations.length} change(s), first at ${t.mutations[0]?.time ?? "?"})`,
    );
    for (const m of t.mutations) {
      const table = `${m.schema}.${m.table}`;
      const rows = [
        m.old && `old ${JSON.stringify(m.old)}`,
        m.new && `new ${JSON.stringify(m.new)}`,
      ]
        .filter(Boolean)
        .join(" ");
      out(`  ${m.operation} ${table} ${rows}`.trimEnd());
    }
  }
  if (!report.complete) {
    out(
      `WARNING: the list may be incomplete: no consumer of queue ${report.queue} stands at or before tick ${p.endTick} (lowest: ${report.lowestConsumerTick ?? "none"}) and the queue has rotated its event tables since, so PgQ may have discarded events after the replica's position`,
    );
  } else {
    out(`complete: the queue holds every event after tick ${p.endTick}`);
  }
}

/** Adds the switchover and failover commands under `set`. */
export function addPromotionCommands(set: Command): void {
  set
    .command("fence")
    .description(
      "refuse writes to a set's tables (for a switchover): waits for the writes in flight, then prints the tick every captured change lies before; replication workers still write",
    )
    .argument("<name>", "set name")
    .addOption(
      option("--lock-timeout <duration>", "how long to wait for the writes in flight")
        .default(10_000, "10s")
        .argParser(parseDuration),
    )
    .action(async (name: string, options: { lockTimeout: number }, command: Command) => {
      const result = await withAdmin(command, (ctx) =>
        fenceSet(ctx, name, { lockTimeoutMs: options.lockTimeout }),
      );
      const { record } = result;
      out(
        `${result.already ? "already fenced" : "fenced"}: set ${name}, ${record.tables.length} table(s) in ${hidePassword(record.database.dsn)} refuse writes (SQLSTATE ${FENCE_SQLSTATE}) since ${record.fenced_at}`,
      );
      out(
        `every change captured before the fence is in the queue's batches up to tick ${record.tick} (queue ${record.queue}): a replica whose last batch ends at that tick or later holds all of it`,
      );
      out(`undo with: pgshovel --cluster ${globals(command).cluster} set unfence ${name}`);
    });
  set
    .command("unfence")
    .description("accept writes to a fenced set's tables again")
    .argument("<name>", "set name")
    .action(async (name: string, _options, command: Command) => {
      const lifted = await withAdmin(command, (ctx) => unfenceSet(ctx, name));
      out(
        lifted
          ? `unfenced set ${name}: its tables accept writes again`
          : `set ${name} is not fenced: nothing to do`,
      );
    });
  set
    .command("promote")
    .description(
      "make a set's replica a primary: no worker may be active for it; moves its sequences past the source's values; no replica worker applies the set to it afterwards",
    )
    .argument("<name>", "set name")
    .addOption(targetOption("the replica to promote"))
    .addOption(
      option(
        "--sequence-gap <n>",
        "values left unused after the highest one known of each sequence",
      )
        .default(1000n, "1000")
        .argParser(parseGap),
    )
    .addOption(
      option(
        "--source-timeout <duration>",
        "how long to try reaching the source before counting it gone",
      )
        .default(5_000, "5s")
        .argParser(parseDuration),
    )
    .addOption(
      option(
        "--force",
        "promote although the source, reached, is not fenced or holds transactions the replica lacks",
      ),
    )
    .action(
      async (
        name: string,
        options: { target: string; sequenceGap: bigint; sourceTimeout: number; force?: boolean },
        command: Command,
      ) => {
        const result = await withAdmin(command, (ctx) =>
          promoteReplica(ctx, {
            set: name,
            targetDsn: options.target,
            sequenceGap: options.sequenceGap,
            force: options.force === true,
            sourceTimeoutMs: options.sourceTimeout,
          }),
        );
        printPromotion(name, hidePassword(options.target), result);
      },
    );
  set
    .command("missing")
    .description(
      "after a failover: the transactions the old source committed that its replica never applied, with their changes",
    )
    .argument("<name>", "set name")
    .addOption(targetOption("the replica (or the replica promoted since)"))
    .addOption(
      option(
        "--source <dsn>",
        "the old source, readable again (default: the set's database)",
      ).argParser(parseDsn),
    )
    .addOption(option("--json", "print JSON"))
    .action(
      async (
        name: string,
        options: { target: string; source?: string; json?: boolean },
        command: Command,
      ) => {
        const { report, source } = await withAdmin(command, async (ctx) => {
          const dsn = options.source ?? (await sourceOf(ctx, name));
          return {
            source: hidePassword(dsn),
            report: await findMissingTransactions({
              cluster: ctx.cluster,
              set: name,
              targetDsn: options.target,
              sourceDsn: dsn,
            }),
          };
        });
        if (options.json) out(JSON.stringify(missingJson(report, name), null, 2));
        else printMissing(report, name, source);
      },
    );
}

/** The set's database: where a fence record says it was fenced, or its configuration. */
async function sourceOf(ctx: AdminContext, set: string): Promise<string> {
  const fence = await readFence(ctx, set);
  if (fence) return fence.record.database.dsn;
  const config = await requireSet(ctx, set).catch((error: unknown) => {
    throw new PgshovelError("NOT_FOUND", `set ${set} is unknown: give --source`, { cause: error });
  });
  return config.config.database.dsn;
}

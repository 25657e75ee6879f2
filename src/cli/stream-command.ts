import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { PgshovelError } from "../errors.js";
import { CODEC_NAMES, codecByName } from "../stream/codec.js";
import { BatchAssembler, type CommittedBatch } from "../stream/assembler.js";
import { splitDelimited } from "../stream/framing.js";
import type { Message, Mutation, Row } from "../stream/types.js";
import { option, parsePositiveInt } from "./options.js";

/** Splits a stream file into messages: JSON lines, or size-delimited protobuf frames. */
export function decodeStreamBytes(bytes: Buffer, codecName: string): Message[] {
  const codec = codecByName(codecName);
  if (codec.name === "json") {
    const text = bytes.toString("utf8");
    const lines = text.split("\n").filter((line) => line.length > 0);
    return lines.map((line, i) => {
      try {
        return codec.decode(Buffer.from(line, "utf8"));
      } catch (error) {
        throw new PgshovelError("DECODE_ERROR", `line ${i + 1}: ${(error as Error).message}`, {
          cause: error,
        });
      }
    });
  }
  return splitDelimited(bytes).map((frame) => codec.decode(frame));
}

function showRow(row: Row | null): string {
  if (row === null) return "-";
  return Object.entries(row)
    .map(
      ([k, v]) =>
        `${k}=${v === null ? "NULL" : typeof v === "string" ? JSON.stringify(v) : String(v)}`,
    )
    .join(" ");
}

function showMutation(m: Mutation): string {
  const target = `${m.schema}.${m.table}`;
  switch (m.operation) {
    case "INSERT":
      return `INSERT ${target} ${showRow(m.new)}`;
    case "UPDATE":
      return `UPDATE ${target} ${showRow(m.old)}  →  ${showRow(m.new)}`;
    case "DELETE":
      return `DELETE ${target} ${showRow(m.old)}`;
    case "TRUNCATE":
      return `TRUNCATE ${target}`;
  }
}

/** A readable account of committed batches: the first transactions in full, then counts. */
export function summarize(batches: CommittedBatch[], show: number): string {
  const lines: string[] = [];
  let shown = 0;
  const counts = new Map<string, number>();
  let transactions = 0;
  let mutations = 0;
  for (const batch of batches) {
    const byTransaction = new Map<bigint, Mutation[]>();
    for (const m of batch.mutations) {
      const list = byTransaction.get(m.transaction) ?? [];
      list.push(m);
      byTransaction.set(m.transaction, list);
      const key = `${m.schema}.${m.table} ${m.operation}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      mutations++;
    }
    transactions += byTransaction.size;
    if (shown < show && byTransaction.size > 0) {
      lines.push(
        `BEGIN batch ${batch.id} (ticks ${batch.begin.start.id}→${batch.begin.end.id}, ${batch.mutations.length} mutations)`,
      );
      for (const [txid, list] of byTransaction) {
        if (shown >= show) break;
        lines.push(`  transaction ${txid}`);
        for (const m of list) lines.push(`    ${showMutation(m)}`);
        shown++;
      }
      lines.push(`COMMIT batch ${batch.id}`);
    }
  }
  lines.push("");
  lines.push(
    `${batches.length} committed batches, ${transactions} transactions, ${mutations} mutations`,
  );
  const width = Math.max(0, ...[...counts.keys()].map((k) => k.length));
  for (const [key, count] of [...counts].sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(`  ${key.padEnd(width)}  ${count}`);
  }
  return `${lines.join("\n")}\n`;
}

/** Adds `stream inspect FILE`. */
export function addStreamCommand(program: Command): void {
  const stream = program.command("stream").description("read a stream written by a relay");
  stream
    .command("inspect")
    .description(
      "validate a stream file (begin…commit, contiguous sequences), print its first transactions and counts per table and operation",
    )
    .argument("<file>", "a file written by `pgshovel relay SET --sink file:PATH`")
    .addOption(option("--codec <codec>", "the file's codec").choices(CODEC_NAMES).default("json"))
    .addOption(
      option("--show <n>", "transactions to print in full").default(5).argParser(parsePositiveInt),
    )
    .action(async (file: string, options: { codec: string; show: number }) => {
      let bytes: Buffer;
      try {
        bytes = await readFile(file);
      } catch (error) {
        throw new PgshovelError(
          "INVALID_ARGUMENT",
          `cannot read ${file}: ${(error as Error).message}`,
        );
      }
      const assembler = new BatchAssembler();
      const batches: CommittedBatch[] = [];
      for (const message of decodeStreamBytes(bytes, options.codec)) {
        const batch = assembler.push(message);
        if (batch) batches.push(batch);
      }
      process.stdout.write(summarize(batches, options.show));
      const stats = assembler.stats;
      if (stats.duplicates + stats.rolledBack + stats.abandoned > 0) {
        process.stdout.write(
          `(${stats.duplicates} re-sent duplicate batches dropped, ${stats.rolledBack} rolled back, ${stats.abandoned} abandoned by a crashed relay)\n`,
        );
      }
    });
}

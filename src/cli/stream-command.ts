import type { Command } from "commander";
import { CODEC_NAMES, type CodecName } from "../stream/codec.js";
import { readStreamBytes, readStreamFile, type TornTail } from "../stream/reader.js";
import {
  type BatchDecision,
  type BatchHandler,
  type OpenedBatch,
  StreamingAssembler,
} from "../stream/streaming-assembler.js";
import type { Mutation, Row } from "../stream/types.js";
import { option, parsePositiveInt } from "./options.js";

/** Mutations printed of one shown transaction; the rest of it is counted. */
export const SHOWN_MUTATIONS = 100;

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

/** One shown transaction of an open batch: its first lines, and how many more it has. */
interface ShownTransaction {
  lines: string[];
  more: number;
}

/** What is kept of an open batch: counts, and the lines of the transactions it may show. */
interface OpenSummary {
  mutations: number;
  /** Distinct transactions; small numbers stand for txids that fit, so that the set stays compact. */
  transactions: Set<number | bigint>;
  last: bigint | undefined;
  counts: Map<string, number>;
  shown: Map<bigint, ShownTransaction>;
}

/**
 * A readable account of a stream, built as it is read: the first transactions of committed
 * batches, printed at each commit, then totals. Memory holds counts and the lines to show,
 * never a batch's mutations.
 */
export class StreamSummary implements BatchHandler {
  readonly #show: number;
  readonly #write: (text: string) => void;
  readonly #open = new Map<OpenedBatch, OpenSummary>();
  readonly #counts = new Map<string, number>();
  #shown = 0;
  #batches = 0;
  #transactions = 0;
  #mutations = 0;

  constructor(show: number, write: (text: string) => void) {
    this.#show = show;
    this.#write = write;
  }

  async begin(batch: OpenedBatch): Promise<BatchDecision> {
    const open: OpenSummary = {
      mutations: 0,
      transactions: new Set(),
      last: undefined,
      counts: new Map(),
      shown: new Map(),
    };
    this.#open.set(batch, open);
    return "apply";
  }

  mutation(m: Mutation, batch: OpenedBatch): void {
    const open = this.#open.get(batch)!;
    open.mutations++;
    const key = `${m.schema}.${m.table} ${m.operation}`;
    open.counts.set(key, (open.counts.get(key) ?? 0) + 1);
    const txid = m.transaction;
    if (txid !== open.last) {
      open.last = txid;
      open.transactions.add(txid <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(txid) : txid);
    }
    let shown = open.shown.get(txid);
    if (shown === undefined && this.#shown + open.shown.size < this.#show) {
      shown = { lines: [], more: 0 };
      open.shown.set(txid, shown);
    }
    if (shown === undefined) return;
    if (shown.lines.length < SHOWN_MUTATIONS) shown.lines.push(`    ${showMutation(m)}`);
    else shown.more++;
  }

  commit(batch: OpenedBatch): void {
    const open = this.#open.get(batch)!;
    this.#open.delete(batch);
    this.#batches++;
    this.#transactions += open.transactions.size;
    this.#mutations += open.mutations;
    for (const [key, count] of open.counts) {
      this.#counts.set(key, (this.#counts.get(key) ?? 0) + count);
    }
    if (this.#shown >= this.#show || open.shown.size === 0) return;
    const lines = [
      `BEGIN batch ${batch.id} (ticks ${batch.begin.start.id}→${batch.begin.end.id}, ${open.mutations} mutations)`,
    ];
    for (const [txid, shown] of open.shown) {
      if (this.#shown >= this.#show) break;
      lines.push(`  transaction ${txid}`, ...shown.lines);
      if (shown.more > 0) lines.push(`    … and ${shown.more} more mutations`);
      this.#shown++;
    }
    lines.push(`COMMIT batch ${batch.id}`);
    this.#write(`${lines.join("\n")}\n`);
  }

  rollback(batch: OpenedBatch): void {
    this.#open.delete(batch);
  }

  /** The totals: committed batches, transactions and mutations, and counts per table and operation. */
  totals(): string {
    const lines = [
      "",
      `${this.#batches} committed batches, ${this.#transactions} transactions, ${this.#mutations} mutations`,
    ];
    const width = Math.max(0, ...[...this.#counts.keys()].map((k) => k.length));
    for (const [key, count] of [...this.#counts].sort(([a], [b]) => a.localeCompare(b))) {
      lines.push(`  ${key.padEnd(width)}  ${count}`);
    }
    return `${lines.join("\n")}\n`;
  }
}

/** Adds `stream inspect FILE`. */
export function addStreamCommand(program: Command): void {
  const stream = program.command("stream").description("read a stream written by a relay");
  stream
    .command("inspect")
    .description(
      "validate a stream file (begin…commit, contiguous sequences), print its first transactions and counts per table and operation",
    )
    .argument("<file>", "a file written by `pgshovel relay SET --sink file:PATH`, or - for stdin")
    .addOption(option("--codec <codec>", "the file's codec").choices(CODEC_NAMES).default("json"))
    .addOption(
      option(
        "--show <n>",
        `transactions to print in full (up to ${SHOWN_MUTATIONS} mutations each)`,
      )
        .default(5)
        .argParser(parsePositiveInt),
    )
    .action(async (file: string, options: { codec: string; show: number }) => {
      let torn: TornTail | undefined;
      const read = {
        codec: options.codec as CodecName,
        onTornTail: (tail: TornTail) => {
          torn = tail;
        },
      };
      const source =
        file === "-"
          ? readStreamBytes(process.stdin, { ...read, name: "stdin" })
          : readStreamFile(file, read);
      const summary = new StreamSummary(options.show, (text) => process.stdout.write(text));
      const assembler = new StreamingAssembler(summary);
      await assembler.consume(source);
      process.stdout.write(summary.totals());
      const stats = assembler.stats;
      if (stats.duplicates + stats.rolledBack + stats.abandoned > 0) {
        process.stdout.write(
          `(${stats.duplicates} re-sent duplicate batches dropped, ${stats.rolledBack} rolled back, ${stats.abandoned} abandoned by a crashed relay)\n`,
        );
      }
      // Exit 0: everything before the fragment was valid and is shown; a crash leaves such
      // a fragment, and the file sink cuts it off when it reopens the file.
      if (torn !== undefined) {
        process.stderr.write(`warning: ${torn.description}; everything before it is shown above\n`);
      }
    });
}

/** `pgshovel status` for a person: one block per set, the verdict and its reasons first. */
import type { ReplicaCandidate, ReplicaStatus } from "./replica-status.js";
import type { ClusterStatus, ConsumerRelays, RelayCandidate, SetStatus } from "./status.js";

/** A duration for a person: 0.7s, 95s, 12m, 2h, 3d. */
export function duration(value: number | null): string {
  if (value === null) return "-";
  if (value < 10) return `${value.toFixed(1)}s`;
  if (value < 120) return `${Math.round(value)}s`;
  if (value < 7_200) return `${Math.round(value / 60)}m`;
  if (value < 172_800) return `${Math.round(value / 3_600)}h`;
  return `${Math.round(value / 86_400)}d`;
}

function bytes(value: string): string {
  let size = Number(value);
  for (const unit of ["B", "kB", "MB", "GB"]) {
    if (size < 1024 || unit === "GB") return `${unit === "B" ? size : size.toFixed(1)} ${unit}`;
    size /= 1024;
  }
  return value;
}

/** Left-aligned columns, two spaces apart. */
export function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((row) =>
    row
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join("  ")
      .trimEnd(),
  );
}

function who(c: RelayCandidate): string {
  const since = c.since ? ` since ${c.since}` : "";
  return `${c.host ?? "?"} pid ${c.pid ?? "?"} publisher ${c.publisher ?? "?"}${since}`;
}

function relayLines(relays: ConsumerRelays[]): string[] {
  if (relays.length === 0) return ["  relays     none running"];
  const lines: string[] = [];
  for (const r of relays) {
    lines.push(`  relays     consumer ${r.consumer}:`);
    if (r.leader) lines.push(`               leader   ${who(r.leader)}`);
    for (const s of r.standbys) lines.push(`               standby  ${who(s)}`);
    if (r.standbys.length === 0) lines.push("               standby  none");
  }
  return lines;
}

function queueLines(set: SetStatus): string[] {
  const { queue } = set;
  if (queue.error !== null) return [`  queue      ${queue.name}: unreadable: ${queue.error}`];
  if (!queue.info) return [`  queue      ${queue.name}: missing`];
  const q = queue.info;
  const t = q.eventTables;
  const lines = [
    `  queue      ${queue.name}: ticker lag ${duration(q.tickerLagSeconds)}, ${q.eventsPerSecond === null ? "-" : q.eventsPerSecond.toFixed(1)} events/s, ${q.newEvents} since the last tick`,
    `  events     ${t.count} event tables, ${bytes(t.bytes)}, current ${t.current}, rotated ${t.lastRotation} (every ${duration(t.rotationPeriodSeconds)}${t.rotationDue ? ", due" : ""})`,
  ];
  if (set.consumers.length === 0) return [...lines, "  consumers  none registered"];
  const rows = [
    ["CONSUMER", "RELAY", "LAG", "LAST SEEN", "PENDING", "ROTATION"],
    ...set.consumers.map((c) => [
      c.name,
      c.relayed ? "yes" : "no",
      duration(c.lagSeconds),
      duration(c.lastSeenSeconds),
      c.pendingEvents ?? "-",
      c.blocksRotation ? "BLOCKS" : "ok",
    ]),
  ];
  const consumers = table(rows).map((l, i) => `${i === 0 ? "  consumers  " : "             "}${l}`);
  return [...lines, ...consumers];
}

function sinkLine(set: SetStatus): string {
  const s = set.sink;
  const head = `  topic      ${s.topic}: `;
  if (!s.checked) return `${head}not checked (no --kafka-brokers)`;
  if (s.error !== null) return `${head}unreadable: ${s.error}`;
  if (s.exists === false) return `${head}does not exist (not a Kafka set, or no Kafka relay yet)`;
  const last = s.lastCommittedBatch;
  if (!last) return `${head}no committed batch yet`;
  return `${head}last committed batch ${last.id} at offset ${last.offset}, ${last.timestamp}`;
}

function worker(c: ReplicaCandidate): string {
  const started = c.startedAt ? ` started ${c.startedAt}` : "";
  return `${c.host ?? "?"} pid ${c.pid ?? "?"} worker ${c.worker ?? "?"}${started}`;
}

function behind(r: ReplicaStatus): string {
  if (r.batchesBehind === null) return "batches behind unknown";
  const events = r.eventsBehind === null ? "" : ` (${r.eventsBehind} events)`;
  return `${r.batchesBehind} batches behind${events}`;
}

function replicaLines(replicas: ReplicaStatus[]): string[] {
  if (replicas.length === 0) return ["  replicas   none running"];
  const lines: string[] = [];
  for (const r of replicas) {
    const feed = r.feed.consumer ? `${r.feed.kind} as ${r.feed.consumer}` : r.feed.kind;
    lines.push(`  replicas   target ${r.target ?? "?"} (node ${r.targetNode}), from ${feed}:`);
    if (r.leader) lines.push(`               active   ${worker(r.leader)}`);
    for (const s of r.standbys) lines.push(`               standby  ${worker(s)}`);
    if (r.error !== null) {
      lines.push(`               position unreadable: ${r.error}`);
    } else if (!r.position) {
      lines.push("               position none yet (no batch applied)");
    } else {
      const p = r.position;
      lines.push(
        `               position batch ${p.batch}, end tick ${p.endTick} at ${p.endTime}: lag ${duration(r.lagSeconds)}, ${behind(r)}`,
      );
    }
  }
  return lines;
}

/** The text of one set's block. */
export function renderSet(set: SetStatus): string[] {
  return [
    `set ${set.name}: ${set.verdict}`,
    ...set.findings.map((f) => `  ${f.level.padEnd(9)}  ${f.message}`),
    `  database   ${set.database} (node ${set.node})`,
    `  tables     ${set.tables.join(", ")}`,
    `  version    ${set.configurationVersion}`,
    ...(set.fence
      ? [
          `  fence      since ${set.fence.fencedAt}${set.fence.tick ? `, every change before it by tick ${set.fence.tick}` : ""}`,
        ]
      : []),
    ...relayLines(set.relays),
    ...queueLines(set),
    sinkLine(set),
    ...replicaLines(set.replicas),
  ];
}

/** The whole report as text. */
export function renderStatus(status: ClusterStatus): string {
  const lines = [
    `cluster ${status.cluster} (version ${status.version}) at ${status.checkedAt}: ${status.verdict}`,
  ];
  if (status.sets.length === 0) lines.push("no sets");
  for (const set of status.sets) lines.push("", ...renderSet(set));
  return `${lines.join("\n")}\n`;
}

import { catchStopSignals, releaseStopSignals } from "./stop-signals.js";

// Caught before the program's modules load, which takes a moment: a relay or a replica
// worker stopped at any time exits 0 rather than dying by the signal. Other commands get
// the default back below.
const stop = catchStopSignals();

// bin/pgshovel passes the program name first: pgshovel, pgshovel-stream-relay or pgshovel-kafka-relay.
const [entry = "pgshovel", ...argv] = process.argv.slice(2);
// ps and top show the command rather than node's flags; from now on a stop signal is caught.
process.title = [entry, ...argv].join(" ");
const { buildProgram, run } = await import("./program.js");
const { RELAY_COMMAND } = await import("./relay-command.js");
const { REPLICATE_COMMAND } = await import("./replicate-command.js");

/** The commands that stop cleanly on a signal: long-running workers. */
const STOPPABLE = new Set([RELAY_COMMAND, REPLICATE_COMMAND]);

/**
 * Whether the command line runs a worker that stops cleanly on a signal: a relay program,
 * or `pgshovel [global options] relay|replicate …`.
 */
function runsWorker(): boolean {
  const program = buildProgram(entry);
  if (program.commands.length === 0) return true;
  // The first word that is neither a global option nor its value names the command.
  const valued = new Set(
    program.options.filter((o) => o.required || o.optional).flatMap((o) => [o.long, o.short]),
  );
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (!word.startsWith("-")) return STOPPABLE.has(word);
    if (valued.has(word)) i++;
  }
  return false;
}

/**
 * Two turns of the event loop. A signal reaches its listener in the loop's I/O phase: one
 * caught before this call (while the modules loaded, with the loop busy) has by the end.
 */
async function twoLoopTurns(): Promise<void> {
  for (let turn = 0; turn < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
}

if (!runsWorker()) {
  // An interrupted admin command ends as it always did, by the signal: one that came while
  // the program loaded is raised again.
  await twoLoopTurns();
  releaseStopSignals(true);
}
const code = await run(entry, argv);
// A stopped worker has let go of what it held; anything still under way (a ZooKeeper
// connection being opened, say) is abandoned rather than waited for.
if (stop.signal.aborted) process.exit(code);
releaseStopSignals(false);
process.exitCode = code;
// A finished program exits even if a client library left something running (a socket to a
// server that stopped answering, say): everything worth waiting for was awaited by run().
setTimeout(() => process.exit(code), 2000).unref();

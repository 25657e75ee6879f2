/**
 * SIGTERM and SIGINT for a command that stops cleanly on them (the relay). Caught as early as
 * possible: until a listener exists, either signal ends the process by the signal (143, 130)
 * instead of a clean stop with exit 0. Nothing here may import more than the error type: the
 * entry point loads this module before the rest of the program.
 */
import { PgshovelError } from "../errors.js";

/** The signals that ask a relay to stop: a supervisor's SIGTERM, a terminal's Ctrl-C. */
const STOP_SIGNALS = ["SIGTERM", "SIGINT"] as const;

/**
 * SIGTERM and SIGINT, caught: the first one aborts {@link signal} rather than ending the
 * process. Later ones change nothing: the command is stopping already.
 */
export class StopSignals {
  readonly #controller = new AbortController();
  #received: NodeJS.Signals | undefined;
  readonly #listener = (name: NodeJS.Signals) => {
    if (this.#received !== undefined) return;
    this.#received = name;
    this.#controller.abort(new PgshovelError("STOPPED", `stopped by ${name}`));
  };

  constructor() {
    for (const name of STOP_SIGNALS) process.on(name, this.#listener);
  }

  /** Aborted by the first SIGTERM or SIGINT, with a STOPPED error as its reason. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The signal that stopped the command, if one came. */
  get received(): NodeJS.Signals | undefined {
    return this.#received;
  }

  /**
   * Gives SIGTERM and SIGINT their default back. With `reraise`, one that came meanwhile is
   * raised again: the process then ends by it, as it would have had nobody caught it.
   */
  release(reraise: boolean): void {
    for (const name of STOP_SIGNALS) process.off(name, this.#listener);
    if (reraise && this.#received !== undefined) process.kill(process.pid, this.#received);
  }
}

let current: StopSignals | undefined;
let holders = 0;

/**
 * Catches SIGTERM and SIGINT from now on, until the matching {@link releaseStopSignals}:
 * the entry point catches them first thing, the relay command again for its own run, and
 * both share one catch.
 */
export function catchStopSignals(): StopSignals {
  holders++;
  current ??= new StopSignals();
  return current;
}

/** Releases one catch; the last lets the signals end the process again (see {@link StopSignals.release}). */
export function releaseStopSignals(reraise: boolean): void {
  if (holders === 0) return;
  holders--;
  if (holders > 0) return;
  current?.release(reraise);
  current = undefined;
}

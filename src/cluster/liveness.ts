import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";

/**
 * How long ZooKeeper may stay silent before whoever holds the session must act as if it had
 * lost it: two thirds of the negotiated session timeout T.
 *
 * Why that is early enough: the server expires a session no sooner than T after it last heard
 * from the client, and it heard the request behind our last answer before it answered, so
 * expiry comes at least T − (that request's round trip) after the answer arrived. Stopping
 * 2T/3 after the last answer leaves T/3 for the round trip and for the holder to stop, and a
 * standby can only be elected once the session has expired. Two thirds is also the read
 * timeout of ZooKeeper's own Java client.
 */
export function silenceBoundMs(sessionTimeoutMs: number): number {
  return Math.floor((sessionTimeoutMs * 2) / 3);
}

/**
 * A quiet session is probed this often (T/6): a healthy server then answers at least four
 * times within the silence bound, so one slow answer is not taken for silence.
 */
export function probeIntervalMs(sessionTimeoutMs: number): number {
  return Math.max(50, Math.floor(sessionTimeoutMs / 6));
}

/** Options of {@link Liveness}. */
export interface LivenessOptions {
  /** The negotiated session timeout; read at every check, since a reconnection may change it. */
  sessionTimeoutMs: () => number;
  /** Sends one cheap request and calls `done(true)` when the server answered it. */
  probe: (done: (answered: boolean) => void) => void;
  /** A monotonic clock in milliseconds (performance.now by default). */
  now?: () => number;
}

/** Events of {@link Liveness}: `silent` with how long the server has been silent, then `answering`. */
export interface LivenessEvents {
  silent: [silentForMs: number];
  answering: [];
}

/**
 * Tracks when a ZooKeeper server last answered and reports silence past the bound.
 *
 * Answers are counted as the session's own requests come back (the caller reports each with
 * {@link answered}), and a quiet session is kept talking by a probe of its own. A probe was
 * chosen over the client library's pings: those are sent only after the socket has been idle
 * for T/3 — never while requests keep being written — and are not visible through the
 * library's API, whereas a probe's answer is, and its rhythm is ours.
 */
export class Liveness extends EventEmitter<LivenessEvents> {
  private readonly now: () => number;
  private last: number;
  private silentNow = false;
  private probing = false;
  private lastProbeAt = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(private readonly options: LivenessOptions) {
    super();
    this.now = options.now ?? (() => performance.now());
    this.last = this.now();
  }

  /** The silence bound for the current session timeout. */
  get boundMs(): number {
    return silenceBoundMs(this.options.sessionTimeoutMs());
  }

  /** When the server last answered, as a wall-clock time in milliseconds since the epoch. */
  get lastAnsweredAt(): number {
    return Date.now() - (this.now() - this.last);
  }

  /** How long the server has been silent, in milliseconds. */
  get silentForMs(): number {
    return this.now() - this.last;
  }

  /** True from the `silent` event until the next answer. */
  get isSilent(): boolean {
    return this.silentNow;
  }

  /** Starts checking, counting from now as the last answer (a session was just established). */
  start(): void {
    this.running = true;
    this.answered();
    this.schedule(0);
  }

  /** Records an answer from the server. */
  answered(): void {
    this.last = this.now();
    if (this.silentNow) {
      this.silentNow = false;
      this.emit("answering");
    }
  }

  /** Stops every timer; no event is emitted afterwards. */
  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    if (!this.running) return;
    this.timer = setTimeout(this.check, Math.max(10, delayMs));
    // Tracking must never be what keeps a process alive.
    this.timer.unref();
  }

  private readonly check = (): void => {
    if (!this.running) return;
    const timeout = this.options.sessionTimeoutMs();
    const bound = silenceBoundMs(timeout);
    const interval = probeIntervalMs(timeout);
    const now = this.now();
    const quiet = now - this.last;
    if (!this.silentNow && quiet >= bound) {
      this.silentNow = true;
      this.emit("silent", quiet);
    }
    if (!this.running) return;
    if (!this.probing && quiet >= interval && now - this.lastProbeAt >= interval) this.sendProbe();
    // Wake for the next probe (due an interval after the last answer, and after the last
    // probe) or at the silence deadline, whichever comes first; a probe's answer wakes the
    // check itself.
    const untilProbe = this.probing
      ? Number.POSITIVE_INFINITY
      : Math.max(0, interval - quiet, this.lastProbeAt + interval - now);
    const untilSilence = this.silentNow ? Number.POSITIVE_INFINITY : bound - quiet;
    const wake = Math.min(untilProbe, untilSilence);
    this.schedule(Number.isFinite(wake) ? wake : interval);
  };

  private sendProbe(): void {
    this.probing = true;
    this.lastProbeAt = this.now();
    this.options.probe((answered) => {
      this.probing = false;
      if (!this.running || !answered) return;
      this.answered();
      this.schedule(0);
    });
  }
}

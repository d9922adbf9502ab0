import type { ManualClock } from '../core/clock.js';

/**
 * Driving a ManualClock underneath async code. Virtual time moves only from one timer deadline to
 * the next; before each move, the event loop is given rounds of setImmediate (each lets every
 * pending promise callback and process.nextTick run) until two rounds in a row change nothing: no
 * packet moved (as told by `activity`) and the timer heap looks the same. Code written against
 * Node's async APIs (streams, http, dgram) therefore runs as it would on a real clock, only
 * without waiting.
 */
export class VirtualPump {
  constructor(
    readonly clock: ManualClock,
    /** A counter that changes whenever something happened (packets sent or delivered). */
    private readonly activity: () => number = () => 0,
    /** One turn of the event loop (default: `macrotask`). */
    private readonly turn: () => Promise<void> = macrotask,
  ) {}

  /** Let async work run until it goes quiet (at most `maxRounds` event-loop turns). */
  async settle(maxRounds = 64): Promise<void> {
    const clock = this.clock;
    let quiet = 0;
    for (let i = 0; i < maxRounds && quiet < 2; i++) {
      const a = this.activity();
      const n = clock.pendingTimers;
      const d = clock.nextDeadline();
      await this.turn();
      if (this.activity() === a && clock.pendingTimers === n && clock.nextDeadline() === d) quiet++;
      else quiet = 0;
    }
  }

  /**
   * Step timers and async work until `done()` is true (checked after each quiet point), no timer
   * is left, or the next deadline is beyond `limit`. With `toLimit`, time then moves to `limit`.
   * `beforeStep` runs before each step (the network installs routes there). Returns done().
   */
  async run(done: () => boolean, limit: number, toLimit: boolean, beforeStep?: () => void): Promise<boolean> {
    const clock = this.clock;
    for (;;) {
      await this.settle();
      if (done()) return true;
      if (beforeStep) beforeStep();
      const d = clock.nextDeadline();
      if (d > limit || d === Infinity) {
        if (toLimit && limit !== Infinity && limit > clock.now()) {
          clock.advanceTo(limit);
          await this.settle();
        }
        return done();
      }
      clock.advanceTo(Math.max(d, clock.now()));
    }
  }
}

/**
 * One turn of the event loop: Node's `setImmediate` where the platform has it (it runs after the
 * I/O callbacks and every pending promise and nextTick), else a MessageChannel message (browsers:
 * a task, after the microtasks). Looked up on globalThis so that this module names no Node API.
 */
export function macrotask(): Promise<void> {
  const immediate = (globalThis as { setImmediate?: (f: () => void) => unknown }).setImmediate;
  if (typeof immediate === 'function') return new Promise<void>((r) => void immediate(r));
  return new Promise<void>((r) => {
    const ch = new MessageChannel();
    const port = ch.port1 as unknown as { onmessage: (() => void) | null; close(): void };
    port.onmessage = () => {
      port.close();
      r();
    };
    ch.port2.postMessage(null);
  });
}

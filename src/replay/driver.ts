/**
 * How a replay waits: on virtual time (a ManualClock advanced by the sim pump whenever the stack
 * is idle) or on the real clock, woken early when the stack does something.
 */
import type { Clock, ManualClock, RealClock } from '../core/clock.js';
import { VirtualPump } from '../sim/pump.js';

/** @internal */
export interface Driver {
  readonly clock: Clock;
  now(): number;
  /** Wait until `t` or until `cond()` holds; returns cond() (true when no cond). */
  wait(t: number, cond: (() => boolean) | null): Promise<boolean>;
  wake(): void;
}

/** @internal */
export class VirtualDriver implements Driver {
  private readonly pump: VirtualPump;
  constructor(
    readonly clock: ManualClock,
    activity: () => number,
  ) {
    this.pump = new VirtualPump(clock, activity);
  }
  now(): number {
    return this.clock.now();
  }
  async wait(t: number, cond: (() => boolean) | null): Promise<boolean> {
    if (cond === null) {
      await this.pump.run(() => this.clock.now() >= t, t, true);
      return true;
    }
    return this.pump.run(cond, t, true);
  }
  wake(): void {}
}

/** @internal */
export class RealDriver implements Driver {
  private waker: (() => void) | null = null;
  constructor(readonly clock: RealClock) {}
  now(): number {
    return this.clock.now();
  }
  async wait(t: number, cond: (() => boolean) | null): Promise<boolean> {
    for (;;) {
      if (cond !== null && cond()) return true;
      const left = t - this.clock.now();
      if (left <= 0) return cond === null ? true : cond();
      await new Promise<void>((resolve) => {
        const h = setTimeout(() => {
          this.waker = null;
          resolve();
        }, Math.min(left, 50));
        this.waker = () => {
          clearTimeout(h);
          this.waker = null;
          resolve();
        };
      });
    }
  }
  wake(): void {
    this.waker?.();
  }
}

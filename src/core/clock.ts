/**
 * Time for the stack. Every timer in tunstack goes through a Clock, so a ManualClock run
 * advances only when told and is reproducible. Times are milliseconds (fractions allowed).
 *
 * Timers are reusable objects (`clock.timer(fn)` then `schedule`/`cancel` as often as needed), so
 * hot paths such as a TCP retransmission timer allocate nothing per reschedule. Both clocks keep
 * their timers in one binary heap; timers with the same deadline fire in the order scheduled.
 */

export interface Timer {
  /** (Re)arm the timer to fire `delayMs` from now. Replaces any pending deadline. */
  schedule(delayMs: number): void;
  /** Disarm; a no-op when not pending. */
  cancel(): void;
  /** True while armed and not yet fired. */
  readonly pending: boolean;
  /** The absolute deadline (clock time) while pending, else NaN. */
  readonly deadline: number;
}

export interface Clock {
  /** Monotonic time in milliseconds. */
  now(): number;
  /** Wall-clock time in milliseconds since the Unix epoch (for pcap timestamps). */
  wallNow(): number;
  /** A reusable timer that calls `fn` each time it fires. */
  timer(fn: () => void): Timer;
  /** One-shot convenience: a timer already scheduled. */
  setTimeout(fn: () => void, delayMs: number): Timer;
  /**
   * Keep the Node process alive until the returned function is called (a listening server or an
   * open socket holds its clock, as Node's handles keep the event loop alive). Optional: a clock
   * that does not run on Node's loop (ManualClock) has nothing to hold.
   */
  hold?(): () => void;
}

/** A hold on a clock (see Clock.hold) switched on and off as an object's state changes. */
export class ClockHold {
  private release: (() => void) | null = null;

  constructor(private readonly clock: Clock) {}

  /** Hold (once) while `on`, release otherwise. */
  set(on: boolean): void {
    if (on && !this.release && this.clock.hold) this.release = this.clock.hold();
    else if (!on && this.release) {
      this.release();
      this.release = null;
    }
  }
}

class HeapTimer implements Timer {
  /** Index in the heap, -1 when not pending. */
  index = -1;
  deadline = NaN;
  seq = 0;
  constructor(
    private readonly queue: TimerQueue,
    readonly fn: () => void,
  ) {}
  get pending(): boolean {
    return this.index >= 0;
  }
  schedule(delayMs: number): void {
    const d = delayMs > 0 ? delayMs : 0;
    this.queue.insert(this, this.queue.now() + d);
  }
  cancel(): void {
    if (this.index >= 0) this.queue.remove(this);
  }
}

/** A min-heap of timers ordered by (deadline, seq). Shared by both clocks. */
abstract class TimerQueue implements Clock {
  private heap: HeapTimer[] = [];
  private seqCounter = 0;

  abstract now(): number;
  abstract wallNow(): number;
  /** Called whenever the earliest deadline may have changed. */
  protected onEarliestChanged(): void {}

  timer(fn: () => void): Timer {
    return new HeapTimer(this, fn);
  }

  setTimeout(fn: () => void, delayMs: number): Timer {
    const t = new HeapTimer(this, fn);
    t.schedule(delayMs);
    return t;
  }

  /** Number of pending timers. */
  get pendingTimers(): number {
    return this.heap.length;
  }

  /** Deadline of the earliest pending timer, or Infinity. */
  nextDeadline(): number {
    return this.heap.length > 0 ? this.heap[0]!.deadline : Infinity;
  }

  /** @internal */
  insert(t: HeapTimer, deadline: number): void {
    if (t.index >= 0) this.removeAt(t.index);
    t.deadline = deadline;
    t.seq = this.seqCounter++;
    t.index = this.heap.length;
    this.heap.push(t);
    this.up(t.index);
    if (this.heap[0] === t) this.onEarliestChanged();
  }

  /** @internal */
  remove(t: HeapTimer): void {
    const wasFirst = t.index === 0;
    this.removeAt(t.index);
    t.deadline = NaN;
    if (wasFirst) this.onEarliestChanged();
  }

  /** Pop and run every timer whose deadline is <= `upTo`, in order. Returns how many ran. */
  protected runDue(upTo: number, beforeEach?: (deadline: number) => void): number {
    let n = 0;
    const heap = this.heap;
    while (heap.length > 0 && heap[0]!.deadline <= upTo) {
      const t = heap[0]!;
      const deadline = t.deadline;
      this.removeAt(0);
      t.deadline = NaN;
      if (beforeEach) beforeEach(deadline);
      n++;
      t.fn();
    }
    return n;
  }

  private removeAt(i: number): void {
    const heap = this.heap;
    const t = heap[i]!;
    const last = heap.pop()!;
    t.index = -1;
    if (last !== t) {
      heap[i] = last;
      last.index = i;
      this.down(i);
      this.up(last.index);
    }
  }

  private less(a: HeapTimer, b: HeapTimer): boolean {
    return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);
  }

  private up(i: number): void {
    const heap = this.heap;
    const t = heap[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = heap[p]!;
      if (!this.less(t, parent)) break;
      heap[i] = parent;
      parent.index = i;
      i = p;
    }
    heap[i] = t;
    t.index = i;
  }

  private down(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const t = heap[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      if (r < n && this.less(heap[r]!, heap[l]!)) c = r;
      const child = heap[c]!;
      if (!this.less(child, t)) break;
      heap[i] = child;
      child.index = i;
      i = c;
    }
    heap[i] = t;
    t.index = i;
  }
}

/**
 * Virtual time that moves only when told. `advance(ms)` fires due timers in deadline order,
 * with `now()` equal to each timer's deadline while it runs.
 */
export class ManualClock extends TimerQueue {
  private t: number;
  private readonly wallBase: number;

  /** @param start initial time in ms; @param wallBase wall-clock ms that time 0 maps to. */
  constructor(options: { start?: number; wallBase?: number } = {}) {
    super();
    this.t = options.start ?? 0;
    this.wallBase = options.wallBase ?? Date.UTC(2020, 0, 1);
  }

  now(): number {
    return this.t;
  }

  wallNow(): number {
    return this.wallBase + this.t;
  }

  /** Move time forward by `ms`, firing every timer due on the way. Returns timers fired. */
  advance(ms: number): number {
    if (!(ms >= 0)) throw new RangeError(`ManualClock.advance: bad duration ${ms}`);
    return this.advanceTo(this.t + ms);
  }

  /** Move time forward to `time` (absolute), firing due timers. */
  advanceTo(time: number): number {
    if (time < this.t) throw new RangeError(`ManualClock.advanceTo: ${time} is in the past`);
    const n = this.runDue(time, (deadline) => {
      if (deadline > this.t) this.t = deadline;
    });
    this.t = time;
    return n;
  }

  /**
   * Fire timers (jumping time to each deadline) until none is pending or `maxTime` is reached.
   * Returns the number fired. `maxTimers` bounds runaway periodic timers.
   */
  runUntilIdle(maxTime = Infinity, maxTimers = 10_000_000): number {
    let n = 0;
    while (n < maxTimers) {
      const d = this.nextDeadline();
      if (d === Infinity || d > maxTime) break;
      n += this.advanceTo(Math.max(d, this.t));
    }
    return n;
  }
}

/** Real time: performance.now() and one Node timer armed for the earliest deadline. */
export class RealClock extends TimerQueue {
  private handle: ReturnType<typeof setTimeout> | null = null;
  private armedFor = Infinity;
  private readonly origin = performance.timeOrigin;
  /** When false (default), the clock's Node timer does not keep the process alive by itself. */
  readonly ref: boolean;

  private holds = 0;
  private keeper: ReturnType<typeof setInterval> | null = null;

  constructor(options: { ref?: boolean } = {}) {
    super();
    this.ref = options.ref ?? false;
  }

  /**
   * Keep the process alive until the returned release is called (once; later calls do nothing).
   * While any hold is out the clock keeps one ref'd Node handle, so a program serving on a stack
   * does not exit; its own timers stay unref'd (TCP's TIME_WAIT or keepalive timers do not hold
   * a process, as the kernel's do not).
   */
  hold(): () => void {
    if (this.holds++ === 0) this.keeper = setInterval(noop, 0x7fffffff);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      if (--this.holds === 0 && this.keeper) {
        clearInterval(this.keeper);
        this.keeper = null;
      }
    };
  }

  /** Number of holds out (see hold). */
  get holdCount(): number {
    return this.holds;
  }

  now(): number {
    return performance.now();
  }

  wallNow(): number {
    return this.origin + performance.now();
  }

  protected override onEarliestChanged(): void {
    const d = this.nextDeadline();
    if (d === this.armedFor) return;
    if (this.handle) {
      clearTimeout(this.handle);
      this.handle = null;
    }
    this.armedFor = d;
    if (d === Infinity) return;
    const delay = Math.max(0, d - this.now());
    this.handle = setTimeout(this.fire, Math.ceil(delay));
    if (!this.ref) unref(this.handle);
  }

  private readonly fire = (): void => {
    this.handle = null;
    this.armedFor = Infinity;
    this.runDue(this.now());
    this.onEarliestChanged();
  };
}

function noop(): void {}

/** Node's timers can be told not to hold the process; browsers' timer ids have nothing to unref. */
function unref(handle: unknown): void {
  const h = handle as { unref?: () => void } | null;
  if (h !== null && typeof h === 'object' && typeof h.unref === 'function') h.unref();
}

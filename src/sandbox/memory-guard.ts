/**
 * The sandbox's resident-memory guard: makes `--tcp-mem` a bound on what the process really
 * grows (RSS), not only on the bytes TCP's buffers hold.
 *
 * Linux's tcp_mem counts buffer pages and nothing else, which is right for a kernel whose
 * sockets cost a few hundred bytes beyond their buffers. A userspace relay pays for much more
 * per flow and per byte moved: the endpoint and the host socket of every flow, the runtime's heap
 * headroom under a high allocation rate, buffers waiting for a collection, the allocator's free
 * lists. The guard measures that "rest" (RSS growth over the sandbox's start minus what the TCP
 * budget charges now) and gives TCP's buffers what the user's limit leaves:
 *
 *   budget = limit - max(rest, FIXED_RESERVE + PER_FLOW_RESERVE x open flows),  at least limit / 8
 *
 * The reserve covers what a burst of new flows and the runtime will take before the next sample
 * shows it. Lowering the budget uses TCP's own tcp_mem machinery (TcpMemory.setLimits): above the
 * hard limit new data is refused and out-of-order queues are trimmed, the largest first; under
 * pressure buffers stop growing. RSS samples come from a timer on the stack's clock (every
 * `intervalMs`); the relay has the budget recomputed (flows changed, rest as last measured) as
 * each flow opens.
 */
import type { Clock, Timer } from '../core/clock.js';
import type { TcpMemory } from '../transport/tcp/memory.js';

/**
 * Reserved for the runtime whatever the flows: heap headroom, allocator caches (bytes). Data a
 * guest never reads cannot be given back, so what the first flows took while the budget was high
 * stays: this must cover the rest measured once all flows are open (36-42 MiB with 1000 flows
 * streaming, `npm run bench tcpmem`), not only the runtime's share of it (32 MiB left RSS growth
 * 8% over a 64 MiB limit).
 */
export const FIXED_RESERVE = 40 * 1024 * 1024;
/** Reserved per open flow for its endpoint, host socket and reader (bytes). */
export const PER_FLOW_RESERVE = 40 * 1024;

/**
 * The TCP budget (bytes) a `limit` of RSS growth leaves when the rest of the process grew by
 * `rest` bytes and `flows` flows are open (see the module comment).
 */
export function guardBudget(limit: number, rest: number, flows: number): number {
  const reserve = Math.max(rest, FIXED_RESERVE + PER_FLOW_RESERVE * flows);
  return Math.max(Math.floor(limit / 8), Math.floor(limit - reserve));
}

export interface MemoryGuardOptions {
  /** RSS growth allowed, bytes (the user's `--tcp-mem`). */
  limit: number;
  /** The stack's TCP budget, whose hard limit the guard sets. */
  memory: TcpMemory;
  /** Times the samples (the stack's clock). */
  clock: Clock;
  /** Flows open now (the relay's). */
  flows: () => number;
  /** The process's resident memory in bytes (default process.memoryUsage.rss). */
  rss?: () => number;
  /** RSS the growth is counted from (default the first sample, taken at construction). */
  baseline?: number;
  /** Between samples (default 10 ms). */
  intervalMs?: number;
}

export class MemoryGuard {
  readonly limit: number;
  /** RSS at the start, bytes. */
  readonly baseline: number;
  /** The last sample: RSS growth, the rest (growth minus TCP's charge), the budget set. */
  growth = 0;
  rest = 0;
  budget: number;
  /** RSS samples taken; budget updates for new flows; times the budget was changed. */
  samples = 0;
  updates = 0;
  changes = 0;
  private readonly memory: TcpMemory;
  private readonly flows: () => number;
  private readonly rss: () => number;
  private readonly timer: Timer;
  private readonly intervalMs: number;
  private closed = false;

  constructor(options: MemoryGuardOptions) {
    this.limit = options.limit;
    this.memory = options.memory;
    this.flows = options.flows;
    this.rss = options.rss ?? (() => process.memoryUsage.rss());
    this.intervalMs = options.intervalMs ?? 10;
    this.baseline = options.baseline ?? this.rss();
    this.budget = options.memory.high;
    this.timer = options.clock.timer(() => {
      this.sample();
      if (!this.closed) this.timer.schedule(this.intervalMs);
    });
    this.sample();
    this.timer.schedule(this.intervalMs);
  }

  /** Measure RSS now and set TCP's budget from it (on the timer). */
  sample(): void {
    if (this.closed) return;
    this.samples++;
    this.growth = this.rss() - this.baseline;
    this.rest = Math.max(0, this.growth - this.memory.allocated);
    this.apply();
  }

  /**
   * Set TCP's budget from the last measured rest and the flows open now. The relay calls this as
   * each flow opens: reading RSS costs a system call (~15 us here), too much per connection.
   */
  update(): void {
    if (this.closed) return;
    this.updates++;
    this.apply();
  }

  private apply(): void {
    const m = this.memory;
    const b = guardBudget(this.limit, this.rest, this.flows());
    this.budget = b;
    if (b !== m.high) {
      m.setLimits({ high: b });
      this.changes++;
      // Over the new limit: out-of-order queues go first, the largest first (tcp_prune_ofo_queue).
      if (m.allocated > b) m.reclaim(0);
    }
  }

  close(): void {
    this.closed = true;
    this.timer.cancel();
  }
}

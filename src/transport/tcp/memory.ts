/**
 * The stack-wide TCP memory budget, Linux's `net.ipv4.tcp_mem` model: every connection's send
 * buffer, receive queue and out-of-order queue is charged to one account per stack.
 *
 * - Below `low` nothing is limited; above `pressure` the stack is "under memory pressure"
 *   (buffers stop growing, autotuned ones fall back to their defaults, advertised windows stop
 *   opening) until the total falls below `low` again (Linux tcp_memory_pressure).
 * - Above `high`, new memory is refused (a write takes less, a segment that needs memory is
 *   dropped) unless the connection holds less than its minimum (tcp_wmem[0] / tcp_rmem[0]), so
 *   that every connection can always make progress; out-of-order queues, largest first, are
 *   pruned to make room (tcp_prune_ofo_queue).
 *
 * Linux counts pages of skb truesize; here the charge is the bytes held plus a fixed overhead per
 * queued range (the view object and the headers it keeps alive), in bytes.
 */
import { TunstackError } from '../../core/errors.js';
import type { SendBuffer } from './buffers.js';
import type { TcpEndpoint } from './endpoint.js';
import type { TcpStats } from './types.js';

/** The three levels, in bytes. */
export interface TcpMemoryLimits {
  low: number;
  pressure: number;
  high: number;
}

/** Charged per queued range (received segment or send-buffer range) on top of its bytes. */
export const RANGE_OVERHEAD = 128;

/** What the budget needs of a connection to trim it (implemented by TcpEndpoint). */
export interface MemoryHolder {
  /** @internal Bytes of out-of-order data held. */
  readonly oooHeld: number;
  /** @internal Drop out-of-order data from the highest sequence numbers down; returns segments dropped. */
  pruneOoo(bytes: number): number;
}

/** Linux's tcp_mem defaults for a machine of `totalBytes`: low 3/64, pressure 1/16, high 3/32. */
export function defaultTcpMemory(totalBytes: number): TcpMemoryLimits {
  const limit = Math.max(Math.floor(totalBytes / 16), 128 * 4096);
  const low = Math.floor((limit / 4) * 3);
  return { low, pressure: limit, high: low * 2 };
}

/** Limits from one figure as Linux's proportions: low = high / 2, pressure = high * 2 / 3. */
export function tcpMemoryFromHigh(high: number): TcpMemoryLimits {
  return { low: Math.floor(high / 2), pressure: Math.floor((high * 2) / 3), high };
}

export class TcpMemory {
  private lim: TcpMemoryLimits;
  /** Bytes charged now by every connection of the stack (tcp_memory_allocated). */
  allocated = 0;
  /** Whether the stack is under memory pressure (tcp_memory_pressure). */
  underPressure = false;
  /** Out-of-order bytes held by all connections, and the connections holding some. */
  oooAllocated = 0;
  /** @internal */ readonly oooHolders = new Set<MemoryHolder>();

  constructor(
    limits: TcpMemoryLimits,
    private readonly stats: TcpStats,
  ) {
    this.lim = checkLimits(limits);
  }

  /** The levels in bytes (a copy). */
  get limits(): TcpMemoryLimits {
    return { ...this.lim };
  }

  /**
   * Change the levels: any of them, the others kept; or only `high`, then low and pressure follow
   * Linux's proportions (half and two thirds of it). Throws EINVAL unless 0 < low <= pressure <= high.
   */
  setLimits(limits: Partial<TcpMemoryLimits>): void {
    if (limits === null || typeof limits !== 'object') throw new TunstackError('EINVAL', 'tcp memory limits must be an object');
    const next = limits.low === undefined && limits.pressure === undefined && limits.high !== undefined ? tcpMemoryFromHigh(limits.high) : { ...this.lim, ...limits };
    this.lim = checkLimits(next);
    this.update();
  }

  get low(): number {
    return this.lim.low;
  }

  get pressure(): number {
    return this.lim.pressure;
  }

  get high(): number {
    return this.lim.high;
  }

  /** @internal Add `delta` bytes (negative: release) and update the pressure state. */
  charge(delta: number): void {
    this.allocated += delta;
    this.update();
  }

  private update(): void {
    const st = this.stats;
    st.memoryAllocated = this.allocated;
    if (this.underPressure) {
      if (this.allocated < this.lim.low) {
        this.underPressure = false;
        st.memoryPressure = 0;
      }
    } else if (this.allocated > this.lim.pressure) {
      this.underPressure = true;
      st.memoryPressure = 1;
      st.memoryPressures++;
    }
  }

  /**
   * @internal Whether a connection holding `own` bytes of this kind may take `n` more: yes below
   * the hard limit, and above it only while it holds less than `min` (sk_rmem_schedule /
   * sk_wmem_schedule).
   */
  admits(n: number, own: number, min: number): boolean {
    return this.allocated + n <= this.lim.high || own < min;
  }

  /**
   * @internal Make room for `n` bytes under the hard limit by pruning out-of-order queues, the
   * largest first. Returns the segments dropped.
   */
  reclaim(n: number): number {
    let dropped = 0;
    while (this.oooAllocated > 0 && this.allocated + n > this.lim.high) {
      let worst: MemoryHolder | null = null;
      for (const h of this.oooHolders) if (worst === null || h.oooHeld > worst.oooHeld) worst = h;
      if (worst === null) break;
      const k = worst.pruneOoo(this.allocated + n - this.lim.high);
      if (k === 0) break;
      dropped += k;
    }
    this.stats.ofoPruned += dropped;
    return dropped;
  }
}

function checkLimits(l: TcpMemoryLimits): TcpMemoryLimits {
  const ok = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
  if (!ok(l.low) || !ok(l.pressure) || !ok(l.high)) {
    throw new TunstackError('EINVAL', `tcp memory limits must be positive integers of bytes: ${String(l.low)}/${String(l.pressure)}/${String(l.high)}`);
  }
  if (!(l.low <= l.pressure && l.pressure <= l.high)) {
    throw new TunstackError('EINVAL', `tcp memory limits need low <= pressure <= high: ${l.low}/${l.pressure}/${l.high}`);
  }
  return { low: l.low, pressure: l.pressure, high: l.high };
}

// =====================================================================================
// A connection's share (the functions of a TcpEndpoint, see endpoint.ts)
// =====================================================================================

/** Charge what the buffers hold now to the stack's budget (after every operation). */
export function memSync(ep: TcpEndpoint): void {
  const sb = ep.sndBuf;
  const q = ep.rcvQ;
  const o = ep.ooo;
  const ooo = o === null ? 0 : o.bytes + o.count * RANGE_OVERHEAD;
  const held = ooo + (sb === null ? 0 : sb.truesize + sb.rangeCount * RANGE_OVERHEAD) + (q === null ? 0 : q.bytes + q.count * RANGE_OVERHEAD);
  if (held === ep.memHeld && ooo === ep.memOoo) return;
  const m = ep.proto.memory;
  if (ooo !== ep.memOoo) {
    m.oooAllocated += ooo - ep.memOoo;
    if (ooo > 0) m.oooHolders.add(ep);
    else m.oooHolders.delete(ep);
    ep.memOoo = ooo;
  }
  const d = held - ep.memHeld;
  ep.memHeld = held;
  m.charge(d);
}

/**
 * Whether `n` more received bytes may be held: above the hard limit only while this connection
 * holds less than rmemMin, after out-of-order queues (largest first) were pruned to make room.
 */
export function rmemAdmit(ep: TcpEndpoint, n: number): boolean {
  memSync(ep);
  const p = ep.proto;
  const m = p.memory;
  const need = n + RANGE_OVERHEAD;
  const own = (ep.rcvQ === null ? 0 : ep.rcvQ.bytes) + (ep.ooo === null ? 0 : ep.ooo.bytes);
  if (m.admits(need, own, p.rmemMin)) return true;
  if (m.reclaim(need) > 0 && m.admits(need, (ep.rcvQ === null ? 0 : ep.rcvQ.bytes) + (ep.ooo === null ? 0 : ep.ooo.bytes), p.rmemMin)) {
    return true;
  }
  p.stats.rcvMemDrops++;
  return false;
}

/**
 * How much of `want` bytes the memory budget lets this connection add to its send buffer: all of
 * it below the hard limit; above it, what still fits in the block it already holds, or up to
 * wmemMin when it holds nothing. A refusal lowers the send-buffer bound to half of what is
 * queued (Linux sk_stream_moderate_sndbuf) until the pressure is over, so that 'writable'
 * waits for the queue to drain.
 */
export function wmemRoom(ep: TcpEndpoint, want: number): number {
  memSync(ep);
  const p = ep.proto;
  const m = p.memory;
  const free = m.high - m.allocated - RANGE_OVERHEAD;
  if (want <= free) return want;
  const sb = ep.sndBuf;
  const own = sb === null ? 0 : sb.truesize;
  const room = Math.max(free, own < p.wmemMin ? p.wmemMin - own : 0, sb === null ? 0 : sb.tailRoom, 0);
  if (room >= want) return want;
  p.stats.sndMemRefusals++;
  ep.sndBufCap = Math.max(p.wmemMin, Math.min(ep.sendBufferSize, (sb === null ? 0 : sb.length) >> 1));
  return room;
}

/**
 * Whether 'writable' may be announced as far as the memory budget goes: below the hard limit,
 * or once this connection's own queue is under wmemMin (Linux wakes writers from their own
 * ACKs too; a write taken whole, as writeOwned's, must not push the stack past its limit).
 */
export function wmemWritable(ep: TcpEndpoint, sb: SendBuffer): boolean {
  const m = ep.proto.memory;
  return m.allocated < m.high || sb.truesize < ep.proto.wmemMin;
}

/** Under memory pressure: an autotuned receive buffer falls back to its default. */
export function rcvPressure(ep: TcpEndpoint): void {
  const dflt = ep.proto.rmemDefault;
  if (!ep.rcvBufLocked && ep.rcvBuf > dflt) {
    ep.rcvBuf = Math.min(dflt, ep.rcvBufMax);
    ep.rcvSpace = Math.min(ep.rcvSpace, ep.rcvBuf);
  }
}

import { TunstackError } from '../core/errors.js';
import type { Clock, Timer } from '../core/clock.js';
import { PacketBuffer } from '../core/packet.js';
import { Random } from '../core/random.js';
import { WrappingEndpoint, type LinkEndpoint } from './endpoint.js';
import { describe, expectMethods, expectObject, optionalInteger } from '../core/validate.js';

/**
 * FaultEndpoint: a link impairment (what netem does in the kernel), wrapping any endpoint. The
 * outbound direction is impaired by the top-level configuration, the inbound direction by
 * `inbound` (default: untouched). Every decision comes from a seeded Random (each direction forks
 * its own, so one direction's traffic does not change the other's decisions) and every delay
 * from the Clock, so a run on a ManualClock is reproducible packet for packet.
 *
 * Per packet, in order:
 * 1. loss: independent with probability `loss`, and/or Gilbert-Elliott burst loss (a two-state
 *    Markov chain: the loss decision uses the current state's loss probability, then the state
 *    moves good->bad with probability p, bad->good with probability r).
 * 2. duplication with probability `duplicate`: a clean copy follows the original.
 * 3. corruption with probability `corrupt`: one uniformly chosen bit of the packet is flipped,
 *    in a private copy (the caller's buffer may be shared).
 * 4. timing: with `rateBps`, the packet is serialized after the previous one
 *    (start = max(now, previous end), taking length*8/rate seconds); then it travels
 *    `delayMs` +- uniform `jitterMs` (never below 0). Order is kept (a packet never arrives before
 *    the one sent before it) except for packets picked for reordering (probability `reorder`),
 *    which get `reorderDelayMs` extra and are overtaken by later ones.
 * Packets waiting (serialization or delay) live in a bounded heap of `limit` entries; when full,
 * new packets are tail-dropped and counted. One reusable Timer per direction is armed for the
 * earliest release. With no timing configured, packets pass synchronously.
 *
 * writePackets returns the packets accepted: lost packets count as accepted (the wire lost them),
 * tail drops and packets refused below do not.
 */

export interface GilbertElliottConfig {
  /** Probability of moving good -> bad, per packet. */
  p: number;
  /** Probability of moving bad -> good, per packet. */
  r: number;
  /** Loss probability in the good state; default 0. */
  lossGood?: number;
  /** Loss probability in the bad state; default 1. */
  lossBad?: number;
}

export interface FaultConfig {
  /** Independent loss probability; default 0. */
  loss?: number;
  /** Burst loss; default none. Applies in addition to `loss`. */
  gilbertElliott?: GilbertElliottConfig | null;
  /** Duplication probability; default 0. */
  duplicate?: number;
  /** Single-bit corruption probability; default 0. */
  corrupt?: number;
  /** One-way delay in ms; default 0. */
  delayMs?: number;
  /** Uniform jitter in ms around delayMs; default 0. */
  jitterMs?: number;
  /** Probability that a packet is held back and overtaken; default 0. */
  reorder?: number;
  /** Extra delay of a reordered packet in ms; default 10. */
  reorderDelayMs?: number;
  /** Bit rate in bits per second; 0 (default) = unlimited. */
  rateBps?: number;
  /** Bound of the packets waiting in this direction; default 1000 (netem's default limit). */
  limit?: number;
}

export interface FaultEndpointOptions extends FaultConfig {
  clock: Clock;
  /** Source of decisions (forked per direction); else `new Random(seed)`. */
  random?: Random;
  seed?: number;
  /** Impairment of the inbound direction; default none. */
  inbound?: FaultConfig;
}

export interface FaultStats {
  /** Packets that entered this direction. */
  offered: number;
  /** Lost by the independent loss probability. */
  lost: number;
  /** Lost by the Gilbert-Elliott model. */
  burstLost: number;
  duplicated: number;
  corrupted: number;
  reordered: number;
  /** Packets (including duplicates) that waited in the heap. */
  delayed: number;
  /** Tail drops: the heap was full. */
  queueDropped: number;
  /** Packets (including duplicates) passed on, and those refused below / with nothing attached. */
  delivered: number;
  refused: number;
}

interface Normalized {
  loss: number;
  ge: boolean;
  geP: number;
  geR: number;
  geLossGood: number;
  geLossBad: number;
  duplicate: number;
  corrupt: number;
  delayMs: number;
  jitterMs: number;
  reorder: number;
  reorderDelayMs: number;
  rateBps: number;
  limit: number;
  /** Nothing that takes time: packets pass synchronously. */
  immediate: boolean;
}

function prob(name: string, v: number | undefined): number {
  const x = v === undefined ? 0 : v;
  if (typeof x !== 'number' || !(x >= 0 && x <= 1)) throw new TunstackError('EINVAL', `fault ${name} ${describe(x)} is not a probability`);
  return x;
}

function nonNeg(name: string, v: number | undefined, dflt: number): number {
  const x = v === undefined ? dflt : v;
  if (typeof x !== 'number' || !(x >= 0) || !Number.isFinite(x)) throw new TunstackError('EINVAL', `fault ${name} ${describe(x)} out of range`);
  return x;
}

function normalize(c: FaultConfig): Normalized {
  expectObject(c, 'fault', 'config');
  const ge = c.gilbertElliott ?? null;
  if (ge !== null) expectObject(ge, 'fault', 'gilbertElliott');
  const limit = optionalInteger(c.limit, 'fault', 'limit', 1, 0x7fffffff) ?? 1000;
  const n: Normalized = {
    loss: prob('loss', c.loss),
    ge: ge !== null,
    geP: ge ? prob('gilbertElliott.p', ge.p) : 0,
    geR: ge ? prob('gilbertElliott.r', ge.r) : 0,
    geLossGood: ge ? prob('gilbertElliott.lossGood', ge.lossGood) : 0,
    geLossBad: ge ? prob('gilbertElliott.lossBad', ge.lossBad ?? 1) : 0,
    duplicate: prob('duplicate', c.duplicate),
    corrupt: prob('corrupt', c.corrupt),
    delayMs: nonNeg('delayMs', c.delayMs, 0),
    jitterMs: nonNeg('jitterMs', c.jitterMs, 0),
    reorder: prob('reorder', c.reorder),
    reorderDelayMs: nonNeg('reorderDelayMs', c.reorderDelayMs, 10),
    rateBps: nonNeg('rateBps', c.rateBps, 0),
    limit,
    immediate: false,
  };
  n.immediate = n.delayMs === 0 && n.jitterMs === 0 && n.rateBps === 0 && n.reorder === 0;
  return n;
}

/** The mean loss rate of a Gilbert-Elliott configuration (its stationary value). */
export function gilbertElliottMeanLoss(c: GilbertElliottConfig): number {
  const good = c.lossGood ?? 0;
  const bad = c.lossBad ?? 1;
  if (c.p + c.r === 0) return good;
  const piBad = c.p / (c.p + c.r);
  return (1 - piBad) * good + piBad * bad;
}


/** A binary min-heap of (due, seq) -> (packet, protocol), bounded, grown by doubling. */
class TimedHeap {
  private due = new Float64Array(16);
  private seq = new Float64Array(16);
  private proto = new Int32Array(16);
  private pkt: (PacketBuffer | undefined)[] = new Array<PacketBuffer | undefined>(16).fill(undefined);
  size = 0;
  private seqCounter = 0;

  get minDue(): number {
    return this.size > 0 ? this.due[0]! : Infinity;
  }

  /** Insert; returns true when the new entry is the minimum. */
  push(due: number, pkt: PacketBuffer, proto: number): boolean {
    if (this.size === this.due.length) this.grow();
    let i = this.size++;
    const s = this.seqCounter++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pd = this.due[parent]!;
      if (pd < due || (pd === due && this.seq[parent]! < s)) break;
      this.move(parent, i);
      i = parent;
    }
    this.due[i] = due;
    this.seq[i] = s;
    this.pkt[i] = pkt;
    this.proto[i] = proto;
    return i === 0;
  }

  /** Remove the minimum; its protocol is left in `poppedProto`. */
  poppedProto = 0;
  pop(): PacketBuffer {
    const top = this.pkt[0]!;
    this.poppedProto = this.proto[0]!;
    const n = --this.size;
    if (n > 0) {
      const d = this.due[n]!;
      const s = this.seq[n]!;
      const p = this.pkt[n]!;
      const pr = this.proto[n]!;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        let c = l;
        const r = l + 1;
        if (r < n && (this.due[r]! < this.due[l]! || (this.due[r] === this.due[l] && this.seq[r]! < this.seq[l]!))) c = r;
        const cd = this.due[c]!;
        if (d < cd || (d === cd && s < this.seq[c]!)) break;
        this.move(c, i);
        i = c;
      }
      this.due[i] = d;
      this.seq[i] = s;
      this.pkt[i] = p;
      this.proto[i] = pr;
    }
    this.pkt[n] = undefined;
    return top;
  }

  clear(): void {
    this.pkt.fill(undefined);
    this.size = 0;
  }

  private move(from: number, to: number): void {
    this.due[to] = this.due[from]!;
    this.seq[to] = this.seq[from]!;
    this.pkt[to] = this.pkt[from];
    this.proto[to] = this.proto[from]!;
  }

  private grow(): void {
    const n = this.due.length * 2;
    const due = new Float64Array(n);
    due.set(this.due);
    const seq = new Float64Array(n);
    seq.set(this.seq);
    const proto = new Int32Array(n);
    proto.set(this.proto);
    const pkt = new Array<PacketBuffer | undefined>(n).fill(undefined);
    for (let i = 0; i < this.size; i++) pkt[i] = this.pkt[i];
    this.due = due;
    this.seq = seq;
    this.proto = proto;
    this.pkt = pkt;
  }
}

/** One impaired direction of a FaultEndpoint. */
export class FaultDirection {
  readonly stats: FaultStats = {
    offered: 0,
    lost: 0,
    burstLost: 0,
    duplicated: 0,
    corrupted: 0,
    reordered: 0,
    delayed: 0,
    queueDropped: 0,
    delivered: 0,
    refused: 0,
  };
  private cfg: Normalized;
  private readonly heap = new TimedHeap();
  private readonly timer: Timer;
  /** Gilbert-Elliott state: true while bad. */
  private bad = false;
  /** Arrival time of the last in-order packet (order keeping). */
  private lastArrival = -Infinity;
  /** When the serializer is free again (rate limiting). */
  private nextFree = -Infinity;
  private readonly batch: PacketBuffer[] = [];
  private readonly batchProto: number[] = [];
  private batchBusy = false;

  constructor(
    private readonly owner: FaultEndpoint,
    private readonly outbound: boolean,
    config: FaultConfig,
    private readonly clock: Clock,
    private readonly random: Random,
  ) {
    this.cfg = normalize(config);
    this.timer = clock.timer(this.onTimer);
  }

  /** Replace the configuration (packets already waiting keep their release times). */
  configure(config: FaultConfig): void {
    this.cfg = normalize(config);
    if (!this.cfg.ge) this.bad = false;
  }

  /** True while the Gilbert-Elliott chain is in its bad state. */
  get inBadState(): boolean {
    return this.bad;
  }

  /** Packets waiting for release. */
  get inFlight(): number {
    return this.heap.size;
  }

  /** @internal Run `pkts` through the impairment; returns packets accepted. */
  process(pkts: readonly PacketBuffer[], protocol: number): number {
    const own = !this.batchBusy;
    const batch = own ? this.batch : [];
    const protos = own ? this.batchProto : [];
    this.batchBusy = true;
    let refusedHere = 0;
    try {
      for (let i = 0; i < pkts.length; i++) {
        const pkt = pkts[i]!;
        if (!this.one(pkt, this.outbound ? pkt.networkProtocol : protocol, batch, protos)) refusedHere++;
      }
      if (batch.length > 0) refusedHere += this.emit(batch, protos);
    } finally {
      batch.length = 0;
      protos.length = 0;
      if (own) this.batchBusy = false;
    }
    const accepted = pkts.length - refusedHere;
    return accepted > 0 ? accepted : 0;
  }

  /** Discard waiting packets and disarm the timer. */
  clear(): void {
    this.timer.cancel();
    this.heap.clear();
  }

  /** Decide one packet. Returns false on a tail drop. */
  private one(input: PacketBuffer, proto: number, batch: PacketBuffer[], protos: number[]): boolean {
    const c = this.cfg;
    const st = this.stats;
    const rnd = this.random;
    st.offered++;
    if (c.ge) {
      const lost = rnd.chance(this.bad ? c.geLossBad : c.geLossGood);
      if (this.bad) {
        if (rnd.chance(c.geR)) this.bad = false;
      } else if (rnd.chance(c.geP)) {
        this.bad = true;
      }
      if (lost) {
        st.burstLost++;
        return true;
      }
    }
    if (c.loss > 0 && rnd.float() < c.loss) {
      st.lost++;
      return true;
    }
    let dup: PacketBuffer | null = null;
    if (c.duplicate > 0 && rnd.float() < c.duplicate) {
      st.duplicated++;
      dup = input.clone();
    }
    let pkt = input;
    if (c.corrupt > 0 && rnd.float() < c.corrupt && pkt.length > 0) {
      st.corrupted++;
      pkt = input.clone();
      const bit = rnd.below(pkt.length * 8);
      pkt.data[pkt.start + (bit >>> 3)]! ^= 1 << (bit & 7);
    }
    const ok = this.place(pkt, proto, batch, protos);
    if (dup !== null) this.place(dup, proto, batch, protos);
    return ok;
  }

  /** Timing: pass now, or hold in the heap. False on a tail drop. */
  private place(pkt: PacketBuffer, proto: number, batch: PacketBuffer[], protos: number[]): boolean {
    const c = this.cfg;
    const heap = this.heap;
    if (c.immediate && heap.size === 0) {
      batch.push(pkt);
      protos.push(proto);
      return true;
    }
    if (heap.size >= c.limit) {
      this.stats.queueDropped++;
      return false;
    }
    const now = this.clock.now();
    let t = now;
    if (c.rateBps > 0) {
      const start = this.nextFree > now ? this.nextFree : now;
      t = start + ((pkt.end - pkt.start) * 8000) / c.rateBps;
      this.nextFree = t;
    }
    let d = c.delayMs;
    if (c.jitterMs > 0) {
      d += (this.random.float() * 2 - 1) * c.jitterMs;
      if (d < 0) d = 0;
    }
    let arrival = t + d;
    if (c.reorder > 0 && this.random.float() < c.reorder) {
      this.stats.reordered++;
      arrival += c.reorderDelayMs;
    } else {
      if (arrival < this.lastArrival) arrival = this.lastArrival;
      this.lastArrival = arrival;
    }
    if (arrival <= now && heap.minDue > now) {
      batch.push(pkt);
      protos.push(proto);
      return true;
    }
    this.stats.delayed++;
    if (heap.push(arrival, pkt, proto)) this.timer.schedule(arrival - now);
    return true;
  }

  /** Pass packets on; returns how many were refused. */
  private emit(batch: PacketBuffer[], protos: number[]): number {
    const st = this.stats;
    if (this.outbound) {
      const n = this.owner.inner.writePackets(batch);
      st.delivered += n;
      st.refused += batch.length - n;
      return batch.length - n;
    }
    let refused = 0;
    for (let i = 0; i < batch.length; i++) {
      if (this.owner.deliverUp(protos[i]!, batch[i]!)) st.delivered++;
      else refused++;
    }
    st.refused += refused;
    return refused;
  }

  private readonly onTimer = (): void => {
    const heap = this.heap;
    if (heap.size === 0) return;
    const own = !this.batchBusy;
    const batch = own ? this.batch : [];
    const protos = own ? this.batchProto : [];
    this.batchBusy = true;
    try {
      const now = this.clock.now();
      // The minimum is what the timer was armed for: release it even if float rounding put the
      // deadline a hair early, then everything else that is due.
      do {
        batch.push(heap.pop());
        protos.push(heap.poppedProto);
      } while (heap.size > 0 && heap.minDue <= now);
      if (heap.size > 0) this.timer.schedule(heap.minDue - now);
      this.emit(batch, protos);
    } finally {
      batch.length = 0;
      protos.length = 0;
      if (own) this.batchBusy = false;
    }
  };
}

export class FaultEndpoint extends WrappingEndpoint {
  readonly outbound: FaultDirection;
  readonly inbound: FaultDirection;
  private readonly one: PacketBuffer[] = [];

  constructor(inner: LinkEndpoint, options: FaultEndpointOptions) {
    super(expectMethods<LinkEndpoint>(inner, 'new FaultEndpoint', 'inner', ['attach', 'writePackets']));
    expectObject(options, 'new FaultEndpoint', 'options');
    expectMethods(options.clock, 'new FaultEndpoint', 'options.clock', ['now', 'timer']);
    if (options.random !== undefined) expectMethods(options.random, 'new FaultEndpoint', 'options.random', ['fork']);
    optionalInteger(options.seed, 'new FaultEndpoint', 'options.seed', -0x80000000, 0xffffffff);
    const random = options.random ?? new Random(options.seed);
    this.outbound = new FaultDirection(this, true, options, options.clock, random.fork());
    this.inbound = new FaultDirection(this, false, options.inbound ?? {}, options.clock, random.fork());
  }

  /** Outbound statistics. */
  get stats(): FaultStats {
    return this.outbound.stats;
  }

  writePackets(pkts: readonly PacketBuffer[]): number {
    if (this.closed) return 0;
    return this.outbound.process(pkts, 0);
  }

  deliverNetworkPacket(protocol: number, pkt: PacketBuffer): void {
    if (this.closed) return;
    const one = this.one.length === 0 ? this.one : [];
    one.push(pkt);
    try {
      this.inbound.process(one, protocol);
    } finally {
      one.length = 0;
    }
  }

  /** @internal */
  deliverUp(protocol: number, pkt: PacketBuffer): boolean {
    const up = this.upper;
    if (up === null) return false;
    up.deliverNetworkPacket(protocol, pkt);
    return true;
  }

  protected override onClose(): void {
    this.outbound.clear();
    this.inbound.clear();
  }
}

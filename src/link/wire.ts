import { TunstackError } from '../core/errors.js';
import type { Clock, Timer } from '../core/clock.js';
import type { PacketBuffer } from '../core/packet.js';
import { BaseEndpoint, LinkCapability, type NetworkDispatcher, type WireFormat } from './endpoint.js';
import { NumberRing, Ring, Trampoline, resetForReceive, type DeliveryTarget } from '../core/queue.js';
import { checkLinkOptions, expectMethods, optionalBytes, optionalNumber } from '../core/validate.js';

/**
 * Wire: a virtual cable joining two endpoints, `wire.a` and `wire.b`. A packet written on one end
 * is delivered to the other end's dispatcher.
 *
 * - Ownership is handed over, not copied: the writer gave the packet up (LinkEndpoint contract),
 *   so the receiver gets the same buffer with its metadata reset (see `resetForReceive`): it
 *   starts at the frame, no layer parsed, packetType Host, nicId 0.
 * - Zero latency: delivery is synchronous but trampolined. All packets of a write are queued,
 *   then one loop drains the FIFO; deliveries that cause writes (replies, forwarding) queue
 *   behind and are delivered by the same loop, so long A -> B -> A chains run at constant stack
 *   depth in a deterministic FIFO order. Pass one `trampoline` to several wires to extend this
 *   across a topology.
 * - Latency > 0: each direction holds a bounded FIFO of (packet, due time) and one reusable
 *   Timer armed for the head; a packet written at t is delivered at exactly t + latencyMs.
 * - Nothing checks frame sizes against the MTU here; the endpoints above do.
 */

export interface WireOptions {
  /** Needed when latencyMs > 0. */
  clock?: Clock;
  /** One-way delay in ms; default 0 (synchronous). */
  latencyMs?: number;
  /** What the ends carry; default 'ethernet'. */
  wireFormat?: WireFormat;
  /** MTU of both ends; default 1500. */
  mtu?: number;
  /** Link addresses reported by the ends; default empty (put the MAC on an EthernetEndpoint). */
  linkAddressA?: Uint8Array;
  linkAddressB?: Uint8Array;
  /** Capability bits of both ends; default None. */
  capabilities?: number;
  /** Bound, in packets, of each direction's in-flight FIFO (and of an own trampoline); default 1024. */
  queueLength?: number;
  /** A delivery loop shared with other links; default one per Wire. */
  trampoline?: Trampoline;
}

/** Counters of one direction of a wire. */
export interface WireDirectionStats {
  /** Packets accepted onto the wire, and their bytes. */
  sent: number;
  sentBytes: number;
  /** Packets delivered to the far end's dispatcher, and their bytes. */
  delivered: number;
  deliveredBytes: number;
  /** Dropped: in-flight FIFO full, sending end closed, or far end closed/unattached. */
  dropped: number;
}

function newStats(): WireDirectionStats {
  return { sent: 0, sentBytes: 0, delivered: 0, deliveredBytes: 0, dropped: 0 };
}

/** One end of a Wire. */
export class WireEnd extends BaseEndpoint implements DeliveryTarget {
  readonly mtu: number;
  readonly linkAddress: Uint8Array;
  readonly capabilities: number;
  readonly wireFormat: WireFormat;
  /** Counters of packets written on this end (towards the peer). */
  readonly stats: WireDirectionStats = newStats();
  /** @internal */ peer!: WireEnd;
  /** @internal In-flight packets from this end (latency > 0 only). */
  readonly inflight: Ring<PacketBuffer> | null;
  /** @internal Due times of `inflight`. */
  readonly due: NumberRing | null;
  /** @internal */ readonly timer: Timer | null;
  private closed = false;

  constructor(
    private readonly wire: Wire,
    readonly name: 'a' | 'b',
    linkAddress: Uint8Array,
    options: WireOptions,
  ) {
    super();
    this.mtu = options.mtu ?? 1500;
    this.linkAddress = linkAddress;
    this.capabilities = options.capabilities ?? LinkCapability.None;
    this.wireFormat = options.wireFormat ?? 'ethernet';
    if (wire.latencyMs > 0) {
      const q = options.queueLength ?? 1024;
      this.inflight = new Ring(q);
      this.due = new NumberRing(q);
      this.timer = wire.clock!.timer(this.onTimer);
    } else {
      this.inflight = null;
      this.due = null;
      this.timer = null;
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Packets in flight from this end (latency > 0). */
  get inFlight(): number {
    return this.inflight === null ? 0 : this.inflight.length;
  }

  override attach(dispatcher: NetworkDispatcher | null): void {
    super.attach(this.closed ? null : dispatcher);
  }

  writePackets(pkts: readonly PacketBuffer[]): number {
    return this.wire.transmit(this, pkts);
  }

  /** @internal Trampoline callback: `pkt` arrives at this end. */
  deliverQueued(protocol: number, pkt: PacketBuffer): void {
    const d = this.dispatcher;
    const st = this.peer.stats;
    if (d === null) {
      st.dropped++;
      return;
    }
    resetForReceive(pkt);
    st.delivered++;
    st.deliveredBytes += pkt.length;
    d.deliverNetworkPacket(protocol, pkt);
  }

  /** Stop this end: its dispatcher is detached, its in-flight packets discarded. */
  override close(): void {
    this.closed = true;
    if (this.timer !== null) this.timer.cancel();
    if (this.inflight !== null) {
      this.stats.dropped += this.inflight.length;
      this.inflight.clear();
      this.due!.clear();
    }
    super.close();
  }

  private readonly onTimer = (): void => {
    this.wire.releaseDue(this);
  };
}

export class Wire {
  readonly a: WireEnd;
  readonly b: WireEnd;
  readonly latencyMs: number;
  readonly clock: Clock | null;
  readonly trampoline: Trampoline;

  constructor(options: WireOptions = {}) {
    const where = 'new Wire';
    checkLinkOptions(options, where);
    optionalNumber(options.latencyMs, where, 'options.latencyMs', 0, 0x7fffffff);
    if (options.clock !== undefined) expectMethods(options.clock, where, 'options.clock', ['now', 'timer']);
    optionalBytes(options.linkAddressA, where, 'options.linkAddressA');
    optionalBytes(options.linkAddressB, where, 'options.linkAddressB');
    if (options.trampoline !== undefined) expectMethods(options.trampoline, where, 'options.trampoline', ['enqueue', 'run']);
    const latency = options.latencyMs ?? 0;
    if (!(latency >= 0) || !Number.isFinite(latency)) {
      throw new TunstackError('EINVAL', `wire latency ${latency} out of range`);
    }
    if (latency > 0 && options.clock === undefined) {
      throw new TunstackError('EINVAL', 'a wire with latency needs a clock');
    }
    this.latencyMs = latency;
    this.clock = options.clock ?? null;
    this.trampoline = options.trampoline ?? new Trampoline(options.queueLength ?? 1024);
    this.a = new WireEnd(this, 'a', options.linkAddressA ?? new Uint8Array(0), options);
    this.b = new WireEnd(this, 'b', options.linkAddressB ?? new Uint8Array(0), options);
    this.a.peer = this.b;
    this.b.peer = this.a;
  }

  /** Counters per direction. */
  get stats(): { aToB: WireDirectionStats; bToA: WireDirectionStats } {
    return { aToB: this.a.stats, bToA: this.b.stats };
  }

  /** Close both ends. */
  close(): void {
    this.a.close();
    this.b.close();
  }

  /** @internal */
  transmit(from: WireEnd, pkts: readonly PacketBuffer[]): number {
    const st = from.stats;
    if (from.isClosed) {
      st.dropped += pkts.length;
      return 0;
    }
    const to = from.peer;
    let accepted = 0;
    if (from.inflight === null) {
      const tr = this.trampoline;
      for (let i = 0; i < pkts.length; i++) {
        const pkt = pkts[i]!;
        if (!tr.enqueue(to, pkt.networkProtocol, pkt)) {
          st.dropped++;
          continue;
        }
        accepted++;
        st.sent++;
        st.sentBytes += pkt.length;
      }
      tr.run();
      return accepted;
    }
    const q = from.inflight;
    const due = from.due!;
    const when = this.clock!.now() + this.latencyMs;
    for (let i = 0; i < pkts.length; i++) {
      const pkt = pkts[i]!;
      if (!q.push(pkt)) {
        st.dropped++;
        continue;
      }
      due.push(when);
      accepted++;
      st.sent++;
      st.sentBytes += pkt.length;
    }
    const timer = from.timer!;
    if (!timer.pending && q.length > 0) timer.schedule(this.latencyMs);
    return accepted;
  }

  /** @internal Timer of `from` fired: hand every due packet to the trampoline. */
  releaseDue(from: WireEnd): void {
    const q = from.inflight!;
    const due = from.due!;
    const now = this.clock!.now();
    const to = from.peer;
    const tr = this.trampoline;
    // The head is what the timer was armed for: release it even if float rounding put the
    // deadline a hair before its due time, then everything else that is due.
    let first = true;
    while (q.length > 0 && (first || due.peek() <= now)) {
      first = false;
      const pkt = q.shift()!;
      due.shift();
      if (!tr.enqueue(to, pkt.networkProtocol, pkt)) from.stats.dropped++;
    }
    if (q.length > 0) from.timer!.schedule(due.peek() - now);
    tr.run();
  }
}

import { PacketType, type PacketBuffer } from './packet.js';

/**
 * Small building blocks shared by the link endpoints: bounded FIFO rings (no allocation per
 * push/shift once grown), a trampoline that turns nested synchronous deliveries into a loop, and
 * the metadata reset a packet gets when it crosses a link to a different receiver.
 */

/**
 * A bounded FIFO of objects. Storage starts small and doubles up to `capacity`, so a queue with a
 * large bound costs nothing until it is used. `push` returns false (and stores nothing) when full.
 */
export class Ring<T> {
  readonly capacity: number;
  private buf: (T | undefined)[];
  private head = 0;
  private size = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity <= 0) throw new RangeError(`Ring: bad capacity ${capacity}`);
    this.capacity = capacity;
    this.buf = new Array<T | undefined>(Math.min(capacity, 16)).fill(undefined);
  }

  get length(): number {
    return this.size;
  }

  get isFull(): boolean {
    return this.size >= this.capacity;
  }

  push(v: T): boolean {
    if (this.size >= this.capacity) return false;
    if (this.size === this.buf.length) this.grow();
    const i = this.head + this.size;
    this.buf[i < this.buf.length ? i : i - this.buf.length] = v;
    this.size++;
    return true;
  }

  /** Remove and return the oldest element, or undefined when empty. */
  shift(): T | undefined {
    if (this.size === 0) return undefined;
    const v = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = this.head + 1 === this.buf.length ? 0 : this.head + 1;
    this.size--;
    return v;
  }

  /** The oldest element without removing it. */
  peek(): T | undefined {
    return this.size === 0 ? undefined : this.buf[this.head];
  }

  clear(): void {
    this.buf.fill(undefined);
    this.head = 0;
    this.size = 0;
  }

  private grow(): void {
    const n = Math.min(this.capacity, this.buf.length * 2);
    const next = new Array<T | undefined>(n).fill(undefined);
    for (let k = 0; k < this.size; k++) {
      const i = this.head + k;
      next[k] = this.buf[i < this.buf.length ? i : i - this.buf.length];
    }
    this.buf = next;
    this.head = 0;
  }
}

/** A bounded FIFO of numbers (Float64Array storage), with the same growth rule as Ring. */
export class NumberRing {
  readonly capacity: number;
  private buf: Float64Array;
  private head = 0;
  private size = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity <= 0) throw new RangeError(`NumberRing: bad capacity ${capacity}`);
    this.capacity = capacity;
    this.buf = new Float64Array(Math.min(capacity, 16));
  }

  get length(): number {
    return this.size;
  }

  push(v: number): boolean {
    if (this.size >= this.capacity) return false;
    if (this.size === this.buf.length) this.grow();
    const i = this.head + this.size;
    this.buf[i < this.buf.length ? i : i - this.buf.length] = v;
    this.size++;
    return true;
  }

  /** Remove and return the oldest value (NaN when empty). */
  shift(): number {
    if (this.size === 0) return NaN;
    const v = this.buf[this.head]!;
    this.head = this.head + 1 === this.buf.length ? 0 : this.head + 1;
    this.size--;
    return v;
  }

  /** The oldest value (NaN when empty). */
  peek(): number {
    return this.size === 0 ? NaN : this.buf[this.head]!;
  }

  clear(): void {
    this.head = 0;
    this.size = 0;
  }

  private grow(): void {
    const next = new Float64Array(Math.min(this.capacity, this.buf.length * 2));
    for (let k = 0; k < this.size; k++) {
      const i = this.head + k;
      next[k] = this.buf[i < this.buf.length ? i : i - this.buf.length]!;
    }
    this.buf = next;
    this.head = 0;
  }
}

/** Something a Trampoline delivers to. */
export interface DeliveryTarget {
  /** @internal Called from the trampoline's loop, never re-entrantly from within another delivery. */
  deliverQueued(protocol: number, pkt: PacketBuffer): void;
}

/**
 * Turns synchronous delivery chains into a loop. `enqueue` adds (target, protocol, packet) to a
 * bounded FIFO; `run` drains it unless a drain is already in progress further up the stack, in
 * which case the outer loop picks the new entries up. So A -> B -> A -> ... reply chains run in
 * constant stack depth, in FIFO order. Share one Trampoline between links to bound the depth
 * across a whole topology.
 */
export class Trampoline {
  private readonly targets: Ring<DeliveryTarget>;
  private readonly pkts: Ring<PacketBuffer>;
  private readonly protos: NumberRing;
  private running = false;
  /** Packets refused because the FIFO was full. */
  dropped = 0;

  constructor(capacity = 1024) {
    this.targets = new Ring(capacity);
    this.pkts = new Ring(capacity);
    this.protos = new NumberRing(capacity);
  }

  get capacity(): number {
    return this.pkts.capacity;
  }

  /** Entries waiting. */
  get length(): number {
    return this.pkts.length;
  }

  /** True while a drain loop is on the stack. */
  get isRunning(): boolean {
    return this.running;
  }

  /** Queue a delivery; false (counted in `dropped`) when the FIFO is full. */
  enqueue(target: DeliveryTarget, protocol: number, pkt: PacketBuffer): boolean {
    if (this.pkts.isFull) {
      this.dropped++;
      return false;
    }
    this.targets.push(target);
    this.pkts.push(pkt);
    this.protos.push(protocol);
    return true;
  }

  /** Drain the FIFO, unless already draining (then this is a no-op and the outer loop drains). */
  run(): void {
    if (this.running) return;
    this.running = true;
    try {
      while (this.pkts.length > 0) {
        const target = this.targets.shift()!;
        const pkt = this.pkts.shift()!;
        const proto = this.protos.shift();
        target.deliverQueued(proto, pkt);
      }
    } finally {
      this.running = false;
    }
  }

  /** Discard everything queued. */
  clear(): void {
    this.targets.clear();
    this.pkts.clear();
    this.protos.clear();
  }
}

/**
 * Reset the per-receiver metadata of a packet that crossed a link: the packet now starts at the
 * frame (or IP header on IP links), no layer has been parsed, and it arrived addressed to this
 * host on no NIC yet. The bytes and `networkProtocol` are kept; scatter-gather fragments (a
 * link declaring LinkCapability.ScatterGather) are joined, as receivers parse contiguous bytes.
 */
export function resetForReceive(pkt: PacketBuffer): void {
  pkt.linearize();
  pkt.linkHeaderStart = -1;
  pkt.networkHeaderStart = -1;
  pkt.networkHeaderLength = 0;
  pkt.transportHeaderStart = -1;
  pkt.transportHeaderLength = 0;
  pkt.transportProtocol = 0;
  pkt.packetType = PacketType.Host;
  pkt.remoteLinkAddress = null;
  pkt.nicId = 0;
  // A partial checksum (csumStart) crosses the link as it is and stays trusted, as Linux's veth
  // passes CHECKSUM_PARTIAL on; a complete one is verified by the receiver.
  pkt.checksumOffload = pkt.csumStart >= 0;
  pkt.gsoSize = 0;
}

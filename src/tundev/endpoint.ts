import { TunstackError } from '../core/errors.js';
import { LinkCapability, type LinkEndpoint, type NetworkDispatcher, type WireFormat } from '../link/endpoint.js';
import { Ring, Trampoline, type DeliveryTarget } from '../core/queue.js';
import type { NIC } from '../stack/nic.js';
import type { PacketBuffer } from '../core/packet.js';
import type { NetStack } from '../stack/stack.js';
import { runBpf, type BpfInstruction, type BpfPacketInfo } from './bpf.js';
import { ARPHRD_ETHER, ARPHRD_NONE, TAP_MAX_MTU, TUN_DEFAULT_MTU, TUN_DEFAULT_SNDBUF, TUN_MAX_MTU, TUN_MIN_MTU, TUN_QUEUE_LENGTH } from './constants.js';

/**
 * The link side of the virtual tun device: the endpoint of the NIC that a TUNSETIFF creates.
 *
 * - TUN: this endpoint is the NIC's endpoint (wireFormat 'ip', no link address).
 * - TAP: the NIC's endpoint is an EthernetEndpoint over this one (wireFormat 'ethernet', the
 *   device's MAC as link address); what is queued and injected here are whole Ethernet frames.
 *
 * Outbound packets (the stack transmitting on the NIC) go to bounded queues that the open devices
 * read: the one queue of a single-queue interface (one open, or several with `shareQueue`), one queue per open
 * of an IFF_MULTI_QUEUE interface, picked by a flow hash over the queues in the rotation.
 * Inbound packets (device writes) are handed to the NIC through a shared trampoline, so that a
 * 'readable' listener writing back from inside a delivery does not recurse.
 *
 * Reference counted: every attached open holds one reference and TUNSETPERSIST one more; the NIC
 * is removed from the stack when the last reference goes.
 */

/** Something reading a queue: told about every enqueue, and when the interface goes away. */
export interface TunQueueReader {
  /** @internal A packet was queued. */
  queueReadable(): void;
  /** @internal The interface was removed (by the stack or the last reference): the reader is detached. */
  endpointGone(): void;
}

export interface TunQueueStats {
  /** Packets queued for reading, and their bytes. */
  enqueued: number;
  enqueuedBytes: number;
  /** Packets dropped because the queue was full. */
  overflows: number;
  /** Packets taken by reads. */
  read: number;
  /** Packets discarded: a read buffer too small for the headers, or the queue detached/closed. */
  discarded: number;
}

/** One bounded outbound queue. */
export class TunQueue {
  readonly ring: Ring<PacketBuffer>;
  readonly stats: TunQueueStats = { enqueued: 0, enqueuedBytes: 0, overflows: 0, read: 0, discarded: 0 };
  /** In the multi-queue rotation (TUNSETQUEUE attach/detach). */
  active = true;
  /** @internal */
  readonly readers: TunQueueReader[] = [];

  constructor(capacity = TUN_QUEUE_LENGTH) {
    this.ring = new Ring(capacity);
  }

  /** Packets waiting. */
  get length(): number {
    return this.ring.length;
  }

  get capacity(): number {
    return this.ring.capacity;
  }

  /** The oldest packet, not removed. */
  peek(): PacketBuffer | undefined {
    return this.ring.peek();
  }

  /** Remove the oldest packet. */
  shift(): PacketBuffer | undefined {
    return this.ring.shift();
  }

  /** Discard everything queued (counted in `discarded`). */
  purge(): void {
    this.stats.discarded += this.ring.length;
    this.ring.clear();
  }
}

export interface TunEndpointStats {
  /** Packets the stack sent into the queues, and their bytes (link header included). */
  txPackets: number;
  txBytes: number;
  /** Outbound packets dropped: queue full. */
  txQueueFull: number;
  /** Outbound packets dropped: carrier off (TUNSETCARRIER 0, IFF_NO_CARRIER, no file attached). */
  txNoCarrier: number;
  /** Outbound packets dropped by the TAP MAC filter (TUNSETTXFILTER) or the BPF socket filter
   * (TUNATTACHFILTER), and packets the BPF filter cut short. */
  txFiltered: number;
  txTrimmed: number;
  /** Outbound packets dropped: no queue in the rotation (all detached, or no file attached to a
   * persistent interface), or the endpoint closed. */
  txNoQueue: number;
  /** Packets written by the devices and handed to the NIC, and their bytes. */
  rxPackets: number;
  rxBytes: number;
  /** Inbound packets dropped: nothing attached, or the delivery trampoline was full. */
  rxDropped: number;
  /** Writes refused with EINVAL: frames shorter than their headers, a bad IP version without
   * packet information, a virtio_net_hdr that does not match the packet. */
  rxFrameErrors: number;
  /** Segments produced by splitting GSO writes. */
  rxGsoSegments: number;
}

export interface TunEndpointOptions {
  tap: boolean;
  multiQueue: boolean;
  /** 6-byte MAC (TAP). */
  mac?: Uint8Array;
  mtu?: number;
}

/** One delivery loop for every tun endpoint in the process: re-entrant writes queue behind it. */
const trampoline = new Trampoline(4096);
const byNic = new WeakMap<NIC, TunEndpoint>();

export class TunEndpoint implements LinkEndpoint, DeliveryTarget {
  readonly stack: NetStack;
  readonly isTap: boolean;
  readonly multiQueue: boolean;
  readonly wireFormat: WireFormat;
  readonly capabilities = LinkCapability.None;
  readonly maxHeaderLength = 0;
  readonly stats: TunEndpointStats = {
    txPackets: 0,
    txBytes: 0,
    txQueueFull: 0,
    txNoCarrier: 0,
    txFiltered: 0,
    txTrimmed: 0,
    txNoQueue: 0,
    rxPackets: 0,
    rxBytes: 0,
    rxDropped: 0,
    rxFrameErrors: 0,
    rxGsoSegments: 0,
  };
  /** TUNSETOWNER / TUNSETGROUP (-1: none). */
  owner = -1;
  group = -1;
  /** TUNSETOFFLOAD flags as accepted. */
  offload = 0;
  /**
   * Carrier (netif_carrier_on/off): on when a file attaches (unless IFF_NO_CARRIER), off with the
   * last file or TUNSETCARRIER 0. While off the stack's packets are dropped (txNoCarrier), as the
   * kernel stops transmitting; writes still go in.
   */
  carrier = false;
  /** TUNSETTXFILTER: destination MACs a TAP reader gets (null: no filter). */
  txFilter: TapTxFilter | null = null;
  /** TUNATTACHFILTER: the classic BPF program run on every packet for the readers (null: none). */
  socketFilter: BpfInstruction[] | null = null;
  /** TUNSETSNDBUF (stored; writes are delivered synchronously, so nothing is ever in flight). */
  sndbuf = TUN_DEFAULT_SNDBUF;
  /** TUNSETVNETLE (the virtio header is little-endian either way on the hosts Node runs on). */
  vnetLE = false;
  /** TUNSETLINK: the ARPHRD_* type SIOCGIFHWADDR reports. */
  linkType: number;
  private readonly bpfInfo: BpfPacketInfo = { protocol: 0, pktType: 4, ifindex: 0, hatype: 0, networkOffset: 0 };
  private _mtu: number;
  private mac: Uint8Array;
  private dispatcher: NetworkDispatcher | null = null;
  private _nic: NIC | null = null;
  private refs = 0;
  private _persistent = false;
  private dead = false;
  /** Every queue (single-queue: exactly one) and those in the rotation. */
  private readonly queues: TunQueue[] = [];
  private readonly active: TunQueue[] = [];
  private readonly hashSeed: number;

  constructor(stack: NetStack, options: TunEndpointOptions) {
    this.stack = stack;
    this.isTap = options.tap;
    this.multiQueue = options.multiQueue;
    this.wireFormat = options.tap ? 'ethernet' : 'ip';
    this._mtu = options.mtu ?? TUN_DEFAULT_MTU;
    this.mac = options.tap ? (options.mac ?? new Uint8Array(6)).slice() : new Uint8Array(0);
    this.hashSeed = options.multiQueue ? stack.random.u32() : 0;
    this.linkType = options.tap ? ARPHRD_ETHER : ARPHRD_NONE;
    if (!options.multiQueue) this.addQueue(new TunQueue());
  }

  /** The tun endpoint behind a NIC, if the NIC was created by the tun device. */
  static forNIC(nic: NIC): TunEndpoint | undefined {
    return byNic.get(nic);
  }

  // ---- LinkEndpoint ----

  get mtu(): number {
    return this._mtu;
  }

  /** Change the MTU (SIOCSIFMTU: 68..65535 for TUN, 68..65521 for TAP, as Linux). */
  setMTU(mtu: number): void {
    const max = this.isTap ? TAP_MAX_MTU : TUN_MAX_MTU;
    if (!Number.isInteger(mtu) || mtu < TUN_MIN_MTU || mtu > max) {
      throw new TunstackError('EINVAL', `MTU ${mtu} outside ${TUN_MIN_MTU}..${max}`);
    }
    this._mtu = mtu;
  }

  get linkAddress(): Uint8Array {
    return this.mac;
  }

  /** @internal Keep the copy in step with the EthernetEndpoint's (SIOCSIFHWADDR). */
  setLinkAddress(mac: Uint8Array): void {
    this.mac = mac.slice();
  }

  get isAttached(): boolean {
    return this.dispatcher !== null;
  }

  attach(dispatcher: NetworkDispatcher | null): void {
    this.dispatcher = this.dead ? null : dispatcher;
  }

  writePackets(pkts: readonly PacketBuffer[]): number {
    const st = this.stats;
    let accepted = 0;
    for (let i = 0; i < pkts.length; i++) {
      const pkt = pkts[i]!;
      if (!this.carrier) {
        st.txNoCarrier++;
        continue;
      }
      if ((this.txFilter !== null || this.socketFilter !== null) && !this.filter(pkt)) {
        st.txFiltered++;
        continue;
      }
      const q = this.pickQueue(pkt);
      if (q === null) {
        st.txNoQueue++;
        continue;
      }
      const len = pkt.end - pkt.start;
      if (!q.ring.push(pkt)) {
        q.stats.overflows++;
        st.txQueueFull++;
        continue;
      }
      accepted++;
      q.stats.enqueued++;
      q.stats.enqueuedBytes += len;
      st.txPackets++;
      st.txBytes += len;
      const readers = q.readers;
      for (let k = 0; k < readers.length; k++) {
        try {
          readers[k]!.queueReadable();
        } catch (err) {
          // A 'readable' listener threw: the packet stays queued; report, as a protocol bug is.
          this.stack.reportInternalError(err);
        }
      }
    }
    return accepted;
  }

  /**
   * Linux's tun_net_xmit filters, in its order: the TAP MAC filter, then the socket filter, whose
   * result is the bytes to keep (0 drops; fewer than the packet cuts it, to at least 1 byte).
   */
  private filter(pkt: PacketBuffer): boolean {
    const f = this.txFilter;
    if (f !== null && !f.accepts(pkt.data, pkt.start)) return false;
    const prog = this.socketFilter;
    if (prog === null) return true;
    const bytes = pkt.view();
    const info = this.bpfInfo;
    const tap = this.isTap;
    info.protocol = tap ? (bytes.length >= 14 ? (bytes[12]! << 8) | bytes[13]! : 0) : pkt.networkProtocol || (bytes.length > 0 && bytes[0]! >>> 4 === 6 ? 0x86dd : 0x0800);
    info.ifindex = this._nic?.id ?? 0;
    info.hatype = this.linkType;
    info.networkOffset = tap ? 14 : 0;
    const keep = runBpf(prog, bytes, 0, bytes.length, info, () => this.stack.random.u32());
    if (keep === 0) return false;
    if (keep < bytes.length) {
      pkt.truncate(keep);
      this.stats.txTrimmed++;
    }
    return true;
  }

  /** Close: the queues are emptied and nothing more is delivered (the NIC's removal does this). */
  close(): void {
    this.shutdown();
  }

  // ---- inbound ----

  /**
   * Hand one inbound packet (IP packet for TUN, Ethernet frame for TAP) to the NIC. Runs through
   * the shared trampoline: when called from inside another delivery, the packet is delivered once
   * that one returns. Never throws.
   */
  inject(protocol: number, pkt: PacketBuffer): void {
    if (!trampoline.enqueue(this, protocol, pkt)) {
      this.stats.rxDropped++;
      return;
    }
    trampoline.run();
  }

  /** @internal Trampoline callback. */
  deliverQueued(protocol: number, pkt: PacketBuffer): void {
    const d = this.dispatcher;
    if (d === null) {
      this.stats.rxDropped++;
      return;
    }
    this.stats.rxPackets++;
    this.stats.rxBytes += pkt.end - pkt.start;
    try {
      d.deliverNetworkPacket(protocol, pkt);
    } catch (err) {
      this.stack.reportInternalError(err);
    }
  }

  // ---- queues ----

  /** Queues attached (detached multi-queue queues included). */
  get queueCount(): number {
    return this.queues.length;
  }

  /** Queues in the rotation. */
  get activeQueueCount(): number {
    return this.active.length;
  }

  /** The single queue of a single-queue interface. */
  get sharedQueue(): TunQueue {
    if (this.multiQueue) throw new TunstackError('EINVAL', 'multi-queue interface has no shared queue');
    return this.queues[0]!;
  }

  /** @internal */
  addQueue(q: TunQueue): void {
    this.queues.push(q);
    if (q.active) this.active.push(q);
  }

  /** @internal Remove a queue (its open closed); queued packets are discarded. */
  removeQueue(q: TunQueue): void {
    const i = this.queues.indexOf(q);
    if (i >= 0) this.queues.splice(i, 1);
    const j = this.active.indexOf(q);
    if (j >= 0) this.active.splice(j, 1);
    q.purge();
  }

  /** @internal TUNSETQUEUE: take a queue out of the rotation (purging it) or put it back. */
  setQueueActive(q: TunQueue, active: boolean): void {
    if (q.active === active) return;
    q.active = active;
    if (active) {
      // Keep the rotation in attach order so the flow -> queue mapping is reproducible.
      this.active.length = 0;
      for (const x of this.queues) if (x.active) this.active.push(x);
    } else {
      const j = this.active.indexOf(q);
      if (j >= 0) this.active.splice(j, 1);
      q.purge();
    }
  }

  /** Which queue an outbound packet goes to; null when none is in the rotation. */
  private pickQueue(pkt: PacketBuffer): TunQueue | null {
    const n = this.active.length;
    if (n === 0 || this.dead) return null;
    if (n === 1) {
      const q = this.active[0]!;
      // Linux (tun_net_xmit): with no file attached (a persistent interface nobody has open) the
      // packet is dropped, not kept for the next opener.
      return q.readers.length === 0 ? null : q;
    }
    const h = flowHash(pkt.data, pkt.start, pkt.end, this.isTap, this.hashSeed);
    // Linux's reciprocal_scale: the high bits of hash * n.
    return this.active[Math.floor((h * n) / 4294967296)]!;
  }

  /** The queue index (in the rotation) a packet's bytes would go to; -1 with no active queue. */
  queueIndexFor(bytes: Uint8Array): number {
    const n = this.active.length;
    if (n === 0) return -1;
    return Math.floor((flowHash(bytes, 0, bytes.length, this.isTap, this.hashSeed) * n) / 4294967296);
  }

  // ---- NIC binding and references ----

  /** The NIC; null once removed. */
  get nic(): NIC | null {
    return this._nic;
  }

  get isDead(): boolean {
    return this.dead;
  }

  get persistent(): boolean {
    return this._persistent;
  }

  get refCount(): number {
    return this.refs;
  }

  /** @internal Bind to the NIC created for this endpoint. */
  bind(nic: NIC): void {
    this._nic = nic;
    byNic.set(nic, this);
    nic.once('removed', () => this.shutdown());
  }

  /** @internal */
  incRef(): void {
    this.refs++;
  }

  /** @internal Drop a reference; the last one removes the NIC. */
  decRef(): void {
    if (this.refs <= 0) return;
    this.refs--;
    if (this.refs === 0) this.removeNic();
  }

  /** @internal TUNSETPERSIST: the persistent flag holds one reference. */
  setPersistent(on: boolean): void {
    if (on === this._persistent) return;
    this._persistent = on;
    if (on) this.incRef();
    else this.decRef();
  }

  private removeNic(): void {
    const nic = this._nic;
    if (nic !== null && !this.dead && this.stack.nic(nic.id) === nic) this.stack.removeNIC(nic.id);
    this.shutdown();
  }

  /** The NIC is gone: empty the queues, tell the readers, deliver nothing more. */
  private shutdown(): void {
    if (this.dead) return;
    this.dead = true;
    this.dispatcher = null;
    const readers: TunQueueReader[] = [];
    for (const q of this.queues) {
      q.purge();
      for (const r of q.readers) if (!readers.includes(r)) readers.push(r);
      q.readers.length = 0;
    }
    this.queues.length = 0;
    this.active.length = 0;
    this.refs = 0;
    this._persistent = false;
    for (const r of readers) r.endpointGone();
  }
}

/**
 * Flow hash for queue selection: IPv4/IPv6 source, destination and protocol, plus the TCP/UDP/
 * SCTP/UDP-Lite ports of unfragmented packets (murmur3-style mixing, seeded per interface). Non-IP
 * frames hash their EtherType. Deterministic for a given seed; allocation-free.
 */
export function flowHash(d: Uint8Array, start: number, end: number, tap: boolean, seed: number): number {
  let o = start;
  let h = seed >>> 0;
  if (tap) {
    if (end - o < 14) return fmix(h);
    const type = (d[o + 12]! << 8) | d[o + 13]!;
    o += 14;
    if (type !== 0x0800 && type !== 0x86dd) return fmix(mix(h, type));
  }
  if (o >= end) return fmix(h);
  const v = d[o]! >>> 4;
  if (v === 4 && end - o >= 20) {
    const ihl = (d[o]! & 0x0f) << 2;
    const proto = d[o + 9]!;
    h = mix(h, u32(d, o + 12));
    h = mix(h, u32(d, o + 16));
    h = mix(h, proto);
    const fragment = (d[o + 6]! & 0x3f) !== 0 || d[o + 7] !== 0;
    if (!fragment && ihl >= 20 && hasPorts(proto) && o + ihl + 4 <= end) h = mix(h, u32(d, o + ihl));
  } else if (v === 6 && end - o >= 40) {
    for (let k = 8; k < 40; k += 4) h = mix(h, u32(d, o + k));
    const nh = d[o + 6]!;
    h = mix(h, nh);
    if (hasPorts(nh) && o + 44 <= end) h = mix(h, u32(d, o + 40));
  } else {
    h = mix(h, v);
  }
  return fmix(h);
}

function hasPorts(proto: number): boolean {
  return proto === 6 || proto === 17 || proto === 132 || proto === 136;
}

function u32(d: Uint8Array, o: number): number {
  return ((d[o]! << 24) | (d[o + 1]! << 16) | (d[o + 2]! << 8) | d[o + 3]!) >>> 0;
}

function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Exact-match slots of a TUNSETTXFILTER (Linux's FLT_EXACT_COUNT); more multicast MACs are hashed. */
const FLT_EXACT_COUNT = 8;

/**
 * TUNSETTXFILTER's filter (Linux's struct tap_filter): the first 8 addresses match exactly, further
 * multicast addresses set bits of a 64-bit hash (the top 6 bits of the Ethernet CRC), and
 * TUN_FLT_ALLMULTI passes every multicast frame. A unicast address past the eighth leaves the
 * interface unfiltered (as Linux: `fromIoctl` returns null then).
 */
export class TapTxFilter {
  private constructor(
    private readonly exact: Uint8Array[],
    private readonly mask: Uint32Array,
  ) {}

  /** Build from TUNSETTXFILTER's arguments; null when Linux would leave the filter off. */
  static fromIoctl(flags: number, addresses: readonly Uint8Array[]): TapTxFilter | null {
    if (addresses.length === 0) return null;
    const exact = addresses.slice(0, FLT_EXACT_COUNT).map((a) => a.slice(0, 6));
    const mask = new Uint32Array(2);
    for (let n = FLT_EXACT_COUNT; n < addresses.length; n++) {
      const a = addresses[n]!;
      if ((a[0]! & 1) === 0) return null;
      const bit = etherCrc(a) >>> 26;
      mask[bit >>> 5]! |= 1 << (bit & 31);
    }
    if ((flags & 0x0001) !== 0) mask.fill(0xffffffff);
    return new TapTxFilter(exact, mask);
  }

  /** How many exact-match slots are in use (TUNSETTXFILTER's return value). */
  get exactCount(): number {
    return this.exact.length;
  }

  /** Whether a frame whose destination MAC is at `d[o..o+6)` passes. */
  accepts(d: Uint8Array, o: number): boolean {
    for (const e of this.exact) {
      if (e[0] === d[o] && e[1] === d[o + 1] && e[2] === d[o + 2] && e[3] === d[o + 3] && e[4] === d[o + 4] && e[5] === d[o + 5]) return true;
    }
    if ((d[o]! & 1) === 0) return false;
    const bit = etherCrc(d.subarray(o, o + 6)) >>> 26;
    return (this.mask[bit >>> 5]! & (1 << (bit & 31))) !== 0;
  }
}

/** Linux's ether_crc: bitrev32(crc32_le(~0, mac)), the CRC the multicast hash filters use. */
export function etherCrc(mac: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < 6; i++) {
    crc ^= mac[i]!;
    for (let b = 0; b < 8; b++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  let r = 0;
  for (let b = 0; b < 32; b++) r = (r << 1) | ((crc >>> b) & 1);
  return r >>> 0;
}

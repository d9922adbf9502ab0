/**
 * TcpProtocol: IP protocol 6. Demultiplexes segments to connections (a hash table keyed by the
 * 4-tuple with a seeded hash, chains through the entries themselves), to listeners (SYN queue,
 * accept queue, SYN cookies when the SYN queue overflows), to TIME_WAIT records (light objects in
 * the same table, expired by one protocol timer from a FIFO), and answers everything else with
 * RFC 9293 3.10.7.1 resets. Also: ISNs (RFC 6528), timestamp offsets, the challenge-ACK rate
 * limit (RFC 5961 7), and the slab allocator segments are built in.
 */
import { totalmem } from 'node:os';
import { TunstackError } from '../../errors.js';
import { addrEqual } from '../../headers/address.js';
import { optionalBoolean, optionalInteger, optionalOneOf, optionsObject } from '../../validate.js';
import { fold, pseudoHeaderSumV4, pseudoHeaderSumV6, sum } from '../../headers/checksum.js';
import {
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  encodeTcpOptions,
  parseTcpOptions,
  tcpOptionsLength,
  type TcpOptionFields,
} from '../../headers/tcp.js';
import { LinkCapability } from '../../link/endpoint.js';
import type { Timer } from '../../stack/clock.js';
import { PacketBuffer } from '../../stack/packet.js';
import { TransportResult, type NetworkInfo, type TransportError, type TransportProtocol, type WriteParams } from '../../stack/protocol.js';
import { TokenBucket } from '../../stack/ratelimit.js';
import type { Route } from '../../stack/route.js';
import type { Stack } from '../../stack/stack.js';
import type { Scoreboard } from './buffers.js';
import type { CongestionControlName } from './congestion.js';
import { DUP_THRESH, TcpEndpoint } from './endpoint.js';
import { keyedTupleHash, tupleHash } from './hash.js';
import { TcpMemory, defaultTcpMemory } from './memory.js';
import { Segment } from './segment.js';
import { seqAdd, seqGt, seqLt } from './seq.js';
import { newTcpStats, TX_OK, TX_TOO_BIG, type TcpEndpointOptions, type TcpStats } from './types.js';

const IP_PROTO_TCP = 6;

/** An entry of the connection table: a connection or a TIME_WAIT record. */
export interface TableEntry {
  /** @internal */ hnext: TableEntry | null;
  /** @internal */ hkey: number;
  /** @internal */ readonly isTimeWait: boolean;
  /** @internal */ readonly family: 4 | 6;
  /** @internal */ laddr: Uint8Array | null;
  /** @internal */ raddr: Uint8Array | null;
  /** @internal */ lport: number;
  /** @internal */ rport: number;
}

/** What is left of a connection in TIME_WAIT (RFC 9293 3.6): enough to ACK and to judge SYNs. */
export class TimeWaitRecord implements TableEntry {
  readonly isTimeWait = true;
  hnext: TableEntry | null = null;
  hkey = 0;
  twPrev: TimeWaitRecord | null = null;
  twNext: TimeWaitRecord | null = null;
  expires = 0;
  constructor(
    readonly family: 4 | 6,
    public laddr: Uint8Array,
    public raddr: Uint8Array,
    public lport: number,
    public rport: number,
    readonly sndNxt: number,
    readonly rcvNxt: number,
    readonly tsOn: boolean,
    readonly tsRecent: number,
    readonly tsOffset: number,
    readonly windowField: number,
    readonly route: Route,
  ) {}
}

/** SYN cookie MSS values (the index travels in the cookie), as Linux's IPv4 table. */
export const COOKIE_MSS_TABLE: readonly number[] = [536, 1300, 1440, 1460];
/** Cookies older than this many 64-second... minute counter steps are refused (Linux: 2). */
const COOKIE_MAX_AGE = 2;
const COOKIE_PERIOD_MS = 60_000;


interface PathMtuSource {
  pathMtu(dst: Uint8Array, nicMtu: number): number;
}

function hasPathMtu(p: object): p is PathMtuSource {
  return typeof (p as { pathMtu?: unknown }).pathMtu === 'function';
}

export class TcpProtocol implements TransportProtocol {
  readonly number = IP_PROTO_TCP;
  readonly stats: TcpStats = newTcpStats();
  /** 2MSL: how long TIME_WAIT records live (Linux TCP_TIMEWAIT_LEN). */
  timeWaitMs = 60_000;
  /** Default congestion control of new endpoints. */
  congestionControl: CongestionControlName = 'cubic';
  // sysctl-like tunables (Linux defaults).
  synRetries = 6;
  synAckRetries = 5;
  retries2 = 15;
  finTimeoutMs = 60_000;
  /** Send SYN cookies when the SYN queue overflows (tcp_syncookies = 1). */
  syncookies = true;
  somaxconn = 4096;
  keepaliveTimeMs = 7_200_000;
  keepaliveIntervalMs = 75_000;
  keepaliveProbes = 9;
  /** Initial receive buffer (autotuning start) and the autotuning bound (tcp_rmem[1], [2]). */
  rmemDefault = 131_072;
  rmemMax = 6_291_456;
  /** Send buffer floor and autotuning bound (tcp_wmem[1], [2]). */
  wmemDefault = 262_144;
  wmemMax = 4_194_304;
  /**
   * What each connection may hold of receive and send memory even when the stack's budget is
   * spent (tcp_rmem[0], tcp_wmem[0]): every connection can always make some progress.
   */
  rmemMin = 4096;
  wmemMin = 4096;
  /**
   * The stack-wide memory budget of every TCP connection's buffers (tcp_mem, in bytes here):
   * `memory.setLimits({ low, pressure, high })`; `allocated`, `underPressure`. Default: Linux's
   * proportions of the machine's memory (high about 9%).
   */
  readonly memory: TcpMemory;
  timestamps = true;
  sack = true;
  windowScaling = true;
  slowStartAfterIdle = true;
  /**
   * Takes SYNs that match no connection and no listener (gVisor's tcp.Forwarder; see
   * forwarder.ts): when `offer` returns true the SYN is its business, else a RST answers.
   */
  forwarder: { offer(seg: Segment): boolean } | null = null;

  readonly stack: Stack;
  private readonly table = new Map<number, TableEntry>();
  private entries = 0;
  private readonly listeners = new Map<number, TcpEndpoint[]>();
  private readonly hashSeed: number;
  private readonly isnKey: Uint32Array;
  private readonly cookieKey: Uint32Array;
  private readonly tsKey: Uint32Array;
  private readonly seg = new Segment();
  /** @internal */ readonly synFields: TcpOptionFields = {};
  /** @internal */ readonly sackScratch = new Uint32Array(8);
  /** @internal SACK blocks of the segment being built (filled and used synchronously). */
  readonly sackOut = new Uint32Array(8);
  /** The connection of the last segment (most segments follow the one before). */
  private lastEp: TcpEndpoint | null = null;
  private twHead: TimeWaitRecord | null = null;
  private twTail: TimeWaitRecord | null = null;
  private twTimer: Timer | null = null;
  private readonly twPorts = new Map<number, number>();
  private challengeBucket: TokenBucket;
  private challengeLimit = 1000;
  private readonly writeParams: WriteParams;

  constructor(stack: Stack) {
    this.stack = stack;
    const r = stack.random.fork();
    this.hashSeed = r.u32();
    this.isnKey = Uint32Array.of(r.u32(), r.u32());
    this.cookieKey = Uint32Array.of(r.u32(), r.u32(), r.u32(), r.u32());
    this.tsKey = Uint32Array.of(r.u32(), r.u32());
    this.challengeBucket = new TokenBucket(stack.clock, this.challengeLimit, this.challengeLimit);
    this.writeParams = { protocol: IP_PROTO_TCP, ttl: stack.defaultTtl, tos: 0, dontFragment: true };
    this.memory = new TcpMemory(defaultTcpMemory(totalmem()), this.stats);
  }

  /** Challenge ACKs allowed per second (RFC 5961 7, Linux tcp_challenge_ack_limit). */
  get challengeAckLimit(): number {
    return this.challengeLimit;
  }

  set challengeAckLimit(n: number) {
    this.challengeLimit = n;
    this.challengeBucket = new TokenBucket(this.stack.clock, n, n);
  }

  /** A new endpoint (family 4 by default). */
  createEndpoint(options: TcpEndpointOptions = {}): TcpEndpoint {
    const where = 'tcp';
    const o = optionsObject<TcpEndpointOptions>(options, where);
    optionalOneOf(o.family, where, 'options.family', [4, 6]);
    optionalOneOf(o.congestionControl, where, 'options.congestionControl', ['cubic', 'reno']);
    optionalInteger(o.sendBufferSize, where, 'options.sendBufferSize', 1, 0x7fffffff);
    optionalInteger(o.receiveBufferSize, where, 'options.receiveBufferSize', 1, 0x7fffffff);
    optionalBoolean(o.noDelay, where, 'options.noDelay');
    return new TcpEndpoint(this, o);
  }

  /** Connections and TIME_WAIT records in the table. */
  get connectionCount(): number {
    return this.entries;
  }

  // =====================================================================================
  // Keys, ISNs, allocation, transmit
  // =====================================================================================

  /** @internal RFC 6528: ISN = M + F(4-tuple, secret), M a 4 microsecond clock. */
  isn(laddr: Uint8Array, raddr: Uint8Array, lport: number, rport: number): number {
    const m = Math.floor(this.stack.clock.now() * 250);
    const f = keyedTupleHash(this.isnKey[0]!, this.isnKey[1]!, laddr, 0, raddr, 0, laddr.length, lport, rport, 0);
    return (m + f) >>> 0;
  }

  /** @internal Per-connection timestamp offset (keyed, as Linux's secure_tcp_ts_off). */
  tsOffsetFor(laddr: Uint8Array, raddr: Uint8Array, lport: number, rport: number): number {
    return keyedTupleHash(this.tsKey[0]!, this.tsKey[1]!, laddr, 0, raddr, 0, laddr.length, lport, rport, 1);
  }

  /** @internal */
  takeChallengeAck(): boolean {
    return this.challengeBucket.take();
  }

  /** @internal */
  lossBoundary(sb: Scoreboard, una: number, mss: number): number {
    return sb.lossBoundary(una, mss, DUP_THRESH);
  }

  /** @internal The path MTU towards the route's remote address. */
  pathMtu(route: Route, nicMtu: number): number {
    const np = route.netProto;
    return hasPathMtu(np) ? np.pathMtu(route.remoteAddress, nicMtu) : nicMtu;
  }

  /**
   * @internal A packet of `len` bytes after `headroom`: small ones from the shared packet slab,
   * large ones uninitialized (every segment's header bytes are written and its payload copied).
   */
  allocPacket(len: number, headroom: number): PacketBuffer {
    return PacketBuffer.allocUninitialized(len, headroom);
  }

  /**
   * @internal Hand a segment to the network layer; failures are counted, never thrown. Returns
   * TX_TOO_BIG when it was refused for its size (EMSGSIZE), TX_OK otherwise.
   */
  transmit(route: Route, pkt: PacketBuffer): number {
    try {
      route.send(pkt, this.writeParams);
      return TX_OK;
    } catch (e) {
      this.sendErrors++;
      if (e instanceof TunstackError && e.code === 'EMSGSIZE') {
        this.stats.sendTooBig++;
        return TX_TOO_BIG;
      }
      return TX_OK;
    }
  }

  /** Segments the network layer refused (no route, MTU, link down). */
  sendErrors = 0;

  /** @internal Write a 20-byte header (options, if any, already in place after it). */
  writeHeader(b: Uint8Array, o: number, sport: number, dport: number, seq: number, ack: number, flags: number, wnd: number, hl: number): void {
    b[o] = sport >>> 8;
    b[o + 1] = sport;
    b[o + 2] = dport >>> 8;
    b[o + 3] = dport;
    b[o + 4] = seq >>> 24;
    b[o + 5] = seq >>> 16;
    b[o + 6] = seq >>> 8;
    b[o + 7] = seq;
    b[o + 8] = ack >>> 24;
    b[o + 9] = ack >>> 16;
    b[o + 10] = ack >>> 8;
    b[o + 11] = ack;
    b[o + 12] = (hl >>> 2) << 4;
    b[o + 13] = flags;
    b[o + 14] = wnd >>> 8;
    b[o + 15] = wnd;
    b[o + 16] = 0;
    b[o + 17] = 0;
    b[o + 18] = 0;
    b[o + 19] = 0;
  }

  /** Checksum (or offload) and send a segment built at pkt.start along `route`. */
  private finishAndSend(route: Route, pkt: PacketBuffer, len: number): void {
    const b = pkt.data;
    const o = pkt.start;
    const la = route.localAddress;
    const ra = route.remoteAddress;
    const ps =
      route.family === 4 ? pseudoHeaderSumV4(la, 0, ra, 0, IP_PROTO_TCP, len) : pseudoHeaderSumV6(la, 0, ra, 0, IP_PROTO_TCP, len);
    if ((route.nic.endpoint.capabilities & LinkCapability.TxChecksumOffload) !== 0) {
      pkt.checksumOffload = true;
      const f = fold(ps);
      b[o + 16] = f >>> 8;
      b[o + 17] = f;
    } else {
      const c = ~sum(b, o, len, ps) & 0xffff;
      b[o + 16] = c >>> 8;
      b[o + 17] = c;
    }
    pkt.transportHeaderStart = o;
    pkt.transportProtocol = IP_PROTO_TCP;
    this.stats.outSegs++;
    this.transmit(route, pkt);
  }

  // =====================================================================================
  // Connection table
  // =====================================================================================

  private hashOf(la: Uint8Array, laOff: number, ra: Uint8Array, raOff: number, alen: number, lport: number, rport: number): number {
    return tupleHash(this.hashSeed, la, laOff, ra, raOff, alen, lport, rport) & 0x3fffffff;
  }

  private lookup(
    la: Uint8Array,
    laOff: number,
    ra: Uint8Array,
    raOff: number,
    alen: number,
    lport: number,
    rport: number,
  ): TableEntry | null {
    let e = this.table.get(this.hashOf(la, laOff, ra, raOff, alen, lport, rport)) ?? null;
    while (e !== null) {
      if (
        e.lport === lport &&
        e.rport === rport &&
        e.laddr!.length === alen &&
        addrEqual(e.laddr!, la, laOff) &&
        addrEqual(e.raddr!, ra, raOff)
      ) {
        return e;
      }
      e = e.hnext;
    }
    return null;
  }

  /** @internal The entry for a 4-tuple (connection or TIME_WAIT), or null. */
  lookupTuple(laddr: Uint8Array, raddr: Uint8Array, lport: number, rport: number): TableEntry | null {
    return this.lookup(laddr, 0, raddr, 0, laddr.length, lport, rport);
  }

  private insertEntry(e: TableEntry): void {
    const h = this.hashOf(e.laddr!, 0, e.raddr!, 0, e.laddr!.length, e.lport, e.rport);
    e.hkey = h;
    e.hnext = this.table.get(h) ?? null;
    this.table.set(h, e);
    this.entries++;
  }

  private removeEntry(e: TableEntry): void {
    const h = e.hkey;
    let cur = this.table.get(h) ?? null;
    let prev: TableEntry | null = null;
    while (cur !== null && cur !== e) {
      prev = cur;
      cur = cur.hnext;
    }
    if (cur === null) return;
    if (prev === null) {
      if (e.hnext === null) this.table.delete(h);
      else this.table.set(h, e.hnext);
    } else {
      prev.hnext = e.hnext;
    }
    e.hnext = null;
    this.entries--;
  }

  /** @internal */
  insert(ep: TcpEndpoint): void {
    this.insertEntry(ep);
    ep.hashed = true;
  }

  /** @internal */
  remove(ep: TcpEndpoint): void {
    this.removeEntry(ep);
    ep.hashed = false;
  }

  /**
   * @internal True when a listener already holds `port` on `addr` (or either is a wildcard):
   * SO_REUSEADDR does not let two sockets listen on one address and port (Linux
   * inet_csk_get_port refuses the bind, or the listen when both were bound first). A dual-stack
   * IPv6 wildcard (not v6Only) covers IPv4 too, so it conflicts with IPv4 listeners.
   */
  listenerConflict(port: number, addr: Uint8Array | null, family: 4 | 6, v6Only: boolean, self: TcpEndpoint | null = null): boolean {
    const list = this.listeners.get(port);
    if (!list) return false;
    for (const l of list) {
      if (l === self) continue;
      if (l.family !== family) {
        // Across families only a dual-stack IPv6 wildcard meets IPv4.
        const dual = family === 6 ? addr === null && !v6Only : l.laddr === null && !l.v6Only;
        if (dual) return true;
        continue;
      }
      if (l.laddr === null || addr === null) return true;
      if (l.laddr.length === addr.length && l.laddr.every((b, i) => b === addr[i])) return true;
    }
    return false;
  }

  /** @internal */
  addListener(ep: TcpEndpoint): void {
    const list = this.listeners.get(ep.lport);
    if (list) list.push(ep);
    else this.listeners.set(ep.lport, [ep]);
  }

  /** @internal */
  removeListener(ep: TcpEndpoint): void {
    const list = this.listeners.get(ep.lport);
    if (!list) return;
    const i = list.indexOf(ep);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.listeners.delete(ep.lport);
  }

  private findListener(port: number, data: Uint8Array, dstOff: number, family: 4 | 6): TcpEndpoint | null {
    const list = this.listeners.get(port);
    if (!list) return null;
    let wildcard: TcpEndpoint | null = null;
    let dual: TcpEndpoint | null = null;
    for (let i = 0; i < list.length; i++) {
      const l = list[i]!;
      if (l.family !== family) {
        // IPv4 reaches a dual-stack IPv6 wildcard listener when nothing IPv4 matches.
        if (family === 4 && l.laddr === null && !l.v6Only) dual ??= l;
        continue;
      }
      if (l.laddr === null) wildcard ??= l;
      else if (addrEqual(l.laddr, data, dstOff)) return l;
    }
    return wildcard ?? dual;
  }

  /** @internal Forget a closed listener's embryonic children. */
  dropChildren(l: TcpEndpoint): void {
    const q = l.synQueue;
    if (q === null) return;
    l.synQueue = null;
    for (const c of q) c.destroy(false);
  }

  // =====================================================================================
  // Input
  // =====================================================================================

  handlePacket(net: NetworkInfo, pkt: PacketBuffer): TransportResult {
    const stats = this.stats;
    stats.inSegs++;
    const data = pkt.data;
    const off = pkt.start;
    const len = pkt.end - off;
    if (len < 20) {
      stats.inErrs++;
      return TransportResult.Malformed;
    }
    const hl = (data[off + 12]! >>> 4) << 2;
    if (hl < 20 || hl > len) {
      stats.inErrs++;
      return TransportResult.Malformed;
    }
    const alen = net.family === 4 ? 4 : 16;
    const dport = (data[off + 2]! << 8) | data[off + 3]!;
    const sport = (data[off]! << 8) | data[off + 1]!;
    // Find the connection first (the tuple is only used to look up): its precomputed
    // pseudo-header sum then checks the checksum (the sum is the same with src/dst swapped).
    let e: TableEntry | null;
    const last = this.lastEp;
    if (
      last !== null &&
      last.hashed &&
      last.lport === dport &&
      last.rport === sport &&
      last.laddr!.length === alen &&
      addrEqual(last.raddr!, data, net.srcOffset) &&
      addrEqual(last.laddr!, data, net.dstOffset)
    ) {
      e = last;
    } else {
      e = this.lookup(data, net.dstOffset, data, net.srcOffset, alen, dport, sport);
    }
    if (!pkt.checksumOffload && (net.nic.endpoint.capabilities & LinkCapability.RxChecksumOffload) === 0) {
      const ps = e !== null && !e.isTimeWait ? fold((e as TcpEndpoint).pseudoBase + len) : net.pseudoHeaderSum(IP_PROTO_TCP, len);
      if (sum(data, off, len, ps) !== 0xffff) {
        stats.inCsumErrors++;
        stats.inErrs++;
        return TransportResult.Malformed;
      }
    }
    pkt.transportHeaderStart = off;
    pkt.transportHeaderLength = hl;
    // TCP is unicast only (RFC 1122 4.2.3.10).
    if (net.multicastOrBroadcast) return TransportResult.Handled;
    const seg = this.seg;
    seg.data = data;
    seg.off = off;
    seg.hl = hl;
    seg.srcPort = sport;
    seg.dstPort = dport;
    seg.seq = ((data[off + 4]! << 24) | (data[off + 5]! << 16) | (data[off + 6]! << 8) | data[off + 7]!) >>> 0;
    seg.ack = ((data[off + 8]! << 24) | (data[off + 9]! << 16) | (data[off + 10]! << 8) | data[off + 11]!) >>> 0;
    seg.flags = data[off + 13]!;
    seg.wnd = (data[off + 14]! << 8) | data[off + 15]!;
    seg.plOff = off + hl;
    seg.plLen = len - hl;
    seg.net = net;
    seg.pkt = pkt;
    const opts = seg.opts;
    if (hl === 32 && data[off + 20] === 1 && data[off + 21] === 1 && data[off + 22] === 8 && data[off + 23] === 10) {
      // The common layout: NOP, NOP, timestamps.
      opts.clear();
      opts.timestamp = true;
      opts.tsVal = ((data[off + 24]! << 24) | (data[off + 25]! << 16) | (data[off + 26]! << 8) | data[off + 27]!) >>> 0;
      opts.tsEcr = ((data[off + 28]! << 24) | (data[off + 29]! << 16) | (data[off + 30]! << 8) | data[off + 31]!) >>> 0;
    } else if (hl > 20) {
      // Linux ignores a malformed option list rather than dropping the segment.
      if (!parseTcpOptions(data, off + 20, hl - 20, opts)) opts.clear();
    } else {
      opts.clear();
    }
    if (e !== null) {
      if (e.isTimeWait) {
        this.timeWaitInput(e as TimeWaitRecord, seg);
      } else {
        const ep = e as TcpEndpoint;
        this.lastEp = ep;
        ep.input(seg);
        ep.flushEvents();
      }
      return TransportResult.Handled;
    }
    const l = this.findListener(seg.dstPort, data, net.dstOffset, net.family);
    if (l !== null) {
      this.listenInput(l, seg, -1);
      return TransportResult.Handled;
    }
    if (this.forwarder !== null && this.forwarder.offer(seg)) return TransportResult.Handled;
    this.sendRstForClosed(seg);
    return TransportResult.Handled;
  }

  /**
   * @internal A forwarder's accepted SYN: a child of `parent` (a listener that is not in the
   * listener table) in SYN_RECEIVED, SYN-ACK sent. Null when no route leads back.
   */
  acceptForwarded(parent: TcpEndpoint, seg: Segment): TcpEndpoint | null {
    const child = this.newChild(parent, seg);
    if (child === null) return null;
    (parent.synQueue ??= new Set()).add(child);
    this.stats.passiveOpens++;
    child.startPassive(seg, this.isn(child.laddr!, child.raddr!, child.lport, child.rport));
    child.flushEvents();
    return child;
  }

  /** @internal A forwarder's refused SYN: RST as for a closed port. */
  rejectForwarded(seg: Segment): void {
    this.sendRstForClosed(seg);
  }

  /** A segment for a listener (RFC 9293 3.10.7.2), SYN queue and cookies. */
  private listenInput(l: TcpEndpoint, seg: Segment, isnHint: number): void {
    const flags = seg.flags;
    const stats = this.stats;
    if ((flags & TCP_RST) !== 0) return;
    if ((flags & TCP_ACK) !== 0) {
      if ((flags & TCP_SYN) === 0 && this.syncookies && this.stack.clock.now() - l.lastCookieTime <= 2 * COOKIE_PERIOD_MS) {
        this.cookieAck(l, seg);
        return;
      }
      this.sendRstForAck(seg);
      return;
    }
    if ((flags & TCP_SYN) === 0) return;
    // SYN+FIN opens nothing (Linux discards it in LISTEN; RFC 9293 leaves it open).
    if ((flags & TCP_FIN) !== 0) {
      stats.listenDrops++;
      return;
    }
    const aq = l.acceptQueue!;
    if (aq.length > l.backlog) {
      stats.listenOverflows++;
      stats.listenDrops++;
      return;
    }
    const sq = (l.synQueue ??= new Set());
    if (sq.size >= l.backlog && isnHint < 0) {
      if (this.syncookies) this.sendCookieSynAck(l, seg);
      else stats.listenDrops++;
      return;
    }
    const child = this.newChild(l, seg);
    if (child === null) return;
    sq.add(child);
    stats.passiveOpens++;
    const iss = isnHint >= 0 ? isnHint : this.isn(child.laddr!, child.raddr!, child.lport, child.rport);
    child.startPassive(seg, iss);
    child.flushEvents();
  }

  private newChild(l: TcpEndpoint, seg: Segment): TcpEndpoint | null {
    const net = seg.net;
    const alen = net.family === 4 ? 4 : 16;
    let route: Route;
    try {
      // Views into the packet: the route keeps copies, which the child shares.
      route = this.stack.findRoute(net.data.subarray(net.srcOffset, net.srcOffset + alen), {
        local: net.data.subarray(net.dstOffset, net.dstOffset + alen),
      });
    } catch {
      this.stats.listenDrops++;
      return null;
    }
    const child = new TcpEndpoint(this, { family: net.family });
    child.inheritFrom(l);
    child.laddr = route.localAddress;
    child.raddr = route.remoteAddress;
    child.lport = seg.dstPort;
    child.rport = seg.srcPort;
    child.parent = l;
    child.setRoute(route);
    this.insert(child);
    return child;
  }

  // ---- SYN cookies (Linux's layout: hash + peer ISN + 8-bit minute counter + 24-bit MSS index)

  private cookieHash(which: number, seg: Segment, extra: number): number {
    const net = seg.net;
    const alen = net.family === 4 ? 4 : 16;
    const k = this.cookieKey;
    return keyedTupleHash(k[which * 2]!, k[which * 2 + 1]!, net.data, net.dstOffset, net.data, net.srcOffset, alen, seg.dstPort, seg.srcPort, extra);
  }

  private makeCookie(seg: Segment, peerIsn: number, count: number, mssIdx: number): number {
    const h1 = this.cookieHash(0, seg, 0);
    const h2 = this.cookieHash(1, seg, count);
    return (h1 + peerIsn + ((count & 0xff) << 24) + ((h2 + mssIdx) & 0xffffff)) >>> 0;
  }

  /** The MSS index in a valid cookie, else -1. */
  private checkCookie(seg: Segment, cookie: number, peerIsn: number): number {
    const now = Math.floor(this.stack.clock.now() / COOKIE_PERIOD_MS);
    const h1 = this.cookieHash(0, seg, 0);
    const diff = (cookie - h1 - peerIsn) >>> 0;
    const age = (now - (diff >>> 24)) & 0xff;
    if (age > COOKIE_MAX_AGE) return -1;
    const count = now - age;
    const h2 = this.cookieHash(1, seg, count);
    const idx = (diff - h2) & 0xffffff;
    return idx < COOKIE_MSS_TABLE.length ? idx : -1;
  }

  private sendCookieSynAck(l: TcpEndpoint, seg: Segment): void {
    const net = seg.net;
    const alen = net.family === 4 ? 4 : 16;
    const now = this.stack.clock.now();
    let route: Route;
    try {
      route = this.stack.findRoute(net.data.slice(net.srcOffset, net.srcOffset + alen), {
        local: net.data.slice(net.dstOffset, net.dstOffset + alen),
      });
    } catch {
      this.stats.listenDrops++;
      return;
    }
    const o = seg.opts;
    const peerMss = o.mss > 0 ? o.mss : net.family === 4 ? 536 : 1220;
    let idx = 0;
    for (let i = COOKIE_MSS_TABLE.length - 1; i >= 0; i--) {
      if (COOKIE_MSS_TABLE[i]! <= peerMss) {
        idx = i;
        break;
      }
    }
    const cookie = this.makeCookie(seg, seg.seq, Math.floor(now / COOKIE_PERIOD_MS), idx);
    const f = this.synFields;
    const ipHdr = route.family === 4 ? 20 : 40;
    f.mss = Math.max(48, Math.min(route.nic.mtu, 65535) - ipHdr - 20);
    const ts = this.timestamps && o.timestamp;
    // Without timestamps the cookie cannot carry window scale or SACK, so they are not offered.
    const ws = ts && this.windowScaling && o.windowScale >= 0;
    const sackOk = ts && this.sack && o.sackPermitted;
    const rcvBufMax = l.receiveBufferSize;
    let ourWs = 0;
    while (ourWs < 14 && rcvBufMax >>> ourWs > 65535) ourWs++;
    f.windowScale = ws ? ourWs : -1;
    f.sackPermitted = sackOk;
    f.timestamp = ts;
    if (ts) {
      const la = net.data.slice(net.dstOffset, net.dstOffset + alen);
      const ra = net.data.slice(net.srcOffset, net.srcOffset + alen);
      const nowTs = (Math.floor(now) + this.tsOffsetFor(la, ra, seg.dstPort, seg.srcPort)) >>> 0;
      const bits = (ws ? Math.min(o.windowScale, 14) : 0xf) | (sackOk ? 0x10 : 0);
      let tv = ((nowTs & ~0x3f) | bits) >>> 0;
      if (((tv - nowTs) | 0) > 0) tv = (tv - 64) >>> 0;
      f.tsVal = tv;
      f.tsEcr = o.tsVal;
    }
    f.sackBlocks = undefined;
    const hl = 20 + tcpOptionsLength(f);
    const pkt = this.allocPacket(hl, 64 + route.nic.endpoint.maxHeaderLength);
    encodeTcpOptions(pkt.data, pkt.start + 20, f);
    const win = Math.min(l.rcvBufLockedOr(this.rmemDefault), 65535);
    this.writeHeader(pkt.data, pkt.start, seg.dstPort, seg.srcPort, cookie, seqAdd(seg.seq, 1), TCP_SYN | TCP_ACK, win, hl);
    this.stats.synCookiesSent++;
    l.lastCookieTime = now;
    this.finishAndSend(route, pkt, hl);
  }

  private cookieAck(l: TcpEndpoint, seg: Segment): void {
    const stats = this.stats;
    const idx = this.checkCookie(seg, seqAdd(seg.ack, -1), seqAdd(seg.seq, -1));
    if (idx < 0) {
      stats.synCookiesFailed++;
      this.sendRstForAck(seg);
      return;
    }
    if (l.acceptQueue!.length > l.backlog) {
      stats.listenOverflows++;
      stats.listenDrops++;
      return;
    }
    let ws = -1;
    let sackOk = false;
    const o = seg.opts;
    if (o.timestamp && o.tsEcr !== 0) {
      const bits = o.tsEcr & 0x3f;
      ws = (bits & 0xf) === 0xf ? -1 : bits & 0xf;
      sackOk = (bits & 0x10) !== 0;
    }
    const child = this.newChild(l, seg);
    if (child === null) return;
    stats.synCookiesValidated++;
    stats.passiveOpens++;
    child.startFromCookie(seg, COOKIE_MSS_TABLE[idx]!, ws, sackOk);
    if (seg.plLen > 0 || (seg.flags & TCP_FIN) !== 0) child.input(seg);
    child.flushEvents();
  }

  // ---- resets (RFC 9293 3.10.7.1)

  private sendRstForClosed(seg: Segment): void {
    const flags = seg.flags;
    if ((flags & TCP_RST) !== 0) return;
    if ((flags & TCP_ACK) !== 0) {
      this.replyRst(seg, seg.ack, 0, TCP_RST);
    } else {
      const segLen = seg.plLen + ((flags & TCP_SYN) !== 0 ? 1 : 0) + ((flags & TCP_FIN) !== 0 ? 1 : 0);
      this.replyRst(seg, 0, seqAdd(seg.seq, segLen), TCP_RST | TCP_ACK);
    }
  }

  /** @internal <SEQ=SEG.ACK><CTL=RST> for a segment with an unacceptable ACK. */
  sendRstForAck(seg: Segment): void {
    if ((seg.flags & TCP_RST) !== 0) return;
    this.replyRst(seg, seg.ack, 0, TCP_RST);
  }

  private replyRst(seg: Segment, seq: number, ack: number, flags: number): void {
    const net = seg.net;
    const alen = net.family === 4 ? 4 : 16;
    let route: Route;
    try {
      route = this.stack.findRoute(net.data.slice(net.srcOffset, net.srcOffset + alen), {
        local: net.data.slice(net.dstOffset, net.dstOffset + alen),
      });
    } catch {
      return;
    }
    const pkt = this.allocPacket(20, 64 + route.nic.endpoint.maxHeaderLength);
    this.writeHeader(pkt.data, pkt.start, seg.dstPort, seg.srcPort, seq, ack, flags, 0, 20);
    this.stats.outRsts++;
    this.finishAndSend(route, pkt, 20);
  }

  // =====================================================================================
  // TIME_WAIT
  // =====================================================================================

  /** @internal Replace a connection by a TIME_WAIT record. */
  enterTimeWait(ep: TcpEndpoint): void {
    if (ep.hashed) this.remove(ep);
    const tw = new TimeWaitRecord(
      ep.family,
      ep.laddr!,
      ep.raddr!,
      ep.lport,
      ep.rport,
      ep.sndMax,
      ep.rcvNxt,
      ep.tsOn,
      ep.tsRecent,
      ep.tsOffset,
      Math.min(65535, Math.max(0, (ep.rcvAdv - ep.rcvNxt) | 0) >>> ep.rcvWscale),
      ep.route!,
    );
    this.insertEntry(tw);
    this.twPorts.set(tw.lport, (this.twPorts.get(tw.lport) ?? 0) + 1);
    this.stats.timeWaitCount++;
    this.twAppend(tw, this.stack.clock.now() + this.timeWaitMs);
  }

  /** @internal True if a TIME_WAIT record holds `port` (bind without reuseAddress fails). */
  timeWaitOnPort(port: number): boolean {
    return (this.twPorts.get(port) ?? 0) > 0;
  }

  private twAppend(tw: TimeWaitRecord, expires: number): void {
    tw.expires = expires;
    // Keep the FIFO sorted by expiry (usually an append at the tail).
    let after = this.twTail;
    while (after !== null && after.expires > expires) after = after.twPrev;
    tw.twPrev = after;
    tw.twNext = after === null ? this.twHead : after.twNext;
    if (tw.twNext !== null) tw.twNext.twPrev = tw;
    else this.twTail = tw;
    if (after !== null) after.twNext = tw;
    else this.twHead = tw;
    this.armTwTimer();
  }

  private twUnlink(tw: TimeWaitRecord): void {
    if (tw.twPrev !== null) tw.twPrev.twNext = tw.twNext;
    else this.twHead = tw.twNext;
    if (tw.twNext !== null) tw.twNext.twPrev = tw.twPrev;
    else this.twTail = tw.twPrev;
    tw.twPrev = null;
    tw.twNext = null;
  }

  private armTwTimer(): void {
    const head = this.twHead;
    if (head === null) {
      this.twTimer?.cancel();
      return;
    }
    const t = (this.twTimer ??= this.stack.clock.timer(() => this.onTwTimer()));
    const delay = head.expires - this.stack.clock.now();
    if (!t.pending || t.deadline !== head.expires) t.schedule(delay);
  }

  private onTwTimer(): void {
    const now = this.stack.clock.now();
    while (this.twHead !== null && this.twHead.expires <= now) {
      this.stats.timeWaitExpired++;
      this.killTimeWait(this.twHead);
    }
    this.armTwTimer();
  }

  private killTimeWait(tw: TimeWaitRecord): void {
    this.twUnlink(tw);
    this.removeEntry(tw);
    this.stats.timeWaitCount--;
    const n = (this.twPorts.get(tw.lport) ?? 1) - 1;
    if (n <= 0) this.twPorts.delete(tw.lport);
    else this.twPorts.set(tw.lport, n);
  }

  /** RFC 9293 3.10.7.4 in TIME_WAIT, with Linux's reuse of the 4-tuple by a newer SYN. */
  private timeWaitInput(tw: TimeWaitRecord, seg: Segment): void {
    const flags = seg.flags;
    const o = seg.opts;
    if ((flags & TCP_RST) !== 0) {
      if (seg.seq === tw.rcvNxt) {
        this.stats.timeWaitKilled++;
        this.killTimeWait(tw);
        this.armTwTimer();
      }
      return;
    }
    if ((flags & TCP_SYN) !== 0 && (flags & TCP_ACK) === 0) {
      const pawsOk = !(tw.tsOn && o.timestamp) || ((o.tsVal - tw.tsRecent) | 0) >= 0;
      const newer = seqGt(seg.seq, tw.rcvNxt) || (tw.tsOn && o.timestamp && ((o.tsVal - tw.tsRecent) | 0) > 0);
      if (pawsOk && newer) {
        const isn = seqAdd(tw.sndNxt, 65535 + 2);
        this.killTimeWait(tw);
        this.armTwTimer();
        this.stats.timeWaitReused++;
        const l = this.findListener(seg.dstPort, seg.net.data, seg.net.dstOffset, seg.net.family);
        if (l !== null) this.listenInput(l, seg, isn);
        else if (this.forwarder === null || !this.forwarder.offer(seg)) this.sendRstForClosed(seg);
        return;
      }
      this.twAck(tw);
      return;
    }
    if (tw.tsOn && o.timestamp && ((o.tsVal - tw.tsRecent) | 0) < 0) {
      this.stats.pawsDropped++;
      this.twAck(tw);
      return;
    }
    const fin = (flags & TCP_FIN) !== 0;
    if (fin && seqAdd(seg.seq, seg.plLen + 1) === tw.rcvNxt) {
      // The peer's FIN again: our last ACK was lost. ACK and restart 2MSL.
      this.twAck(tw);
      this.twUnlink(tw);
      this.twAppend(tw, this.stack.clock.now() + this.timeWaitMs);
      return;
    }
    if (seg.plLen > 0 || fin || seqLt(seg.seq, tw.rcvNxt)) this.twAck(tw);
  }

  private twAck(tw: TimeWaitRecord): void {
    const route = tw.route;
    const hl = tw.tsOn ? 32 : 20;
    const pkt = this.allocPacket(hl, 64 + route.nic.endpoint.maxHeaderLength);
    const b = pkt.data;
    const o = pkt.start;
    if (tw.tsOn) {
      const tv = (Math.floor(this.stack.clock.now()) + tw.tsOffset) >>> 0;
      b[o + 20] = 1;
      b[o + 21] = 1;
      b[o + 22] = 8;
      b[o + 23] = 10;
      putU32(b, o + 24, tv);
      putU32(b, o + 28, tw.tsRecent);
    }
    this.writeHeader(b, o, tw.lport, tw.rport, tw.sndNxt, tw.rcvNxt, TCP_ACK, tw.windowField, hl);
    this.finishAndSend(route, pkt, hl);
  }

  // =====================================================================================
  // ICMP errors
  // =====================================================================================

  handleError(net: NetworkInfo, error: TransportError, quoted: Uint8Array, off: number): void {
    if (off + 8 > quoted.length) return;
    const lport = (quoted[off]! << 8) | quoted[off + 1]!;
    const rport = (quoted[off + 2]! << 8) | quoted[off + 3]!;
    const seq = ((quoted[off + 4]! << 24) | (quoted[off + 5]! << 16) | (quoted[off + 6]! << 8) | quoted[off + 7]!) >>> 0;
    const alen = net.family === 4 ? 4 : 16;
    const e = this.lookup(net.data, net.srcOffset, net.data, net.dstOffset, alen, lport, rport);
    if (e === null || e.isTimeWait) return;
    (e as TcpEndpoint).icmpError(error, seq);
  }

  /** Close every connection (RST where synchronized) and drop TIME_WAIT records. */
  close(): void {
    const eps: TcpEndpoint[] = [];
    for (const head of this.table.values()) {
      for (let e: TableEntry | null = head; e !== null; e = e.hnext) if (!e.isTimeWait) eps.push(e as TcpEndpoint);
    }
    for (const ep of eps) ep.abort();
    for (const list of [...this.listeners.values()]) for (const l of [...list]) l.close();
    while (this.twHead !== null) this.killTimeWait(this.twHead);
    this.twTimer?.cancel();
  }
}

function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

export function tcpFactory(): (stack: Stack) => TcpProtocol {
  return (stack) => new TcpProtocol(stack);
}


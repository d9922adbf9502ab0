/**
 * TcpProtocol: IP protocol 6. Demultiplexes segments to connections (a hash table keyed by the
 * 4-tuple with a seeded hash, chains through the entries themselves), to listeners (listen.ts:
 * SYN queue, accept queue, SYN cookies when the SYN queue overflows), to TIME_WAIT records
 * (timewait.ts: light objects in the same table, expired by one protocol timer from a FIFO), and
 * answers everything else with RFC 9293 3.10.7.1 resets. Also: ISNs (RFC 6528), timestamp offsets, the challenge-ACK rate
 * limit (RFC 5961 7), and the slab allocator segments are built in.
 */
import { TunstackError } from '../../core/errors.js';
import { addrEqual } from '../../core/address.js';
import { fold, sum } from '../../headers/checksum.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type TcpOptionFields, writeTcpHeader } from '../../headers/tcp.js';
import { LinkCapability } from '../../link/endpoint.js';
import type { Timer } from '../../core/clock.js';
import { PacketBuffer } from '../../core/packet.js';
import { type NetworkInfo, type TransportError, type TransportProtocol, TransportResult, type WriteParams } from '../../stack/protocol.js';
import { TokenBucket } from '../../core/ratelimit.js';
import type { Route } from '../../stack/route.js';
import type { NetStack } from '../../stack/stack.js';
import { optionalBoolean, optionalInteger, optionalOneOf, optionsObject } from '../../core/validate.js';
import type { Scoreboard } from './buffers.js';
import type { CongestionControlName } from './congestion.js';
import { startPassive } from './connect.js';
import { DUP_THRESH, IP_PROTO_TCP } from './constants.js';
import { TcpEndpoint } from './endpoint.js';
import { keyedTupleHash, tupleHash } from './hash.js';
import { listenInput, newChild } from './listen.js';
import { defaultTcpMemory, TcpMemory } from './memory.js';
import { input } from './receiver.js';
import { icmpError } from './recovery.js';
import { finishSegment, parseSegment, Segment, tcpPseudoBase } from './segment.js';
import { seqAdd } from './seq.js';
import { killTimeWait, timeWaitInput, TimeWaitRecord } from './timewait.js';
import { newTcpStats, type TcpEndpointOptions, type TcpStats, TX_OK, TX_TOO_BIG } from './types.js';

export { COOKIE_MSS_TABLE } from './listen.js';
export { TimeWaitRecord } from './timewait.js';

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

  readonly stack: NetStack;
  private readonly table = new Map<number, TableEntry>();
  private entries = 0;
  private readonly listeners = new Map<number, TcpEndpoint[]>();
  private readonly hashSeed: number;
  private readonly isnKey: Uint32Array;
  /** @internal */ readonly cookieKey: Uint32Array;
  private readonly tsKey: Uint32Array;
  private readonly seg = new Segment();
  /** @internal */ readonly synFields: TcpOptionFields = {};
  /** @internal */ readonly sackScratch = new Uint32Array(8);
  /** @internal SACK blocks of the segment being built (filled and used synchronously). */
  readonly sackOut = new Uint32Array(8);
  /** The connection of the last segment (most segments follow the one before). */
  private lastEp: TcpEndpoint | null = null;
  /** @internal */ twHead: TimeWaitRecord | null = null;
  /** @internal */ twTail: TimeWaitRecord | null = null;
  /** @internal */ twTimer: Timer | null = null;
  /** @internal */ readonly twPorts = new Map<number, number>();
  private challengeBucket: TokenBucket;
  private challengeLimit = 1000;
  private readonly writeParams: WriteParams;

  constructor(stack: NetStack, options: TcpProtocolOptions = {}) {
    this.stack = stack;
    const r = stack.random.fork();
    this.hashSeed = r.u32();
    this.isnKey = Uint32Array.of(r.u32(), r.u32());
    this.cookieKey = Uint32Array.of(r.u32(), r.u32(), r.u32(), r.u32());
    this.tsKey = Uint32Array.of(r.u32(), r.u32());
    this.challengeBucket = new TokenBucket(stack.clock, this.challengeLimit, this.challengeLimit);
    this.writeParams = { protocol: IP_PROTO_TCP, ttl: stack.defaultTtl, tos: 0, dontFragment: true };
    this.memory = new TcpMemory(defaultTcpMemory(options.totalMemory ?? DEFAULT_TOTAL_MEMORY), this.stats);
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

  /** Checksum (or offload) and send a segment of `hl` header bytes built at pkt.start along `route`. */
  /** @internal */ finishAndSend(route: Route, pkt: PacketBuffer, hl: number): void {
    const offload = (route.nic.endpoint.capabilities & LinkCapability.TxChecksumOffload) !== 0;
    finishSegment(pkt, hl, hl, tcpPseudoBase(route), offload);
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

  /** @internal */ insertEntry(e: TableEntry): void {
    const h = this.hashOf(e.laddr!, 0, e.raddr!, 0, e.laddr!.length, e.lport, e.rport);
    e.hkey = h;
    e.hnext = this.table.get(h) ?? null;
    this.table.set(h, e);
    this.entries++;
  }

  /** @internal */ removeEntry(e: TableEntry): void {
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

  /** @internal */ findListener(port: number, data: Uint8Array, dstOff: number, family: 4 | 6): TcpEndpoint | null {
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
    const sport = (data[off]! << 8) | data[off + 1]!;
    const dport = (data[off + 2]! << 8) | data[off + 3]!;
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
    parseSegment(seg, data, off, len, hl, net, pkt);
    if (e !== null) {
      if (e.isTimeWait) {
        timeWaitInput(this, e as TimeWaitRecord, seg);
      } else {
        const ep = e as TcpEndpoint;
        this.lastEp = ep;
        input(ep, seg);
        ep.flushEvents();
      }
      return TransportResult.Handled;
    }
    const l = this.findListener(seg.dstPort, data, net.dstOffset, net.family);
    if (l !== null) {
      listenInput(this, l, seg, -1);
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
    const child = newChild(this, parent, seg);
    if (child === null) return null;
    (parent.synQueue ??= new Set()).add(child);
    this.stats.passiveOpens++;
    startPassive(child, seg, this.isn(child.laddr!, child.raddr!, child.lport, child.rport));
    child.flushEvents();
    return child;
  }

  /** @internal A forwarder's refused SYN: RST as for a closed port. */
  rejectForwarded(seg: Segment): void {
    this.sendRstForClosed(seg);
  }

  // ---- resets (RFC 9293 3.10.7.1)

  /** @internal */ sendRstForClosed(seg: Segment): void {
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

  /** @internal The route back to a segment's sender (from the address it was sent to), or null. */
  routeBack(seg: Segment): Route | null {
    const net = seg.net;
    const alen = net.family === 4 ? 4 : 16;
    try {
      // Views into the packet: the route keeps its own copies of both addresses.
      return this.stack.findRoute(net.data.subarray(net.srcOffset, net.srcOffset + alen), {
        local: net.data.subarray(net.dstOffset, net.dstOffset + alen),
      });
    } catch {
      return null;
    }
  }

  private replyRst(seg: Segment, seq: number, ack: number, flags: number): void {
    const route = this.routeBack(seg);
    if (route === null) return;
    const pkt = this.allocPacket(20, 64 + route.nic.endpoint.maxHeaderLength);
    writeTcpHeader(pkt.data, pkt.start, seg.dstPort, seg.srcPort, seq, ack, flags, 0, 20);
    this.stats.outRsts++;
    this.finishAndSend(route, pkt, 20);
  }

  /** @internal True if a TIME_WAIT record holds `port` (bind without reuseAddress fails). */
  timeWaitOnPort(port: number): boolean {
    return (this.twPorts.get(port) ?? 0) > 0;
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
    icmpError(e as TcpEndpoint, error, seq);
  }

  /** Close every connection (RST where synchronized) and drop TIME_WAIT records. */
  close(): void {
    const eps: TcpEndpoint[] = [];
    for (const head of this.table.values()) {
      for (let e: TableEntry | null = head; e !== null; e = e.hnext) if (!e.isTimeWait) eps.push(e as TcpEndpoint);
    }
    for (const ep of eps) ep.abort();
    for (const list of [...this.listeners.values()]) for (const l of [...list]) l.close();
    while (this.twHead !== null) killTimeWait(this, this.twHead);
    this.twTimer?.cancel();
  }
}

/** Options of the TCP protocol (`tcpFactory`). */
export interface TcpProtocolOptions {
  /**
   * Bytes of memory the machine has, which Linux's tcp_mem defaults are sized from (see
   * defaultTcpMemory). The Node facade passes `os.totalmem()`; elsewhere the default is 4 GiB.
   */
  totalMemory?: number;
}

/** The machine size assumed where the platform does not say (4 GiB). */
const DEFAULT_TOTAL_MEMORY = 4 * 1024 ** 3;

export function tcpFactory(options: TcpProtocolOptions = {}): (stack: NetStack) => TcpProtocol {
  const o = optionsObject<TcpProtocolOptions>(options, 'tcpFactory');
  optionalInteger(o.totalMemory, 'tcpFactory', 'options.totalMemory', 1, Number.MAX_SAFE_INTEGER);
  const checked = { ...o };
  return (stack) => new TcpProtocol(stack, checked);
}


/**
 * A TCP endpoint (RFC 9293): the connection state machine with its send and receive paths.
 *
 * Design notes:
 * - Everything runs synchronously inside packet processing or an API call. Sending a segment may
 *   deliver packets back into this endpoint before `transmit` returns (zero-latency links are
 *   trampolined), so the output loop re-reads every field after each send, all bookkeeping of a
 *   segment happens before it is handed down, and a nested `output()` only flags another pass.
 * - Events are collected as bits and emitted once processing is done (`flushEvents`).
 * - Timers: at most three per connection (retransmission/persist/handshake, delayed ACK,
 *   keepalive/FIN_WAIT_2), created on first use and rescheduled, never allocated per segment.
 * - Sequence numbers are unsigned 32-bit numbers compared with seq.ts; the send buffer is
 *   addressed by stream offsets (bytes since the first written byte) that never wrap.
 */
import { EventEmitter } from 'eventemitter3';
import { TunstackError } from '../../errors.js';
import { expectAddress, expectBoolean, expectBytes, expectInteger, expectString, optionalNumber, optionsObject } from '../../validate.js';
import { formatIP, parseIP } from '../../headers/address.js';
import {
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  encodeTcpOptions,
  tcpOptionsLength,
  writeTcpHeader,
  writeTimestampOption,
} from '../../headers/tcp.js';
import { LinkCapability } from '../../link/endpoint.js';
import type { Timer } from '../../stack/clock.js';
import type { TransportError } from '../../stack/protocol.js';
import type { Route } from '../../stack/route.js';
import { errorFor } from '../udp.js';
import { OooQueue, RecvQueue, Scoreboard, SendBuffer, type BufferLease } from './buffers.js';
import { createCongestionControl, type CcHost, type CongestionControl, type CongestionControlName } from './congestion.js';
import { RANGE_OVERHEAD, type MemoryHolder } from './memory.js';
import type { TcpProtocol, TableEntry } from './protocol.js';
import { finishSegment, tcpPseudoBase, type Segment } from './segment.js';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax } from './seq.js';
import {
  CLOSED,
  CLOSE_WAIT,
  CLOSING,
  ESTABLISHED,
  FIN_WAIT_1,
  FIN_WAIT_2,
  LAST_ACK,
  LISTEN,
  STATE_NAMES,
  SYN_RECEIVED,
  SYN_SENT,
  TIME_WAIT,
  TX_TOO_BIG,
  type CaState,
  type TcpEndpointOptions,
  type TcpInfo,
  type TcpState,
} from './types.js';

export interface TcpEndpointEvents {
  connect: [];
  connection: [TcpEndpoint];
  readable: [];
  writable: [];
  end: [];
  close: [];
  error: [TunstackError];
}

const IP_PROTO_TCP = 6;

export const RTO_MIN = 200;
export const RTO_MAX = 120_000;
export const RTO_INIT = 1000;
/** RFC 6298 5.7: RTO after a retransmitted SYN when no RTT sample was taken. */
export const RTO_FALLBACK = 3000;
export const ATO_MIN = 40;
export const ATO_MAX = 200;
export const INITIAL_WINDOW_SEGMENTS = 10;
export const DUP_THRESH = 3;
/** Quick ACKs at connection start (Linux TCP_MAX_QUICKACKS). */
const MAX_QUICKACKS = 16;
/** Segments with less payload copy it (a view and a lease cost more than the copy). */
const SG_MIN_PAYLOAD = 1024;
/** Most send-buffer ranges one segment borrows; a segment spanning more copies its payload. */
const SG_MAX_FRAGS = 8;
/** Bound on out-of-order segments held per connection. */
export const MAX_OOO_SEGMENTS = 2048;
/** Smallest sender MSS accepted from the peer or from PMTU (Linux tcp_min_snd_mss). */
const MIN_SND_MSS = 48;
/** Out-of-window ACK replies at most this often per connection (Linux tcp_invalid_ratelimit). */
const OOW_RATELIMIT_MS = 500;

// Congestion-avoidance states (Linux's tcp_ca_state).
const CA_OPEN = 0;
const CA_DISORDER = 1;
const CA_RECOVERY = 2;
const CA_LOSS = 3;
const CA_NAMES: readonly CaState[] = ['open', 'disorder', 'recovery', 'loss'];

// Pending event bits.
const EV_CONNECT = 1;
const EV_READABLE = 2;
const EV_WRITABLE = 4;
const EV_END = 8;
const EV_ERROR = 16;
const EV_CLOSE = 32;

// What the retransmission timer is doing.
const RTX_RTO = 0;
const RTX_PERSIST = 1;

// What sendRange advances.
const ADV_NONE = 0;
const ADV_NXT = 1;
const ADV_HOLE = 2;

// What the keepalive timer is doing.
const KT_KEEPALIVE = 0;
const KT_FIN_WAIT_2 = 1;

/** Default MSS when the peer sends none (RFC 9293 3.7.1). */
function defaultMss(family: 4 | 6): number {
  return family === 4 ? 536 : 1220;
}

export class TcpEndpoint extends EventEmitter<TcpEndpointEvents> implements TableEntry, CcHost, MemoryHolder {
  readonly family: 4 | 6;
  /** @internal */ hnext: TableEntry | null = null;
  /** @internal */ hkey = 0;
  /** @internal */ hashed = false;
  /** @internal */ st = CLOSED;
  /** @internal */ laddr: Uint8Array | null = null;
  /** @internal */ raddr: Uint8Array | null = null;
  /** @internal */ lport = 0;
  /** @internal */ rport = 0;
  /** @internal Holds a PortManager reservation for lport. */
  portOwner = false;
  /** @internal */ reuseAddress = false;
  /** IPV6_V6ONLY (see TcpEndpointOptions.v6Only); always false for IPv4. */
  readonly v6Only: boolean;
  /** @internal */ route: Route | null = null;
  /** @internal */ headroom = 64;
  /** @internal Pseudo-header partial sum without the length (addresses and protocol). */
  pseudoBase = 0;
  private txOffload = false;
  /** Segments carry their payload as views of the send buffer (the link does scatter-gather). */
  private sgOn = false;

  // ---- listener
  /** @internal */ backlog = 0;
  /** @internal */ acceptQueue: TcpEndpoint[] | null = null;
  /** @internal Embryonic (SYN_RECEIVED) children of a listener. */
  synQueue: Set<TcpEndpoint> | null = null;
  /** @internal */ parent: TcpEndpoint | null = null;
  /** @internal last time a SYN cookie was sent (ms), -Infinity if never. */
  lastCookieTime = -Infinity;

  // ---- send sequence space
  /** @internal */ iss = 0;
  /** @internal */ sndUna = 0;
  /** @internal */ sndNxt = 0;
  /** @internal */ sndMax = 0;
  /** @internal */ sndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  /** @internal */ maxSndWnd = 0;
  /** @internal */ sndWscale = 0;
  /** @internal MSS the peer announced (or the default). */
  peerMss = 536;
  /** Payload bytes per segment (path and peer limits, timestamp option taken off). */
  sndMss = 536;
  /** @internal */ advMss = 536;
  private pmtu = 0;
  private sndBuf: SendBuffer | null = null;
  private sndBufLimit = 0;
  private sndBufLocked = false;
  /** @internal */ finQueued = false;
  /** @internal Sequence number of our FIN (valid when finQueued). */
  finSeq = 0;
  private shutWr = false;
  private wantWritable = false;
  /** Send-buffer bound lowered when the memory budget refused a write (0: none). */
  private sndBufCap = 0;
  /** Bytes charged to the stack's memory budget, and the out-of-order part of them. */
  private memHeld = 0;
  private memOoo = 0;

  // ---- receive sequence space
  /** @internal */ irs = 0;
  /** @internal */ rcvNxt = 0;
  /** @internal Right edge of the window we advertised. */
  rcvAdv = 0;
  /** @internal */ rcvWscale = 0;
  private rcvBuf = 0;
  private rcvBufMax = 0;
  private rcvBufLocked = false;
  private rcvQ: RecvQueue | null = null;
  private ooo: OooQueue | null = null;
  /** Sequence number of a FIN received out of order, or -1. */
  private oooFin = -1;
  /** @internal */ finRcvd = false;
  private endEmitted = false;
  /** @internal */ rcvMss = 536;
  private lastAckSent = 0;
  private dsackL = 0;
  private dsackR = 0;
  private dsackPending = false;

  // ---- options
  /** @internal */ tsOn = false;
  /** @internal */ tsRecent = 0;
  /** @internal */ tsOffset = 0;
  /** @internal */ sackOn = false;
  /** @internal */ wsOn = false;

  // ---- RTT / RTO
  srtt = 0;
  private rttvar = 0;
  private rttInit = false;
  private rtoBase = RTO_INIT;
  private backoff = 0;
  /** Consecutive timeouts (SYN, SYN-ACK or data). */
  private retries = 0;
  private rttSeq = 0;
  private rttTime = -1;
  /** Time of the first retransmission of the current data (for TCP_USER_TIMEOUT), or -1. */
  private firstRtxTime = -1;
  private synRetransmitted = false;
  private rtxKind = RTX_RTO;
  private probesOut = 0;
  private persistBackoff = 0;

  // ---- congestion control
  cwnd = 0;
  ssthresh = 0x7fffffff;
  private cc: CongestionControl;
  private caState = CA_OPEN;
  private recoveryPoint = 0;
  private highRxt = 0;
  private holeEnd = 0;
  /** Lost-retransmission detection: the left edge's retransmission and SND.MAX when it left. */
  private edgeSeq = -1;
  private edgeMark = 0;
  private dupAcks = 0;
  private sb: Scoreboard | null = null;
  private cwndLimited = false;
  /** cwnd when the last loss recovery or timeout began. */
  private priorCwnd = 0;
  /** Time the last data segment was sent (for restart after idle). */
  private lastSendTime = 0;

  // ---- ACK scheduling
  private quickAcks = 0;
  private ato = ATO_MIN;
  private lastRcvTime = -1;
  private ackNow = false;
  private ackLater = false;
  private lastOowAck = -Infinity;

  // ---- timers
  private rtxTimer: Timer | null = null;
  private delackTimer: Timer | null = null;
  private keepTimer: Timer | null = null;
  private keepKind = KT_KEEPALIVE;

  // ---- options set by the user
  private noDelay = false;
  private keepAlive = false;
  private keepIdle = 0;
  private keepIntvl = 0;
  private keepCnt = 0;
  private kaProbes = 0;
  private userTimeout = 0;
  /** Time the connection last received a segment (keepalive idle time). */
  private lastHeard = 0;

  // ---- lifecycle
  /** @internal close() was called: the endpoint is an orphan finishing its close. */
  userClosed = false;
  private closeEmitted = false;
  private softError: TunstackError | null = null;
  private pendingError: TunstackError | null = null;
  private pendingEv = 0;
  private flushing = false;
  private inOutput = false;
  private outputAgain = false;
  /** The accepted child should be announced to its listener. */
  private announce = false;

  // ---- per-connection statistics
  private bytesSent = 0;
  private bytesRetrans = 0;
  private bytesAcked = 0;
  private bytesReceived = 0;
  private segsOut = 0;
  private segsIn = 0;
  private dataSegsOut = 0;
  private dataSegsIn = 0;
  private totalRetrans = 0;

  constructor(
    /** @internal */ readonly proto: TcpProtocol,
    options: TcpEndpointOptions = {},
  ) {
    super();
    this.family = options.family ?? 4;
    if (this.family !== 4 && this.family !== 6) throw new TunstackError('EAFNOSUPPORT', `bad family ${String(options.family)}`);
    this.v6Only = this.family === 6 && (options.v6Only ?? false);
    this.cc = createCongestionControl(options.congestionControl ?? proto.congestionControl);
    this.noDelay = options.noDelay ?? false;
    if (options.sendBufferSize !== undefined) this.sendBufferSize = options.sendBufferSize;
    if (options.receiveBufferSize !== undefined) this.receiveBufferSize = options.receiveBufferSize;
  }

  // =====================================================================================
  // Public surface
  // =====================================================================================

  /** @internal (on the prototype: no per-instance slot) */
  get isTimeWait(): boolean {
    return false;
  }

  get state(): TcpState {
    return STATE_NAMES[this.st]!;
  }

  get localAddress(): string | null {
    return this.laddr ? formatIP(this.laddr) : null;
  }

  get remoteAddress(): string | null {
    return this.raddr ? formatIP(this.raddr) : null;
  }

  get localPort(): number {
    return this.lport;
  }

  get remotePort(): number {
    return this.rport;
  }

  /** The congestion control algorithm of this connection. */
  get congestionControl(): CongestionControlName {
    return this.cc.name;
  }

  /** Change the algorithm (before connect, or any time: the new one starts from the current cwnd). */
  set congestionControl(name: CongestionControlName) {
    if (name !== this.cc.name) this.cc = createCongestionControl(name);
  }

  /** FIN received and every byte read. */
  get readEnded(): boolean {
    return this.finRcvd && (this.rcvQ === null || this.rcvQ.bytes === 0);
  }

  /** Bytes buffered for sending, not yet acknowledged. */
  get writableLength(): number {
    return this.sndBuf ? this.sndBuf.length : 0;
  }

  /** Bytes ready to read. */
  get readableLength(): number {
    return this.rcvQ ? this.rcvQ.bytes : 0;
  }

  /** The send buffer bound (autotuned up to the protocol's wmemMax unless set). */
  get sendBufferSize(): number {
    const b = this.sndBufLocked ? this.sndBufLimit : this.autoSndBuf();
    const cap = this.sndBufCap;
    if (cap === 0) return b;
    // The bound lowered by the memory budget holds until the pressure is over.
    if (!this.proto.memory.underPressure) {
      this.sndBufCap = 0;
      return b;
    }
    return cap < b ? cap : b;
  }

  set sendBufferSize(v: number) {
    if (!Number.isInteger(v) || v < 1) throw new TunstackError('EINVAL', `send buffer size ${v}`);
    this.sndBufLimit = Math.max(v, 4096);
    this.sndBufLocked = true;
  }

  /** The receive buffer bound (autotuned up to the protocol's rmemMax unless set). */
  get receiveBufferSize(): number {
    return this.rcvBufLocked ? this.rcvBufMax : this.rcvBufMax || this.proto.rmemMax;
  }

  set receiveBufferSize(v: number) {
    if (!Number.isInteger(v) || v < 1) throw new TunstackError('EINVAL', `receive buffer size ${v}`);
    const n = Math.max(v, 2048);
    this.rcvBufMax = n;
    this.rcvBuf = n;
    this.rcvBufLocked = true;
  }

  bind(address: string | null, port: number, options: { reuseAddress?: boolean } = {}): void {
    if (address !== null && address !== '') expectAddress(expectString(address, 'bind', 'address'), 'bind', 'address');
    expectInteger(port, 'bind', 'port', 0, 65535);
    if (optionsObject<{ reuseAddress?: boolean }>(options, 'bind').reuseAddress !== undefined) expectBoolean(options.reuseAddress, 'bind', 'options.reuseAddress');
    if (this.st !== CLOSED || this.lport !== 0 || this.closeEmitted) {
      throw new TunstackError('EINVAL', 'socket is already bound', 'bind');
    }
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TunstackError('EINVAL', `port ${port} out of range`, 'bind');
    let addr = address === null || address === '' ? null : parseIP(address);
    if (addr && addr.length !== (this.family === 4 ? 4 : 16)) {
      throw new TunstackError('EAFNOSUPPORT', `address family does not match tcp${this.family}`, 'bind');
    }
    if (addr && isUnspecified(addr)) addr = null;
    const stack = this.proto.stack;
    if (addr && stack.nicForAddress(addr) === null) {
      throw new TunstackError('EADDRNOTAVAIL', `${formatIP(addr)} is not a local address`, 'bind');
    }
    const reuse = options.reuseAddress ?? false;
    if (port !== 0 && !reuse && this.proto.timeWaitOnPort(port)) {
      throw new TunstackError('EADDRINUSE', `port ${port} is in use (TIME_WAIT)`, 'bind');
    }
    if (port !== 0 && reuse && this.proto.listenerConflict(port, addr, this.family, this.v6Only)) {
      throw new TunstackError('EADDRINUSE', `port ${port} has a listener`, 'bind');
    }
    const scope = this.family === 4 ? 'v4' : this.v6Only ? 'v6' : 'any';
    this.lport = stack.ports.reserve(IP_PROTO_TCP, addr, port, this, reuse, scope);
    this.portOwner = true;
    this.reuseAddress = reuse;
    this.laddr = addr;
  }

  listen(backlog = 511): void {
    if (this.closeEmitted) throw new TunstackError('EBADF', 'socket is closed', 'listen');
    if (this.st === LISTEN) {
      this.backlog = clampBacklog(backlog, this.proto.somaxconn);
      return;
    }
    if (this.st !== CLOSED) throw new TunstackError('EINVAL', 'socket is connected', 'listen');
    if (this.lport === 0) this.bind(null, 0);
    if (this.proto.listenerConflict(this.lport, this.laddr, this.family, this.v6Only, this)) {
      throw new TunstackError('EADDRINUSE', `port ${this.lport} has a listener`, 'listen');
    }
    this.backlog = clampBacklog(backlog, this.proto.somaxconn);
    this.acceptQueue = [];
    this.st = LISTEN;
    this.proto.addListener(this);
  }

  accept(): TcpEndpoint | null {
    const q = this.acceptQueue;
    if (!q || q.length === 0) return null;
    return q.shift()!;
  }

  connect(address: string, port: number): void {
    expectAddress(expectString(address, 'connect', 'address'), 'connect', 'address');
    expectInteger(port, 'connect', 'port', 0, 65535);
    if (this.closeEmitted) throw new TunstackError('EBADF', 'socket is closed', 'connect');
    if (this.st === SYN_SENT || this.st === SYN_RECEIVED) throw new TunstackError('EALREADY', 'connection in progress', 'connect');
    if (this.st !== CLOSED) throw new TunstackError('EISCONN', 'socket is connected', 'connect');
    if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new TunstackError('EINVAL', `port ${port} out of range`, 'connect');
    const raddr = parseIP(address);
    if (raddr.length !== (this.family === 4 ? 4 : 16)) {
      throw new TunstackError('EAFNOSUPPORT', `address family does not match tcp${this.family}`, 'connect');
    }
    const stack = this.proto.stack;
    const route = stack.findRoute(raddr, this.laddr ? { local: this.laddr } : {});
    // The route keeps its own copies of both addresses; the endpoint shares them.
    const laddr = this.laddr ?? route.localAddress;
    if (this.lport === 0) {
      // Ephemeral port: unique 4-tuple (TIME_WAIT records included), as Linux checks.
      let tries = 0;
      for (;;) {
        const p = stack.ports.reserve(IP_PROTO_TCP, laddr, 0, this, false);
        if (this.proto.lookupTuple(laddr, raddr, p, port) === null) {
          this.lport = p;
          break;
        }
        stack.ports.release(IP_PROTO_TCP, p, this);
        if (++tries >= 64) throw new TunstackError('EADDRNOTAVAIL', 'no free 4-tuple', 'connect');
      }
      this.portOwner = true;
    } else if (this.proto.lookupTuple(laddr, raddr, this.lport, port) !== null) {
      throw new TunstackError('EADDRNOTAVAIL', '4-tuple in use', 'connect');
    }
    this.laddr = laddr;
    this.raddr = route.remoteAddress;
    this.rport = port;
    this.setRoute(route);
    this.iss = this.proto.isn(this.laddr, this.raddr, this.lport, this.rport);
    this.initSendSpace();
    this.tsOffset = this.proto.tsOffsetFor(this.laddr, this.raddr, this.lport, this.rport);
    this.initRcvBuf();
    this.proto.insert(this);
    this.st = SYN_SENT;
    this.firstSynTime = stack.clock.now();
    this.proto.stats.activeOpens++;
    // State first: on a zero-latency link the SYN-ACK arrives before sendSyn returns.
    this.sndNxt = seqAdd(this.iss, 1);
    this.sndMax = this.sndNxt;
    this.armRtx(RTX_RTO, this.rtoBase);
    this.sendSyn(false);
    this.flushEvents();
  }

  read(max = Infinity): Uint8Array | null {
    if (max !== Infinity) optionalNumber(max, 'read', 'max', 0, Number.MAX_SAFE_INTEGER);
    const q = this.rcvQ;
    if (q === null || q.bytes === 0 || !(max > 0)) return null;
    let out: Uint8Array;
    const head = q.peek()!;
    if (head.length >= max) {
      const n = Math.floor(max);
      out = n === head.length ? q.shift()! : head.subarray(0, n);
      if (n !== head.length) q.trimHead(n);
    } else if (q.count === 1) {
      out = q.shift()!;
    } else {
      const n = Math.min(q.bytes, max);
      out = new Uint8Array(n);
      let o = 0;
      while (o < n) {
        const h = q.peek()!;
        if (h.length <= n - o) {
          out.set(h, o);
          o += h.length;
          q.shift();
        } else {
          const k = n - o;
          out.set(h.subarray(0, k), o);
          q.trimHead(k);
          o += k;
        }
      }
    }
    this.afterRead(out.length);
    this.flushEvents();
    return out;
  }

  /** Zero-copy read of the next received chunk (a segment payload as it arrived), or null. */
  readChunk(): Uint8Array | null {
    const q = this.rcvQ;
    if (q === null || q.bytes === 0) return null;
    const out = q.shift()!;
    this.afterRead(out.length);
    this.flushEvents();
    return out;
  }

  /** Copy as much of `data` as the send buffer has room for; returns the bytes taken. */
  write(data: Uint8Array): number {
    expectBytes(data, 'write', 'data');
    const st = this.checkWritable();
    const sb = (this.sndBuf ??= new SendBuffer());
    const limit = this.sendBufferSize;
    const room = limit - sb.length;
    let n = data.length <= room ? data.length : room > 0 ? room : 0;
    if (n > 0) n = this.wmemRoom(n);
    if (n < data.length) this.wantWritable = true;
    if (n > 0) {
      sb.write(data, 0, n);
      if (st === ESTABLISHED || st === CLOSE_WAIT) this.output();
    }
    this.flushEvents();
    return n;
  }

  /**
   * Hand `data` to the send buffer without copying it, as Node's `stream.write`: all of it is
   * taken (the buffer may go over its bound by this call's bytes), and the result says whether
   * to go on (false: wait for 'writable'). `data` must not change until it is acknowledged;
   * `lease.release()` is called once when it is no longer referenced, also when this throws.
   */
  writeOwned(data: Uint8Array, lease: BufferLease | null = null): boolean {
    let st: number;
    try {
      st = this.checkWritable();
    } catch (e) {
      lease?.release();
      throw e;
    }
    const sb = (this.sndBuf ??= new SendBuffer());
    if (data.length > 0) {
      sb.adopt(data, lease);
      if (st === ESTABLISHED || st === CLOSE_WAIT) this.output();
    } else {
      lease?.release();
    }
    const more = sb.length < this.sendBufferSize && this.wmemRoom(1) > 0;
    if (!more) this.wantWritable = true;
    this.flushEvents();
    return more;
  }

  /** The state, if data may be written now; else throws EPIPE/ENOTCONN as Linux's send(). */
  private checkWritable(): number {
    if (this.shutWr || this.closeEmitted || this.userClosed) {
      throw new TunstackError('EPIPE', 'socket is shut down for writing', 'write');
    }
    const st = this.st;
    if (st === CLOSED || st === LISTEN) {
      if (this.pendingError) throw this.pendingError;
      throw new TunstackError(st === LISTEN ? 'ENOTCONN' : this.raddr ? 'EPIPE' : 'ENOTCONN', 'socket is not connected', 'write');
    }
    if (st !== SYN_SENT && st !== SYN_RECEIVED && st !== ESTABLISHED && st !== CLOSE_WAIT) {
      throw new TunstackError('EPIPE', 'socket is shut down for writing', 'write');
    }
    return st;
  }

  /** Half-close: send FIN after the buffered data. */
  shutdown(): void {
    if (this.shutWr) return;
    const st = this.st;
    if (st === LISTEN || st === CLOSED) {
      if (st === LISTEN) this.close();
      return;
    }
    this.shutWr = true;
    this.queueFin();
    this.flushEvents();
  }

  /** Graceful close: FIN (RST if received data was left unread, as Linux). */
  close(): void {
    const st = this.st;
    if (this.userClosed && st !== CLOSED) return;
    this.userClosed = true;
    this.keepAlive = false;
    if (st === LISTEN) {
      this.proto.removeListener(this);
      const q = this.acceptQueue ?? [];
      this.acceptQueue = null;
      for (const c of q) c.abort();
      this.proto.dropChildren(this);
      this.st = CLOSED;
      this.releasePort();
      this.pendingEv |= EV_CLOSE;
      this.flushEvents();
      return;
    }
    if (st === CLOSED) {
      this.releasePort();
      // Unread data of a finished connection goes with the last reference to it.
      if (this.rcvQ !== null) this.rcvQ.clear();
      if (!this.closeEmitted) this.pendingEv |= EV_CLOSE;
      this.flushEvents();
      return;
    }
    if (st === SYN_SENT) {
      this.proto.stats.attemptFails++;
      this.destroy(true);
      this.flushEvents();
      return;
    }
    if ((this.rcvQ !== null && this.rcvQ.bytes > 0) || (this.ooo !== null && this.ooo.bytes > 0)) {
      this.proto.stats.abortOnClose++;
      this.sendRst(this.sndMax);
      this.destroy(true);
      this.flushEvents();
      return;
    }
    this.shutWr = true;
    this.queueFin();
    if (this.st === FIN_WAIT_2) this.armFinWait2();
    this.flushEvents();
  }

  /** Reset the connection now (RST), discarding everything. */
  abort(): void {
    const st = this.st;
    if (st === LISTEN) {
      this.close();
      return;
    }
    this.userClosed = true;
    if (st === SYN_RECEIVED || st === ESTABLISHED || st === FIN_WAIT_1 || st === FIN_WAIT_2 || st === CLOSE_WAIT) {
      this.sendRst(this.sndMax);
    }
    if (st === SYN_SENT) this.proto.stats.attemptFails++;
    if (st !== CLOSED) this.destroy(true);
    else {
      this.releasePort();
      if (!this.closeEmitted) this.pendingEv |= EV_CLOSE;
    }
    this.flushEvents();
  }

  setNoDelay(on: boolean): void {
    expectBoolean(on, 'setNoDelay', 'on');
    this.noDelay = on;
    if (on && (this.st === ESTABLISHED || this.st === CLOSE_WAIT)) this.output();
    this.flushEvents();
  }

  setKeepAlive(on: boolean, idleMs?: number, intervalMs?: number, count?: number): void {
    expectBoolean(on, 'setKeepAlive', 'on');
    optionalNumber(idleMs, 'setKeepAlive', 'idleMs', 0, 0x7fffffff);
    optionalNumber(intervalMs, 'setKeepAlive', 'intervalMs', 0, 0x7fffffff);
    optionalNumber(count, 'setKeepAlive', 'count', 0, 127);
    const p = this.proto;
    this.keepAlive = on;
    if (idleMs !== undefined && idleMs > 0) this.keepIdle = idleMs;
    if (intervalMs !== undefined && intervalMs > 0) this.keepIntvl = intervalMs;
    if (count !== undefined && count > 0) this.keepCnt = Math.floor(count);
    if (this.keepIdle === 0) this.keepIdle = p.keepaliveTimeMs;
    if (this.keepIntvl === 0) this.keepIntvl = p.keepaliveIntervalMs;
    if (this.keepCnt === 0) this.keepCnt = p.keepaliveProbes;
    if (!on) {
      if (this.keepKind === KT_KEEPALIVE) this.keepTimer?.cancel();
      return;
    }
    if (this.isSynchronized()) this.armKeepalive(this.keepIdle);
  }

  /** TCP_USER_TIMEOUT: give up when sent data stays unacknowledged this long (0 = off). */
  setUserTimeout(ms: number): void {
    if (!(ms >= 0)) throw new TunstackError('EINVAL', `user timeout ${ms}`);
    this.userTimeout = ms;
  }

  info(): TcpInfo {
    const sb = this.sb;
    return {
      state: this.state,
      caState: CA_NAMES[this.caState]!,
      congestionControl: this.cc.name,
      rttMs: this.srtt,
      rttvarMs: this.rttvar,
      rtoMs: this.currentRto(),
      backoff: this.backoff,
      retransmits: this.retries,
      totalRetrans: this.totalRetrans,
      probes: Math.max(this.probesOut, this.kaProbes),
      cwnd: Math.floor(this.cwnd),
      ssthresh: Math.floor(Math.min(this.ssthresh, 0x7fffffff)),
      priorCwnd: Math.floor(this.priorCwnd),
      mss: this.sndMss,
      advMss: this.advMss,
      rcvMss: this.rcvMss,
      pmtu: this.pmtu,
      sndWscale: this.sndWscale,
      rcvWscale: this.rcvWscale,
      timestamps: this.tsOn,
      sack: this.sackOn,
      sndWnd: this.sndWnd,
      rcvWnd: Math.max(0, seqDiff(this.rcvAdv, this.rcvNxt)),
      rcvBuf: this.rcvBuf,
      rcvBufMax: this.rcvBufMax,
      sndBuf: this.sendBufferSize,
      unacked: this.st >= ESTABLISHED ? Math.max(0, seqDiff(this.sndMax, this.sndUna)) : 0,
      sacked: sb ? sb.sacked : 0,
      bytesSent: this.bytesSent,
      bytesRetrans: this.bytesRetrans,
      bytesAcked: this.bytesAcked,
      bytesReceived: this.bytesReceived,
      segsOut: this.segsOut,
      segsIn: this.segsIn,
      dataSegsOut: this.dataSegsOut,
      dataSegsIn: this.dataSegsIn,
      rcvQueued: this.rcvQ ? this.rcvQ.bytes : 0,
      oooQueued: this.ooo ? this.ooo.bytes : 0,
      sndQueued: this.writableLength,
    };
  }

  /** The pending asynchronous error, taken (SO_ERROR). */
  takeError(): TunstackError | null {
    const e = this.pendingError;
    this.pendingError = null;
    return e;
  }

  // =====================================================================================
  // Setup helpers
  // =====================================================================================

  /** @internal */
  setRoute(route: Route): void {
    this.route = route;
    const ep = route.nic.endpoint;
    this.headroom = ((ep.maxHeaderLength + (route.family === 4 ? 20 : 40) + 15) & ~7) + 8;
    this.txOffload = (ep.capabilities & LinkCapability.TxChecksumOffload) !== 0;
    const sg = LinkCapability.TxChecksumOffload | LinkCapability.ScatterGather;
    this.sgOn = (ep.capabilities & sg) === sg && route.localDelivery === null;
    this.pseudoBase = tcpPseudoBase(route);
    const ipHdr = route.family === 4 ? 20 : 40;
    const nicMtu = route.nic.mtu;
    this.pmtu = this.proto.pathMtu(route, nicMtu);
    this.advMss = Math.max(MIN_SND_MSS, Math.min(nicMtu, 65535) - ipHdr - 20);
  }

  /** @internal Inherit settings from a listener (accepted child). */
  inheritFrom(l: TcpEndpoint): void {
    this.noDelay = l.noDelay;
    this.keepAlive = l.keepAlive;
    this.keepIdle = l.keepIdle;
    this.keepIntvl = l.keepIntvl;
    this.keepCnt = l.keepCnt;
    this.userTimeout = l.userTimeout;
    if (l.sndBufLocked) this.sendBufferSize = l.sndBufLimit;
    if (l.rcvBufLocked) this.receiveBufferSize = l.rcvBufMax;
    if (l.cc.name !== this.cc.name) this.cc = createCongestionControl(l.cc.name);
  }

  /** @internal */
  initSendSpace(): void {
    this.sndUna = this.iss;
    this.sndNxt = this.iss;
    this.sndMax = this.iss;
    this.recoveryPoint = this.iss;
    this.highRxt = this.iss;
  }

  /** @internal Receive buffer and our window scale (from the bound, before the SYN). */
  initRcvBuf(): void {
    if (!this.rcvBufLocked) {
      this.rcvBufMax = this.proto.rmemMax;
      this.rcvBuf = Math.min(this.proto.rmemDefault, this.rcvBufMax);
    }
    let s = 0;
    while (s < 14 && this.rcvBufMax >>> s > 65535) s++;
    this.rcvWscale = this.proto.windowScaling ? s : 0;
  }

  /** @internal The receive buffer a child of this listener starts with. */
  rcvBufLockedOr(dflt: number): number {
    return this.rcvBufLocked ? this.rcvBufMax : Math.min(dflt, this.proto.rmemMax);
  }

  /**
   * Send buffer autotuning from cwnd, as Linux's tcp_sndbuf_expand: twice the window in buffer
   * truesize there, about four times the window in payload bytes here.
   */
  private autoSndBuf(): number {
    const p = this.proto;
    // Under memory pressure the buffer stops growing and falls back to its default.
    if (p.memory.underPressure) return p.wmemDefault;
    const want = Math.max(p.wmemDefault, 4 * Math.floor(this.cwnd));
    return Math.min(p.wmemMax, want);
  }

  // =====================================================================================
  // Options negotiation
  // =====================================================================================

  /** @internal Take the peer's SYN options (passive or active side). */
  negotiate(seg: Segment, ourSynHadOptions: boolean): void {
    const o = seg.opts;
    const p = this.proto;
    this.peerMss = o.mss > 0 ? o.mss : defaultMss(this.family);
    this.tsOn = p.timestamps && ourSynHadOptions && o.timestamp;
    this.sackOn = p.sack && ourSynHadOptions && o.sackPermitted;
    this.wsOn = p.windowScaling && ourSynHadOptions && o.windowScale >= 0;
    if (this.wsOn) {
      this.sndWscale = Math.min(o.windowScale, 14);
    } else {
      this.sndWscale = 0;
      this.rcvWscale = 0;
    }
    if (this.tsOn) this.tsRecent = o.tsVal;
    this.updateMss();
    this.rcvMss = Math.min(this.advMss, this.peerMss, 536 + (this.family === 6 ? 684 : 0));
  }

  /** Sender MSS from the peer's MSS, the path MTU and the timestamp option. */
  private updateMss(): void {
    const ipHdr = this.family === 4 ? 20 : 40;
    let m = Math.min(this.peerMss, this.pmtu - ipHdr - 20);
    if (this.tsOn) m -= 12;
    if (m < MIN_SND_MSS) m = MIN_SND_MSS;
    this.sndMss = m;
  }

  // =====================================================================================
  // Segment building
  // =====================================================================================

  private tsNow(): number {
    return (Math.floor(this.proto.stack.clock.now()) + this.tsOffset) >>> 0;
  }

  /** The window field value for a non-SYN segment; updates rcvAdv. */
  private windowField(): number {
    const rcvNxt = this.rcvNxt;
    let cur = seqDiff(this.rcvAdv, rcvNxt);
    if (cur < 0) cur = 0;
    const queued = (this.rcvQ ? this.rcvQ.bytes : 0) + (this.ooo ? this.ooo.bytes : 0);
    if (this.proto.memory.underPressure) this.rcvPressure();
    let free = this.rcvBuf - queued;
    if (free < 0) free = 0;
    // Under memory pressure the window opens at most four segments ahead (Linux clamps
    // rcv_ssthresh to 4 * advmss); the right edge already offered stays (below).
    if (this.proto.memory.underPressure && free > 4 * this.advMss) free = 4 * this.advMss;
    const mss = this.rcvMss;
    // Receiver SWS avoidance (RFC 9293 3.8.6.2.2, Linux __tcp_select_window).
    if (free < this.rcvBuf >> 1 && free < mss) free = 0;
    const ws = this.rcvWscale;
    let win = (free >>> ws) << ws;
    if (win < cur) {
      // Never move the right edge left: round the old window up to the scale granularity.
      win = (((cur + (1 << ws) - 1) >>> ws) << ws) >>> 0;
    } else if (win > cur && cur > 0 && win - cur < Math.min(this.rcvBuf >> 1, mss)) {
      win = (((cur + (1 << ws) - 1) >>> ws) << ws) >>> 0;
    }
    let field = win >>> ws;
    if (field > 65535) field = 65535;
    this.rcvAdv = seqAdd(rcvNxt, field << ws);
    return field;
  }

  /** Fill sackOut with blocks to send (D-SACK first); returns the count. */
  private buildSack(max: number): number {
    let n = 0;
    const out = this.proto.sackOut;
    if (this.dsackPending) {
      out[0] = this.dsackL;
      out[1] = this.dsackR;
      n = 1;
    }
    const ooo = this.ooo;
    if (ooo !== null && ooo.count > 0 && n < max) {
      if (n === 0) return ooo.sackBlocks(out, max);
      // Shift: write after the D-SACK block.
      const tmp = this.proto.sackScratch;
      const k = ooo.sackBlocks(tmp, max - n);
      for (let i = 0; i < k; i++) {
        out[2 * (n + i)] = tmp[2 * i]!;
        out[2 * (n + i) + 1] = tmp[2 * i + 1]!;
      }
      n += k;
    }
    return n;
  }

  /**
   * Build and send one segment: `len` payload bytes from stream offset `pos` of the send buffer.
   * Every bookkeeping step happens before the packet is handed down.
   */
  private xmit(seq: number, flags: number, pos: number, len: number): void {
    const route = this.route;
    if (route === null) return;
    const proto = this.proto;
    let ol = 0;
    let nsack = 0;
    if (this.tsOn) ol = 12;
    if (this.sackOn && (this.dsackPending || (this.ooo !== null && this.ooo.count > 0))) {
      nsack = this.buildSack(this.tsOn ? 3 : 4);
      if (nsack > 0) ol += 4 + 8 * nsack;
    }
    const hl = 20 + ol;
    const total = hl + len;
    const sg = this.sgOn && len >= SG_MIN_PAYLOAD && this.sndBuf!.canLend(pos, len, SG_MAX_FRAGS);
    const pkt = proto.allocPacket(sg ? hl : total, this.headroom);
    const b = pkt.data;
    const o = pkt.start;
    const ackOn = (flags & TCP_ACK) !== 0;
    const w = (flags & TCP_RST) !== 0 ? 0 : this.windowField();
    writeTcpHeader(b, o, this.lport, this.rport, seq, ackOn ? this.rcvNxt : 0, flags, w, hl);
    let p = o + 20;
    if (this.tsOn) {
      writeTimestampOption(b, p, this.tsNow(), this.tsRecent);
      p += 12;
    }
    if (nsack > 0) {
      b[p] = 1;
      b[p + 1] = 1;
      b[p + 2] = 5;
      b[p + 3] = 2 + 8 * nsack;
      p += 4;
      const s = this.proto.sackOut;
      for (let i = 0; i < 2 * nsack; i++) {
        const v = s[i]!;
        b[p] = v >>> 24;
        b[p + 1] = v >>> 16;
        b[p + 2] = v >>> 8;
        b[p + 3] = v;
        p += 4;
      }
    }
    if (sg) this.sndBuf!.lend(pos, len, pkt);
    else if (len > 0) this.sndBuf!.copyOut(pos, b, o + hl, len);
    finishSegment(pkt, hl, total, this.pseudoBase, this.txOffload);
    // Bookkeeping before the packet leaves (it may come back before transmit returns).
    if (ackOn) {
      this.lastAckSent = this.rcvNxt;
      this.ackNow = false;
      this.ackLater = false;
      if (this.delackTimer !== null) this.delackTimer.cancel();
    }
    this.dsackPending = false;
    this.segsOut++;
    if (len > 0) this.dataSegsOut++;
    proto.stats.outSegs++;
    if ((flags & TCP_RST) !== 0) proto.stats.outRsts++;
    // Refused for its size (the path MTU went down under us): never stall, re-segment.
    if (proto.transmit(route, pkt) === TX_TOO_BIG) this.pathMtuReduced();
  }

  /** SYN or SYN-ACK (seq = iss) with our options. */
  private sendSyn(ack: boolean): void {
    const route = this.route;
    if (route === null) return;
    const proto = this.proto;
    const f = proto.synFields;
    // A SYN-ACK offers only what the peer's SYN offered.
    const synAckOfPeer = ack;
    f.mss = this.advMss;
    f.windowScale = (synAckOfPeer ? this.wsOn : proto.windowScaling) ? this.rcvWscale : -1;
    f.sackPermitted = synAckOfPeer ? this.sackOn : proto.sack;
    f.timestamp = synAckOfPeer ? this.tsOn : proto.timestamps;
    f.tsVal = this.tsNow();
    f.tsEcr = synAckOfPeer ? this.tsRecent : 0;
    f.sackBlocks = undefined;
    const ol = tcpOptionsLength(f);
    const hl = 20 + ol;
    const pkt = proto.allocPacket(hl, this.headroom);
    const b = pkt.data;
    const o = pkt.start;
    encodeTcpOptions(b, o + 20, f);
    const win = Math.min(this.rcvBuf, 65535);
    this.rcvAdv = seqAdd(this.rcvNxt, win);
    writeTcpHeader(b, o, this.lport, this.rport, this.iss, ack ? this.rcvNxt : 0, TCP_SYN | (ack ? TCP_ACK : 0), win, hl);
    finishSegment(pkt, hl, hl, this.pseudoBase, this.txOffload);
    if (ack) this.lastAckSent = this.rcvNxt;
    this.segsOut++;
    proto.stats.outSegs++;
    proto.transmit(route, pkt);
  }

  /** @internal Send a bare ACK now. */
  sendAck(): void {
    if (this.route === null) return;
    this.xmit(this.sndMax, TCP_ACK, 0, 0);
  }

  private sendRst(seq: number): void {
    if (this.route === null) return;
    this.xmit(seq, TCP_RST | TCP_ACK, 0, 0);
  }

  /** A zero-window or keepalive probe: an old sequence number, no data (as Linux). */
  private sendProbe(): void {
    this.xmit(seqAdd(this.sndUna, -1), TCP_ACK, 0, 0);
  }

  /** Challenge ACK (RFC 5961), globally rate limited. */
  private challengeAck(): void {
    const st = this.proto.stats;
    if (this.proto.takeChallengeAck()) {
      st.challengeAcks++;
      this.sendAck();
    } else {
      st.challengeAcksSuppressed++;
    }
  }

  /** Reply to an unacceptable segment, at most once per OOW_RATELIMIT_MS per connection. */
  private oowAck(): void {
    const now = this.proto.stack.clock.now();
    if (now - this.lastOowAck < OOW_RATELIMIT_MS) return;
    this.lastOowAck = now;
    this.sendAck();
  }

  // =====================================================================================
  // Output
  // =====================================================================================

  private dataEndSeq(): number {
    return (this.iss + 1 + (this.sndBuf ? this.sndBuf.endStream : 0)) >>> 0;
  }

  /** Send-buffer stream offset of sequence number `seq`. */
  private streamOf(seq: number): number {
    const ackedStream = this.sndBuf ? this.sndBuf.ackedStream : 0;
    return ackedStream + seqDiff(seq, (this.iss + 1 + ackedStream) >>> 0);
  }

  /** Payload bytes that fit in one segment with the options it will carry. */
  private maxPayload(): number {
    let m = this.sndMss;
    if (this.sackOn && (this.dsackPending || (this.ooo !== null && this.ooo.count > 0))) {
      const blocks = Math.min(this.tsOn ? 3 : 4, (this.ooo ? this.ooo.count : 0) + (this.dsackPending ? 1 : 0));
      m -= 4 + 8 * blocks;
    }
    return m;
  }

  /** Bytes considered in flight (RFC 6675 pipe, or the plain outstanding count). */
  private pipe(): number {
    const una = this.sndUna;
    const sb = this.sb;
    if (sb === null || sb.count === 0) return seqDiff(this.sndNxt, una);
    if (this.caState === CA_RECOVERY) {
      const out = seqDiff(this.sndMax, una);
      const lb = this.proto.lossBoundary(sb, una, this.sndMss);
      let lost = 0;
      if (seqGt(lb, una)) lost = seqDiff(lb, una) - sb.sackedIn(una, lb);
      let rx = 0;
      if (seqGt(this.highRxt, una)) rx = seqDiff(this.highRxt, una) - sb.sackedIn(una, this.highRxt);
      return out - sb.sacked - lost + rx;
    }
    if (this.caState === CA_LOSS) return seqDiff(this.sndNxt, una) - sb.sackedIn(una, this.sndNxt);
    return seqDiff(this.sndNxt, una) - sb.sacked;
  }

  /** RFC 6675 NextSeg rule 1: the first lost, unSACKed, not yet retransmitted byte, or -1. */
  private nextHole(): number {
    const sb = this.sb!;
    const una = this.sndUna;
    const lb = this.proto.lossBoundary(sb, una, this.sndMss);
    let s = seqMax(una, this.highRxt);
    for (;;) {
      if (!seqLt(s, lb)) return -1;
      const e = sb.sackedEnd(s);
      if (e < 0) break;
      s = e;
    }
    const ns = sb.nextSackedStart(s);
    this.holeEnd = ns >= 0 ? ns : lb;
    return s;
  }

  /**
   * Send the data (and FIN) at `seq`, at most `maxLen` data bytes. Returns sequence space used
   * (0 when there was nothing to send there).
   */
  private sendRange(seq: number, maxLen: number, rtx: boolean, mode: number): number {
    const dataEnd = this.dataEndSeq();
    let len = seqDiff(dataEnd, seq);
    if (len > maxLen) len = maxLen;
    if (len < 0) len = 0;
    const end = seqAdd(seq, len);
    const fin = this.finQueued && end === this.finSeq;
    if (len === 0 && !fin) return 0;
    let flags = TCP_ACK;
    if (fin) flags |= TCP_FIN;
    if (len > 0 && end === dataEnd) flags |= TCP_PSH;
    const now = this.proto.stack.clock.now();
    if (rtx || seqLt(seq, this.sndMax)) {
      this.proto.stats.retransSegs++;
      this.totalRetrans++;
      this.bytesRetrans += len;
      // Karn: no RTT sample from retransmitted data.
      this.rttTime = -1;
    } else {
      this.bytesSent += len;
      if (!this.tsOn && this.rttTime < 0 && len > 0) {
        this.rttSeq = end;
        this.rttTime = now;
      }
    }
    this.lastSendTime = now;
    const used = len + (fin ? 1 : 0);
    // Sequence bookkeeping and the RTO before the segment leaves (its ACK may come back at once).
    const nx = seqAdd(seq, used);
    if (mode === ADV_NXT) {
      this.sndNxt = nx;
      if (seqGt(nx, this.sndMax)) this.sndMax = nx;
    } else if (mode === ADV_HOLE) {
      if (seqGt(nx, this.highRxt)) this.highRxt = nx;
      if (seq === this.sndUna) {
        this.edgeSeq = seq;
        this.edgeMark = this.sndMax;
      }
    }
    if (this.rtxTimer === null || !this.rtxTimer.pending || this.rtxKind !== RTX_RTO) this.armRtx(RTX_RTO, this.currentRto());
    this.xmit(seq, flags, len > 0 ? this.streamOf(seq) : 0, len);
    return used;
  }

  /** Send what the windows allow (reentrancy-safe: a nested call only asks for another pass). */
  /** @internal */
  output(): void {
    if (this.inOutput) {
      this.outputAgain = true;
      return;
    }
    const st = this.st;
    if (st !== ESTABLISHED && st !== CLOSE_WAIT && st !== FIN_WAIT_1 && st !== CLOSING && st !== LAST_ACK) return;
    // Nothing written, nothing in flight, no FIN to send: nothing to do (a pure receiver's case).
    const sbuf = this.sndBuf;
    if (this.sndUna === this.sndMax && !this.finQueued && (sbuf === null || sbuf.endStream === sbuf.ackedStream)) return;
    this.inOutput = true;
    try {
      do {
        this.outputAgain = false;
        this.outputLoop();
      } while (this.outputAgain);
    } finally {
      this.inOutput = false;
    }
    this.afterOutput();
  }

  private outputLoop(): void {
    // Restart after idle (RFC 5681 4.1 / RFC 9438 4.8).
    if (this.sndUna === this.sndMax && this.lastSendTime > 0) {
      const now = this.proto.stack.clock.now();
      const idle = now - this.lastSendTime;
      if (idle > this.currentRto() && this.proto.slowStartAfterIdle) {
        const iw = INITIAL_WINDOW_SEGMENTS * this.sndMss;
        if (this.cwnd > iw) this.cwnd = iw;
        this.cc.onIdle(idle);
      }
    }
    // Set again below only if the loop stops because of the congestion window.
    this.cwndLimited = false;
    for (;;) {
      const st = this.st;
      if (st !== ESTABLISHED && st !== CLOSE_WAIT && st !== FIN_WAIT_1 && st !== CLOSING && st !== LAST_ACK) return;
      const maxPl = this.maxPayload();
      const cwnd = Math.floor(this.cwnd);
      if (this.caState === CA_RECOVERY && this.sb !== null) {
        if (this.pipe() >= cwnd) {
          this.cwndLimited = true;
          return;
        }
        const hole = this.nextHole();
        if (hole >= 0) {
          let lim = seqDiff(this.holeEnd, hole);
          if (lim > maxPl) lim = maxPl;
          if (this.sendRange(hole, lim, true, ADV_HOLE) === 0) return;
          continue;
        }
      }
      let budget = cwnd;
      if (this.caState === CA_DISORDER) budget += Math.min(this.dupAcks, 2) * this.sndMss; // RFC 3042
      if (this.pipe() >= budget) {
        this.cwndLimited = true;
        return;
      }
      const seq = this.sndNxt;
      if (seqLt(seq, this.sndMax)) {
        // Go-back-N after a timeout, skipping what the peer SACKed.
        const sb = this.sb;
        let lim = seqDiff(this.sndMax, seq);
        // The left edge is resent even if SACKed (RFC 2018 8: the receiver may have reneged).
        if (sb !== null && sb.count > 0 && seq !== this.sndUna) {
          const e = sb.sackedEnd(seq);
          if (e >= 0) {
            this.sndNxt = seqLt(e, this.sndMax) ? e : this.sndMax;
            continue;
          }
          const ns = sb.nextSackedStart(seq);
          if (ns >= 0 && seqLt(ns, this.sndMax)) lim = seqDiff(ns, seq);
        }
        if (lim > maxPl) lim = maxPl;
        if (this.sendRange(seq, lim, true, ADV_NXT) === 0) this.sndNxt = this.sndMax;
        continue;
      }
      const dataEnd = this.dataEndSeq();
      const avail = seqDiff(dataEnd, seq);
      const finPending = this.finQueued && seq === this.finSeq;
      if (avail <= 0 && !finPending) {
        this.cwndLimited = false;
        return;
      }
      let len = avail < maxPl ? avail : maxPl;
      if (len > 0) {
        const wndAvail = seqDiff(seqAdd(this.sndUna, this.sndWnd), seq);
        if (len > wndAvail) {
          // Sender SWS avoidance (RFC 9293 3.8.6.2.1).
          if (wndAvail <= 0 || (wndAvail < maxPl && wndAvail < this.maxSndWnd >> 1)) return;
          len = wndAvail;
        } else if (len < maxPl && !this.noDelay && !this.finQueued && this.sndUna !== this.sndNxt) {
          // Nagle (RFC 896): a short segment waits while data is unacknowledged.
          return;
        }
      }
      if (this.sendRange(seq, len, false, ADV_NXT) === 0) return;
    }
  }

  /** Timers after sending: RTO while data is out, persist while the window blocks us. */
  private afterOutput(): void {
    const st = this.st;
    if (st < ESTABLISHED) return;
    if (seqLt(this.sndUna, this.sndMax)) {
      if (this.rtxTimer === null || !this.rtxTimer.pending) this.armRtx(RTX_RTO, this.currentRto());
      return;
    }
    // Nothing in flight: probe if data waits behind a closed window.
    const avail = seqDiff(this.dataEndSeq(), this.sndNxt);
    if (avail > 0 && seqDiff(seqAdd(this.sndUna, this.sndWnd), this.sndNxt) < Math.min(avail, this.maxPayload())) {
      if (this.rtxTimer === null || !this.rtxTimer.pending || this.rtxKind !== RTX_PERSIST) {
        this.armRtx(RTX_PERSIST, this.persistInterval());
      }
    } else if (this.rtxTimer !== null && this.rtxTimer.pending) {
      this.rtxTimer.cancel();
    }
  }

  private persistInterval(): number {
    const t = this.currentRto() * 2 ** this.persistBackoff;
    return t < RTO_MAX ? t : RTO_MAX;
  }

  private queueFin(): void {
    const st = this.st;
    if (this.finQueued) return;
    if (st === SYN_SENT || st === SYN_RECEIVED) {
      // Sent once the handshake completes.
      this.finQueued = true;
      this.finSeq = this.dataEndSeq();
      return;
    }
    if (st !== ESTABLISHED && st !== CLOSE_WAIT) return;
    this.finQueued = true;
    this.finSeq = this.dataEndSeq();
    this.setState(st === ESTABLISHED ? FIN_WAIT_1 : LAST_ACK);
    this.output();
  }

  // =====================================================================================
  // Timers
  // =====================================================================================

  private currentRto(): number {
    const t = this.rtoBase * 2 ** this.backoff;
    return t < RTO_MAX ? t : RTO_MAX;
  }

  private armRtx(kind: number, ms: number): void {
    this.rtxKind = kind;
    let t = this.rtxTimer;
    if (t === null) t = this.rtxTimer = this.proto.stack.clock.timer(this.onRtxTimer.bind(this));
    t.schedule(ms);
  }

  private armKeepalive(ms: number): void {
    this.keepKind = KT_KEEPALIVE;
    let t = this.keepTimer;
    if (t === null) t = this.keepTimer = this.proto.stack.clock.timer(this.onKeepTimer.bind(this));
    t.schedule(ms);
  }

  private armFinWait2(): void {
    this.keepKind = KT_FIN_WAIT_2;
    let t = this.keepTimer;
    if (t === null) t = this.keepTimer = this.proto.stack.clock.timer(this.onKeepTimer.bind(this));
    t.schedule(this.proto.finTimeoutMs);
  }

  private scheduleDelack(): void {
    if (this.ackLater) return;
    this.ackLater = true;
    let t = this.delackTimer;
    if (t === null) t = this.delackTimer = this.proto.stack.clock.timer(this.onDelackTimer.bind(this));
    t.schedule(this.ato);
  }

  private onDelackTimer(): void {
    if (!this.ackLater) return;
    this.ackLater = false;
    if (!this.isSynchronized() && this.st !== SYN_RECEIVED) return;
    this.proto.stats.delayedAcks++;
    this.sendAck();
    this.flushEvents();
  }

  private onRtxTimer(): void {
    const st = this.st;
    const proto = this.proto;
    if (st === CLOSED || st === LISTEN) return;
    if (st === SYN_SENT || st === SYN_RECEIVED) {
      const limit = st === SYN_SENT ? proto.synRetries : proto.synAckRetries;
      if (this.retries >= limit || this.userTimedOut()) {
        proto.stats.attemptFails++;
        if (this.parent !== null) {
          this.destroy(false);
        } else {
          this.fail(this.softError ?? new TunstackError('ETIMEDOUT', 'connection timed out', 'connect'));
        }
        this.flushEvents();
        return;
      }
      if (this.firstRtxTime < 0) this.firstRtxTime = proto.stack.clock.now();
      this.retries++;
      this.backoff++;
      this.synRetransmitted = true;
      proto.stats.retransSegs++;
      this.totalRetrans++;
      this.armRtx(RTX_RTO, this.currentRto());
      this.sendSyn(st === SYN_RECEIVED);
      this.flushEvents();
      return;
    }
    if (this.rtxKind === RTX_PERSIST) {
      this.onPersist();
      this.flushEvents();
      return;
    }
    if (this.sndUna === this.sndMax) return;
    // Give up? TCP_USER_TIMEOUT when set, else tcp_retries2.
    if (this.userTimeout > 0 ? this.userTimedOut() : this.retries >= proto.retries2) {
      proto.stats.abortOnTimeout++;
      this.fail(this.softError ?? new TunstackError('ETIMEDOUT', 'connection timed out', 'write'));
      this.flushEvents();
      return;
    }
    proto.stats.rtoExpirations++;
    const now = proto.stack.clock.now();
    if (this.firstRtxTime < 0) this.firstRtxTime = now;
    if (this.caState !== CA_LOSS || this.retries === 0) {
      this.priorCwnd = this.cwnd;
      this.ssthresh = this.cc.onRto(this, seqDiff(this.sndMax, this.sndUna), now);
    }
    this.cwnd = this.sndMss;
    this.caState = CA_LOSS;
    this.recoveryPoint = this.sndMax;
    this.highRxt = this.sndUna;
    this.dupAcks = 0;
    this.sndNxt = this.sndUna;
    this.rttTime = -1;
    this.retries++;
    this.backoff++;
    this.armRtx(RTX_RTO, this.currentRto());
    this.output();
    this.flushEvents();
  }

  private onPersist(): void {
    const proto = this.proto;
    const avail = seqDiff(this.dataEndSeq(), this.sndNxt);
    if (!(avail > 0) || seqLt(this.sndUna, this.sndMax)) return;
    if (this.userTimeout > 0 && this.probesOut > 0) {
      if (this.firstRtxTime >= 0 && proto.stack.clock.now() - this.firstRtxTime >= this.userTimeout) {
        proto.stats.abortOnTimeout++;
        this.fail(new TunstackError('ETIMEDOUT', 'zero window persisted past the user timeout', 'write'));
        return;
      }
    } else if (this.probesOut >= proto.retries2) {
      proto.stats.abortOnTimeout++;
      this.fail(new TunstackError('ETIMEDOUT', 'zero window probes unanswered', 'write'));
      return;
    }
    if (this.firstRtxTime < 0) this.firstRtxTime = proto.stack.clock.now();
    const wndAvail = seqDiff(seqAdd(this.sndUna, this.sndWnd), this.sndNxt);
    if (wndAvail > 0) {
      // Part of the window opened: send what fits (Linux tcp_write_wakeup).
      if (this.sendRange(this.sndNxt, Math.min(wndAvail, this.maxPayload()), false, ADV_NXT) > 0) return;
    }
    proto.stats.zeroWindowProbes++;
    this.probesOut++;
    this.sendProbe();
    this.persistBackoff++;
    this.armRtx(RTX_PERSIST, this.persistInterval());
  }

  private userTimedOut(): boolean {
    return this.userTimeout > 0 && this.firstRtxTime >= 0 && this.proto.stack.clock.now() - this.firstRtxTime >= this.userTimeout;
  }

  private onKeepTimer(): void {
    const proto = this.proto;
    const now = proto.stack.clock.now();
    if (this.keepKind === KT_FIN_WAIT_2) {
      if (this.st === FIN_WAIT_2) {
        this.destroy(false);
        this.flushEvents();
      }
      return;
    }
    if (!this.keepAlive || !this.isSynchronized()) return;
    // Only when idle: nothing in flight and nothing waiting to go.
    if (this.sndUna !== this.sndMax || seqDiff(this.dataEndSeq(), this.sndNxt) > 0) {
      this.armKeepalive(this.keepIdle);
      return;
    }
    const idle = now - this.lastHeard;
    if (idle < this.keepIdle) {
      this.armKeepalive(this.keepIdle - idle);
      return;
    }
    const timedOut = this.userTimeout > 0 ? idle >= this.userTimeout && this.kaProbes > 0 : this.kaProbes >= this.keepCnt;
    if (timedOut) {
      proto.stats.keepAliveTimeouts++;
      this.sendRst(this.sndMax);
      this.fail(this.softError ?? new TunstackError('ETIMEDOUT', 'keepalive timed out', 'read'));
      this.flushEvents();
      return;
    }
    this.kaProbes++;
    proto.stats.keepAliveProbes++;
    this.sendProbe();
    this.armKeepalive(this.keepIntvl);
    this.flushEvents();
  }

  // =====================================================================================
  // RTT
  // =====================================================================================

  private rttSample(r: number): void {
    if (!(r >= 0)) return;
    if (!this.rttInit) {
      this.srtt = r;
      this.rttvar = r / 2;
      this.rttInit = true;
    } else {
      const d = this.srtt - r;
      this.rttvar = 0.75 * this.rttvar + 0.25 * (d < 0 ? -d : d);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    // RFC 6298 (2.3) with Linux's floor: RTO = SRTT + max(4 * RTTVAR, 200 ms).
    const v = 4 * this.rttvar;
    const rto = this.srtt + (v > RTO_MIN ? v : RTO_MIN);
    this.rtoBase = rto < RTO_MAX ? rto : RTO_MAX;
  }

  // =====================================================================================
  // Input
  // =====================================================================================

  private isSynchronized(): boolean {
    const st = this.st;
    return st >= ESTABLISHED && st !== TIME_WAIT;
  }

  /** @internal Handle one segment addressed to this connection. */
  input(seg: Segment): void {
    this.segsIn++;
    const now = this.proto.stack.clock.now();
    this.lastHeard = now;
    if (this.st === SYN_SENT) {
      this.inputSynSent(seg);
      return;
    }
    const flags = seg.flags;
    const opts = seg.opts;
    const proto = this.proto;
    const rst = (flags & TCP_RST) !== 0;
    const syn = (flags & TCP_SYN) !== 0;
    const fin = (flags & TCP_FIN) !== 0;
    const seq = seg.seq;
    // PAWS (RFC 7323 5.3).
    if (this.tsOn && opts.timestamp && !rst && ((opts.tsVal - this.tsRecent) | 0) < 0) {
      proto.stats.pawsDropped++;
      this.oowAck();
      return;
    }
    // Acceptability (RFC 9293 3.10.7.4, in Linux's loose form).
    const segLen = seg.plLen + (syn ? 1 : 0) + (fin ? 1 : 0);
    const end = seqAdd(seq, segLen);
    let rcvWnd = seqDiff(this.rcvAdv, this.rcvNxt);
    if (rcvWnd < 0) rcvWnd = 0;
    if (seqLt(end, this.rcvNxt) || seqGt(seq, seqAdd(this.rcvNxt, rcvWnd))) {
      proto.stats.outOfWindow++;
      if (rst) {
        proto.stats.rstsIgnored++;
        return;
      }
      if (seg.plLen > 0 && seqLt(end, this.rcvNxt) && seqGe(seq, this.irs)) {
        // Old duplicate data: ACK with D-SACK (RFC 2883) right away.
        if (this.sackOn) this.noteDsack(seq, seqAdd(seq, seg.plLen));
        this.sendAck();
      } else if (syn && this.st !== SYN_RECEIVED) {
        this.challengeAck();
      } else {
        this.oowAck();
      }
      return;
    }
    if (rst) {
      // RFC 5961 3.2: only an exact match resets; in window otherwise: challenge ACK.
      if (seq === this.rcvNxt) {
        proto.stats.rstsAccepted++;
        this.onReset();
      } else {
        this.challengeAck();
      }
      return;
    }
    if (syn) {
      const simOpenSynAck =
        this.st === SYN_RECEIVED && (flags & TCP_ACK) !== 0 && seq === this.irs && seg.ack === this.sndNxt && seg.plLen === 0;
      if (!simOpenSynAck) {
        if (this.st === SYN_RECEIVED && seq === this.irs && (flags & TCP_ACK) === 0) {
          // The peer retransmitted its SYN: retransmit the SYN-ACK.
          this.sendSyn(true);
          return;
        }
        // RFC 5961 4.2: a SYN in a synchronized state gets a challenge ACK.
        this.challengeAck();
        return;
      }
      // Simultaneous open: the peer's SYN-ACK completes our handshake (RFC 9293 figure 8).
    }
    if ((flags & TCP_ACK) === 0) return;
    const ack = seg.ack;
    if (this.st === SYN_RECEIVED) {
      if (!(seqLt(this.sndUna, ack) && seqLe(ack, this.sndNxt))) {
        this.proto.sendRstForAck(seg);
        return;
      }
      if (!this.establishPassive(seg)) return;
    }
    // RFC 5961 5.2 / RFC 9293: ACK of unsent data -> ACK and drop; too old -> ACK and drop.
    if (seqGt(ack, this.sndMax)) {
      proto.stats.outOfWindow++;
      this.oowAck();
      return;
    }
    if (seqLt(ack, seqAdd(this.sndUna, -Math.max(this.maxSndWnd, 1)))) {
      proto.stats.outOfWindow++;
      this.challengeAck();
      return;
    }
    // Timestamp bookkeeping (RFC 7323 4.3): TS.Recent from segments at or before Last.ACK.sent.
    if (this.tsOn && opts.timestamp && seqLe(seq, this.lastAckSent)) this.tsRecent = opts.tsVal;
    this.processAck(seg, now);
    if (!this.hashed) return; // closed during ACK processing
    const st = this.st;
    if (st === TIME_WAIT) return;
    if (seg.plLen > 0 || fin) {
      if (st === ESTABLISHED || st === FIN_WAIT_1 || st === FIN_WAIT_2) {
        if (this.userClosed && seg.plLen > 0 && seqGt(seqAdd(seq, seg.plLen), this.rcvNxt)) {
          // New data for a socket nobody reads: reset (Linux TCPAbortOnData).
          proto.stats.abortOnData++;
          this.sendRst(this.sndMax);
          this.destroy(true);
          return;
        }
        this.processData(seg, syn ? seqAdd(seq, 1) : seq, now);
        if (!this.hashed) return;
      } else if (seqLt(seq, this.rcvNxt) || seg.plLen > 0) {
        // Retransmission after the peer's FIN: re-ACK.
        this.ackNow = true;
      }
    }
    this.output();
    if (this.ackNow) this.sendAck();
    else if (this.ackLater && (this.delackTimer === null || !this.delackTimer.pending)) {
      this.ackLater = false;
      this.scheduleDelack();
    }
  }

  private inputSynSent(seg: Segment): void {
    const flags = seg.flags;
    const proto = this.proto;
    const ackOn = (flags & TCP_ACK) !== 0;
    if (ackOn && (seqLe(seg.ack, this.iss) || seqGt(seg.ack, this.sndNxt))) {
      if ((flags & TCP_RST) === 0) proto.sendRstForAck(seg);
      return;
    }
    if ((flags & TCP_RST) !== 0) {
      if (ackOn) {
        proto.stats.attemptFails++;
        this.fail(new TunstackError('ECONNREFUSED', 'connection refused', 'connect'));
      }
      return;
    }
    if ((flags & TCP_SYN) === 0) return;
    const now = proto.stack.clock.now();
    this.irs = seg.seq;
    this.rcvNxt = seqAdd(seg.seq, 1);
    this.lastAckSent = this.rcvNxt;
    this.negotiate(seg, true);
    if (!ackOn) {
      // Simultaneous open (RFC 9293 3.5, figure 8).
      this.setState(SYN_RECEIVED);
      this.armRtx(RTX_RTO, this.currentRto());
      this.sendSyn(true);
      return;
    }
    this.sndUna = seg.ack;
    this.sndWnd = seg.wnd; // never scaled on a SYN
    this.maxSndWnd = this.sndWnd;
    this.sndWl1 = seg.seq;
    this.sndWl2 = seg.ack;
    if (this.tsOn && seg.opts.tsEcr !== 0) this.rttSample(((this.tsNow() - seg.opts.tsEcr) | 0) >>> 0);
    else if (!this.synRetransmitted) this.rttSample(now - (this.firstSynTime >= 0 ? this.firstSynTime : now));
    if (this.synRetransmitted && !this.rttInit) this.rtoBase = RTO_FALLBACK;
    this.established(now);
    this.pendingEv |= EV_CONNECT;
    if (seg.plLen > 0 || (flags & TCP_FIN) !== 0) this.processData(seg, seqAdd(seg.seq, 1), now);
    if (!this.hashed) return;
    const before = this.segsOut;
    this.output();
    if (this.segsOut === before || this.ackNow) this.sendAck();
  }

  private firstSynTime = -1;

  /** Common to both opens: the connection is ESTABLISHED (or FIN_WAIT_1 with a queued FIN). */
  private established(now: number): void {
    this.backoff = 0;
    this.retries = 0;
    this.firstRtxTime = -1;
    this.cwnd = INITIAL_WINDOW_SEGMENTS * this.sndMss;
    this.quickAcks = MAX_QUICKACKS;
    this.lastRcvTime = now;
    this.lastSendTime = 0;
    if (this.rtxTimer !== null) this.rtxTimer.cancel();
    this.setState(ESTABLISHED);
    if (this.keepAlive) this.armKeepalive(this.keepIdle);
    if (this.finQueued) {
      this.finSeq = this.dataEndSeq();
      this.setState(FIN_WAIT_1);
    }
  }

  /** SYN_RECEIVED + acceptable ACK. Returns false if the ACK is dropped (accept queue full). */
  private establishPassive(seg: Segment): boolean {
    const parent = this.parent;
    if (parent !== null) {
      const q = parent.acceptQueue;
      if (q === null || parent.st !== LISTEN) {
        this.destroy(false);
        return false;
      }
      if (q.length > parent.backlog) {
        // Linux drops the ACK and lets the SYN-ACK timer try again.
        this.proto.stats.listenOverflows++;
        return false;
      }
    }
    const now = this.proto.stack.clock.now();
    this.sndUna = seg.ack;
    this.sndWnd = (seg.flags & TCP_SYN) !== 0 ? seg.wnd : seg.wnd << this.sndWscale;
    this.maxSndWnd = this.sndWnd;
    this.sndWl1 = seg.seq;
    this.sndWl2 = seg.ack;
    if (this.tsOn && seg.opts.timestamp && seg.opts.tsEcr !== 0) this.rttSample(((this.tsNow() - seg.opts.tsEcr) | 0) >>> 0);
    else if (!this.synRetransmitted && this.firstSynTime >= 0) this.rttSample(now - this.firstSynTime);
    if (this.synRetransmitted && !this.rttInit) this.rtoBase = RTO_FALLBACK;
    this.established(now);
    if (parent !== null) {
      if (parent.synQueue !== null) parent.synQueue.delete(this);
      this.announce = true;
    } else {
      this.pendingEv |= EV_CONNECT;
    }
    return true;
  }

  /** @internal Child created by a listener from a SYN: send the SYN-ACK. */
  startPassive(seg: Segment, iss: number): void {
    const now = this.proto.stack.clock.now();
    this.iss = iss;
    this.initSendSpace();
    this.irs = seg.seq;
    this.rcvNxt = seqAdd(seg.seq, 1);
    this.initRcvBuf();
    this.negotiate(seg, true);
    this.tsOffset = this.proto.tsOffsetFor(this.laddr!, this.raddr!, this.lport, this.rport);
    this.st = SYN_RECEIVED;
    this.firstSynTime = now;
    this.sndNxt = seqAdd(iss, 1);
    this.sndMax = this.sndNxt;
    this.armRtx(RTX_RTO, this.rtoBase);
    this.sendSyn(true);
  }

  /** @internal Child created from a valid SYN cookie: straight to ESTABLISHED. */
  startFromCookie(seg: Segment, mss: number, wscale: number, sackOk: boolean): void {
    const now = this.proto.stack.clock.now();
    this.iss = seqAdd(seg.ack, -1);
    this.initSendSpace();
    this.sndNxt = seg.ack;
    this.sndMax = seg.ack;
    this.sndUna = seg.ack;
    this.irs = seqAdd(seg.seq, -1);
    this.rcvNxt = seg.seq;
    this.lastAckSent = seg.seq;
    this.initRcvBuf();
    this.peerMss = mss;
    this.tsOn = seg.opts.timestamp && seg.opts.tsEcr !== 0 && this.proto.timestamps;
    this.wsOn = this.tsOn && wscale >= 0 && this.proto.windowScaling;
    this.sackOn = this.tsOn && sackOk && this.proto.sack;
    this.sndWscale = this.wsOn ? Math.min(wscale, 14) : 0;
    if (!this.wsOn) this.rcvWscale = 0;
    if (this.tsOn) this.tsRecent = seg.opts.tsVal;
    this.tsOffset = this.proto.tsOffsetFor(this.laddr!, this.raddr!, this.lport, this.rport);
    this.updateMss();
    this.rcvMss = Math.min(this.advMss, this.peerMss, 536);
    // Our cookie SYN-ACK announced min(rcvBuf, 65535) unscaled.
    this.rcvAdv = seqAdd(this.rcvNxt, Math.min(this.rcvBuf, 65535));
    this.sndWnd = seg.wnd << this.sndWscale;
    this.maxSndWnd = this.sndWnd;
    this.sndWl1 = seg.seq;
    this.sndWl2 = seg.ack;
    this.st = SYN_RECEIVED;
    this.established(now);
    this.announce = true;
  }

  /** ACK processing (RFC 9293 3.10.7.4 fifth check, RFC 5681/6582/6675 loss recovery). */
  private processAck(seg: Segment, now: number): void {
    const ack = seg.ack;
    const acked = seqDiff(ack, this.sndUna);
    // Send window update (RFC 9293 SND.WL1 / SND.WL2 rule).
    let windowChanged = false;
    if (seqLt(this.sndWl1, seg.seq) || (this.sndWl1 === seg.seq && seqLe(this.sndWl2, ack))) {
      const w = (seg.flags & TCP_SYN) !== 0 ? seg.wnd : seg.wnd << this.sndWscale;
      if (w !== this.sndWnd) {
        windowChanged = true;
        if (w > this.sndWnd) this.persistBackoff = 0;
        this.sndWnd = w;
      }
      if (w > this.maxSndWnd) this.maxSndWnd = w;
      this.sndWl1 = seg.seq;
      this.sndWl2 = ack;
    }
    this.probesOut = 0;
    this.kaProbes = 0;
    // SACK blocks into the scoreboard.
    let newSack = false;
    const opts = seg.opts;
    // The scoreboard exists from the first SACK block on (most connections never need one).
    if (this.sackOn && this.sb === null && opts.sackCount > 0) this.sb = new Scoreboard();
    const sb = this.sb;
    if (sb !== null && opts.sackCount > 0) {
      // Blocks are clipped at the later of this ACK and SND.UNA (an old, reordered ACK may carry
      // blocks below SND.UNA).
      const floor = seqMax(ack, this.sndUna);
      for (let i = 0; i < opts.sackCount; i++) {
        let l = opts.sackLeft(i);
        let r = opts.sackRight(i);
        if (!seqLt(l, r)) continue;
        if (seqLe(r, floor) || seqGt(r, this.sndMax)) continue; // D-SACK, old or bogus
        if (seqLt(l, floor)) l = floor;
        if (seqGt(r, this.sndMax)) r = this.sndMax;
        if (sb.add(l, r)) newSack = true;
      }
    }
    if (acked > 0) {
      // RTT: timestamps (RFC 7323 4.1) or the one timed segment (Karn).
      if (this.tsOn && opts.timestamp && opts.tsEcr !== 0) {
        this.rttSample((this.tsNow() - opts.tsEcr) | 0);
      } else if (this.rttTime >= 0 && seqGe(ack, this.rttSeq)) {
        this.rttSample(now - this.rttTime);
        this.rttTime = -1;
      }
      this.backoff = 0;
      this.retries = 0;
      this.firstRtxTime = -1;
      let dataAcked = acked;
      let finAcked = false;
      if (this.finQueued && seqGt(ack, this.finSeq)) {
        finAcked = true;
        dataAcked--;
      }
      const sbuf = this.sndBuf;
      if (sbuf !== null && dataAcked > 0) {
        sbuf.ackTo(sbuf.ackedStream + dataAcked);
      }
      this.bytesAcked += dataAcked;
      const inflightBefore = seqDiff(this.sndMax, this.sndUna);
      this.sndUna = ack;
      if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
      if (seqLt(this.highRxt, ack)) this.highRxt = ack;
      if (sb !== null) {
        sb.ackTo(ack);
        // SACKed data right at the new left edge: the receiver dropped what it had SACKed
        // (reneging, e.g. a memory-pressed out-of-order queue); forget the scoreboard so the
        // data is sent again (Linux tcp_check_sack_reneging).
        if (sb.count > 0 && sb.starts[0] === ack) sb.clear();
      }
      // Congestion control.
      const ca = this.caState;
      if (ca === CA_RECOVERY) {
        if (seqGe(ack, this.recoveryPoint)) {
          this.exitRecovery();
        } else if (sb !== null && seqLt(ack, this.highRxt)) {
          // The new left edge was retransmitted before now: data sent after this point that
          // gets SACKed proves that retransmission lost (below).
          this.edgeSeq = ack;
          this.edgeMark = this.sndMax;
        } else if (sb === null) {
          // NewReno partial ACK (RFC 6582 3.2 step 3): retransmit the next hole, deflate.
          this.armRtx(RTX_RTO, this.currentRto());
          this.sendRange(ack, this.maxPayload(), true, ADV_NONE);
          this.cwnd -= dataAcked;
          if (dataAcked >= this.sndMss) this.cwnd += this.sndMss;
          if (this.cwnd < this.sndMss) this.cwnd = this.sndMss;
        }
      } else if (ca === CA_LOSS) {
        if (seqGe(ack, this.recoveryPoint)) this.caState = CA_OPEN;
        this.cc.onAck(this, dataAcked, now);
      } else {
        this.dupAcks = 0;
        this.caState = sb !== null && sb.count > 0 ? CA_DISORDER : CA_OPEN;
        // Grow only when the window was the limit (RFC 7661 spirit; Linux tcp_is_cwnd_limited:
        // in slow start, flight at least half of cwnd).
        const limited =
          this.cwndLimited || (this.cwnd < this.ssthresh ? 2 * inflightBefore >= this.cwnd : inflightBefore + this.sndMss >= this.cwnd);
        if (limited) this.cc.onAck(this, dataAcked, now);
      }
      // Timers: restart RTO while data is out (RFC 6298 5.3), else stop.
      if (this.sndUna === this.sndMax) {
        if (this.rtxTimer !== null && this.rtxKind === RTX_RTO) this.rtxTimer.cancel();
      } else if (ca !== CA_RECOVERY || sb !== null) {
        this.armRtx(RTX_RTO, this.currentRto());
      }
      if (this.wantWritable && this.sndBuf !== null && this.sndBuf.length <= this.sendBufferSize >> 1 && this.wmemWritable(this.sndBuf)) {
        this.wantWritable = false;
        this.pendingEv |= EV_WRITABLE;
      }
      if (finAcked) this.onFinAcked();
      if (this.caState === CA_DISORDER && sb !== null && this.proto.lossBoundary(sb, this.sndUna, this.sndMss) !== this.sndUna) {
        this.enterRecovery(now);
      }
      if (newSack) this.detectLostRetransmit();
      return;
    }
    if (newSack) this.detectLostRetransmit();
    // No new data acknowledged: duplicate ACK (RFC 5681 def. with SACK's "new information").
    if (
      acked === 0 &&
      seg.plLen === 0 &&
      (seg.flags & (TCP_SYN | TCP_FIN)) === 0 &&
      this.sndUna !== this.sndMax &&
      (!windowChanged || newSack)
    ) {
      this.dupAcks++;
      const ca = this.caState;
      if (ca === CA_OPEN || ca === CA_DISORDER) {
        this.caState = CA_DISORDER;
        if (sb !== null) {
          if (this.dupAcks >= DUP_THRESH || this.proto.lossBoundary(sb, this.sndUna, this.sndMss) !== this.sndUna) {
            this.enterRecovery(now);
          }
        } else if (this.dupAcks === DUP_THRESH && seqGt(this.sndUna, this.recoveryPoint) === true) {
          this.enterRecovery(now);
        } else if (this.dupAcks === DUP_THRESH && this.recoveryPoint === this.iss) {
          this.enterRecovery(now);
        } else if (this.dupAcks === DUP_THRESH) {
          // RFC 6582 4.1: dup ACKs for data sent before the last recovery's end do not
          // start another recovery.
          this.dupAcks = 0;
        }
      } else if (ca === CA_RECOVERY && sb === null) {
        this.cwnd += this.sndMss; // NewReno inflation
      }
    } else if (newSack && this.caState === CA_DISORDER && sb !== null) {
      if (this.proto.lossBoundary(sb, this.sndUna, this.sndMss) !== this.sndUna) this.enterRecovery(now);
    }
  }

  /**
   * In SACK recovery: when data sent after the left edge's retransmission is SACKed more than
   * (DupThresh - 1) segments beyond, while the edge is still missing, that retransmission was
   * lost; let NextSeg pick the edge again (what Linux's lost-retransmit marking does), instead of
   * waiting for the RTO.
   */
  private detectLostRetransmit(): void {
    const sb = this.sb;
    if (this.caState !== CA_RECOVERY || sb === null || this.edgeSeq !== this.sndUna) return;
    if (!seqLt(this.sndUna, this.highRxt) || sb.count === 0) return;
    if (seqGt(sb.highest, seqAdd(this.edgeMark, (DUP_THRESH - 1) * this.sndMss))) {
      this.highRxt = this.sndUna;
      this.edgeSeq = -1;
      this.proto.stats.lostRetransmits++;
    }
  }

  private enterRecovery(now: number): void {
    const proto = this.proto;
    if (this.sackOn && this.sb === null) this.sb = new Scoreboard();
    // FlightSize (RFC 5681): data outstanding, SACKed or not.
    const flight = seqDiff(this.sndMax, this.sndUna);
    this.priorCwnd = this.cwnd;
    this.ssthresh = this.cc.onLoss(this, flight, now);
    this.recoveryPoint = this.sndMax;
    this.caState = CA_RECOVERY;
    this.highRxt = this.sndUna;
    this.rttTime = -1;
    proto.stats.fastRetransmits++;
    if (this.sb !== null) {
      proto.stats.sackRecoveries++;
      this.cwnd = this.ssthresh;
    } else {
      proto.stats.renoRecoveries++;
      this.cwnd = this.ssthresh + DUP_THRESH * this.sndMss;
    }
    // Fast retransmit of the first unacknowledged segment, regardless of pipe.
    let lim = this.maxPayload();
    if (this.sb !== null) {
      const ns = this.sb.nextSackedStart(this.sndUna);
      if (ns >= 0 && seqDiff(ns, this.sndUna) < lim) lim = seqDiff(ns, this.sndUna);
    }
    this.armRtx(RTX_RTO, this.currentRto());
    this.sendRange(this.sndUna, lim, true, ADV_HOLE);
  }

  private exitRecovery(): void {
    // RFC 6582 3.2 step 4 / RFC 6675: deflate to ssthresh.
    const flight = seqDiff(this.sndMax, this.sndUna);
    this.cwnd = Math.min(this.ssthresh, Math.max(flight, 0) + this.sndMss);
    if (this.cwnd < this.sndMss) this.cwnd = this.sndMss;
    this.caState = CA_OPEN;
    this.dupAcks = 0;
  }

  private onFinAcked(): void {
    const st = this.st;
    if (st === FIN_WAIT_1) {
      this.setState(FIN_WAIT_2);
      if (this.rtxTimer !== null) this.rtxTimer.cancel();
      if (this.userClosed) this.armFinWait2();
    } else if (st === CLOSING) {
      this.enterTimeWait();
    } else if (st === LAST_ACK) {
      this.destroy(false);
    }
  }

  private noteDsack(l: number, r: number): void {
    this.dsackL = l;
    this.dsackR = r;
    this.dsackPending = true;
    this.proto.stats.dsackSent++;
  }

  /** Data and FIN of an acceptable segment; `seq` is the sequence number of the first payload byte. */
  private processData(seg: Segment, seq: number, now: number): void {
    let plOff = seg.plOff;
    let plLen = seg.plLen;
    let fin = (seg.flags & TCP_FIN) !== 0;
    const rcvNxt = this.rcvNxt;
    // Trim what we already have.
    if (seqLt(seq, rcvNxt)) {
      const cut = seqDiff(rcvNxt, seq);
      if (cut >= plLen) {
        if (plLen > 0 && this.sackOn) this.noteDsack(seq, seqAdd(seq, plLen));
        if (plLen > 0) this.ackNow = true;
        if (fin && seqAdd(seq, plLen) !== rcvNxt) fin = false;
        plLen = 0;
        seq = rcvNxt;
      } else {
        if (this.sackOn) this.noteDsack(seq, rcvNxt);
        plOff += cut;
        plLen -= cut;
        seq = rcvNxt;
        this.ackNow = true;
      }
    }
    // Trim beyond the right edge of the window we advertised.
    const right = seqAdd(rcvNxt, Math.max(0, seqDiff(this.rcvAdv, rcvNxt)));
    if (seqGt(seqAdd(seq, plLen), right)) {
      const keep = seqDiff(right, seq);
      plLen = keep > 0 ? keep : 0;
      fin = false;
      this.ackNow = true;
    }
    if (plLen === 0 && !fin) return;
    const proto = this.proto;
    // In order: no memory, no segment (Linux tcp_data_queue's TCPRcvQDrop); the sender resends.
    if (plLen > 0 && seq === rcvNxt && !this.rmemAdmit(plLen)) return;
    if (plLen > 0) {
      this.dataSegsIn++;
      if (seg.plLen > this.rcvMss) this.rcvMss = Math.min(seg.plLen, this.advMss);
    }
    const q = (this.rcvQ ??= new RecvQueue());
    if (seq === rcvNxt) {
      const wasEmpty = q.bytes === 0;
      if (plLen > 0) {
        const d = seg.data;
        q.push(new Uint8Array(d.buffer, d.byteOffset + plOff, plLen));
        this.rcvNxt = seqAdd(rcvNxt, plLen);
        this.bytesReceived += plLen;
      }
      const ooo = this.ooo;
      if (ooo !== null && ooo.count > 0) {
        const before = this.rcvNxt;
        this.rcvNxt = ooo.drainInto(this.rcvNxt, q);
        this.bytesReceived += seqDiff(this.rcvNxt, before);
        // A hole filled: ACK at once (and keep ACKing quickly while the peer recovers).
        this.ackNow = true;
        if (this.quickAcks < 8) this.quickAcks = 8;
      }
      if (!fin && this.oooFin >= 0 && this.oooFin === this.rcvNxt) fin = true;
      if (q.bytes > 0 && wasEmpty) this.pendingEv |= EV_READABLE;
      if (fin) {
        this.oooFin = -1;
        this.rcvNxt = seqAdd(this.rcvNxt, 1);
        this.onFin();
        this.ackNow = true;
      } else if (plLen > 0) {
        this.scheduleAck(now);
      }
    } else {
      // Out of order: keep it (bounded) and ACK at once with SACK.
      proto.stats.oooSegs++;
      const ooo = (this.ooo ??= new OooQueue());
      if (plLen > 0) {
        if (ooo.bytes + plLen > this.rcvBuf || !this.rmemAdmit(plLen)) {
          proto.stats.oooDropped++;
        } else {
          const stored = ooo.insert(seq, seg.data.subarray(plOff, plOff + plLen), MAX_OOO_SEGMENTS);
          // Only a true duplicate is a D-SACK; a segment dropped for the bound is not reported.
          if (stored === 0) {
            if (this.sackOn) this.noteDsack(seq, seqAdd(seq, plLen));
          } else if (stored < 0) {
            proto.stats.oooDropped++;
          }
          if (ooo.evicted !== 0) {
            proto.stats.oooDropped += ooo.evicted;
            ooo.evicted = 0;
          }
        }
      }
      if (fin) this.oooFin = seqAdd(seq, plLen);
      this.ackNow = true;
    }
  }

  /** Delayed ACK or ACK now (RFC 1122 4.2.3.2 / RFC 5681 4.2, Linux's quick-ACK and ATO). */
  private scheduleAck(now: number): void {
    // Adapt the ACK timeout to the arrival gap (Linux tcp_event_data_recv).
    if (this.lastRcvTime >= 0) {
      const m = now - this.lastRcvTime;
      if (m <= ATO_MIN / 2) this.ato = (this.ato >> 1) + ATO_MIN / 2;
      else if (m < this.ato) {
        this.ato = (this.ato >> 1) + m;
        const rto = this.currentRto();
        if (this.ato > rto) this.ato = rto;
      } else if (m > this.currentRto()) {
        if (this.quickAcks < 8) this.quickAcks = 8;
      }
      if (this.ato < ATO_MIN) this.ato = ATO_MIN;
      if (this.ato > ATO_MAX) this.ato = ATO_MAX;
    }
    this.lastRcvTime = now;
    if (this.quickAcks > 0) {
      this.quickAcks--;
      this.ackNow = true;
      return;
    }
    // Every second full-sized segment is ACKed at once.
    if (seqDiff(this.rcvNxt, this.lastAckSent) > this.rcvMss) {
      this.ackNow = true;
      return;
    }
    this.ackLater = true;
  }

  /** The peer's FIN has been reached in sequence. */
  private onFin(): void {
    this.finRcvd = true;
    const st = this.st;
    if (st === ESTABLISHED) this.setState(CLOSE_WAIT);
    else if (st === FIN_WAIT_1) {
      // Our FIN not yet acknowledged (else we would be in FIN_WAIT_2): simultaneous close.
      this.setState(CLOSING);
    } else if (st === FIN_WAIT_2) {
      this.sendAck();
      this.enterTimeWait();
    }
    if (this.rcvQ === null || this.rcvQ.bytes === 0) {
      this.pendingEv |= EV_READABLE | EV_END;
    }
  }

  private enterTimeWait(): void {
    // The last ACK goes out before the endpoint turns into a TIME_WAIT record.
    if (this.ackNow || this.lastAckSent !== this.rcvNxt) this.sendAck();
    this.proto.enterTimeWait(this);
    this.destroy(false);
  }

  /** An acceptable RST arrived (RFC 9293 3.10.7.4 second check, Linux tcp_reset errors). */
  private onReset(): void {
    const st = this.st;
    if (st === SYN_RECEIVED) {
      this.proto.stats.attemptFails++;
      if (this.parent !== null) {
        this.destroy(false);
        return;
      }
      this.fail(new TunstackError('ECONNREFUSED', 'connection refused', 'connect'));
      return;
    }
    if (st === ESTABLISHED || st === CLOSE_WAIT) this.proto.stats.estabResets++;
    if (st === CLOSING || st === LAST_ACK || st === TIME_WAIT) {
      this.destroy(true);
      return;
    }
    this.fail(
      st === CLOSE_WAIT
        ? new TunstackError('EPIPE', 'connection reset by peer after its FIN', 'read')
        : new TunstackError('ECONNRESET', 'connection reset by peer', 'read'),
    );
  }

  /** After the application read `n` bytes: window updates, receive-buffer autotuning, end. */
  private afterRead(n: number): void {
    if (n <= 0) return;
    if (!this.rcvBufLocked) this.autotune(n);
    if (this.finRcvd && this.rcvQ !== null && this.rcvQ.bytes === 0) this.pendingEv |= EV_END;
    if (!this.isSynchronized() || this.finRcvd) return;
    // Window update when the window grew enough (Linux tcp_cleanup_rbuf).
    const cur = Math.max(0, seqDiff(this.rcvAdv, this.rcvNxt));
    const max = 65535 << this.rcvWscale;
    if (2 * cur <= Math.min(this.rcvBuf, max)) {
      const queued = (this.rcvQ ? this.rcvQ.bytes : 0) + (this.ooo ? this.ooo.bytes : 0);
      const free = this.rcvBuf - queued;
      if (free >= 2 * cur && free - cur >= this.rcvMss) this.sendAck();
    }
  }

  private copiedInRtt = 0;
  private rttWindowStart = -1;
  private rcvSpace = 0;

  /** Dynamic right-sizing of the receive buffer (Linux tcp_rcv_space_adjust, simplified). */
  private autotune(n: number): void {
    const now = this.proto.stack.clock.now();
    if (this.rttWindowStart < 0) {
      this.rttWindowStart = now;
      this.rcvSpace = Math.min(this.rcvBuf, 10 * this.rcvMss);
    }
    this.copiedInRtt += n;
    const rtt = this.srtt > 0 ? this.srtt : 1;
    if (now - this.rttWindowStart < rtt) return;
    const copied = this.copiedInRtt;
    this.copiedInRtt = 0;
    this.rttWindowStart = now;
    if (copied <= this.rcvSpace) return;
    this.rcvSpace = copied;
    const want = Math.min(this.rcvBufMax, 4 * copied);
    if (want > this.rcvBuf && !this.proto.memory.underPressure) this.rcvBuf = want;
  }

  /** @internal An ICMP error about a segment of this connection. */
  icmpError(err: TransportError, quotedSeq: number): void {
    const st = this.st;
    // RFC 5927: the quoted sequence number must be in flight.
    if (!(seqLe(this.sndUna, quotedSeq) && seqLt(quotedSeq, seqMax(this.sndMax, seqAdd(this.sndUna, 1))))) {
      if (!(st === SYN_SENT && quotedSeq === this.iss)) return;
    }
    if (err.kind === 'frag-needed' || err.kind === 'packet-too-big') {
      // The message is about a segment of ours in flight: now the IP layer may believe it.
      err.confirmPathMtu?.();
      this.pathMtuReduced();
      this.flushEvents();
      return;
    }
    const e = errorFor(err);
    if (st === SYN_SENT || (st === SYN_RECEIVED && this.parent === null)) {
      this.proto.stats.attemptFails++;
      this.fail(e);
      this.flushEvents();
      return;
    }
    if (st === SYN_RECEIVED) return;
    // Established: a soft error, reported if the connection later times out.
    this.softError = e;
  }

  /**
   * Re-read the path MTU (lowered by a validated ICMP message, or found lower when the IP layer
   * refused a segment as too big) and, if it went down, re-segment what is in flight at the new
   * MSS (Linux tcp_v4_mtu_reduced / tcp_simple_retransmit: resend with the new size, cwnd kept).
   * Reentrancy-safe: from inside output() the resend happens on the loop's next pass. Events are
   * left for the caller to flush (every entry point does).
   */
  private pathMtuReduced(): void {
    const route = this.route;
    if (route === null) return;
    const mtu = this.proto.pathMtu(route, route.nic.mtu);
    if (mtu >= this.pmtu) return;
    this.pmtu = mtu;
    this.proto.stats.pmtuUpdates++;
    const old = this.sndMss;
    this.updateMss();
    if (this.sndMss < old && this.isSynchronized() && seqLt(this.sndUna, this.sndMax)) {
      if (this.caState !== CA_LOSS) {
        this.caState = CA_LOSS;
        this.recoveryPoint = this.sndMax;
      }
      this.sndNxt = this.sndUna;
      this.rttTime = -1;
      this.output();
    }
  }

  // =====================================================================================
  // State, teardown, events
  // =====================================================================================

  /** @internal */
  setState(s: number): void {
    const old = this.st;
    if (old === s) return;
    const stats = this.proto.stats;
    const wasEst = old === ESTABLISHED || old === CLOSE_WAIT;
    const isEst = s === ESTABLISHED || s === CLOSE_WAIT;
    if (wasEst && !isEst) stats.currEstab--;
    else if (!wasEst && isEst) stats.currEstab++;
    this.st = s;
  }

  /** Abort with an error: 'error' then 'close'. */
  private fail(err: TunstackError): void {
    this.pendingError = err;
    this.pendingEv |= EV_ERROR;
    this.destroy(true);
  }

  /**
   * Tear down: timers, table, port, buffers. `discard` drops received data too (reset, abort);
   * a graceful end keeps unread data readable.
   */
  /** @internal */
  destroy(discard: boolean): void {
    const parent = this.parent;
    if (parent !== null && parent.synQueue !== null) parent.synQueue.delete(this);
    this.setState(CLOSED);
    if (this.rtxTimer !== null) this.rtxTimer.cancel();
    if (this.delackTimer !== null) this.delackTimer.cancel();
    if (this.keepTimer !== null) this.keepTimer.cancel();
    this.ackLater = false;
    this.ackNow = false;
    if (this.hashed) this.proto.remove(this);
    if (parent !== null) {
      const q = parent.acceptQueue;
      if (q !== null) {
        const i = q.indexOf(this);
        if (i >= 0) q.splice(i, 1);
      }
      this.announce = false;
    }
    this.releasePort();
    if (this.sndBuf !== null) this.sndBuf.clear();
    if (this.ooo !== null) this.ooo.clear();
    if (discard && this.rcvQ !== null) this.rcvQ.clear();
    if (this.sb !== null) this.sb.clear();
    this.pendingEv |= EV_CLOSE;
  }

  private releasePort(): void {
    if (this.portOwner) {
      this.proto.stack.ports.release(IP_PROTO_TCP, this.lport, this);
      this.portOwner = false;
    }
  }

  // =====================================================================================
  // Memory budget (the stack's tcp_mem, see memory.ts)
  // =====================================================================================

  /** Charge what the buffers hold now to the stack's budget (after every operation). */
  private memSync(): void {
    const sb = this.sndBuf;
    const q = this.rcvQ;
    const o = this.ooo;
    const ooo = o === null ? 0 : o.bytes + o.count * RANGE_OVERHEAD;
    const held = ooo + (sb === null ? 0 : sb.truesize + sb.rangeCount * RANGE_OVERHEAD) + (q === null ? 0 : q.bytes + q.count * RANGE_OVERHEAD);
    if (held === this.memHeld && ooo === this.memOoo) return;
    const m = this.proto.memory;
    if (ooo !== this.memOoo) {
      m.oooAllocated += ooo - this.memOoo;
      if (ooo > 0) m.oooHolders.add(this);
      else m.oooHolders.delete(this);
      this.memOoo = ooo;
    }
    const d = held - this.memHeld;
    this.memHeld = held;
    m.charge(d);
  }

  /**
   * Whether `n` more received bytes may be held: above the hard limit only while this connection
   * holds less than rmemMin, after out-of-order queues (largest first) were pruned to make room.
   */
  private rmemAdmit(n: number): boolean {
    this.memSync();
    const p = this.proto;
    const m = p.memory;
    const need = n + RANGE_OVERHEAD;
    const own = (this.rcvQ === null ? 0 : this.rcvQ.bytes) + (this.ooo === null ? 0 : this.ooo.bytes);
    if (m.admits(need, own, p.rmemMin)) return true;
    if (m.reclaim(need) > 0 && m.admits(need, (this.rcvQ === null ? 0 : this.rcvQ.bytes) + (this.ooo === null ? 0 : this.ooo.bytes), p.rmemMin)) {
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
  private wmemRoom(want: number): number {
    this.memSync();
    const p = this.proto;
    const m = p.memory;
    const free = m.high - m.allocated - RANGE_OVERHEAD;
    if (want <= free) return want;
    const sb = this.sndBuf;
    const own = sb === null ? 0 : sb.truesize;
    const room = Math.max(free, own < p.wmemMin ? p.wmemMin - own : 0, sb === null ? 0 : sb.tailRoom, 0);
    if (room >= want) return want;
    p.stats.sndMemRefusals++;
    this.sndBufCap = Math.max(p.wmemMin, Math.min(this.sendBufferSize, (sb === null ? 0 : sb.length) >> 1));
    return room;
  }

  /**
   * Whether 'writable' may be announced as far as the memory budget goes: below the hard limit,
   * or once this connection's own queue is under wmemMin (Linux wakes writers from their own
   * ACKs too; a write taken whole, as writeOwned's, must not push the stack past its limit).
   */
  private wmemWritable(sb: SendBuffer): boolean {
    const m = this.proto.memory;
    return m.allocated < m.high || sb.truesize < this.proto.wmemMin;
  }

  /** Under memory pressure: an autotuned receive buffer falls back to its default. */
  private rcvPressure(): void {
    const dflt = this.proto.rmemDefault;
    if (!this.rcvBufLocked && this.rcvBuf > dflt) {
      this.rcvBuf = Math.min(dflt, this.rcvBufMax);
      this.rcvSpace = Math.min(this.rcvSpace, this.rcvBuf);
    }
  }

  /** @internal Out-of-order bytes held (the budget prunes the largest holders first). */
  get oooHeld(): number {
    return this.memOoo;
  }

  /** @internal Drop out-of-order data from the highest sequence numbers down until `bytes` are freed. */
  pruneOoo(bytes: number): number {
    const o = this.ooo;
    if (o === null) return 0;
    let freed = 0;
    let n = 0;
    while (freed < bytes && o.count > 0) {
      freed += o.popLast() + RANGE_OVERHEAD;
      n++;
    }
    this.memSync();
    return n;
  }

  /** @internal Emit collected events (reentrancy-safe). */
  flushEvents(): void {
    this.memSync();
    if (this.flushing) return;
    if (this.announce) {
      this.announce = false;
      const parent = this.parent;
      if (parent !== null && parent.st === LISTEN && parent.acceptQueue !== null) {
        if (parent.listenerCount('connection') > 0) parent.emit('connection', this);
        else {
          parent.acceptQueue.push(this);
          parent.emit('connection', this);
        }
      }
    }
    if (this.pendingEv === 0) return;
    this.flushing = true;
    try {
      while (this.pendingEv !== 0) {
        const ev = this.pendingEv;
        this.pendingEv = 0;
        if ((ev & EV_CONNECT) !== 0) this.emit('connect');
        if ((ev & EV_READABLE) !== 0) this.emit('readable');
        if ((ev & EV_WRITABLE) !== 0) this.emit('writable');
        if ((ev & EV_END) !== 0 && !this.endEmitted && this.readEnded) {
          this.endEmitted = true;
          this.emit('end');
        }
        if ((ev & EV_ERROR) !== 0 && this.pendingError !== null) this.emit('error', this.pendingError);
        if ((ev & EV_CLOSE) !== 0 && !this.closeEmitted) {
          this.closeEmitted = true;
          this.emit('close');
        }
      }
    } finally {
      this.flushing = false;
    }
  }
}

function clampBacklog(b: number, somaxconn: number): number {
  if (!Number.isFinite(b) || b < 0) b = 0;
  return Math.min(Math.floor(b), somaxconn);
}

function isUnspecified(a: Uint8Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) return false;
  return true;
}


/**
 * A TCP endpoint (RFC 9293): the socket API and lifecycle (bind, listen, connect, read, write,
 * shutdown, close, options, info, teardown, events) and the connection's state, one object of
 * one shape. The protocol machinery is module functions over that object, split as gVisor's and
 * Linux's stacks split it:
 * - connect.ts: handshake, SYN options, the opens (active, passive, SYN cookie), route setup;
 * - receiver.ts: segment acceptance, data and FIN in, ACK scheduling, the advertised window;
 * - sender.ts: segments out (header, options, checksum), the output loop, FIN, ACK/RST/probes;
 * - recovery.ts: ACK processing, SACK scoreboard, RTT/RTO, fast recovery, ICMP and path MTU;
 * - congestion.ts: cwnd growth and reduction (CUBIC, Reno); timers.ts: the three timers;
 * - listen.ts: listeners, SYN queue, accept queue, SYN cookies; timewait.ts: TIME_WAIT;
 * - memory.ts: the stack-wide buffer budget and a connection's share of it;
 * - segment.ts: the one inbound parser and outbound finisher (headers/tcp.ts writes headers).
 * Fields the parts share carry TSDoc's internal tag rather than being private. This file is over
 * 800 lines because the control block's ~130 commented fields and their accessors live here, in
 * one class, so that every endpoint has the same hidden class (the hot path stays monomorphic).
 *
 * Memory (an idle relayed flow is mostly this object, issue 14): the booleans are bits of one
 * integer; sequence numbers are held as signed 32-bit integers (small integers in their slots,
 * where unsigned values above 2^31 were a boxed double each); what few connections use (listener
 * queues, keepalive, retransmission and recovery bookkeeping, errors) is a TcpSeldom made on
 * first use. All behind accessors, so the other parts read and write plain-looking fields.
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
import { TunstackError } from '../../core/errors.js';
import { formatIP, parseIP } from '../../core/address.js';
import type { Timer } from '../../core/clock.js';
import type { Route } from '../../stack/route.js';
import { expectAddress, expectBoolean, expectBytes, expectInteger, expectString, optionalNumber, optionsObject } from '../../core/validate.js';
import { type BufferLease, OooQueue, RecvQueue, Scoreboard, SendBuffer } from './buffers.js';
import { type CcHost, type CongestionControl, type CongestionControlName, createCongestionControl } from './congestion.js';
import { activeOpen } from './connect.js';
import { ATO_MIN, CA_NAMES, CA_OPEN, EV_CLOSE, EV_CONNECT, EV_END, EV_ERROR, EV_READABLE, EV_WRITABLE, IP_PROTO_TCP, KT_KEEPALIVE, RTO_INIT, RTX_RTO } from './constants.js';
import { type MemoryHolder, memSync, RANGE_OVERHEAD, wmemRoom } from './memory.js';
import { listenOn } from './listen.js';
import type { TableEntry, TcpProtocol } from './protocol.js';
import { afterRead } from './receiver.js';
import { currentRto } from './recovery.js';
import { output, queueFin, sendRst } from './sender.js';
import { seqDiff } from './seq.js';
import { armFinWait2, armKeepalive } from './timers.js';
import { CLOSE_WAIT, CLOSED, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, LISTEN, STATE_NAMES, SYN_RECEIVED, SYN_SENT, type TcpEndpointOptions, type TcpInfo, type TcpState, TIME_WAIT } from './types.js';

export { ATO_MAX, ATO_MIN, DUP_THRESH, INITIAL_WINDOW_SEGMENTS, MAX_OOO_SEGMENTS, RTO_FALLBACK, RTO_INIT, RTO_MAX, RTO_MIN } from './constants.js';

/** The endpoint's booleans, one bit each of `bits` (30 bits: a small integer on any V8 build). */
const B_HASHED = 1 << 0;
const B_PORT_OWNER = 1 << 1;
const B_REUSE_ADDRESS = 1 << 2;
const B_V6_ONLY = 1 << 3;
const B_TX_OFFLOAD = 1 << 4;
const B_SG_ON = 1 << 5;
const B_SND_BUF_LOCKED = 1 << 6;
const B_FIN_QUEUED = 1 << 7;
const B_SHUT_WR = 1 << 8;
const B_WANT_WRITABLE = 1 << 9;
const B_RCV_BUF_LOCKED = 1 << 10;
const B_FIN_RCVD = 1 << 11;
const B_END_EMITTED = 1 << 12;
const B_DSACK_PENDING = 1 << 13;
const B_TS_ON = 1 << 14;
const B_SACK_ON = 1 << 15;
const B_WS_ON = 1 << 16;
const B_RTT_INIT = 1 << 17;
const B_SYN_RETRANSMITTED = 1 << 18;
const B_CWND_LIMITED = 1 << 19;
const B_ACK_NOW = 1 << 20;
const B_ACK_LATER = 1 << 21;
const B_NO_DELAY = 1 << 22;
const B_KEEP_ALIVE = 1 << 23;
const B_USER_CLOSED = 1 << 24;
const B_CLOSE_EMITTED = 1 << 25;
const B_FLUSHING = 1 << 26;
const B_IN_OUTPUT = 1 << 27;
const B_OUTPUT_AGAIN = 1 << 28;
const B_ANNOUNCE = 1 << 29;

export interface TcpEndpointEvents {
  connect: [];
  connection: [TcpEndpoint];
  readable: [];
  writable: [];
  end: [];
  close: [];
  error: [TunstackError];
}

/**
 * @internal One owner's handlers for an endpoint's events, called after the emitter's listeners
 * (a relay's flow: five listeners each would cost an EventEmitter record per event and flow).
 */
export interface TcpEndpointSink {
  epReadable(): void;
  epWritable(): void;
  epEnd(): void;
  epError(): void;
  epClose(): void;
}

/**
 * @internal What few connections ever use, made on a connection's first use of any of it: a
 * listener's queues; keepalive and TCP_USER_TIMEOUT settings; zero-window and keepalive probes;
 * retransmission and loss-recovery bookkeeping; D-SACK edges; the out-of-window ACK rate limit;
 * errors; send-buffer bounds set by the user or the memory budget. An idle connection (a relayed
 * flow) holds none: 30 slots and 3-4 boxed doubles less in each endpoint. Hot paths that write a
 * field's default (retries = 0 on every ACK) go through setters that make nothing.
 */
export class TcpSeldom {
  backlog = 0;
  acceptQueue: TcpEndpoint[] | null = null;
  /** Embryonic (SYN_RECEIVED) children of a listener. */
  synQueue: Set<TcpEndpoint> | null = null;
  /** Last time a SYN cookie was sent (ms), -Infinity if never. */
  lastCookieTime = -Infinity;
  keepIdle = 0;
  keepIntvl = 0;
  keepCnt = 0;
  kaProbes = 0;
  userTimeout = 0;
  probesOut = 0;
  persistBackoff = 0;
  /** Time of the first retransmission of the current data (for TCP_USER_TIMEOUT), or -1. */
  firstRtxTime = -1;
  /** cwnd when the last loss recovery or timeout began. */
  priorCwnd = 0;
  bytesRetrans = 0;
  totalRetrans = 0;
  /** The D-SACK block to send (valid while the endpoint's dsackPending). */
  dsackL = 0;
  dsackR = 0;
  lastOowAck = -Infinity;
  softError: TunstackError | null = null;
  pendingError: TunstackError | null = null;
  sndBufLimit = 0;
  /** Send-buffer bound lowered when the memory budget refused a write (0: none). */
  sndBufCap = 0;
  backoff = 0;
  /** Consecutive timeouts (SYN, SYN-ACK or data). */
  retries = 0;
  holeEnd = 0;
  /** Lost-retransmission detection: the left edge's retransmission (-1: none) and SND.MAX when it left. */
  edgeSeq = -1;
  edgeMark = 0;
  dupAcks = 0;
  /** The keepalive or FIN_WAIT_2 timer (keepKind says which). */
  keepTimer: Timer | null = null;
  keepKind = KT_KEEPALIVE;
  /** Time the connection last received a segment, kept while keepalive is on (its idle time). */
  lastHeard = 0;
}

export class TcpEndpoint extends EventEmitter<TcpEndpointEvents> implements TableEntry, CcHost, MemoryHolder {
  readonly family: 4 | 6;
  /** @internal The booleans below, one bit each (B_*): one slot instead of thirty. */
  bits = 0;
  /** @internal */ hnext: TableEntry | null = null;
  /** @internal */ hkey = 0;
  /** @internal */ get hashed(): boolean { return (this.bits & B_HASHED) !== 0; }
  /** @internal */ set hashed(v: boolean) { this.bits = v ? this.bits | B_HASHED : this.bits & ~B_HASHED; }
  /** @internal */ st = CLOSED;
  /** @internal */ laddr: Uint8Array | null = null;
  /** @internal */ raddr: Uint8Array | null = null;
  /** @internal */ lport = 0;
  /** @internal */ rport = 0;
  /** @internal Holds a PortManager reservation for lport. */
  get portOwner(): boolean { return (this.bits & B_PORT_OWNER) !== 0; }
  /** @internal */ set portOwner(v: boolean) { this.bits = v ? this.bits | B_PORT_OWNER : this.bits & ~B_PORT_OWNER; }
  /** @internal */ get reuseAddress(): boolean { return (this.bits & B_REUSE_ADDRESS) !== 0; }
  /** @internal */ set reuseAddress(v: boolean) { this.bits = v ? this.bits | B_REUSE_ADDRESS : this.bits & ~B_REUSE_ADDRESS; }
  /** IPV6_V6ONLY (see TcpEndpointOptions.v6Only); always false for IPv4. */
  get v6Only(): boolean { return (this.bits & B_V6_ONLY) !== 0; }
  /** @internal */ route: Route | null = null;
  /** @internal */ headroom = 64;
  /** @internal Pseudo-header partial sum without the length (addresses and protocol). */
  pseudoBase = 0;
  /** @internal */ get txOffload(): boolean { return (this.bits & B_TX_OFFLOAD) !== 0; }
  /** @internal */ set txOffload(v: boolean) { this.bits = v ? this.bits | B_TX_OFFLOAD : this.bits & ~B_TX_OFFLOAD; }
  /** @internal Segments carry their payload as views of the send buffer (the link does scatter-gather). */
  get sgOn(): boolean { return (this.bits & B_SG_ON) !== 0; }
  /** @internal */ set sgOn(v: boolean) { this.bits = v ? this.bits | B_SG_ON : this.bits & ~B_SG_ON; }
  /**
   * @internal TCP segmentation offload: the most payload bytes one super-packet may carry (the
   * link cuts it into MSS-sized segments: LinkCapability.GSO), 0 when every segment is sent as is.
   */
  gsoMax = 0;

  // ---- the listener of an accepted child (its queues and backlog: TcpSeldom)
  /** @internal */ parent: TcpEndpoint | null = null;

  // ---- send sequence space
  /** @internal */ iss32 = 0;
  /** @internal */ sndUna32 = 0;
  /** @internal */ sndNxt32 = 0;
  /** @internal */ sndMax32 = 0;
  /** @internal */ sndWnd = 0;
  /** @internal */ sndWl132 = 0;
  /** @internal */ sndWl232 = 0;
  /** @internal */ maxSndWnd = 0;
  /** @internal */ sndWscale = 0;
  /** @internal MSS the peer announced (or the default). */
  peerMss = 536;
  /** Payload bytes per segment (path and peer limits, timestamp option taken off). */
  sndMss = 536;
  /** @internal */ advMss = 536;
  /** @internal */ pmtu = 0;
  /** @internal */ sndBuf: SendBuffer | null = null;
  /** @internal */ get sndBufLocked(): boolean { return (this.bits & B_SND_BUF_LOCKED) !== 0; }
  /** @internal */ set sndBufLocked(v: boolean) { this.bits = v ? this.bits | B_SND_BUF_LOCKED : this.bits & ~B_SND_BUF_LOCKED; }
  /** @internal */ get finQueued(): boolean { return (this.bits & B_FIN_QUEUED) !== 0; }
  /** @internal */ set finQueued(v: boolean) { this.bits = v ? this.bits | B_FIN_QUEUED : this.bits & ~B_FIN_QUEUED; }
  /** @internal Sequence number of our FIN (valid when finQueued). */
  finSeq32 = 0;
  private get shutWr(): boolean { return (this.bits & B_SHUT_WR) !== 0; }
  private set shutWr(v: boolean) { this.bits = v ? this.bits | B_SHUT_WR : this.bits & ~B_SHUT_WR; }
  /** @internal */ get wantWritable(): boolean { return (this.bits & B_WANT_WRITABLE) !== 0; }
  /** @internal */ set wantWritable(v: boolean) { this.bits = v ? this.bits | B_WANT_WRITABLE : this.bits & ~B_WANT_WRITABLE; }
  /** @internal Bytes charged to the stack's memory budget, and the out-of-order part of them. */
  memHeld = 0;
  /** @internal */ memOoo = 0;

  // ---- receive sequence space
  /** @internal */ irs32 = 0;
  /** @internal */ rcvNxt32 = 0;
  /** @internal Right edge of the window we advertised. */
  rcvAdv32 = 0;
  /** @internal */ rcvWscale = 0;
  /** @internal */ rcvBuf = 0;
  /** @internal */ rcvBufMax = 0;
  /** @internal */ get rcvBufLocked(): boolean { return (this.bits & B_RCV_BUF_LOCKED) !== 0; }
  /** @internal */ set rcvBufLocked(v: boolean) { this.bits = v ? this.bits | B_RCV_BUF_LOCKED : this.bits & ~B_RCV_BUF_LOCKED; }
  /** @internal */ rcvQ: RecvQueue | null = null;
  /** @internal */ ooo: OooQueue | null = null;
  /** @internal Sequence number of a FIN received out of order, or -1. */
  oooFin32: number | null = null;
  /** @internal */ get finRcvd(): boolean { return (this.bits & B_FIN_RCVD) !== 0; }
  /** @internal */ set finRcvd(v: boolean) { this.bits = v ? this.bits | B_FIN_RCVD : this.bits & ~B_FIN_RCVD; }
  private get endEmitted(): boolean { return (this.bits & B_END_EMITTED) !== 0; }
  private set endEmitted(v: boolean) { this.bits = v ? this.bits | B_END_EMITTED : this.bits & ~B_END_EMITTED; }
  /** @internal */ rcvMss = 536;
  /** @internal */ lastAckSent32 = 0;
  /** @internal */ get dsackPending(): boolean { return (this.bits & B_DSACK_PENDING) !== 0; }
  /** @internal */ set dsackPending(v: boolean) { this.bits = v ? this.bits | B_DSACK_PENDING : this.bits & ~B_DSACK_PENDING; }

  // ---- options
  /** @internal */ get tsOn(): boolean { return (this.bits & B_TS_ON) !== 0; }
  /** @internal */ set tsOn(v: boolean) { this.bits = v ? this.bits | B_TS_ON : this.bits & ~B_TS_ON; }
  /** @internal */ tsRecent32 = 0;
  /** @internal */ tsOffset32 = 0;
  /** @internal */ get sackOn(): boolean { return (this.bits & B_SACK_ON) !== 0; }
  /** @internal */ set sackOn(v: boolean) { this.bits = v ? this.bits | B_SACK_ON : this.bits & ~B_SACK_ON; }
  /** @internal */ get wsOn(): boolean { return (this.bits & B_WS_ON) !== 0; }
  /** @internal */ set wsOn(v: boolean) { this.bits = v ? this.bits | B_WS_ON : this.bits & ~B_WS_ON; }

  // ---- RTT / RTO
  srtt = 0;
  /** @internal */ rttvar = 0;
  /** @internal */ get rttInit(): boolean { return (this.bits & B_RTT_INIT) !== 0; }
  /** @internal */ set rttInit(v: boolean) { this.bits = v ? this.bits | B_RTT_INIT : this.bits & ~B_RTT_INIT; }
  /** @internal */ rtoBase = RTO_INIT;
  /** @internal */ rttSeq32 = 0;
  /** @internal Send time of the timed segment (the SYN or SYN-ACK in the handshake), or -1. */
  rttTime = -1;
  /** @internal */ get synRetransmitted(): boolean { return (this.bits & B_SYN_RETRANSMITTED) !== 0; }
  /** @internal */ set synRetransmitted(v: boolean) { this.bits = v ? this.bits | B_SYN_RETRANSMITTED : this.bits & ~B_SYN_RETRANSMITTED; }
  /** @internal */ rtxKind = RTX_RTO;

  // ---- congestion control
  cwnd = 0;
  ssthresh = 0x7fffffff;
  /** @internal The algorithm's name; its state object is made on first use (see `cc`). */
  ccName: CongestionControlName;
  private ccState: CongestionControl | null = null;
  /** @internal */ caState = CA_OPEN;
  /** @internal */ recoveryPoint32 = 0;
  /** @internal */ highRxt32 = 0;
  /** @internal */ sb: Scoreboard | null = null;
  /** @internal */ get cwndLimited(): boolean { return (this.bits & B_CWND_LIMITED) !== 0; }
  /** @internal */ set cwndLimited(v: boolean) { this.bits = v ? this.bits | B_CWND_LIMITED : this.bits & ~B_CWND_LIMITED; }
  /** @internal Time the last data segment was sent (for restart after idle). */
  lastSendTime = 0;

  // ---- ACK scheduling
  /** @internal */ quickAcks = 0;
  /** @internal */ ato = ATO_MIN;
  /** @internal */ lastRcvTime = -1;
  /** @internal */ get ackNow(): boolean { return (this.bits & B_ACK_NOW) !== 0; }
  /** @internal */ set ackNow(v: boolean) { this.bits = v ? this.bits | B_ACK_NOW : this.bits & ~B_ACK_NOW; }
  /** @internal */ get ackLater(): boolean { return (this.bits & B_ACK_LATER) !== 0; }
  /** @internal */ set ackLater(v: boolean) { this.bits = v ? this.bits | B_ACK_LATER : this.bits & ~B_ACK_LATER; }

  // ---- timers
  /** @internal */ rtxTimer: Timer | null = null;
  /** @internal */ delackTimer: Timer | null = null;

  // ---- options set by the user
  /** @internal */ get noDelay(): boolean { return (this.bits & B_NO_DELAY) !== 0; }
  /** @internal */ set noDelay(v: boolean) { this.bits = v ? this.bits | B_NO_DELAY : this.bits & ~B_NO_DELAY; }
  /** @internal */ get keepAlive(): boolean { return (this.bits & B_KEEP_ALIVE) !== 0; }
  /** @internal */ set keepAlive(v: boolean) { this.bits = v ? this.bits | B_KEEP_ALIVE : this.bits & ~B_KEEP_ALIVE; }

  // ---- lifecycle
  /** @internal close() was called: the endpoint is an orphan finishing its close. */
  get userClosed(): boolean { return (this.bits & B_USER_CLOSED) !== 0; }
  /** @internal */ set userClosed(v: boolean) { this.bits = v ? this.bits | B_USER_CLOSED : this.bits & ~B_USER_CLOSED; }
  /** @internal */ get closeEmitted(): boolean { return (this.bits & B_CLOSE_EMITTED) !== 0; }
  /** @internal */ set closeEmitted(v: boolean) { this.bits = v ? this.bits | B_CLOSE_EMITTED : this.bits & ~B_CLOSE_EMITTED; }
  /** @internal */ pendingEv = 0;
  private get flushing(): boolean { return (this.bits & B_FLUSHING) !== 0; }
  private set flushing(v: boolean) { this.bits = v ? this.bits | B_FLUSHING : this.bits & ~B_FLUSHING; }
  /** @internal */ get inOutput(): boolean { return (this.bits & B_IN_OUTPUT) !== 0; }
  /** @internal */ set inOutput(v: boolean) { this.bits = v ? this.bits | B_IN_OUTPUT : this.bits & ~B_IN_OUTPUT; }
  /** @internal */ get outputAgain(): boolean { return (this.bits & B_OUTPUT_AGAIN) !== 0; }
  /** @internal */ set outputAgain(v: boolean) { this.bits = v ? this.bits | B_OUTPUT_AGAIN : this.bits & ~B_OUTPUT_AGAIN; }
  /** @internal The accepted child should be announced to its listener. */
  get announce(): boolean { return (this.bits & B_ANNOUNCE) !== 0; }
  /** @internal */ set announce(v: boolean) { this.bits = v ? this.bits | B_ANNOUNCE : this.bits & ~B_ANNOUNCE; }
  /** @internal See TcpEndpointSink. */
  sink: TcpEndpointSink | null = null;
  /** @internal State few connections use, made on first use (see TcpSeldom). */
  seldom: TcpSeldom | null = null;

  // ---- per-connection statistics
  /** @internal */ bytesSent = 0;
  /** @internal */ bytesAcked = 0;
  /** @internal */ bytesReceived = 0;
  /** @internal */ segsOut = 0;
  /** @internal */ segsIn = 0;
  /** @internal */ dataSegsOut = 0;
  /** @internal */ dataSegsIn = 0;

  constructor(
    /** @internal */ readonly proto: TcpProtocol,
    options: TcpEndpointOptions = {},
  ) {
    super();
    this.family = options.family ?? 4;
    if (this.family !== 4 && this.family !== 6) throw new TunstackError('EAFNOSUPPORT', `bad family ${String(options.family)}`);
    if (this.family === 6 && (options.v6Only ?? false)) this.bits = B_V6_ONLY;
    this.ccName = options.congestionControl === 'reno' || (options.congestionControl === undefined && proto.congestionControl === 'reno') ? 'reno' : 'cubic';
    this.noDelay = options.noDelay ?? false;
    if (options.sendBufferSize !== undefined) this.sendBufferSize = options.sendBufferSize;
    if (options.receiveBufferSize !== undefined) this.receiveBufferSize = options.receiveBufferSize;
  }

  // =====================================================================================
  // Sequence numbers: unsigned 32-bit values to every reader, held as signed 32-bit integers
  // (`x | 0`) so that each is a small integer in its slot. Held as they are, any value at or
  // above 2^31 turns the field into a double for every endpoint (one shape), and V8 then boxes
  // it in a 16-byte heap number per endpoint and field. The getters' `>>> 0` is free in
  // optimized code. oooFin and edgeSeq read -1 for "none" (null in the slot).
  // =====================================================================================

  /** @internal */ get iss(): number { return this.iss32 >>> 0; }
  /** @internal */ set iss(v: number) { this.iss32 = v | 0; }
  /** @internal */ get sndUna(): number { return this.sndUna32 >>> 0; }
  /** @internal */ set sndUna(v: number) { this.sndUna32 = v | 0; }
  /** @internal */ get sndNxt(): number { return this.sndNxt32 >>> 0; }
  /** @internal */ set sndNxt(v: number) { this.sndNxt32 = v | 0; }
  /** @internal */ get sndMax(): number { return this.sndMax32 >>> 0; }
  /** @internal */ set sndMax(v: number) { this.sndMax32 = v | 0; }
  /** @internal */ get sndWl1(): number { return this.sndWl132 >>> 0; }
  /** @internal */ set sndWl1(v: number) { this.sndWl132 = v | 0; }
  /** @internal */ get sndWl2(): number { return this.sndWl232 >>> 0; }
  /** @internal */ set sndWl2(v: number) { this.sndWl232 = v | 0; }
  /** @internal */ get finSeq(): number { return this.finSeq32 >>> 0; }
  /** @internal */ set finSeq(v: number) { this.finSeq32 = v | 0; }
  /** @internal */ get irs(): number { return this.irs32 >>> 0; }
  /** @internal */ set irs(v: number) { this.irs32 = v | 0; }
  /** @internal */ get rcvNxt(): number { return this.rcvNxt32 >>> 0; }
  /** @internal */ set rcvNxt(v: number) { this.rcvNxt32 = v | 0; }
  /** @internal */ get rcvAdv(): number { return this.rcvAdv32 >>> 0; }
  /** @internal */ set rcvAdv(v: number) { this.rcvAdv32 = v | 0; }
  /** @internal */ get lastAckSent(): number { return this.lastAckSent32 >>> 0; }
  /** @internal */ set lastAckSent(v: number) { this.lastAckSent32 = v | 0; }
  /** @internal */ get tsRecent(): number { return this.tsRecent32 >>> 0; }
  /** @internal */ set tsRecent(v: number) { this.tsRecent32 = v | 0; }
  /** @internal */ get tsOffset(): number { return this.tsOffset32 >>> 0; }
  /** @internal */ set tsOffset(v: number) { this.tsOffset32 = v | 0; }
  /** @internal */ get rttSeq(): number { return this.rttSeq32 >>> 0; }
  /** @internal */ set rttSeq(v: number) { this.rttSeq32 = v | 0; }
  /** @internal */ get recoveryPoint(): number { return this.recoveryPoint32 >>> 0; }
  /** @internal */ set recoveryPoint(v: number) { this.recoveryPoint32 = v | 0; }
  /** @internal */ get highRxt(): number { return this.highRxt32 >>> 0; }
  /** @internal */ set highRxt(v: number) { this.highRxt32 = v | 0; }
  /** @internal */ get oooFin(): number { const v = this.oooFin32; return v === null ? -1 : v >>> 0; }
  /** @internal */ set oooFin(v: number) { this.oooFin32 = v < 0 ? null : v | 0; }

  // =====================================================================================
  // The seldom-used state (TcpSeldom): each field reads its default until the object exists;
  // writing the default does not make it.
  // =====================================================================================

  /** @internal The seldom-used state, made now if missing. */
  get rare(): TcpSeldom {
    return (this.seldom ??= new TcpSeldom());
  }

  /** @internal */ get backlog(): number { const r = this.seldom; return r === null ? 0 : r.backlog; }
  /** @internal */ set backlog(v: number) { const r = this.seldom; if (r !== null) r.backlog = v; else if (v !== 0) this.rare.backlog = v; }
  /** @internal */ get acceptQueue(): TcpEndpoint[] | null { const r = this.seldom; return r === null ? null : r.acceptQueue; }
  /** @internal */ set acceptQueue(v: TcpEndpoint[] | null) { const r = this.seldom; if (r !== null) r.acceptQueue = v; else if (v !== null) this.rare.acceptQueue = v; }
  /** @internal */ get synQueue(): Set<TcpEndpoint> | null { const r = this.seldom; return r === null ? null : r.synQueue; }
  /** @internal */ set synQueue(v: Set<TcpEndpoint> | null) { const r = this.seldom; if (r !== null) r.synQueue = v; else if (v !== null) this.rare.synQueue = v; }
  /** @internal */ get lastCookieTime(): number { const r = this.seldom; return r === null ? -Infinity : r.lastCookieTime; }
  /** @internal */ set lastCookieTime(v: number) { const r = this.seldom; if (r !== null) r.lastCookieTime = v; else if (v !== -Infinity) this.rare.lastCookieTime = v; }
  /** @internal */ get keepIdle(): number { const r = this.seldom; return r === null ? 0 : r.keepIdle; }
  /** @internal */ set keepIdle(v: number) { const r = this.seldom; if (r !== null) r.keepIdle = v; else if (v !== 0) this.rare.keepIdle = v; }
  /** @internal */ get keepIntvl(): number { const r = this.seldom; return r === null ? 0 : r.keepIntvl; }
  /** @internal */ set keepIntvl(v: number) { const r = this.seldom; if (r !== null) r.keepIntvl = v; else if (v !== 0) this.rare.keepIntvl = v; }
  /** @internal */ get keepCnt(): number { const r = this.seldom; return r === null ? 0 : r.keepCnt; }
  /** @internal */ set keepCnt(v: number) { const r = this.seldom; if (r !== null) r.keepCnt = v; else if (v !== 0) this.rare.keepCnt = v; }
  /** @internal */ get kaProbes(): number { const r = this.seldom; return r === null ? 0 : r.kaProbes; }
  /** @internal */ set kaProbes(v: number) { const r = this.seldom; if (r !== null) r.kaProbes = v; else if (v !== 0) this.rare.kaProbes = v; }
  /** @internal */ get userTimeout(): number { const r = this.seldom; return r === null ? 0 : r.userTimeout; }
  /** @internal */ set userTimeout(v: number) { const r = this.seldom; if (r !== null) r.userTimeout = v; else if (v !== 0) this.rare.userTimeout = v; }
  /** @internal */ get probesOut(): number { const r = this.seldom; return r === null ? 0 : r.probesOut; }
  /** @internal */ set probesOut(v: number) { const r = this.seldom; if (r !== null) r.probesOut = v; else if (v !== 0) this.rare.probesOut = v; }
  /** @internal */ get persistBackoff(): number { const r = this.seldom; return r === null ? 0 : r.persistBackoff; }
  /** @internal */ set persistBackoff(v: number) { const r = this.seldom; if (r !== null) r.persistBackoff = v; else if (v !== 0) this.rare.persistBackoff = v; }
  /** @internal */ get firstRtxTime(): number { const r = this.seldom; return r === null ? -1 : r.firstRtxTime; }
  /** @internal */ set firstRtxTime(v: number) { const r = this.seldom; if (r !== null) r.firstRtxTime = v; else if (v !== -1) this.rare.firstRtxTime = v; }
  /** @internal */ get priorCwnd(): number { const r = this.seldom; return r === null ? 0 : r.priorCwnd; }
  /** @internal */ set priorCwnd(v: number) { const r = this.seldom; if (r !== null) r.priorCwnd = v; else if (v !== 0) this.rare.priorCwnd = v; }
  /** @internal */ get bytesRetrans(): number { const r = this.seldom; return r === null ? 0 : r.bytesRetrans; }
  /** @internal */ set bytesRetrans(v: number) { const r = this.seldom; if (r !== null) r.bytesRetrans = v; else if (v !== 0) this.rare.bytesRetrans = v; }
  /** @internal */ get totalRetrans(): number { const r = this.seldom; return r === null ? 0 : r.totalRetrans; }
  /** @internal */ set totalRetrans(v: number) { const r = this.seldom; if (r !== null) r.totalRetrans = v; else if (v !== 0) this.rare.totalRetrans = v; }
  /** @internal */ get dsackL(): number { const r = this.seldom; return r === null ? 0 : r.dsackL; }
  /** @internal */ set dsackL(v: number) { const r = this.seldom; if (r !== null) r.dsackL = v; else if (v !== 0) this.rare.dsackL = v; }
  /** @internal */ get dsackR(): number { const r = this.seldom; return r === null ? 0 : r.dsackR; }
  /** @internal */ set dsackR(v: number) { const r = this.seldom; if (r !== null) r.dsackR = v; else if (v !== 0) this.rare.dsackR = v; }
  /** @internal */ get lastOowAck(): number { const r = this.seldom; return r === null ? -Infinity : r.lastOowAck; }
  /** @internal */ set lastOowAck(v: number) { const r = this.seldom; if (r !== null) r.lastOowAck = v; else if (v !== -Infinity) this.rare.lastOowAck = v; }
  /** @internal */ get softError(): TunstackError | null { const r = this.seldom; return r === null ? null : r.softError; }
  /** @internal */ set softError(v: TunstackError | null) { const r = this.seldom; if (r !== null) r.softError = v; else if (v !== null) this.rare.softError = v; }
  /** @internal */ get pendingError(): TunstackError | null { const r = this.seldom; return r === null ? null : r.pendingError; }
  /** @internal */ set pendingError(v: TunstackError | null) { const r = this.seldom; if (r !== null) r.pendingError = v; else if (v !== null) this.rare.pendingError = v; }
  /** @internal */ get sndBufLimit(): number { const r = this.seldom; return r === null ? 0 : r.sndBufLimit; }
  /** @internal */ set sndBufLimit(v: number) { const r = this.seldom; if (r !== null) r.sndBufLimit = v; else if (v !== 0) this.rare.sndBufLimit = v; }
  /** @internal */ get sndBufCap(): number { const r = this.seldom; return r === null ? 0 : r.sndBufCap; }
  /** @internal */ set sndBufCap(v: number) { const r = this.seldom; if (r !== null) r.sndBufCap = v; else if (v !== 0) this.rare.sndBufCap = v; }
  /** @internal */ get backoff(): number { const r = this.seldom; return r === null ? 0 : r.backoff; }
  /** @internal */ set backoff(v: number) { const r = this.seldom; if (r !== null) r.backoff = v; else if (v !== 0) this.rare.backoff = v; }
  /** @internal */ get retries(): number { const r = this.seldom; return r === null ? 0 : r.retries; }
  /** @internal */ set retries(v: number) { const r = this.seldom; if (r !== null) r.retries = v; else if (v !== 0) this.rare.retries = v; }
  /** @internal */ get holeEnd(): number { const r = this.seldom; return r === null ? 0 : r.holeEnd; }
  /** @internal */ set holeEnd(v: number) { const r = this.seldom; if (r !== null) r.holeEnd = v; else if (v !== 0) this.rare.holeEnd = v; }
  /** @internal */ get edgeSeq(): number { const r = this.seldom; return r === null ? -1 : r.edgeSeq; }
  /** @internal */ set edgeSeq(v: number) { const r = this.seldom; if (r !== null) r.edgeSeq = v; else if (v !== -1) this.rare.edgeSeq = v; }
  /** @internal */ get edgeMark(): number { const r = this.seldom; return r === null ? 0 : r.edgeMark; }
  /** @internal */ set edgeMark(v: number) { const r = this.seldom; if (r !== null) r.edgeMark = v; else if (v !== 0) this.rare.edgeMark = v; }
  /** @internal */ get dupAcks(): number { const r = this.seldom; return r === null ? 0 : r.dupAcks; }
  /** @internal */ set dupAcks(v: number) { const r = this.seldom; if (r !== null) r.dupAcks = v; else if (v !== 0) this.rare.dupAcks = v; }
  /** @internal */ get keepTimer(): Timer | null { const r = this.seldom; return r === null ? null : r.keepTimer; }
  /** @internal */ set keepTimer(v: Timer | null) { const r = this.seldom; if (r !== null) r.keepTimer = v; else if (v !== null) this.rare.keepTimer = v; }
  /** @internal */ get keepKind(): number { const r = this.seldom; return r === null ? KT_KEEPALIVE : r.keepKind; }
  /** @internal */ set keepKind(v: number) { const r = this.seldom; if (r !== null) r.keepKind = v; else if (v !== KT_KEEPALIVE) this.rare.keepKind = v; }
  /** @internal */ get lastHeard(): number { const r = this.seldom; return r === null ? 0 : r.lastHeard; }
  /** @internal */ set lastHeard(v: number) { const r = this.seldom; if (r !== null) r.lastHeard = v; else if (v !== 0) this.rare.lastHeard = v; }

  // =====================================================================================
  // Public surface
  // =====================================================================================

  /**
   * @internal The congestion control state, made when first needed: an idle connection (the
   * handshake done, no data yet) holds none.
   */
  get cc(): CongestionControl {
    return (this.ccState ??= createCongestionControl(this.ccName));
  }

  set cc(c: CongestionControl) {
    this.ccState = c;
    this.ccName = c.name;
  }

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
    return this.ccName;
  }

  /** Change the algorithm (before connect, or any time: the new one starts from the current cwnd). */
  set congestionControl(name: CongestionControlName) {
    if (name !== this.ccName) this.cc = createCongestionControl(name);
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
    listenOn(this, backlog);
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
    activeOpen(this, raddr, port);
    this.flushEvents();
  }

  read(max = Infinity): Uint8Array | null {
    if (max !== Infinity) optionalNumber(max, 'read', 'max', 0, Number.MAX_SAFE_INTEGER);
    const q = this.rcvQ;
    if (q === null || q.bytes === 0 || !(max > 0)) return null;
    const out = q.take(max);
    afterRead(this, out.length);
    this.flushEvents();
    return out;
  }

  /**
   * @internal For stream adapters: the next chunk of at most `max` bytes, a received payload
   * without copying when it holds at least `minChunk` bytes, else small payloads joined (`read`'s
   * copy is then bounded by `max`).
   */
  readStreamChunk(max: number, minChunk: number): Uint8Array | null {
    const q = this.rcvQ;
    if (q === null || q.bytes === 0) return null;
    const out = q.takeChunk(max, minChunk);
    afterRead(this, out.length);
    this.flushEvents();
    return out;
  }

  /** Zero-copy read of the next received chunk (a segment payload as it arrived), or null. */
  readChunk(): Uint8Array | null {
    const q = this.rcvQ;
    if (q === null || q.bytes === 0) return null;
    const out = q.shift()!;
    afterRead(this, out.length);
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
    if (n > 0) n = wmemRoom(this, n);
    if (n < data.length) this.wantWritable = true;
    if (n > 0) {
      sb.write(data, 0, n);
      if (st === ESTABLISHED || st === CLOSE_WAIT) output(this);
    }
    this.flushEvents();
    return n;
  }

  /**
   * Hand `data` to the send buffer without copying it, as Node's `stream.write`: all of it is
   * taken (the buffer may go over its bound by this call's bytes), and the result says whether
   * to go on (false: wait for 'writable'). `data` must not change until it is acknowledged;
   * `lease.release()` is called once when it is no longer referenced, also when this throws.
   * `end`: half-close after it (as `shutdown()`), the FIN going out with the data's last segment.
   */
  writeOwned(data: Uint8Array, lease: BufferLease | null = null, end = false): boolean {
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
      if (end) {
        this.shutWr = true;
        queueFin(this);
      } else if (st === ESTABLISHED || st === CLOSE_WAIT) output(this);
    } else {
      lease?.release();
      if (end) this.shutdown();
    }
    const more = sb.length < this.sendBufferSize && wmemRoom(this, 1) > 0;
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
    queueFin(this);
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
      sendRst(this, this.sndMax);
      this.destroy(true);
      this.flushEvents();
      return;
    }
    this.shutWr = true;
    queueFin(this);
    if (this.st === FIN_WAIT_2) armFinWait2(this);
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
      sendRst(this, this.sndMax);
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
    if (on && (this.st === ESTABLISHED || this.st === CLOSE_WAIT)) output(this);
    this.flushEvents();
  }

  setKeepAlive(on: boolean, idleMs?: number, intervalMs?: number, count?: number): void {
    expectBoolean(on, 'setKeepAlive', 'on');
    optionalNumber(idleMs, 'setKeepAlive', 'idleMs', 0, 0x7fffffff);
    optionalNumber(intervalMs, 'setKeepAlive', 'intervalMs', 0, 0x7fffffff);
    optionalNumber(count, 'setKeepAlive', 'count', 0, 127);
    const p = this.proto;
    // The idle time counts from now when keepalive comes on (segments update it while it is on).
    if (on && !this.keepAlive) this.lastHeard = p.stack.clock.now();
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
    if (this.isSynchronized()) armKeepalive(this, this.keepIdle);
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
      congestionControl: this.ccName,
      rttMs: this.srtt,
      rttvarMs: this.rttvar,
      rtoMs: currentRto(this),
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

  // =====================================================================================
  // Segment building
  // =====================================================================================

  // =====================================================================================
  // Output
  // =====================================================================================

  // =====================================================================================
  // Timers
  // =====================================================================================

  // =====================================================================================
  // RTT
  // =====================================================================================

  // =====================================================================================
  // Input
  // =====================================================================================

  /** @internal */ isSynchronized(): boolean {
    const st = this.st;
    return st >= ESTABLISHED && st !== TIME_WAIT;
  }

  /** @internal */ copiedInRtt = 0;
  /** @internal */ rttWindowStart = -1;
  /** @internal */ rcvSpace = 0;

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

  /** @internal Abort with an error: 'error' then 'close'. */
  fail(err: TunstackError): void {
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
    memSync(this);
    return n;
  }

  /** @internal Emit collected events (reentrancy-safe). */
  flushEvents(): void {
    memSync(this);
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
        if ((ev & EV_READABLE) !== 0) {
          this.emit('readable');
          this.sink?.epReadable();
        }
        if ((ev & EV_WRITABLE) !== 0) {
          this.emit('writable');
          this.sink?.epWritable();
        }
        if ((ev & EV_END) !== 0 && !this.endEmitted && this.readEnded) {
          this.endEmitted = true;
          this.emit('end');
          this.sink?.epEnd();
        }
        if ((ev & EV_ERROR) !== 0 && this.pendingError !== null) {
          this.emit('error', this.pendingError);
          this.sink?.epError();
        }
        if ((ev & EV_CLOSE) !== 0 && !this.closeEmitted) {
          this.closeEmitted = true;
          this.emit('close');
          this.sink?.epClose();
        }
      }
    } finally {
      this.flushing = false;
    }
  }
}

function isUnspecified(a: Uint8Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) return false;
  return true;
}


/** Public types of the TCP implementation: states, statistics, per-connection info, options. */
import type { CongestionControlName } from './congestion.js';

export type TcpState =
  | 'CLOSED'
  | 'LISTEN'
  | 'SYN_SENT'
  | 'SYN_RECEIVED'
  | 'ESTABLISHED'
  | 'FIN_WAIT_1'
  | 'FIN_WAIT_2'
  | 'CLOSE_WAIT'
  | 'CLOSING'
  | 'LAST_ACK'
  | 'TIME_WAIT';

/** Internal state numbers (index into STATE_NAMES). */
export const CLOSED = 0;
export const LISTEN = 1;
export const SYN_SENT = 2;
export const SYN_RECEIVED = 3;
export const ESTABLISHED = 4;
export const FIN_WAIT_1 = 5;
export const FIN_WAIT_2 = 6;
export const CLOSE_WAIT = 7;
export const CLOSING = 8;
export const LAST_ACK = 9;
export const TIME_WAIT = 10;

export const STATE_NAMES: readonly TcpState[] = [
  'CLOSED',
  'LISTEN',
  'SYN_SENT',
  'SYN_RECEIVED',
  'ESTABLISHED',
  'FIN_WAIT_1',
  'FIN_WAIT_2',
  'CLOSE_WAIT',
  'CLOSING',
  'LAST_ACK',
  'TIME_WAIT',
];

/** Protocol-wide counters (names follow Linux's TCP MIB and TcpExt where they exist). */
export interface TcpStats {
  activeOpens: number;
  passiveOpens: number;
  attemptFails: number;
  estabResets: number;
  /** Connections now ESTABLISHED or CLOSE_WAIT. */
  currEstab: number;
  inSegs: number;
  outSegs: number;
  retransSegs: number;
  inErrs: number;
  inCsumErrors: number;
  outRsts: number;
  rtoExpirations: number;
  /** Loss recoveries entered with SACK (RFC 6675) and without (NewReno, RFC 6582). */
  sackRecoveries: number;
  renoRecoveries: number;
  fastRetransmits: number;
  /** Retransmissions found lost from later SACKs and sent again before the RTO. */
  lostRetransmits: number;
  synCookiesSent: number;
  synCookiesValidated: number;
  synCookiesFailed: number;
  /** SYN or final ACK dropped because the accept queue was full. */
  listenOverflows: number;
  /** SYNs dropped at a listener for any reason (overflows included). */
  listenDrops: number;
  challengeAcks: number;
  /** Challenge ACKs not sent because of the rate limit. */
  challengeAcksSuppressed: number;
  timeWaitReused: number;
  /** TIME_WAIT records now held. */
  timeWaitCount: number;
  timeWaitExpired: number;
  timeWaitKilled: number;
  pawsDropped: number;
  oooSegs: number;
  /** Out-of-order segments dropped: over the receive buffer or the segment bound, or evicted to make room. */
  oooDropped: number;
  delayedAcks: number;
  dsackSent: number;
  zeroWindowProbes: number;
  keepAliveProbes: number;
  keepAliveTimeouts: number;
  abortOnData: number;
  abortOnTimeout: number;
  abortOnClose: number;
  pmtuUpdates: number;
  /** Segments the IP layer refused for their size (EMSGSIZE): each re-reads the path MTU. */
  sendTooBig: number;
  /** RSTs received that were not in window, and RSTs that reset a connection. */
  rstsIgnored: number;
  rstsAccepted: number;
  /** Segments dropped as unacceptable (out of window, bad ACK). */
  outOfWindow: number;
  /** Bytes charged to the stack's TCP memory budget now (tcp_memory_allocated). */
  memoryAllocated: number;
  /** 1 while under memory pressure, else 0. */
  memoryPressure: number;
  /** Times memory pressure was entered (TCPMemoryPressures). */
  memoryPressures: number;
  /** Segments dropped on receive because the memory budget was spent (TCPRcvQDrop, OFO ones too). */
  rcvMemDrops: number;
  /** Writes shortened or refused because the memory budget was spent. */
  sndMemRefusals: number;
  /** Out-of-order segments dropped to reclaim memory (OfoPruned). */
  ofoPruned: number;
}

export function newTcpStats(): TcpStats {
  return {
    activeOpens: 0,
    passiveOpens: 0,
    attemptFails: 0,
    estabResets: 0,
    currEstab: 0,
    inSegs: 0,
    outSegs: 0,
    retransSegs: 0,
    inErrs: 0,
    inCsumErrors: 0,
    outRsts: 0,
    rtoExpirations: 0,
    sackRecoveries: 0,
    renoRecoveries: 0,
    fastRetransmits: 0,
    lostRetransmits: 0,
    synCookiesSent: 0,
    synCookiesValidated: 0,
    synCookiesFailed: 0,
    listenOverflows: 0,
    listenDrops: 0,
    challengeAcks: 0,
    challengeAcksSuppressed: 0,
    timeWaitReused: 0,
    timeWaitCount: 0,
    timeWaitExpired: 0,
    timeWaitKilled: 0,
    pawsDropped: 0,
    oooSegs: 0,
    oooDropped: 0,
    delayedAcks: 0,
    dsackSent: 0,
    zeroWindowProbes: 0,
    keepAliveProbes: 0,
    keepAliveTimeouts: 0,
    abortOnData: 0,
    abortOnTimeout: 0,
    abortOnClose: 0,
    pmtuUpdates: 0,
    sendTooBig: 0,
    rstsIgnored: 0,
    rstsAccepted: 0,
    outOfWindow: 0,
    memoryAllocated: 0,
    memoryPressure: 0,
    memoryPressures: 0,
    rcvMemDrops: 0,
    sndMemRefusals: 0,
    ofoPruned: 0,
  };
}

export type CaState = 'open' | 'disorder' | 'recovery' | 'loss';

/** Per-connection information, like Linux's TCP_INFO. Times in ms, sizes in bytes. */
export interface TcpInfo {
  state: TcpState;
  caState: CaState;
  congestionControl: CongestionControlName;
  rttMs: number;
  rttvarMs: number;
  rtoMs: number;
  /** RTO backoff exponent (consecutive timeouts). */
  backoff: number;
  /** Consecutive retransmission timeouts of the current data. */
  retransmits: number;
  totalRetrans: number;
  probes: number;
  cwnd: number;
  ssthresh: number;
  /** cwnd when the last loss recovery or retransmission timeout began. */
  priorCwnd: number;
  /** Sender MSS (payload bytes per segment, timestamp option excluded). */
  mss: number;
  /** MSS we announced. */
  advMss: number;
  /** Largest segment payload seen from the peer. */
  rcvMss: number;
  pmtu: number;
  sndWscale: number;
  rcvWscale: number;
  timestamps: boolean;
  sack: boolean;
  sndWnd: number;
  rcvWnd: number;
  /** Receive buffer now allowed (autotuned) and its bound. */
  rcvBuf: number;
  rcvBufMax: number;
  sndBuf: number;
  /** Bytes in flight (sent, not acknowledged), SACKed among them. */
  unacked: number;
  sacked: number;
  bytesSent: number;
  bytesRetrans: number;
  bytesAcked: number;
  bytesReceived: number;
  segsOut: number;
  segsIn: number;
  dataSegsOut: number;
  dataSegsIn: number;
  /** Bytes waiting in the receive queue and the out-of-order queue. */
  rcvQueued: number;
  oooQueued: number;
  /** Bytes written and not yet acknowledged. */
  sndQueued: number;
}

export interface TcpEndpointOptions {
  family?: 4 | 6;
  congestionControl?: CongestionControlName;
  /** SO_SNDBUF-like bound in bytes; default: autotuned up to the protocol's wmemMax. */
  sendBufferSize?: number;
  /** SO_RCVBUF-like bound in bytes; default: autotuned up to the protocol's rmemMax. */
  receiveBufferSize?: number;
  noDelay?: boolean;
  /**
   * IPV6_V6ONLY for an IPv6 endpoint (default false, Linux's bindv6only=0): a dual-stack IPv6
   * listener on the wildcard address also accepts IPv4 (its children are IPv4 endpoints) and
   * holds the port for both families.
   */
  v6Only?: boolean;
}

/** @internal TcpProtocol.transmit results: sent (or failed otherwise), or refused as too big. */
export const TX_OK = 0;
export const TX_TOO_BIG = 1;

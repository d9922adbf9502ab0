/**
 * Connection setup (RFC 9293 3.5): the options a SYN negotiates, our SYN and SYN-ACK, the SYN_SENT
 * state, and the moves into ESTABLISHED of an active open, a listener's child and a SYN-cookie
 * child. The route-dependent setup (header room, offloads, MSS) lives here too.
 */
import { TunstackError } from '../../core/errors.js';
import { encodeTcpOptions, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, tcpOptionsLength, writeTcpHeader } from '../../headers/tcp.js';
import { LinkCapability } from '../../link/endpoint.js';
import type { Route } from '../../stack/route.js';
import { createCongestionControl } from './congestion.js';
import { defaultMss, EV_CONNECT, GSO_MAX_PAYLOAD, INITIAL_WINDOW_SEGMENTS, MAX_QUICKACKS, MIN_SND_MSS, RTO_FALLBACK, RTX_RTO, IP_PROTO_TCP } from './constants.js';
import type { TcpEndpoint } from './endpoint.js';
import { processData } from './receiver.js';
import { currentRto, rttSample } from './recovery.js';
import { finishSegment, type Segment, tcpPseudoBase } from './segment.js';
import { dataEndSeq, output, sendAck, tsNow } from './sender.js';
import { seqAdd, seqGt, seqLe } from './seq.js';
import { armKeepalive, armRtx } from './timers.js';
import { ESTABLISHED, FIN_WAIT_1, LISTEN, SYN_RECEIVED, SYN_SENT } from './types.js';

/** @internal */
export function setRoute(ep: TcpEndpoint, route: Route): void {
  ep.route = route;
  const link = route.nic.endpoint;
  ep.headroom = ((link.maxHeaderLength + (route.family === 4 ? 20 : 40) + 15) & ~7) + 8;
  ep.txOffload = (link.capabilities & LinkCapability.TxChecksumOffload) !== 0;
  const sg = LinkCapability.TxChecksumOffload | LinkCapability.ScatterGather;
  ep.sgOn = (link.capabilities & sg) === sg && route.localDelivery === null;
  // TSO only with scatter-gather (the payload stays in the send buffer, one writev).
  ep.gsoMax = ep.sgOn && (link.capabilities & LinkCapability.GSO) !== 0 ? GSO_MAX_PAYLOAD : 0;
  ep.pseudoBase = tcpPseudoBase(route);
  const ipHdr = route.family === 4 ? 20 : 40;
  const nicMtu = route.nic.mtu;
  ep.pmtu = ep.proto.pathMtu(route, nicMtu);
  ep.advMss = Math.max(MIN_SND_MSS, Math.min(nicMtu, 65535) - ipHdr - 20);
}

/** @internal Inherit settings from a listener (accepted child). */
export function inheritFrom(ep: TcpEndpoint, l: TcpEndpoint): void {
  ep.noDelay = l.noDelay;
  ep.keepAlive = l.keepAlive;
  if (l.keepAlive) ep.lastHeard = ep.proto.stack.clock.now();
  ep.keepIdle = l.keepIdle;
  ep.keepIntvl = l.keepIntvl;
  ep.keepCnt = l.keepCnt;
  ep.userTimeout = l.userTimeout;
  if (l.sndBufLocked) ep.sendBufferSize = l.sndBufLimit;
  if (l.rcvBufLocked) ep.receiveBufferSize = l.rcvBufMax;
  if (l.ccName !== ep.ccName) ep.cc = createCongestionControl(l.ccName);
}

/** @internal */
export function initSendSpace(ep: TcpEndpoint): void {
  ep.sndUna = ep.iss;
  ep.sndNxt = ep.iss;
  ep.sndMax = ep.iss;
  ep.recoveryPoint = ep.iss;
  ep.highRxt = ep.iss;
}

/** @internal Receive buffer and our window scale (from the bound, before the SYN). */
export function initRcvBuf(ep: TcpEndpoint): void {
  if (!ep.rcvBufLocked) {
    ep.rcvBufMax = ep.proto.rmemMax;
    ep.rcvBuf = Math.min(ep.proto.rmemDefault, ep.rcvBufMax);
  }
  let s = 0;
  while (s < 14 && ep.rcvBufMax >>> s > 65535) s++;
  ep.rcvWscale = ep.proto.windowScaling ? s : 0;
}

/** @internal Take the peer's SYN options (passive or active side). */
export function negotiate(ep: TcpEndpoint, seg: Segment, ourSynHadOptions: boolean): void {
  const o = seg.opts;
  const p = ep.proto;
  ep.peerMss = o.mss > 0 ? o.mss : defaultMss(ep.family);
  ep.tsOn = p.timestamps && ourSynHadOptions && o.timestamp;
  ep.sackOn = p.sack && ourSynHadOptions && o.sackPermitted;
  ep.wsOn = p.windowScaling && ourSynHadOptions && o.windowScale >= 0;
  if (ep.wsOn) {
    ep.sndWscale = Math.min(o.windowScale, 14);
  } else {
    ep.sndWscale = 0;
    ep.rcvWscale = 0;
  }
  if (ep.tsOn) ep.tsRecent = o.tsVal;
  updateMss(ep);
  ep.rcvMss = Math.min(ep.advMss, ep.peerMss, 536 + (ep.family === 6 ? 684 : 0));
}

/** Sender MSS from the peer's MSS, the path MTU and the timestamp option. */
export function updateMss(ep: TcpEndpoint): void {
  const ipHdr = ep.family === 4 ? 20 : 40;
  let m = Math.min(ep.peerMss, ep.pmtu - ipHdr - 20);
  if (ep.tsOn) m -= 12;
  if (m < MIN_SND_MSS) m = MIN_SND_MSS;
  ep.sndMss = m;
}

/** SYN or SYN-ACK (seq = iss) with our options. */
export function sendSyn(ep: TcpEndpoint, ack: boolean): void {
  const route = ep.route;
  if (route === null) return;
  const proto = ep.proto;
  const f = proto.synFields;
  // A SYN-ACK offers only what the peer's SYN offered.
  const synAckOfPeer = ack;
  f.mss = ep.advMss;
  f.windowScale = (synAckOfPeer ? ep.wsOn : proto.windowScaling) ? ep.rcvWscale : -1;
  f.sackPermitted = synAckOfPeer ? ep.sackOn : proto.sack;
  f.timestamp = synAckOfPeer ? ep.tsOn : proto.timestamps;
  f.tsVal = tsNow(ep);
  f.tsEcr = synAckOfPeer ? ep.tsRecent : 0;
  f.sackBlocks = undefined;
  const ol = tcpOptionsLength(f);
  const hl = 20 + ol;
  const pkt = proto.allocPacket(hl, ep.headroom);
  const b = pkt.data;
  const o = pkt.start;
  encodeTcpOptions(b, o + 20, f);
  const win = Math.min(ep.rcvBuf, 65535);
  ep.rcvAdv = seqAdd(ep.rcvNxt, win);
  writeTcpHeader(b, o, ep.lport, ep.rport, ep.iss, ack ? ep.rcvNxt : 0, TCP_SYN | (ack ? TCP_ACK : 0), win, hl);
  finishSegment(pkt, hl, hl, ep.pseudoBase, ep.txOffload);
  if (ack) ep.lastAckSent = ep.rcvNxt;
  ep.segsOut++;
  proto.stats.outSegs++;
  proto.transmit(route, pkt);
}

export function inputSynSent(ep: TcpEndpoint, seg: Segment): void {
  const flags = seg.flags;
  const proto = ep.proto;
  const ackOn = (flags & TCP_ACK) !== 0;
  if (ackOn && (seqLe(seg.ack, ep.iss) || seqGt(seg.ack, ep.sndNxt))) {
    if ((flags & TCP_RST) === 0) proto.sendRstForAck(seg);
    return;
  }
  if ((flags & TCP_RST) !== 0) {
    if (ackOn) {
      proto.stats.attemptFails++;
      ep.fail(new TunstackError('ECONNREFUSED', 'connection refused', 'connect'));
    }
    return;
  }
  if ((flags & TCP_SYN) === 0) return;
  const now = proto.stack.clock.now();
  ep.irs = seg.seq;
  ep.rcvNxt = seqAdd(seg.seq, 1);
  ep.lastAckSent = ep.rcvNxt;
  negotiate(ep, seg, true);
  if (!ackOn) {
    // Simultaneous open (RFC 9293 3.5, figure 8).
    ep.setState(SYN_RECEIVED);
    armRtx(ep, RTX_RTO, currentRto(ep));
    sendSyn(ep, true);
    return;
  }
  ep.sndUna = seg.ack;
  ep.sndWnd = seg.wnd; // never scaled on a SYN
  ep.maxSndWnd = ep.sndWnd;
  ep.sndWl1 = seg.seq;
  ep.sndWl2 = seg.ack;
  if (ep.tsOn && seg.opts.tsEcr !== 0) rttSample(ep, ((tsNow(ep) - seg.opts.tsEcr) | 0) >>> 0);
  else if (!ep.synRetransmitted) rttSample(ep, now - (ep.rttTime >= 0 ? ep.rttTime : now));
  if (ep.synRetransmitted && !ep.rttInit) ep.rtoBase = RTO_FALLBACK;
  established(ep, now);
  ep.pendingEv |= EV_CONNECT;
  if (seg.plLen > 0 || (flags & TCP_FIN) !== 0) processData(ep, seg, seqAdd(seg.seq, 1), now);
  if (!ep.hashed) return;
  const before = ep.segsOut;
  output(ep);
  if (ep.segsOut === before || ep.ackNow) sendAck(ep);
}

/** Common to both opens: the connection is ESTABLISHED (or FIN_WAIT_1 with a queued FIN). */
export function established(ep: TcpEndpoint, now: number): void {
  ep.backoff = 0;
  ep.retries = 0;
  ep.firstRtxTime = -1;
  // The handshake's RTT timing (the SYN's send time in rttTime) is over.
  ep.rttTime = -1;
  ep.cwnd = INITIAL_WINDOW_SEGMENTS * ep.sndMss;
  ep.quickAcks = MAX_QUICKACKS;
  ep.lastRcvTime = now;
  ep.lastSendTime = 0;
  if (ep.rtxTimer !== null) {
    // Dropped, not kept for reuse: an idle connection then holds no timer (its callback closure
    // and record, ~170 bytes); the first data sent makes a new one, kept from then on.
    ep.rtxTimer.cancel();
    ep.rtxTimer = null;
  }
  ep.setState(ESTABLISHED);
  if (ep.keepAlive) armKeepalive(ep, ep.keepIdle);
  if (ep.finQueued) {
    ep.finSeq = dataEndSeq(ep);
    ep.setState(FIN_WAIT_1);
  }
}

/** SYN_RECEIVED + acceptable ACK. Returns false if the ACK is dropped (accept queue full). */
export function establishPassive(ep: TcpEndpoint, seg: Segment): boolean {
  const parent = ep.parent;
  if (parent !== null) {
    const q = parent.acceptQueue;
    if (q === null || parent.st !== LISTEN) {
      ep.destroy(false);
      return false;
    }
    if (q.length > parent.backlog) {
      // Linux drops the ACK and lets the SYN-ACK timer try again.
      ep.proto.stats.listenOverflows++;
      return false;
    }
  }
  const now = ep.proto.stack.clock.now();
  ep.sndUna = seg.ack;
  ep.sndWnd = (seg.flags & TCP_SYN) !== 0 ? seg.wnd : seg.wnd << ep.sndWscale;
  ep.maxSndWnd = ep.sndWnd;
  ep.sndWl1 = seg.seq;
  ep.sndWl2 = seg.ack;
  if (ep.tsOn && seg.opts.timestamp && seg.opts.tsEcr !== 0) rttSample(ep, ((tsNow(ep) - seg.opts.tsEcr) | 0) >>> 0);
  else if (!ep.synRetransmitted && ep.rttTime >= 0) rttSample(ep, now - ep.rttTime);
  if (ep.synRetransmitted && !ep.rttInit) ep.rtoBase = RTO_FALLBACK;
  established(ep, now);
  if (parent !== null) {
    if (parent.synQueue !== null) parent.synQueue.delete(ep);
    ep.announce = true;
  } else {
    ep.pendingEv |= EV_CONNECT;
  }
  return true;
}

/** @internal Child created by a listener from a SYN: send the SYN-ACK. */
export function startPassive(ep: TcpEndpoint, seg: Segment, iss: number): void {
  const now = ep.proto.stack.clock.now();
  ep.iss = iss;
  initSendSpace(ep);
  ep.irs = seg.seq;
  ep.rcvNxt = seqAdd(seg.seq, 1);
  initRcvBuf(ep);
  negotiate(ep, seg, true);
  ep.tsOffset = ep.proto.tsOffsetFor(ep.laddr!, ep.raddr!, ep.lport, ep.rport);
  ep.st = SYN_RECEIVED;
  ep.rttTime = now; // the SYN-ACK is the timed segment (see established)
  ep.sndNxt = seqAdd(iss, 1);
  ep.sndMax = ep.sndNxt;
  armRtx(ep, RTX_RTO, ep.rtoBase);
  sendSyn(ep, true);
}

/** @internal Child created from a valid SYN cookie: straight to ESTABLISHED. */
export function startFromCookie(ep: TcpEndpoint, seg: Segment, mss: number, wscale: number, sackOk: boolean): void {
  const now = ep.proto.stack.clock.now();
  ep.iss = seqAdd(seg.ack, -1);
  initSendSpace(ep);
  ep.sndNxt = seg.ack;
  ep.sndMax = seg.ack;
  ep.sndUna = seg.ack;
  ep.irs = seqAdd(seg.seq, -1);
  ep.rcvNxt = seg.seq;
  ep.lastAckSent = seg.seq;
  initRcvBuf(ep);
  ep.peerMss = mss;
  ep.tsOn = seg.opts.timestamp && seg.opts.tsEcr !== 0 && ep.proto.timestamps;
  ep.wsOn = ep.tsOn && wscale >= 0 && ep.proto.windowScaling;
  ep.sackOn = ep.tsOn && sackOk && ep.proto.sack;
  ep.sndWscale = ep.wsOn ? Math.min(wscale, 14) : 0;
  if (!ep.wsOn) ep.rcvWscale = 0;
  if (ep.tsOn) ep.tsRecent = seg.opts.tsVal;
  ep.tsOffset = ep.proto.tsOffsetFor(ep.laddr!, ep.raddr!, ep.lport, ep.rport);
  updateMss(ep);
  ep.rcvMss = Math.min(ep.advMss, ep.peerMss, 536);
  // Our cookie SYN-ACK announced min(rcvBuf, 65535) unscaled.
  ep.rcvAdv = seqAdd(ep.rcvNxt, Math.min(ep.rcvBuf, 65535));
  ep.sndWnd = seg.wnd << ep.sndWscale;
  ep.maxSndWnd = ep.sndWnd;
  ep.sndWl1 = seg.seq;
  ep.sndWl2 = seg.ack;
  ep.st = SYN_RECEIVED;
  established(ep, now);
  ep.announce = true;
}

/**
 * An active open (RFC 9293 3.10.4, CLOSED -> SYN_SENT) to `raddr`:`port`, both validated: the
 * route, the local port (an ephemeral one unique for the 4-tuple, TIME_WAIT included, as Linux
 * checks), the ISN, then the SYN.
 */
export function activeOpen(ep: TcpEndpoint, raddr: Uint8Array, port: number): void {
  const stack = ep.proto.stack;
  const route = stack.findRoute(raddr, ep.laddr ? { local: ep.laddr } : {});
  // The route keeps its own copies of both addresses; the endpoint shares them.
  const laddr = ep.laddr ?? route.localAddress;
  if (ep.lport === 0) {
    // Ephemeral port: unique 4-tuple (TIME_WAIT records included), as Linux checks.
    let tries = 0;
    for (;;) {
      const p = stack.ports.reserve(IP_PROTO_TCP, laddr, 0, ep, false);
      if (ep.proto.lookupTuple(laddr, raddr, p, port) === null) {
        // `| 0`: the port can come back as a heap number (the random source's arithmetic), which
        // would make lport a boxed double in every endpoint.
        ep.lport = p | 0;
        break;
      }
      stack.ports.release(IP_PROTO_TCP, p, ep);
      if (++tries >= 64) throw new TunstackError('EADDRNOTAVAIL', 'no free 4-tuple', 'connect');
    }
    ep.portOwner = true;
  } else if (ep.proto.lookupTuple(laddr, raddr, ep.lport, port) !== null) {
    throw new TunstackError('EADDRNOTAVAIL', '4-tuple in use', 'connect');
  }
  ep.laddr = laddr;
  ep.raddr = route.remoteAddress;
  ep.rport = port;
  setRoute(ep, route);
  ep.iss = ep.proto.isn(ep.laddr, ep.raddr, ep.lport, ep.rport);
  initSendSpace(ep);
  ep.tsOffset = ep.proto.tsOffsetFor(ep.laddr, ep.raddr, ep.lport, ep.rport);
  initRcvBuf(ep);
  ep.proto.insert(ep);
  ep.st = SYN_SENT;
  ep.rttTime = stack.clock.now(); // the SYN is the timed segment (see established)
  ep.proto.stats.activeOpens++;
  // State first: on a zero-latency link the SYN-ACK arrives before sendSyn returns.
  ep.sndNxt = seqAdd(ep.iss, 1);
  ep.sndMax = ep.sndNxt;
  armRtx(ep, RTX_RTO, ep.rtoBase);
  sendSyn(ep, false);
}

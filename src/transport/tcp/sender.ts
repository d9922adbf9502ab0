/**
 * The send path: building and sending segments (header by headers/tcp.ts, finished by segment.ts),
 * the output loop (congestion and send windows, Nagle, sender SWS avoidance, go-back-N after a
 * timeout, SACK holes in recovery), FIN, bare ACKs, RSTs and probes.
 *
 * Everything is reentrancy-safe: sending may deliver packets back into the connection before
 * `transmit` returns, so bookkeeping happens before a segment leaves and a nested `output()`
 * only asks for another pass.
 */
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, writeSackOption, writeTcpHeader, writeTimestampOption } from '../../headers/tcp.js';
import { ADV_HOLE, ADV_NXT, CA_DISORDER, CA_RECOVERY, INITIAL_WINDOW_SEGMENTS, OOW_RATELIMIT_MS, RTO_MAX, RTX_PERSIST, RTX_RTO, SG_MAX_FRAGS, SG_MIN_PAYLOAD } from './constants.js';
import type { TcpEndpoint } from './endpoint.js';
import { buildSack, windowField } from './receiver.js';
import { currentRto, nextHole, pathMtuReduced, pipe } from './recovery.js';
import { finishSegment } from './segment.js';
import { seqAdd, seqDiff, seqGt, seqLt } from './seq.js';
import { armFinWait2, armRtx } from './timers.js';
import { enterTimeWait } from './timewait.js';
import { CLOSE_WAIT, CLOSING, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, LAST_ACK, SYN_RECEIVED, SYN_SENT, TX_TOO_BIG } from './types.js';

export function tsNow(ep: TcpEndpoint): number {
  return (Math.floor(ep.proto.stack.clock.now()) + ep.tsOffset) >>> 0;
}

/**
 * Build and send one segment: `len` payload bytes from stream offset `pos` of the send buffer.
 * Every bookkeeping step happens before the packet is handed down.
 */
export function xmit(ep: TcpEndpoint, seq: number, flags: number, pos: number, len: number): void {
  const route = ep.route;
  if (route === null) return;
  const proto = ep.proto;
  let ol = 0;
  let nsack = 0;
  if (ep.tsOn) ol = 12;
  if (ep.sackOn && (ep.dsackPending || (ep.ooo !== null && ep.ooo.count > 0))) {
    nsack = buildSack(ep, ep.tsOn ? 3 : 4);
    if (nsack > 0) ol += 4 + 8 * nsack;
  }
  const hl = 20 + ol;
  const total = hl + len;
  const sg = ep.sgOn && len >= SG_MIN_PAYLOAD && ep.sndBuf!.canLend(pos, len, SG_MAX_FRAGS);
  const pkt = proto.allocPacket(sg ? hl : total, ep.headroom);
  const b = pkt.data;
  const o = pkt.start;
  const ackOn = (flags & TCP_ACK) !== 0;
  const w = (flags & TCP_RST) !== 0 ? 0 : windowField(ep);
  writeTcpHeader(b, o, ep.lport, ep.rport, seq, ackOn ? ep.rcvNxt : 0, flags, w, hl);
  let p = o + 20;
  if (ep.tsOn) {
    writeTimestampOption(b, p, tsNow(ep), ep.tsRecent);
    p += 12;
  }
  if (nsack > 0) writeSackOption(b, p, proto.sackOut, nsack);
  if (sg) ep.sndBuf!.lend(pos, len, pkt);
  else if (len > 0) ep.sndBuf!.copyOut(pos, b, o + hl, len);
  finishSegment(pkt, hl, total, ep.pseudoBase, ep.txOffload);
  // TSO: more than one segment's payload goes down as one super-packet the link cuts up.
  let segs = 1;
  const segSize = ep.sndMss - (nsack > 0 ? 4 + 8 * nsack : 0);
  if (len > segSize && ep.gsoMax > 0) {
    pkt.gsoSize = segSize;
    segs = Math.ceil(len / segSize);
  }
  // Bookkeeping before the packet leaves (it may come back before transmit returns).
  if (ackOn) {
    ep.lastAckSent = ep.rcvNxt;
    ep.ackNow = false;
    ep.ackLater = false;
    if (ep.delackTimer !== null) ep.delackTimer.cancel();
  }
  ep.dsackPending = false;
  ep.segsOut += segs;
  if (len > 0) ep.dataSegsOut += segs;
  proto.stats.outSegs += segs;
  if ((flags & TCP_RST) !== 0) proto.stats.outRsts++;
  // Refused for its size (the path MTU went down under us): never stall, re-segment.
  if (proto.transmit(route, pkt) === TX_TOO_BIG) {
    // A super-packet refused for its size: send MSS-sized segments from now on.
    if (segs > 1) ep.gsoMax = 0;
    pathMtuReduced(ep);
  }
}

/** @internal Send a bare ACK now. */
export function sendAck(ep: TcpEndpoint): void {
  if (ep.route === null) return;
  xmit(ep, ep.sndMax, TCP_ACK, 0, 0);
}

export function sendRst(ep: TcpEndpoint, seq: number): void {
  if (ep.route === null) return;
  xmit(ep, seq, TCP_RST | TCP_ACK, 0, 0);
}

/** A zero-window or keepalive probe: an old sequence number, no data (as Linux). */
export function sendProbe(ep: TcpEndpoint): void {
  xmit(ep, seqAdd(ep.sndUna, -1), TCP_ACK, 0, 0);
}

/** Challenge ACK (RFC 5961), globally rate limited. */
export function challengeAck(ep: TcpEndpoint): void {
  const st = ep.proto.stats;
  if (ep.proto.takeChallengeAck()) {
    st.challengeAcks++;
    sendAck(ep);
  } else {
    st.challengeAcksSuppressed++;
  }
}

/** Reply to an unacceptable segment, at most once per OOW_RATELIMIT_MS per connection. */
export function oowAck(ep: TcpEndpoint): void {
  const now = ep.proto.stack.clock.now();
  if (now - ep.lastOowAck < OOW_RATELIMIT_MS) return;
  ep.lastOowAck = now;
  sendAck(ep);
}

export function dataEndSeq(ep: TcpEndpoint): number {
  return (ep.iss + 1 + (ep.sndBuf ? ep.sndBuf.endStream : 0)) >>> 0;
}

/** Send-buffer stream offset of sequence number `seq`. */
export function streamOf(ep: TcpEndpoint, seq: number): number {
  const ackedStream = ep.sndBuf ? ep.sndBuf.ackedStream : 0;
  return ackedStream + seqDiff(seq, (ep.iss + 1 + ackedStream) >>> 0);
}

/** Payload bytes that fit in one segment with the options it will carry. */
export function maxPayload(ep: TcpEndpoint): number {
  let m = ep.sndMss;
  if (ep.sackOn && (ep.dsackPending || (ep.ooo !== null && ep.ooo.count > 0))) {
    const blocks = Math.min(ep.tsOn ? 3 : 4, (ep.ooo ? ep.ooo.count : 0) + (ep.dsackPending ? 1 : 0));
    m -= 4 + 8 * blocks;
  }
  return m;
}

/**
 * Send the data (and FIN) at `seq`, at most `maxLen` data bytes. Returns sequence space used
 * (0 when there was nothing to send there).
 */
export function sendRange(ep: TcpEndpoint, seq: number, maxLen: number, rtx: boolean, mode: number): number {
  const dataEnd = dataEndSeq(ep);
  let len = seqDiff(dataEnd, seq);
  if (len > maxLen) len = maxLen;
  if (len < 0) len = 0;
  const end = seqAdd(seq, len);
  const fin = ep.finQueued && end === ep.finSeq;
  if (len === 0 && !fin) return 0;
  let flags = TCP_ACK;
  if (fin) flags |= TCP_FIN;
  if (len > 0 && end === dataEnd) flags |= TCP_PSH;
  const now = ep.proto.stack.clock.now();
  if (rtx || seqLt(seq, ep.sndMax)) {
    ep.proto.stats.retransSegs++;
    ep.totalRetrans++;
    ep.bytesRetrans += len;
    // Karn: no RTT sample from retransmitted data.
    ep.rttTime = -1;
  } else {
    ep.bytesSent += len;
    if (!ep.tsOn && ep.rttTime < 0 && len > 0) {
      ep.rttSeq = end;
      ep.rttTime = now;
    }
  }
  ep.lastSendTime = now;
  const used = len + (fin ? 1 : 0);
  // Sequence bookkeeping and the RTO before the segment leaves (its ACK may come back at once).
  const nx = seqAdd(seq, used);
  if (mode === ADV_NXT) {
    ep.sndNxt = nx;
    if (seqGt(nx, ep.sndMax)) ep.sndMax = nx;
  } else if (mode === ADV_HOLE) {
    if (seqGt(nx, ep.highRxt)) ep.highRxt = nx;
    if (seq === ep.sndUna) {
      ep.edgeSeq = seq;
      ep.edgeMark = ep.sndMax;
    }
  }
  if (ep.rtxTimer === null || !ep.rtxTimer.pending || ep.rtxKind !== RTX_RTO) armRtx(ep, RTX_RTO, currentRto(ep));
  xmit(ep, seq, flags, len > 0 ? streamOf(ep, seq) : 0, len);
  return used;
}

/** Send what the windows allow (reentrancy-safe: a nested call only asks for another pass). */
/** @internal */
export function output(ep: TcpEndpoint): void {
  if (ep.inOutput) {
    ep.outputAgain = true;
    return;
  }
  const st = ep.st;
  if (st !== ESTABLISHED && st !== CLOSE_WAIT && st !== FIN_WAIT_1 && st !== CLOSING && st !== LAST_ACK) return;
  // Nothing written, nothing in flight, no FIN to send: nothing to do (a pure receiver's case).
  const sbuf = ep.sndBuf;
  if (ep.sndUna === ep.sndMax && !ep.finQueued && (sbuf === null || sbuf.endStream === sbuf.ackedStream)) return;
  ep.inOutput = true;
  try {
    do {
      ep.outputAgain = false;
      outputLoop(ep);
    } while (ep.outputAgain);
  } finally {
    ep.inOutput = false;
  }
  afterOutput(ep);
}

export function outputLoop(ep: TcpEndpoint): void {
  // Restart after idle (RFC 5681 4.1 / RFC 9438 4.8).
  if (ep.sndUna === ep.sndMax && ep.lastSendTime > 0) {
    const now = ep.proto.stack.clock.now();
    const idle = now - ep.lastSendTime;
    if (idle > currentRto(ep) && ep.proto.slowStartAfterIdle) {
      const iw = INITIAL_WINDOW_SEGMENTS * ep.sndMss;
      if (ep.cwnd > iw) ep.cwnd = iw;
      ep.cc.onIdle(idle);
    }
  }
  // Set again below only if the loop stops because of the congestion window.
  ep.cwndLimited = false;
  for (;;) {
    const st = ep.st;
    if (st !== ESTABLISHED && st !== CLOSE_WAIT && st !== FIN_WAIT_1 && st !== CLOSING && st !== LAST_ACK) return;
    const maxPl = maxPayload(ep);
    const cwnd = Math.floor(ep.cwnd);
    if (ep.caState === CA_RECOVERY && ep.sb !== null) {
      if (pipe(ep) >= cwnd) {
        ep.cwndLimited = true;
        return;
      }
      const hole = nextHole(ep);
      if (hole >= 0) {
        let lim = seqDiff(ep.holeEnd, hole);
        if (lim > maxPl) lim = maxPl;
        if (sendRange(ep, hole, lim, true, ADV_HOLE) === 0) return;
        continue;
      }
    }
    let budget = cwnd;
    if (ep.caState === CA_DISORDER) budget += Math.min(ep.dupAcks, 2) * ep.sndMss; // RFC 3042
    if (pipe(ep) >= budget) {
      ep.cwndLimited = true;
      return;
    }
    const seq = ep.sndNxt;
    if (seqLt(seq, ep.sndMax)) {
      // Go-back-N after a timeout, skipping what the peer SACKed.
      const sb = ep.sb;
      let lim = seqDiff(ep.sndMax, seq);
      // The left edge is resent even if SACKed (RFC 2018 8: the receiver may have reneged).
      if (sb !== null && sb.count > 0 && seq !== ep.sndUna) {
        const e = sb.sackedEnd(seq);
        if (e >= 0) {
          ep.sndNxt = seqLt(e, ep.sndMax) ? e : ep.sndMax;
          continue;
        }
        const ns = sb.nextSackedStart(seq);
        if (ns >= 0 && seqLt(ns, ep.sndMax)) lim = seqDiff(ns, seq);
      }
      if (lim > maxPl) lim = maxPl;
      if (sendRange(ep, seq, lim, true, ADV_NXT) === 0) ep.sndNxt = ep.sndMax;
      continue;
    }
    const dataEnd = dataEndSeq(ep);
    const avail = seqDiff(dataEnd, seq);
    const finPending = ep.finQueued && seq === ep.finSeq;
    if (avail <= 0 && !finPending) {
      ep.cwndLimited = false;
      return;
    }
    let len = avail < maxPl ? avail : maxPl;
    if (len > 0) {
      const wndAvail = seqDiff(seqAdd(ep.sndUna, ep.sndWnd), seq);
      if (len > wndAvail) {
        // Sender SWS avoidance (RFC 9293 3.8.6.2.1).
        if (wndAvail <= 0 || (wndAvail < maxPl && wndAvail < ep.maxSndWnd >> 1)) return;
        len = wndAvail;
      } else if (len < maxPl && !ep.noDelay && !ep.finQueued && ep.sndUna !== ep.sndNxt) {
        // Nagle (RFC 896): a short segment waits while data is unacknowledged.
        return;
      }
    }
    if (len === maxPl && avail > maxPl && ep.gsoMax > 0 && maxPl === ep.sndMss) len = tsoLength(ep, seq, avail, maxPl, budget);
    if (sendRange(ep, seq, len, false, ADV_NXT) === 0) return;
  }
}

/**
 * TSO (Linux tcp_tso_autosize/tcp_cwnd_test, simplified): the new data one super-packet takes,
 * whole segments within the send window, the congestion window's room (rounded up to a segment,
 * as one segment may always overshoot it) and the super-packet limit; the tail of the data may be
 * a short segment only when it is all there is.
 */
function tsoLength(ep: TcpEndpoint, seq: number, avail: number, mss: number, budget: number): number {
  let lim = avail;
  const wnd = seqDiff(seqAdd(ep.sndUna, ep.sndWnd), seq);
  if (lim > wnd) lim = wnd;
  const room = budget - pipe(ep);
  const roomSegs = Math.ceil(room / mss) * mss;
  if (lim > roomSegs) lim = roomSegs;
  if (lim > ep.gsoMax) lim = ep.gsoMax;
  if (lim < avail) lim -= lim % mss;
  return lim > mss ? lim : mss;
}

/** Timers after sending: RTO while data is out, persist while the window blocks us. */
export function afterOutput(ep: TcpEndpoint): void {
  const st = ep.st;
  if (st < ESTABLISHED) return;
  if (seqLt(ep.sndUna, ep.sndMax)) {
    if (ep.rtxTimer === null || !ep.rtxTimer.pending) armRtx(ep, RTX_RTO, currentRto(ep));
    return;
  }
  // Nothing in flight: probe if data waits behind a closed window.
  const avail = seqDiff(dataEndSeq(ep), ep.sndNxt);
  if (avail > 0 && seqDiff(seqAdd(ep.sndUna, ep.sndWnd), ep.sndNxt) < Math.min(avail, maxPayload(ep))) {
    if (ep.rtxTimer === null || !ep.rtxTimer.pending || ep.rtxKind !== RTX_PERSIST) {
      armRtx(ep, RTX_PERSIST, persistInterval(ep));
    }
  } else if (ep.rtxTimer !== null && ep.rtxTimer.pending) {
    ep.rtxTimer.cancel();
  }
}

export function persistInterval(ep: TcpEndpoint): number {
  const t = currentRto(ep) * 2 ** ep.persistBackoff;
  return t < RTO_MAX ? t : RTO_MAX;
}

export function queueFin(ep: TcpEndpoint): void {
  const st = ep.st;
  if (ep.finQueued) return;
  if (st === SYN_SENT || st === SYN_RECEIVED) {
    // Sent once the handshake completes.
    ep.finQueued = true;
    ep.finSeq = dataEndSeq(ep);
    return;
  }
  if (st !== ESTABLISHED && st !== CLOSE_WAIT) return;
  ep.finQueued = true;
  ep.finSeq = dataEndSeq(ep);
  ep.setState(st === ESTABLISHED ? FIN_WAIT_1 : LAST_ACK);
  output(ep);
}

export function onFinAcked(ep: TcpEndpoint): void {
  const st = ep.st;
  if (st === FIN_WAIT_1) {
    ep.setState(FIN_WAIT_2);
    if (ep.rtxTimer !== null) ep.rtxTimer.cancel();
    if (ep.userClosed) armFinWait2(ep);
  } else if (st === CLOSING) {
    enterTimeWait(ep);
  } else if (st === LAST_ACK) {
    ep.destroy(false);
  }
}

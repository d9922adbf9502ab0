/**
 * ACK processing and loss recovery: the send window update, the SACK scoreboard, RTT samples and
 * the RTO (RFC 6298), fast retransmit and recovery (RFC 5681, NewReno RFC 6582, SACK RFC 6675),
 * lost-retransmission detection, the retransmission and persist timers' expiry, ICMP errors and
 * path MTU reductions. Congestion window growth itself is congestion.ts's.
 */
import { TunstackError } from '../../core/errors.js';
import { TCP_FIN, TCP_SYN } from '../../headers/tcp.js';
import { icmpErrno } from '../../stack/errno.js';
import type { TransportError } from '../../stack/protocol.js';
import { Scoreboard } from './buffers.js';
import { sendSyn, updateMss } from './connect.js';
import { ADV_HOLE, ADV_NONE, ADV_NXT, CA_DISORDER, CA_LOSS, CA_OPEN, CA_RECOVERY, DUP_THRESH, EV_WRITABLE, RTO_MAX, RTO_MIN, RTX_PERSIST, RTX_RTO } from './constants.js';
import type { TcpEndpoint } from './endpoint.js';
import { wmemWritable } from './memory.js';
import type { Segment } from './segment.js';
import { dataEndSeq, maxPayload, onFinAcked, output, persistInterval, sendProbe, sendRange, tsNow } from './sender.js';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax } from './seq.js';
import { armRtx } from './timers.js';
import { CLOSED, LISTEN, SYN_RECEIVED, SYN_SENT } from './types.js';

/** Bytes considered in flight (RFC 6675 pipe, or the plain outstanding count). */
export function pipe(ep: TcpEndpoint): number {
  const una = ep.sndUna;
  const sb = ep.sb;
  if (sb === null || sb.count === 0) return seqDiff(ep.sndNxt, una);
  if (ep.caState === CA_RECOVERY) {
    const out = seqDiff(ep.sndMax, una);
    const lb = ep.proto.lossBoundary(sb, una, ep.sndMss);
    let lost = 0;
    if (seqGt(lb, una)) lost = seqDiff(lb, una) - sb.sackedIn(una, lb);
    let rx = 0;
    if (seqGt(ep.highRxt, una)) rx = seqDiff(ep.highRxt, una) - sb.sackedIn(una, ep.highRxt);
    return out - sb.sacked - lost + rx;
  }
  if (ep.caState === CA_LOSS) return seqDiff(ep.sndNxt, una) - sb.sackedIn(una, ep.sndNxt);
  return seqDiff(ep.sndNxt, una) - sb.sacked;
}

/** RFC 6675 NextSeg rule 1: the first lost, unSACKed, not yet retransmitted byte, or -1. */
export function nextHole(ep: TcpEndpoint): number {
  const sb = ep.sb!;
  const una = ep.sndUna;
  const lb = ep.proto.lossBoundary(sb, una, ep.sndMss);
  let s = seqMax(una, ep.highRxt);
  for (;;) {
    if (!seqLt(s, lb)) return -1;
    const e = sb.sackedEnd(s);
    if (e < 0) break;
    s = e;
  }
  const ns = sb.nextSackedStart(s);
  ep.holeEnd = ns >= 0 ? ns : lb;
  return s;
}

export function currentRto(ep: TcpEndpoint): number {
  const t = ep.rtoBase * 2 ** ep.backoff;
  return t < RTO_MAX ? t : RTO_MAX;
}

export function onRtxTimer(ep: TcpEndpoint): void {
  const st = ep.st;
  const proto = ep.proto;
  if (st === CLOSED || st === LISTEN) return;
  if (st === SYN_SENT || st === SYN_RECEIVED) {
    const limit = st === SYN_SENT ? proto.synRetries : proto.synAckRetries;
    if (ep.retries >= limit || userTimedOut(ep)) {
      proto.stats.attemptFails++;
      if (ep.parent !== null) {
        ep.destroy(false);
      } else {
        ep.fail(ep.softError ?? new TunstackError('ETIMEDOUT', 'connection timed out', 'connect'));
      }
      ep.flushEvents();
      return;
    }
    if (ep.firstRtxTime < 0) ep.firstRtxTime = proto.stack.clock.now();
    ep.retries++;
    ep.backoff++;
    ep.synRetransmitted = true;
    proto.stats.retransSegs++;
    ep.totalRetrans++;
    armRtx(ep, RTX_RTO, currentRto(ep));
    sendSyn(ep, st === SYN_RECEIVED);
    ep.flushEvents();
    return;
  }
  if (ep.rtxKind === RTX_PERSIST) {
    onPersist(ep);
    ep.flushEvents();
    return;
  }
  if (ep.sndUna === ep.sndMax) return;
  // Give up? TCP_USER_TIMEOUT when set, else tcp_retries2.
  if (ep.userTimeout > 0 ? userTimedOut(ep) : ep.retries >= proto.retries2) {
    proto.stats.abortOnTimeout++;
    ep.fail(ep.softError ?? new TunstackError('ETIMEDOUT', 'connection timed out', 'write'));
    ep.flushEvents();
    return;
  }
  proto.stats.rtoExpirations++;
  const now = proto.stack.clock.now();
  if (ep.firstRtxTime < 0) ep.firstRtxTime = now;
  if (ep.caState !== CA_LOSS || ep.retries === 0) {
    ep.priorCwnd = ep.cwnd;
    ep.ssthresh = ep.cc.onRto(ep, seqDiff(ep.sndMax, ep.sndUna), now);
  }
  ep.cwnd = ep.sndMss;
  ep.caState = CA_LOSS;
  ep.recoveryPoint = ep.sndMax;
  ep.highRxt = ep.sndUna;
  ep.dupAcks = 0;
  ep.sndNxt = ep.sndUna;
  ep.rttTime = -1;
  ep.retries++;
  ep.backoff++;
  armRtx(ep, RTX_RTO, currentRto(ep));
  output(ep);
  ep.flushEvents();
}

export function onPersist(ep: TcpEndpoint): void {
  const proto = ep.proto;
  const avail = seqDiff(dataEndSeq(ep), ep.sndNxt);
  if (!(avail > 0) || seqLt(ep.sndUna, ep.sndMax)) return;
  if (ep.userTimeout > 0 && ep.probesOut > 0) {
    if (ep.firstRtxTime >= 0 && proto.stack.clock.now() - ep.firstRtxTime >= ep.userTimeout) {
      proto.stats.abortOnTimeout++;
      ep.fail(new TunstackError('ETIMEDOUT', 'zero window persisted past the user timeout', 'write'));
      return;
    }
  } else if (ep.probesOut >= proto.retries2) {
    proto.stats.abortOnTimeout++;
    ep.fail(new TunstackError('ETIMEDOUT', 'zero window probes unanswered', 'write'));
    return;
  }
  if (ep.firstRtxTime < 0) ep.firstRtxTime = proto.stack.clock.now();
  const wndAvail = seqDiff(seqAdd(ep.sndUna, ep.sndWnd), ep.sndNxt);
  if (wndAvail > 0) {
    // Part of the window opened: send what fits (Linux tcp_write_wakeup).
    if (sendRange(ep, ep.sndNxt, Math.min(wndAvail, maxPayload(ep)), false, ADV_NXT) > 0) return;
  }
  proto.stats.zeroWindowProbes++;
  ep.probesOut++;
  sendProbe(ep);
  ep.persistBackoff++;
  armRtx(ep, RTX_PERSIST, persistInterval(ep));
}

export function userTimedOut(ep: TcpEndpoint): boolean {
  return ep.userTimeout > 0 && ep.firstRtxTime >= 0 && ep.proto.stack.clock.now() - ep.firstRtxTime >= ep.userTimeout;
}

export function rttSample(ep: TcpEndpoint, r: number): void {
  if (!(r >= 0)) return;
  if (!ep.rttInit) {
    ep.srtt = r;
    ep.rttvar = r / 2;
    ep.rttInit = true;
  } else {
    const d = ep.srtt - r;
    ep.rttvar = 0.75 * ep.rttvar + 0.25 * (d < 0 ? -d : d);
    ep.srtt = 0.875 * ep.srtt + 0.125 * r;
  }
  // RFC 6298 (2.3) with Linux's floor: RTO = SRTT + max(4 * RTTVAR, 200 ms).
  const v = 4 * ep.rttvar;
  const rto = ep.srtt + (v > RTO_MIN ? v : RTO_MIN);
  ep.rtoBase = rto < RTO_MAX ? rto : RTO_MAX;
}

/** ACK processing (RFC 9293 3.10.7.4 fifth check, RFC 5681/6582/6675 loss recovery). */
export function processAck(ep: TcpEndpoint, seg: Segment, now: number): void {
  const ack = seg.ack;
  const acked = seqDiff(ack, ep.sndUna);
  // Send window update (RFC 9293 SND.WL1 / SND.WL2 rule).
  let windowChanged = false;
  if (seqLt(ep.sndWl1, seg.seq) || (ep.sndWl1 === seg.seq && seqLe(ep.sndWl2, ack))) {
    const w = (seg.flags & TCP_SYN) !== 0 ? seg.wnd : seg.wnd << ep.sndWscale;
    if (w !== ep.sndWnd) {
      windowChanged = true;
      if (w > ep.sndWnd) ep.persistBackoff = 0;
      ep.sndWnd = w;
    }
    if (w > ep.maxSndWnd) ep.maxSndWnd = w;
    ep.sndWl1 = seg.seq;
    ep.sndWl2 = ack;
  }
  ep.probesOut = 0;
  ep.kaProbes = 0;
  // SACK blocks into the scoreboard.
  let newSack = false;
  const opts = seg.opts;
  // The scoreboard exists from the first SACK block on (most connections never need one).
  if (ep.sackOn && ep.sb === null && opts.sackCount > 0) ep.sb = new Scoreboard();
  const sb = ep.sb;
  if (sb !== null && opts.sackCount > 0) {
    // Blocks are clipped at the later of this ACK and SND.UNA (an old, reordered ACK may carry
    // blocks below SND.UNA).
    const floor = seqMax(ack, ep.sndUna);
    for (let i = 0; i < opts.sackCount; i++) {
      let l = opts.sackLeft(i);
      let r = opts.sackRight(i);
      if (!seqLt(l, r)) continue;
      if (seqLe(r, floor) || seqGt(r, ep.sndMax)) continue; // D-SACK, old or bogus
      if (seqLt(l, floor)) l = floor;
      if (seqGt(r, ep.sndMax)) r = ep.sndMax;
      if (sb.add(l, r)) newSack = true;
    }
  }
  if (acked > 0) {
    // RTT: timestamps (RFC 7323 4.1) or the one timed segment (Karn).
    if (ep.tsOn && opts.timestamp && opts.tsEcr !== 0) {
      rttSample(ep, (tsNow(ep) - opts.tsEcr) | 0);
    } else if (ep.rttTime >= 0 && seqGe(ack, ep.rttSeq)) {
      rttSample(ep, now - ep.rttTime);
      ep.rttTime = -1;
    }
    ep.backoff = 0;
    ep.retries = 0;
    ep.firstRtxTime = -1;
    let dataAcked = acked;
    let finAcked = false;
    if (ep.finQueued && seqGt(ack, ep.finSeq)) {
      finAcked = true;
      dataAcked--;
    }
    const sbuf = ep.sndBuf;
    if (sbuf !== null && dataAcked > 0) {
      sbuf.ackTo(sbuf.ackedStream + dataAcked);
    }
    ep.bytesAcked += dataAcked;
    const inflightBefore = seqDiff(ep.sndMax, ep.sndUna);
    ep.sndUna = ack;
    if (seqLt(ep.sndNxt, ack)) ep.sndNxt = ack;
    if (seqLt(ep.highRxt, ack)) ep.highRxt = ack;
    if (sb !== null) {
      sb.ackTo(ack);
      // SACKed data right at the new left edge: the receiver dropped what it had SACKed
      // (reneging, e.g. a memory-pressed out-of-order queue); forget the scoreboard so the
      // data is sent again (Linux tcp_check_sack_reneging).
      if (sb.count > 0 && sb.starts[0] === ack) sb.clear();
    }
    // Congestion control.
    const ca = ep.caState;
    if (ca === CA_RECOVERY) {
      if (seqGe(ack, ep.recoveryPoint)) {
        exitRecovery(ep);
      } else if (sb !== null && seqLt(ack, ep.highRxt)) {
        // The new left edge was retransmitted before now: data sent after this point that
        // gets SACKed proves that retransmission lost (below).
        ep.edgeSeq = ack;
        ep.edgeMark = ep.sndMax;
      } else if (sb === null) {
        // NewReno partial ACK (RFC 6582 3.2 step 3): retransmit the next hole, deflate.
        armRtx(ep, RTX_RTO, currentRto(ep));
        sendRange(ep, ack, maxPayload(ep), true, ADV_NONE);
        ep.cwnd -= dataAcked;
        if (dataAcked >= ep.sndMss) ep.cwnd += ep.sndMss;
        if (ep.cwnd < ep.sndMss) ep.cwnd = ep.sndMss;
      }
    } else if (ca === CA_LOSS) {
      if (seqGe(ack, ep.recoveryPoint)) ep.caState = CA_OPEN;
      ep.cc.onAck(ep, dataAcked, now);
    } else {
      ep.dupAcks = 0;
      ep.caState = sb !== null && sb.count > 0 ? CA_DISORDER : CA_OPEN;
      // Grow only when the window was the limit (RFC 7661 spirit; Linux tcp_is_cwnd_limited:
      // in slow start, flight at least half of cwnd).
      const limited =
        ep.cwndLimited || (ep.cwnd < ep.ssthresh ? 2 * inflightBefore >= ep.cwnd : inflightBefore + ep.sndMss >= ep.cwnd);
      if (limited) ep.cc.onAck(ep, dataAcked, now);
    }
    // Timers: restart RTO while data is out (RFC 6298 5.3), else stop.
    if (ep.sndUna === ep.sndMax) {
      if (ep.rtxTimer !== null && ep.rtxKind === RTX_RTO) ep.rtxTimer.cancel();
    } else if (ca !== CA_RECOVERY || sb !== null) {
      armRtx(ep, RTX_RTO, currentRto(ep));
    }
    if (ep.wantWritable && ep.sndBuf !== null && ep.sndBuf.length <= ep.sendBufferSize >> 1 && wmemWritable(ep, ep.sndBuf)) {
      ep.wantWritable = false;
      ep.pendingEv |= EV_WRITABLE;
    }
    if (finAcked) onFinAcked(ep);
    if (ep.caState === CA_DISORDER && sb !== null && ep.proto.lossBoundary(sb, ep.sndUna, ep.sndMss) !== ep.sndUna) {
      enterRecovery(ep, now);
    }
    if (newSack) detectLostRetransmit(ep);
    return;
  }
  if (newSack) detectLostRetransmit(ep);
  // No new data acknowledged: duplicate ACK (RFC 5681 def. with SACK's "new information").
  if (
    acked === 0 &&
    seg.plLen === 0 &&
    (seg.flags & (TCP_SYN | TCP_FIN)) === 0 &&
    ep.sndUna !== ep.sndMax &&
    (!windowChanged || newSack)
  ) {
    ep.dupAcks++;
    const ca = ep.caState;
    if (ca === CA_OPEN || ca === CA_DISORDER) {
      ep.caState = CA_DISORDER;
      if (sb !== null) {
        if (ep.dupAcks >= DUP_THRESH || ep.proto.lossBoundary(sb, ep.sndUna, ep.sndMss) !== ep.sndUna) {
          enterRecovery(ep, now);
        }
      } else if (ep.dupAcks === DUP_THRESH && seqGt(ep.sndUna, ep.recoveryPoint) === true) {
        enterRecovery(ep, now);
      } else if (ep.dupAcks === DUP_THRESH && ep.recoveryPoint === ep.iss) {
        enterRecovery(ep, now);
      } else if (ep.dupAcks === DUP_THRESH) {
        // RFC 6582 4.1: dup ACKs for data sent before the last recovery's end do not
        // start another recovery.
        ep.dupAcks = 0;
      }
    } else if (ca === CA_RECOVERY && sb === null) {
      ep.cwnd += ep.sndMss; // NewReno inflation
    }
  } else if (newSack && ep.caState === CA_DISORDER && sb !== null) {
    if (ep.proto.lossBoundary(sb, ep.sndUna, ep.sndMss) !== ep.sndUna) enterRecovery(ep, now);
  }
}

/**
 * In SACK recovery: when data sent after the left edge's retransmission is SACKed more than
 * (DupThresh - 1) segments beyond, while the edge is still missing, that retransmission was
 * lost; let NextSeg pick the edge again (what Linux's lost-retransmit marking does), instead of
 * waiting for the RTO.
 */
export function detectLostRetransmit(ep: TcpEndpoint): void {
  const sb = ep.sb;
  if (ep.caState !== CA_RECOVERY || sb === null || ep.edgeSeq !== ep.sndUna) return;
  if (!seqLt(ep.sndUna, ep.highRxt) || sb.count === 0) return;
  if (seqGt(sb.highest, seqAdd(ep.edgeMark, (DUP_THRESH - 1) * ep.sndMss))) {
    ep.highRxt = ep.sndUna;
    ep.edgeSeq = -1;
    ep.proto.stats.lostRetransmits++;
  }
}

export function enterRecovery(ep: TcpEndpoint, now: number): void {
  const proto = ep.proto;
  if (ep.sackOn && ep.sb === null) ep.sb = new Scoreboard();
  // FlightSize (RFC 5681): data outstanding, SACKed or not.
  const flight = seqDiff(ep.sndMax, ep.sndUna);
  ep.priorCwnd = ep.cwnd;
  ep.ssthresh = ep.cc.onLoss(ep, flight, now);
  ep.recoveryPoint = ep.sndMax;
  ep.caState = CA_RECOVERY;
  ep.highRxt = ep.sndUna;
  ep.rttTime = -1;
  proto.stats.fastRetransmits++;
  if (ep.sb !== null) {
    proto.stats.sackRecoveries++;
    ep.cwnd = ep.ssthresh;
  } else {
    proto.stats.renoRecoveries++;
    ep.cwnd = ep.ssthresh + DUP_THRESH * ep.sndMss;
  }
  // Fast retransmit of the first unacknowledged segment, regardless of pipe.
  let lim = maxPayload(ep);
  if (ep.sb !== null) {
    const ns = ep.sb.nextSackedStart(ep.sndUna);
    if (ns >= 0 && seqDiff(ns, ep.sndUna) < lim) lim = seqDiff(ns, ep.sndUna);
  }
  armRtx(ep, RTX_RTO, currentRto(ep));
  sendRange(ep, ep.sndUna, lim, true, ADV_HOLE);
}

export function exitRecovery(ep: TcpEndpoint): void {
  // RFC 6582 3.2 step 4 / RFC 6675: deflate to ssthresh.
  const flight = seqDiff(ep.sndMax, ep.sndUna);
  ep.cwnd = Math.min(ep.ssthresh, Math.max(flight, 0) + ep.sndMss);
  if (ep.cwnd < ep.sndMss) ep.cwnd = ep.sndMss;
  ep.caState = CA_OPEN;
  ep.dupAcks = 0;
}

/** @internal An ICMP error about a segment of this connection. */
export function icmpError(ep: TcpEndpoint, err: TransportError, quotedSeq: number): void {
  const st = ep.st;
  // RFC 5927: the quoted sequence number must be in flight.
  if (!(seqLe(ep.sndUna, quotedSeq) && seqLt(quotedSeq, seqMax(ep.sndMax, seqAdd(ep.sndUna, 1))))) {
    if (!(st === SYN_SENT && quotedSeq === ep.iss)) return;
  }
  if (err.kind === 'frag-needed' || err.kind === 'packet-too-big') {
    // The message is about a segment of ours in flight: now the IP layer may believe it.
    err.confirmPathMtu?.();
    pathMtuReduced(ep);
    ep.flushEvents();
    return;
  }
  const e = icmpErrno(err, { syscall: 'recv' });
  if (st === SYN_SENT || (st === SYN_RECEIVED && ep.parent === null)) {
    ep.proto.stats.attemptFails++;
    ep.fail(e);
    ep.flushEvents();
    return;
  }
  if (st === SYN_RECEIVED) return;
  // Established: a soft error, reported if the connection later times out.
  ep.softError = e;
}

/**
 * Re-read the path MTU (lowered by a validated ICMP message, or found lower when the IP layer
 * refused a segment as too big) and, if it went down, re-segment what is in flight at the new
 * MSS (Linux tcp_v4_mtu_reduced / tcp_simple_retransmit: resend with the new size, cwnd kept).
 * Reentrancy-safe: from inside output() the resend happens on the loop's next pass. Events are
 * left for the caller to flush (every entry point does).
 */
export function pathMtuReduced(ep: TcpEndpoint): void {
  const route = ep.route;
  if (route === null) return;
  const mtu = ep.proto.pathMtu(route, route.nic.mtu);
  if (mtu >= ep.pmtu) return;
  ep.pmtu = mtu;
  ep.proto.stats.pmtuUpdates++;
  const old = ep.sndMss;
  updateMss(ep);
  if (ep.sndMss < old && ep.isSynchronized() && seqLt(ep.sndUna, ep.sndMax)) {
    if (ep.caState !== CA_LOSS) {
      ep.caState = CA_LOSS;
      ep.recoveryPoint = ep.sndMax;
    }
    ep.sndNxt = ep.sndUna;
    ep.rttTime = -1;
    output(ep);
  }
}

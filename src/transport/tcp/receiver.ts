/**
 * The receive path: segment acceptance for synchronized states (PAWS, the window check, RST and
 * SYN handling of RFC 5961), in-order and out-of-order data, FIN, ACK scheduling (delayed ACK,
 * quick ACK, ATO), the window we advertise with receiver SWS avoidance, SACK and D-SACK blocks,
 * and receive-buffer autotuning after reads.
 */
import { TunstackError } from '../../core/errors.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../../headers/tcp.js';
import { OooQueue, RecvQueue } from './buffers.js';
import { establishPassive, inputSynSent, sendSyn } from './connect.js';
import { ATO_MAX, ATO_MIN, EV_END, EV_READABLE, MAX_OOO_SEGMENTS } from './constants.js';
import type { TcpEndpoint } from './endpoint.js';
import { rcvPressure, rmemAdmit } from './memory.js';
import { currentRto, processAck } from './recovery.js';
import type { Segment } from './segment.js';
import { challengeAck, oowAck, output, sendAck, sendRst } from './sender.js';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from './seq.js';
import { scheduleDelack } from './timers.js';
import { enterTimeWait } from './timewait.js';
import { CLOSE_WAIT, CLOSING, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, LAST_ACK, SYN_RECEIVED, SYN_SENT, TIME_WAIT } from './types.js';

/** The window field value for a non-SYN segment; updates rcvAdv. */
export function windowField(ep: TcpEndpoint): number {
  const rcvNxt = ep.rcvNxt;
  let cur = seqDiff(ep.rcvAdv, rcvNxt);
  if (cur < 0) cur = 0;
  const queued = (ep.rcvQ ? ep.rcvQ.bytes : 0) + (ep.ooo ? ep.ooo.bytes : 0);
  if (ep.proto.memory.underPressure) rcvPressure(ep);
  let free = ep.rcvBuf - queued;
  if (free < 0) free = 0;
  // Under memory pressure the window opens at most four segments ahead (Linux clamps
  // rcv_ssthresh to 4 * advmss); the right edge already offered stays (below).
  if (ep.proto.memory.underPressure && free > 4 * ep.advMss) free = 4 * ep.advMss;
  const mss = ep.rcvMss;
  // Receiver SWS avoidance (RFC 9293 3.8.6.2.2, Linux __tcp_select_window).
  if (free < ep.rcvBuf >> 1 && free < mss) free = 0;
  const ws = ep.rcvWscale;
  let win = (free >>> ws) << ws;
  if (win < cur) {
    // Never move the right edge left: round the old window up to the scale granularity.
    win = (((cur + (1 << ws) - 1) >>> ws) << ws) >>> 0;
  } else if (win > cur && cur > 0 && win - cur < Math.min(ep.rcvBuf >> 1, mss)) {
    win = (((cur + (1 << ws) - 1) >>> ws) << ws) >>> 0;
  }
  let field = win >>> ws;
  if (field > 65535) field = 65535;
  ep.rcvAdv = seqAdd(rcvNxt, field << ws);
  return field;
}

/** Fill sackOut with blocks to send (D-SACK first); returns the count. */
export function buildSack(ep: TcpEndpoint, max: number): number {
  let n = 0;
  const out = ep.proto.sackOut;
  if (ep.dsackPending) {
    out[0] = ep.dsackL;
    out[1] = ep.dsackR;
    n = 1;
  }
  const ooo = ep.ooo;
  if (ooo !== null && ooo.count > 0 && n < max) {
    if (n === 0) return ooo.sackBlocks(out, max);
    // Shift: write after the D-SACK block.
    const tmp = ep.proto.sackScratch;
    const k = ooo.sackBlocks(tmp, max - n);
    for (let i = 0; i < k; i++) {
      out[2 * (n + i)] = tmp[2 * i]!;
      out[2 * (n + i) + 1] = tmp[2 * i + 1]!;
    }
    n += k;
  }
  return n;
}

/** @internal Handle one segment addressed to this connection. */
export function input(ep: TcpEndpoint, seg: Segment): void {
  ep.segsIn++;
  const now = ep.proto.stack.clock.now();
  // Only keepalive reads it (kept from when it is switched on: an idle connection holds no field).
  if (ep.keepAlive) ep.lastHeard = now;
  if (ep.st === SYN_SENT) {
    inputSynSent(ep, seg);
    return;
  }
  const flags = seg.flags;
  const opts = seg.opts;
  const proto = ep.proto;
  const rst = (flags & TCP_RST) !== 0;
  const syn = (flags & TCP_SYN) !== 0;
  const fin = (flags & TCP_FIN) !== 0;
  const seq = seg.seq;
  // PAWS (RFC 7323 5.3).
  if (ep.tsOn && opts.timestamp && !rst && ((opts.tsVal - ep.tsRecent) | 0) < 0) {
    proto.stats.pawsDropped++;
    oowAck(ep);
    return;
  }
  // Acceptability (RFC 9293 3.10.7.4, in Linux's loose form).
  const segLen = seg.plLen + (syn ? 1 : 0) + (fin ? 1 : 0);
  const end = seqAdd(seq, segLen);
  let rcvWnd = seqDiff(ep.rcvAdv, ep.rcvNxt);
  if (rcvWnd < 0) rcvWnd = 0;
  if (seqLt(end, ep.rcvNxt) || seqGt(seq, seqAdd(ep.rcvNxt, rcvWnd))) {
    proto.stats.outOfWindow++;
    if (rst) {
      proto.stats.rstsIgnored++;
      return;
    }
    if (seg.plLen > 0 && seqLt(end, ep.rcvNxt) && seqGe(seq, ep.irs)) {
      // Old duplicate data: ACK with D-SACK (RFC 2883) right away.
      if (ep.sackOn) noteDsack(ep, seq, seqAdd(seq, seg.plLen));
      sendAck(ep);
    } else if (syn && ep.st !== SYN_RECEIVED) {
      challengeAck(ep);
    } else {
      oowAck(ep);
    }
    return;
  }
  if (rst) {
    // RFC 5961 3.2: only an exact match resets; in window otherwise: challenge ACK.
    if (seq === ep.rcvNxt) {
      proto.stats.rstsAccepted++;
      onReset(ep);
    } else {
      challengeAck(ep);
    }
    return;
  }
  if (syn) {
    const simOpenSynAck =
      ep.st === SYN_RECEIVED && (flags & TCP_ACK) !== 0 && seq === ep.irs && seg.ack === ep.sndNxt && seg.plLen === 0;
    if (!simOpenSynAck) {
      if (ep.st === SYN_RECEIVED && seq === ep.irs && (flags & TCP_ACK) === 0) {
        // The peer retransmitted its SYN: retransmit the SYN-ACK.
        sendSyn(ep, true);
        return;
      }
      // RFC 5961 4.2: a SYN in a synchronized state gets a challenge ACK.
      challengeAck(ep);
      return;
    }
    // Simultaneous open: the peer's SYN-ACK completes our handshake (RFC 9293 figure 8).
  }
  if ((flags & TCP_ACK) === 0) return;
  const ack = seg.ack;
  if (ep.st === SYN_RECEIVED) {
    if (!(seqLt(ep.sndUna, ack) && seqLe(ack, ep.sndNxt))) {
      ep.proto.sendRstForAck(seg);
      return;
    }
    if (!establishPassive(ep, seg)) return;
  }
  // RFC 5961 5.2 / RFC 9293: ACK of unsent data -> ACK and drop; too old -> ACK and drop.
  if (seqGt(ack, ep.sndMax)) {
    proto.stats.outOfWindow++;
    oowAck(ep);
    return;
  }
  if (seqLt(ack, seqAdd(ep.sndUna, -Math.max(ep.maxSndWnd, 1)))) {
    proto.stats.outOfWindow++;
    challengeAck(ep);
    return;
  }
  // Timestamp bookkeeping (RFC 7323 4.3): TS.Recent from segments at or before Last.ACK.sent.
  if (ep.tsOn && opts.timestamp && seqLe(seq, ep.lastAckSent)) ep.tsRecent = opts.tsVal;
  processAck(ep, seg, now);
  if (!ep.hashed) return; // closed during ACK processing
  const st = ep.st;
  if (st === TIME_WAIT) return;
  if (seg.plLen > 0 || fin) {
    if (st === ESTABLISHED || st === FIN_WAIT_1 || st === FIN_WAIT_2) {
      if (ep.userClosed && seg.plLen > 0 && seqGt(seqAdd(seq, seg.plLen), ep.rcvNxt)) {
        // New data for a socket nobody reads: reset (Linux TCPAbortOnData).
        proto.stats.abortOnData++;
        sendRst(ep, ep.sndMax);
        ep.destroy(true);
        return;
      }
      processData(ep, seg, syn ? seqAdd(seq, 1) : seq, now);
      if (!ep.hashed) return;
    } else if (seqLt(seq, ep.rcvNxt) || seg.plLen > 0) {
      // Retransmission after the peer's FIN: re-ACK.
      ep.ackNow = true;
    }
  }
  output(ep);
  if (ep.ackNow) sendAck(ep);
  else if (ep.ackLater && (ep.delackTimer === null || !ep.delackTimer.pending)) {
    ep.ackLater = false;
    scheduleDelack(ep);
  }
}

export function noteDsack(ep: TcpEndpoint, l: number, r: number): void {
  ep.dsackL = l;
  ep.dsackR = r;
  ep.dsackPending = true;
  ep.proto.stats.dsackSent++;
}

/** Data and FIN of an acceptable segment; `seq` is the sequence number of the first payload byte. */
export function processData(ep: TcpEndpoint, seg: Segment, seq: number, now: number): void {
  let plOff = seg.plOff;
  let plLen = seg.plLen;
  let fin = (seg.flags & TCP_FIN) !== 0;
  const rcvNxt = ep.rcvNxt;
  // Trim what we already have.
  if (seqLt(seq, rcvNxt)) {
    const cut = seqDiff(rcvNxt, seq);
    if (cut >= plLen) {
      if (plLen > 0 && ep.sackOn) noteDsack(ep, seq, seqAdd(seq, plLen));
      if (plLen > 0) ep.ackNow = true;
      if (fin && seqAdd(seq, plLen) !== rcvNxt) fin = false;
      plLen = 0;
      seq = rcvNxt;
    } else {
      if (ep.sackOn) noteDsack(ep, seq, rcvNxt);
      plOff += cut;
      plLen -= cut;
      seq = rcvNxt;
      ep.ackNow = true;
    }
  }
  // Trim beyond the right edge of the window we advertised.
  const right = seqAdd(rcvNxt, Math.max(0, seqDiff(ep.rcvAdv, rcvNxt)));
  if (seqGt(seqAdd(seq, plLen), right)) {
    const keep = seqDiff(right, seq);
    plLen = keep > 0 ? keep : 0;
    fin = false;
    ep.ackNow = true;
  }
  if (plLen === 0 && !fin) return;
  const proto = ep.proto;
  // In order: no memory, no segment (Linux tcp_data_queue's TCPRcvQDrop); the sender resends.
  if (plLen > 0 && seq === rcvNxt && !rmemAdmit(ep, plLen)) return;
  if (plLen > 0) {
    ep.dataSegsIn++;
    if (seg.plLen > ep.rcvMss) ep.rcvMss = Math.min(seg.plLen, ep.advMss);
  }
  const q = (ep.rcvQ ??= new RecvQueue());
  if (seq === rcvNxt) {
    const wasEmpty = q.bytes === 0;
    if (plLen > 0) {
      const d = seg.data;
      q.push(new Uint8Array(d.buffer, d.byteOffset + plOff, plLen));
      ep.rcvNxt = seqAdd(rcvNxt, plLen);
      ep.bytesReceived += plLen;
    }
    const ooo = ep.ooo;
    if (ooo !== null && ooo.count > 0) {
      const before = ep.rcvNxt;
      ep.rcvNxt = ooo.drainInto(ep.rcvNxt, q);
      ep.bytesReceived += seqDiff(ep.rcvNxt, before);
      // A hole filled: ACK at once (and keep ACKing quickly while the peer recovers).
      ep.ackNow = true;
      if (ep.quickAcks < 8) ep.quickAcks = 8;
    }
    if (!fin && ep.oooFin >= 0 && ep.oooFin === ep.rcvNxt) fin = true;
    if (q.bytes > 0 && wasEmpty) ep.pendingEv |= EV_READABLE;
    if (fin) {
      ep.oooFin = -1;
      ep.rcvNxt = seqAdd(ep.rcvNxt, 1);
      onFin(ep);
      ep.ackNow = true;
    } else if (plLen > 0) {
      scheduleAck(ep, now);
    }
  } else {
    // Out of order: keep it (bounded) and ACK at once with SACK.
    proto.stats.oooSegs++;
    const ooo = (ep.ooo ??= new OooQueue());
    if (plLen > 0) {
      if (ooo.bytes + plLen > ep.rcvBuf || !rmemAdmit(ep, plLen)) {
        proto.stats.oooDropped++;
      } else {
        const stored = ooo.insert(seq, seg.data.subarray(plOff, plOff + plLen), MAX_OOO_SEGMENTS);
        // Only a true duplicate is a D-SACK; a segment dropped for the bound is not reported.
        if (stored === 0) {
          if (ep.sackOn) noteDsack(ep, seq, seqAdd(seq, plLen));
        } else if (stored < 0) {
          proto.stats.oooDropped++;
        }
        if (ooo.evicted !== 0) {
          proto.stats.oooDropped += ooo.evicted;
          ooo.evicted = 0;
        }
      }
    }
    if (fin) ep.oooFin = seqAdd(seq, plLen);
    ep.ackNow = true;
  }
}

/** Delayed ACK or ACK now (RFC 1122 4.2.3.2 / RFC 5681 4.2, Linux's quick-ACK and ATO). */
export function scheduleAck(ep: TcpEndpoint, now: number): void {
  // Adapt the ACK timeout to the arrival gap (Linux tcp_event_data_recv).
  if (ep.lastRcvTime >= 0) {
    const m = now - ep.lastRcvTime;
    if (m <= ATO_MIN / 2) ep.ato = (ep.ato >> 1) + ATO_MIN / 2;
    else if (m < ep.ato) {
      ep.ato = (ep.ato >> 1) + m;
      const rto = currentRto(ep);
      if (ep.ato > rto) ep.ato = rto;
    } else if (m > currentRto(ep)) {
      if (ep.quickAcks < 8) ep.quickAcks = 8;
    }
    if (ep.ato < ATO_MIN) ep.ato = ATO_MIN;
    if (ep.ato > ATO_MAX) ep.ato = ATO_MAX;
  }
  ep.lastRcvTime = now;
  if (ep.quickAcks > 0) {
    ep.quickAcks--;
    ep.ackNow = true;
    return;
  }
  // Every second full-sized segment is ACKed at once.
  if (seqDiff(ep.rcvNxt, ep.lastAckSent) > ep.rcvMss) {
    ep.ackNow = true;
    return;
  }
  ep.ackLater = true;
}

/** The peer's FIN has been reached in sequence. */
export function onFin(ep: TcpEndpoint): void {
  ep.finRcvd = true;
  const st = ep.st;
  if (st === ESTABLISHED) ep.setState(CLOSE_WAIT);
  else if (st === FIN_WAIT_1) {
    // Our FIN not yet acknowledged (else we would be in FIN_WAIT_2): simultaneous close.
    ep.setState(CLOSING);
  } else if (st === FIN_WAIT_2) {
    sendAck(ep);
    enterTimeWait(ep);
  }
  if (ep.rcvQ === null || ep.rcvQ.bytes === 0) {
    ep.pendingEv |= EV_READABLE | EV_END;
  }
}

/** An acceptable RST arrived (RFC 9293 3.10.7.4 second check, Linux tcp_reset errors). */
export function onReset(ep: TcpEndpoint): void {
  const st = ep.st;
  if (st === SYN_RECEIVED) {
    ep.proto.stats.attemptFails++;
    if (ep.parent !== null) {
      ep.destroy(false);
      return;
    }
    ep.fail(new TunstackError('ECONNREFUSED', 'connection refused', 'connect'));
    return;
  }
  if (st === ESTABLISHED || st === CLOSE_WAIT) ep.proto.stats.estabResets++;
  if (st === CLOSING || st === LAST_ACK || st === TIME_WAIT) {
    ep.destroy(true);
    return;
  }
  ep.fail(
    st === CLOSE_WAIT
      ? new TunstackError('EPIPE', 'connection reset by peer after its FIN', 'read')
      : new TunstackError('ECONNRESET', 'connection reset by peer', 'read'),
  );
}

/** After the application read `n` bytes: window updates, receive-buffer autotuning, end. */
export function afterRead(ep: TcpEndpoint, n: number): void {
  if (n <= 0) return;
  if (!ep.rcvBufLocked) autotune(ep, n);
  if (ep.finRcvd && ep.rcvQ !== null && ep.rcvQ.bytes === 0) ep.pendingEv |= EV_END;
  if (!ep.isSynchronized() || ep.finRcvd) return;
  // Window update when the window grew enough (Linux tcp_cleanup_rbuf).
  const cur = Math.max(0, seqDiff(ep.rcvAdv, ep.rcvNxt));
  const max = 65535 << ep.rcvWscale;
  if (2 * cur <= Math.min(ep.rcvBuf, max)) {
    const queued = (ep.rcvQ ? ep.rcvQ.bytes : 0) + (ep.ooo ? ep.ooo.bytes : 0);
    const free = ep.rcvBuf - queued;
    if (free >= 2 * cur && free - cur >= ep.rcvMss) sendAck(ep);
  }
}

/** Dynamic right-sizing of the receive buffer (Linux tcp_rcv_space_adjust, simplified). */
export function autotune(ep: TcpEndpoint, n: number): void {
  const now = ep.proto.stack.clock.now();
  if (ep.rttWindowStart < 0) {
    ep.rttWindowStart = now;
    ep.rcvSpace = Math.min(ep.rcvBuf, 10 * ep.rcvMss);
  }
  ep.copiedInRtt += n;
  const rtt = ep.srtt > 0 ? ep.srtt : 1;
  if (now - ep.rttWindowStart < rtt) return;
  const copied = ep.copiedInRtt;
  ep.copiedInRtt = 0;
  ep.rttWindowStart = now;
  if (copied <= ep.rcvSpace) return;
  ep.rcvSpace = copied;
  const want = Math.min(ep.rcvBufMax, 4 * copied);
  if (want > ep.rcvBuf && !ep.proto.memory.underPressure) ep.rcvBuf = want;
}

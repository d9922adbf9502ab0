/**
 * TIME_WAIT (RFC 9293 3.6): a connection that reaches it leaves the table and a light record
 * takes its place, kept in a FIFO sorted by expiry and expired by one protocol timer; the record
 * ACKs retransmitted FINs, honours RSTs and lets a newer SYN reuse the 4-tuple as Linux does.
 */
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, writeTcpHeader, writeTimestampOption } from '../../headers/tcp.js';
import type { Route } from '../../stack/route.js';
import type { TcpEndpoint } from './endpoint.js';
import { listenInput } from './listen.js';
import type { TableEntry, TcpProtocol } from './protocol.js';
import type { Segment } from './segment.js';
import { sendAck } from './sender.js';
import { seqAdd, seqGt, seqLt } from './seq.js';

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

/** A connection's move into TIME_WAIT: its last ACK, then a record takes its place. */
export function enterTimeWait(ep: TcpEndpoint): void {
  // The last ACK goes out before the endpoint turns into a TIME_WAIT record.
  if (ep.ackNow || ep.lastAckSent !== ep.rcvNxt) sendAck(ep);
  twInsert(ep.proto, ep);
  ep.destroy(false);
}

/** @internal Replace a connection by a TIME_WAIT record. */
export function twInsert(tcp: TcpProtocol, ep: TcpEndpoint): void {
  if (ep.hashed) tcp.remove(ep);
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
  tcp.insertEntry(tw);
  tcp.twPorts.set(tw.lport, (tcp.twPorts.get(tw.lport) ?? 0) + 1);
  tcp.stats.timeWaitCount++;
  twAppend(tcp, tw, tcp.stack.clock.now() + tcp.timeWaitMs);
}

export function twAppend(tcp: TcpProtocol, tw: TimeWaitRecord, expires: number): void {
  tw.expires = expires;
  // Keep the FIFO sorted by expiry (usually an append at the tail).
  let after = tcp.twTail;
  while (after !== null && after.expires > expires) after = after.twPrev;
  tw.twPrev = after;
  tw.twNext = after === null ? tcp.twHead : after.twNext;
  if (tw.twNext !== null) tw.twNext.twPrev = tw;
  else tcp.twTail = tw;
  if (after !== null) after.twNext = tw;
  else tcp.twHead = tw;
  armTwTimer(tcp);
}

export function twUnlink(tcp: TcpProtocol, tw: TimeWaitRecord): void {
  if (tw.twPrev !== null) tw.twPrev.twNext = tw.twNext;
  else tcp.twHead = tw.twNext;
  if (tw.twNext !== null) tw.twNext.twPrev = tw.twPrev;
  else tcp.twTail = tw.twPrev;
  tw.twPrev = null;
  tw.twNext = null;
}

export function armTwTimer(tcp: TcpProtocol): void {
  const head = tcp.twHead;
  if (head === null) {
    tcp.twTimer?.cancel();
    return;
  }
  const t = (tcp.twTimer ??= tcp.stack.clock.timer(() => onTwTimer(tcp)));
  const delay = head.expires - tcp.stack.clock.now();
  if (!t.pending || t.deadline !== head.expires) t.schedule(delay);
}

export function onTwTimer(tcp: TcpProtocol): void {
  const now = tcp.stack.clock.now();
  while (tcp.twHead !== null && tcp.twHead.expires <= now) {
    tcp.stats.timeWaitExpired++;
    killTimeWait(tcp, tcp.twHead);
  }
  armTwTimer(tcp);
}

export function killTimeWait(tcp: TcpProtocol, tw: TimeWaitRecord): void {
  twUnlink(tcp, tw);
  tcp.removeEntry(tw);
  tcp.stats.timeWaitCount--;
  const n = (tcp.twPorts.get(tw.lport) ?? 1) - 1;
  if (n <= 0) tcp.twPorts.delete(tw.lport);
  else tcp.twPorts.set(tw.lport, n);
}

/** RFC 9293 3.10.7.4 in TIME_WAIT, with Linux's reuse of the 4-tuple by a newer SYN. */
export function timeWaitInput(tcp: TcpProtocol, tw: TimeWaitRecord, seg: Segment): void {
  const flags = seg.flags;
  const o = seg.opts;
  if ((flags & TCP_RST) !== 0) {
    if (seg.seq === tw.rcvNxt) {
      tcp.stats.timeWaitKilled++;
      killTimeWait(tcp, tw);
      armTwTimer(tcp);
    }
    return;
  }
  if ((flags & TCP_SYN) !== 0 && (flags & TCP_ACK) === 0) {
    const pawsOk = !(tw.tsOn && o.timestamp) || ((o.tsVal - tw.tsRecent) | 0) >= 0;
    const newer = seqGt(seg.seq, tw.rcvNxt) || (tw.tsOn && o.timestamp && ((o.tsVal - tw.tsRecent) | 0) > 0);
    if (pawsOk && newer) {
      const isn = seqAdd(tw.sndNxt, 65535 + 2);
      killTimeWait(tcp, tw);
      armTwTimer(tcp);
      tcp.stats.timeWaitReused++;
      const l = tcp.findListener(seg.dstPort, seg.net.data, seg.net.dstOffset, seg.net.family);
      if (l !== null) listenInput(tcp, l, seg, isn);
      else if (tcp.forwarder === null || !tcp.forwarder.offer(seg)) tcp.sendRstForClosed(seg);
      return;
    }
    twAck(tcp, tw);
    return;
  }
  if (tw.tsOn && o.timestamp && ((o.tsVal - tw.tsRecent) | 0) < 0) {
    tcp.stats.pawsDropped++;
    twAck(tcp, tw);
    return;
  }
  const fin = (flags & TCP_FIN) !== 0;
  if (fin && seqAdd(seg.seq, seg.plLen + 1) === tw.rcvNxt) {
    // The peer's FIN again: our last ACK was lost. ACK and restart 2MSL.
    twAck(tcp, tw);
    twUnlink(tcp, tw);
    twAppend(tcp, tw, tcp.stack.clock.now() + tcp.timeWaitMs);
    return;
  }
  if (seg.plLen > 0 || fin || seqLt(seg.seq, tw.rcvNxt)) twAck(tcp, tw);
}

export function twAck(tcp: TcpProtocol, tw: TimeWaitRecord): void {
  const route = tw.route;
  const hl = tw.tsOn ? 32 : 20;
  const pkt = tcp.allocPacket(hl, 64 + route.nic.endpoint.maxHeaderLength);
  const b = pkt.data;
  const o = pkt.start;
  if (tw.tsOn) {
    const tv = (Math.floor(tcp.stack.clock.now()) + tw.tsOffset) >>> 0;
    writeTimestampOption(b, o + 20, tv, tw.tsRecent);
  }
  writeTcpHeader(b, o, tw.lport, tw.rport, tw.sndNxt, tw.rcvNxt, TCP_ACK, tw.windowField, hl);
  tcp.finishAndSend(route, pkt, hl);
}

/**
 * Passive opens (RFC 9293 3.10.7.2): a listener's input, its SYN queue of embryonic children and
 * the accept queue they join, and SYN cookies (Linux's layout: hash + peer ISN + 8-bit minute
 * counter + 24-bit MSS index) when the SYN queue overflows.
 */
import { TunstackError } from '../../core/errors.js';
import { encodeTcpOptions, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, tcpOptionsLength, writeTcpHeader } from '../../headers/tcp.js';
import { inheritFrom, setRoute, startFromCookie, startPassive } from './connect.js';
import { TcpEndpoint } from './endpoint.js';
import { keyedTupleHash } from './hash.js';
import type { TcpProtocol } from './protocol.js';
import { input } from './receiver.js';
import type { Segment } from './segment.js';
import { seqAdd } from './seq.js';
import { CLOSED, LISTEN } from './types.js';

/** SYN cookie MSS values (the index travels in the cookie), as Linux's IPv4 table. */
export const COOKIE_MSS_TABLE: readonly number[] = [536, 1300, 1440, 1460];
/** Cookies older than this many 64-second... minute counter steps are refused (Linux: 2). */
export const COOKIE_MAX_AGE = 2;
export const COOKIE_PERIOD_MS = 60_000;

/** A segment for a listener (RFC 9293 3.10.7.2), SYN queue and cookies. */
export function listenInput(tcp: TcpProtocol, l: TcpEndpoint, seg: Segment, isnHint: number): void {
  const flags = seg.flags;
  const stats = tcp.stats;
  if ((flags & TCP_RST) !== 0) return;
  if ((flags & TCP_ACK) !== 0) {
    if ((flags & TCP_SYN) === 0 && tcp.syncookies && tcp.stack.clock.now() - l.lastCookieTime <= 2 * COOKIE_PERIOD_MS) {
      cookieAck(tcp, l, seg);
      return;
    }
    tcp.sendRstForAck(seg);
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
    if (tcp.syncookies) sendCookieSynAck(tcp, l, seg);
    else stats.listenDrops++;
    return;
  }
  const child = newChild(tcp, l, seg);
  if (child === null) return;
  sq.add(child);
  stats.passiveOpens++;
  const iss = isnHint >= 0 ? isnHint : tcp.isn(child.laddr!, child.raddr!, child.lport, child.rport);
  startPassive(child, seg, iss);
  child.flushEvents();
}

export function newChild(tcp: TcpProtocol, l: TcpEndpoint, seg: Segment): TcpEndpoint | null {
  const route = tcp.routeBack(seg);
  if (route === null) {
    tcp.stats.listenDrops++;
    return null;
  }
  // The child shares the route's copies of the addresses.
  const child = new TcpEndpoint(tcp, { family: seg.net.family });
  inheritFrom(child, l);
  child.laddr = route.localAddress;
  child.raddr = route.remoteAddress;
  child.lport = seg.dstPort;
  child.rport = seg.srcPort;
  child.parent = l;
  setRoute(child, route);
  tcp.insert(child);
  return child;
}

export function cookieHash(tcp: TcpProtocol, which: number, seg: Segment, extra: number): number {
  const net = seg.net;
  const alen = net.family === 4 ? 4 : 16;
  const k = tcp.cookieKey;
  return keyedTupleHash(k[which * 2]!, k[which * 2 + 1]!, net.data, net.dstOffset, net.data, net.srcOffset, alen, seg.dstPort, seg.srcPort, extra);
}

export function makeCookie(tcp: TcpProtocol, seg: Segment, peerIsn: number, count: number, mssIdx: number): number {
  const h1 = cookieHash(tcp, 0, seg, 0);
  const h2 = cookieHash(tcp, 1, seg, count);
  return (h1 + peerIsn + ((count & 0xff) << 24) + ((h2 + mssIdx) & 0xffffff)) >>> 0;
}

/** The MSS index in a valid cookie, else -1. */
export function checkCookie(tcp: TcpProtocol, seg: Segment, cookie: number, peerIsn: number): number {
  const now = Math.floor(tcp.stack.clock.now() / COOKIE_PERIOD_MS);
  const h1 = cookieHash(tcp, 0, seg, 0);
  const diff = (cookie - h1 - peerIsn) >>> 0;
  const age = (now - (diff >>> 24)) & 0xff;
  if (age > COOKIE_MAX_AGE) return -1;
  const count = now - age;
  const h2 = cookieHash(tcp, 1, seg, count);
  const idx = (diff - h2) & 0xffffff;
  return idx < COOKIE_MSS_TABLE.length ? idx : -1;
}

export function sendCookieSynAck(tcp: TcpProtocol, l: TcpEndpoint, seg: Segment): void {
  const net = seg.net;
  const alen = net.family === 4 ? 4 : 16;
  const now = tcp.stack.clock.now();
  const route = tcp.routeBack(seg);
  if (route === null) {
    tcp.stats.listenDrops++;
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
  const cookie = makeCookie(tcp, seg, seg.seq, Math.floor(now / COOKIE_PERIOD_MS), idx);
  const f = tcp.synFields;
  const ipHdr = route.family === 4 ? 20 : 40;
  f.mss = Math.max(48, Math.min(route.nic.mtu, 65535) - ipHdr - 20);
  const ts = tcp.timestamps && o.timestamp;
  // Without timestamps the cookie cannot carry window scale or SACK, so they are not offered.
  const ws = ts && tcp.windowScaling && o.windowScale >= 0;
  const sackOk = ts && tcp.sack && o.sackPermitted;
  const rcvBufMax = l.receiveBufferSize;
  let ourWs = 0;
  while (ourWs < 14 && rcvBufMax >>> ourWs > 65535) ourWs++;
  f.windowScale = ws ? ourWs : -1;
  f.sackPermitted = sackOk;
  f.timestamp = ts;
  if (ts) {
    const la = net.data.slice(net.dstOffset, net.dstOffset + alen);
    const ra = net.data.slice(net.srcOffset, net.srcOffset + alen);
    const nowTs = (Math.floor(now) + tcp.tsOffsetFor(la, ra, seg.dstPort, seg.srcPort)) >>> 0;
    const bits = (ws ? Math.min(o.windowScale, 14) : 0xf) | (sackOk ? 0x10 : 0);
    let tv = ((nowTs & ~0x3f) | bits) >>> 0;
    if (((tv - nowTs) | 0) > 0) tv = (tv - 64) >>> 0;
    f.tsVal = tv;
    f.tsEcr = o.tsVal;
  }
  f.sackBlocks = undefined;
  const hl = 20 + tcpOptionsLength(f);
  const pkt = tcp.allocPacket(hl, 64 + route.nic.endpoint.maxHeaderLength);
  encodeTcpOptions(pkt.data, pkt.start + 20, f);
  const win = Math.min(l.rcvBufLockedOr(tcp.rmemDefault), 65535);
  writeTcpHeader(pkt.data, pkt.start, seg.dstPort, seg.srcPort, cookie, seqAdd(seg.seq, 1), TCP_SYN | TCP_ACK, win, hl);
  tcp.stats.synCookiesSent++;
  l.lastCookieTime = now;
  tcp.finishAndSend(route, pkt, hl);
}

export function cookieAck(tcp: TcpProtocol, l: TcpEndpoint, seg: Segment): void {
  const stats = tcp.stats;
  const idx = checkCookie(tcp, seg, seqAdd(seg.ack, -1), seqAdd(seg.seq, -1));
  if (idx < 0) {
    stats.synCookiesFailed++;
    tcp.sendRstForAck(seg);
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
  const child = newChild(tcp, l, seg);
  if (child === null) return;
  stats.synCookiesValidated++;
  stats.passiveOpens++;
  startFromCookie(child, seg, COOKIE_MSS_TABLE[idx]!, ws, sackOk);
  if (seg.plLen > 0 || (seg.flags & TCP_FIN) !== 0) input(child, seg);
  child.flushEvents();
}

/** listen(): CLOSED -> LISTEN (binding an ephemeral port first), or a new backlog for a listener. */
export function listenOn(ep: TcpEndpoint, backlog: number): void {
  if (ep.closeEmitted) throw new TunstackError('EBADF', 'socket is closed', 'listen');
  if (ep.st === LISTEN) {
    ep.backlog = clampBacklog(backlog, ep.proto.somaxconn);
    return;
  }
  if (ep.st !== CLOSED) throw new TunstackError('EINVAL', 'socket is connected', 'listen');
  if (ep.lport === 0) ep.bind(null, 0);
  if (ep.proto.listenerConflict(ep.lport, ep.laddr, ep.family, ep.v6Only, ep)) {
    throw new TunstackError('EADDRINUSE', `port ${ep.lport} has a listener`, 'listen');
  }
  ep.backlog = clampBacklog(backlog, ep.proto.somaxconn);
  ep.acceptQueue = [];
  ep.st = LISTEN;
  ep.proto.addListener(ep);
}

function clampBacklog(b: number, somaxconn: number): number {
  if (!Number.isFinite(b) || b < 0) b = 0;
  return Math.min(Math.floor(b), somaxconn);
}

import { EventEmitter } from 'eventemitter3';
import { TunstackError } from '../core/errors.js';
import { expectAddress, expectBytes, expectInteger, optionalInteger, optionalNicRef, optionalOneOf } from '../core/validate.js';
import { BROADCAST_MAC, formatIP, parseIP } from '../core/address.js';
import { sum } from '../headers/checksum.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../headers/ethernet.js';
import { setIcmpV6Checksum } from '../headers/icmpv6.js';
import type { IPv4Protocol } from '../network/ipv4.js';
import type { IPv6Protocol } from '../network/ipv6.js';
import type { NIC, NicPacketObserver } from '../stack/nic.js';
import { PacketBuffer, PacketType } from '../core/packet.js';
import type { NetworkInfo, TransportError, TransportProtocol } from '../stack/protocol.js';
import { TransportResult } from '../stack/protocol.js';
import { icmpErrno } from '../stack/errno.js';
import type { Route } from '../stack/route.js';
import type { NetStack } from '../stack/stack.js';

/**
 * Raw access below the transports, each bounded (a queue of `queueLength` packets; overflow
 * dropped and counted):
 *
 * - RawSocket (`stack.raw({ family, protocol })`): a copy of every datagram of one IP protocol
 *   delivered to this stack (after reassembly), the IP header included for both families; `send`
 *   takes a whole datagram (IP_HDRINCL: total/payload length, checksum, and a zero IPv4 id or
 *   source filled in; never fragmented), `sendTo` builds the header (ICMPv6 checksums are
 *   computed, as Linux does for raw ICMPv6 sockets).
 * - PingSocket (`stack.pingSocket({ family })`): Linux's unprivileged SOCK_DGRAM ICMP socket.
 *   Bound to an echo identifier (its "port", ephemeral if 0); `send` takes an echo request
 *   (type 8 / 128, code 0), rewrites its identifier and checksum; echo replies with that
 *   identifier are received (ICMP header and data). ICMP errors quoting its requests reach a
 *   connected socket as 'error' (ECONNREFUSED, EHOSTUNREACH, EMSGSIZE ...).
 * - PacketTap (`stack.packetTap({ nic })`): AF_PACKET-like, every frame in and out of a NIC (or
 *   of every NIC): Ethernet frames on Ethernet NICs (the outbound header as the link will write
 *   it), IP packets on IP links.
 */

const DEFAULT_QUEUE = 256;

export interface RawSocketOptions {
  family: 4 | 6;
  /** IP protocol number 1..255 (255, IPPROTO_RAW: send only). */
  protocol: number;
  /** Receive queue bound in packets (default 256). */
  queueLength?: number;
  /** Only datagrams that arrived on this NIC (SO_BINDTODEVICE). */
  nic?: number | string;
}

export interface RawMessage {
  /** The whole datagram, IP header included. */
  data: Uint8Array;
  /** Source and destination address. */
  from: string;
  to: string;
  nicId: number;
}

interface RawEvents {
  readable: [];
}

export class RawSocket extends EventEmitter<RawEvents> {
  readonly family: 4 | 6;
  readonly protocol: number;
  readonly stats = { received: 0, dropped: 0, sent: 0 };
  /** TTL / hop limit and TOS / traffic class for `sendTo`. */
  ttl: number;
  tos = 0;
  private readonly queueLength: number;
  private queue: RawMessage[] = [];
  private readonly nicId: number;
  private closed = false;

  constructor(
    private readonly mgr: RawManager,
    options: RawSocketOptions,
  ) {
    super();
    optionalInteger(options.queueLength, 'raw', 'options.queueLength', 1, 0x7fffffff);
    optionalNicRef(options.nic, 'raw', 'options.nic');
    if (options.family !== 4 && options.family !== 6) throw new TunstackError('EAFNOSUPPORT', 'raw socket family must be 4 or 6');
    if (!Number.isInteger(options.protocol) || options.protocol < 1 || options.protocol > 255) {
      throw new TunstackError('EPROTONOSUPPORT', `raw protocol ${options.protocol}`);
    }
    this.family = options.family;
    this.protocol = options.protocol;
    this.queueLength = options.queueLength ?? DEFAULT_QUEUE;
    this.nicId = options.nic !== undefined ? mgr.stack.getNIC(options.nic).id : 0;
    this.ttl = mgr.stack.defaultTtl;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** The next received datagram, or null. */
  recv(): RawMessage | null {
    return this.queue.shift() ?? null;
  }

  /**
   * Send a whole datagram (IP header included). Filled in: IPv4 total length, header checksum,
   * identification when 0, source when 0.0.0.0; IPv6 payload length, source when ::. EMSGSIZE
   * above the route's MTU (no fragmentation, as Linux's IP_HDRINCL).
   */
  send(datagram: Uint8Array): void {
    this.assertOpen();
    expectBytes(datagram, 'send', 'datagram');
    const stack = this.mgr.stack;
    const hl = this.family === 4 ? 20 : 40;
    if (datagram.length < hl || datagram[0]! >>> 4 !== this.family) {
      throw new TunstackError('EINVAL', `not an IPv${this.family} datagram`, 'send');
    }
    const dst = this.family === 4 ? datagram.slice(16, 20) : datagram.slice(24, 40);
    const srcOff = this.family === 4 ? 12 : 8;
    const src = datagram.subarray(srcOff, srcOff + (this.family === 4 ? 4 : 16));
    const route = stack.findRoute(dst, {
      local: isZero(src) ? null : src,
      ...(this.nicId !== 0 ? { nic: this.nicId } : {}),
    });
    const mtu = route.nic.mtu;
    if (datagram.length > mtu) throw new TunstackError('EMSGSIZE', `datagram of ${datagram.length} bytes exceeds MTU ${mtu}`, 'send');
    const pkt = PacketBuffer.fromPayload(datagram);
    const b = pkt.data;
    const s = pkt.start;
    if (isZero(src)) b.set(route.localAddress, s + srcOff);
    if (this.family === 4) {
      const ihl = (b[s]! & 0x0f) * 4;
      if (ihl < 20 || ihl > datagram.length) throw new TunstackError('EINVAL', 'bad IPv4 header length', 'send');
      b[s + 2] = datagram.length >>> 8;
      b[s + 3] = datagram.length & 0xff;
      if (b[s + 4] === 0 && b[s + 5] === 0) {
        const id = stack.random.below(0x10000);
        b[s + 4] = id >>> 8;
        b[s + 5] = id & 0xff;
      }
      b[s + 10] = 0;
      b[s + 11] = 0;
      const c = ~sum(b, s, ihl) & 0xffff;
      b[s + 10] = c >>> 8;
      b[s + 11] = c & 0xff;
      pkt.networkProtocol = ETHERTYPE_IPV4;
      pkt.networkHeaderStart = s;
      pkt.networkHeaderLength = ihl;
      stack.requireNetwork<IPv4Protocol>(ETHERTYPE_IPV4).sendDatagram(route, pkt);
    } else {
      const pl = datagram.length - 40;
      b[s + 4] = pl >>> 8;
      b[s + 5] = pl & 0xff;
      pkt.networkProtocol = ETHERTYPE_IPV6;
      pkt.networkHeaderStart = s;
      pkt.networkHeaderLength = 40;
      const ip6 = stack.requireNetwork<IPv6Protocol>(ETHERTYPE_IPV6);
      ip6.stats.packetsSent++;
      ip6.transmitTo(route.nic, route.remoteAddress, route.nextHop, pkt, route.localDelivery);
    }
    this.stats.sent++;
  }

  /** Send `payload` as this socket's protocol to `address`; the stack builds the IP header. */
  sendTo(payload: Uint8Array, address: string | Uint8Array): void {
    this.assertOpen();
    if (this.protocol === 255) throw new TunstackError('EINVAL', 'IPPROTO_RAW sockets send whole datagrams (send)', 'send');
    const dst = typeof address === 'string' ? parseIP(address) : address;
    if (dst.length !== (this.family === 4 ? 4 : 16)) throw new TunstackError('EAFNOSUPPORT', 'address family mismatch', 'send');
    const route = this.mgr.stack.findRoute(dst, this.nicId !== 0 ? { nic: this.nicId } : {});
    const pkt = PacketBuffer.fromPayload(payload);
    if (this.family === 6 && this.protocol === 58 && payload.length >= 4) {
      setIcmpV6Checksum(pkt.data, pkt.start, payload.length, route.localAddress, route.remoteAddress);
    }
    route.send(pkt, { protocol: this.protocol, ttl: this.ttl, tos: this.tos });
    this.stats.sent++;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.mgr.removeRaw(this);
    this.removeAllListeners();
  }

  /** @internal */
  input(nic: NIC, data: Uint8Array, ip: number, end: number): boolean {
    if (this.nicId !== 0 && nic.id !== this.nicId) return false;
    if (this.queue.length >= this.queueLength) {
      this.stats.dropped++;
      return true;
    }
    const alen = this.family === 4 ? 4 : 16;
    const so = this.family === 4 ? ip + 12 : ip + 8;
    const dOff = this.family === 4 ? ip + 16 : ip + 24;
    this.queue.push({
      data: data.slice(ip, end),
      from: formatIP(data.slice(so, so + alen)),
      to: formatIP(data.slice(dOff, dOff + alen)),
      nicId: nic.id,
    });
    this.stats.received++;
    if (this.queue.length === 1) this.emit('readable');
    return true;
  }

  private assertOpen(): void {
    if (this.closed) throw new TunstackError('EBADF', 'socket is closed');
  }
}

// ------------------------------------------------------------------------------------- ping

export interface PingSocketOptions {
  family?: 4 | 6;
  /** Receive queue bound in packets (default 256). */
  queueLength?: number;
}

export interface PingMessage {
  /** The ICMP echo reply: 8-byte header and data. */
  data: Uint8Array;
  address: string;
  /** TTL / hop limit of the reply. */
  ttl: number;
}

interface PingEvents {
  readable: [];
  error: [TunstackError];
}

export class PingSocket extends EventEmitter<PingEvents> {
  readonly family: 4 | 6;
  /** The echo identifier (Linux: the socket's "port"); 0 until bound. */
  id = 0;
  localAddress: Uint8Array | null = null;
  remoteAddress: Uint8Array | null = null;
  ttl: number;
  readonly stats = { received: 0, dropped: 0, sent: 0 };
  pendingError: TunstackError | null = null;
  private readonly queueLength: number;
  private queue: PingMessage[] = [];
  private closed = false;

  constructor(
    private readonly proto: PingProtocol,
    options: PingSocketOptions,
  ) {
    super();
    optionalInteger(options.queueLength, 'pingSocket', 'options.queueLength', 1, 0x7fffffff);
    this.family = options.family ?? 4;
    if (this.family !== 4 && this.family !== 6) throw new TunstackError('EAFNOSUPPORT', 'ping socket family must be 4 or 6');
    this.queueLength = options.queueLength ?? DEFAULT_QUEUE;
    this.ttl = proto.stack.defaultTtl;
  }

  /** Bind to a local address (null: any) and identifier (0: ephemeral). EADDRINUSE. */
  bind(address: string | Uint8Array | null = null, id = 0): void {
    this.assertOpen();
    if (this.id !== 0) throw new TunstackError('EINVAL', 'socket is already bound', 'bind');
    let addr = address === null || address === '' ? null : expectAddress(address, 'bind', 'address');
    expectInteger(id, 'bind', 'id', 0, 0xffff);
    if (addr !== null && isZero(addr)) addr = null;
    if (addr !== null && addr.length !== (this.family === 4 ? 4 : 16)) throw new TunstackError('EAFNOSUPPORT', 'address family mismatch', 'bind');
    if (addr !== null && this.proto.stack.nicForAddress(addr) === null) {
      throw new TunstackError('EADDRNOTAVAIL', `${formatIP(addr)} is not a local address`, 'bind');
    }
    this.id = this.proto.stack.ports.reserve(this.proto.number, addr, id, this, false, this.family === 4 ? 'v4' : 'v6');
    this.localAddress = addr === null ? null : addr.slice();
    this.proto.register(this);
  }

  /** Only exchange echoes with `address`; errors are reported to a connected socket. */
  connect(address: string | Uint8Array): void {
    this.assertOpen();
    const addr = expectAddress(address, 'connect', 'address').slice();
    if (addr.length !== (this.family === 4 ? 4 : 16)) throw new TunstackError('EAFNOSUPPORT', 'address family mismatch', 'connect');
    this.proto.stack.findRoute(addr);
    if (this.id === 0) this.bind(null, 0);
    this.remoteAddress = addr;
  }

  /**
   * Send an echo request: `message` is the ICMP header (type 8 or 128, code 0) and data. The
   * identifier is set to the socket's and the checksum computed. EINVAL for anything else.
   */
  send(message: Uint8Array, address?: string | Uint8Array): number {
    this.assertOpen();
    expectBytes(message, 'send', 'message');
    const want = this.family === 4 ? 8 : 128;
    if (message.length < 8 || message[0] !== want || message[1] !== 0) {
      throw new TunstackError('EINVAL', `not an ICMP${this.family === 6 ? 'v6' : ''} echo request`, 'send');
    }
    let dst: Uint8Array;
    if (address === undefined) {
      if (this.remoteAddress === null) throw new TunstackError('EDESTADDRREQ', 'no destination address', 'send');
      dst = this.remoteAddress;
    } else {
      dst = expectAddress(address, 'send', 'address');
      if (dst.length !== (this.family === 4 ? 4 : 16)) throw new TunstackError('EAFNOSUPPORT', 'address family mismatch', 'send');
    }
    if (this.id === 0) this.bind(null, 0);
    const route: Route = this.proto.stack.findRoute(dst, { local: this.localAddress });
    const pkt = PacketBuffer.fromPayload(message);
    const b = pkt.data;
    const s = pkt.start;
    b[s + 4] = this.id >>> 8;
    b[s + 5] = this.id & 0xff;
    if (this.family === 4) {
      b[s + 2] = 0;
      b[s + 3] = 0;
      const c = ~sum(b, s, message.length) & 0xffff;
      b[s + 2] = c >>> 8;
      b[s + 3] = c & 0xff;
    } else {
      setIcmpV6Checksum(b, s, message.length, route.localAddress, route.remoteAddress);
    }
    route.send(pkt, { protocol: this.family === 4 ? 1 : 58, ttl: this.ttl, tos: 0 });
    this.stats.sent++;
    return message.length;
  }

  recv(): PingMessage | null {
    return this.queue.shift() ?? null;
  }

  takeError(): TunstackError | null {
    const e = this.pendingError;
    this.pendingError = null;
    return e;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.proto.unregister(this);
    if (this.id !== 0) this.proto.stack.ports.release(this.proto.number, this.id, this);
    this.queue = [];
    this.removeAllListeners();
  }

  /** @internal */
  deliver(m: PingMessage): void {
    if (this.queue.length >= this.queueLength) {
      this.stats.dropped++;
      return;
    }
    this.queue.push(m);
    this.stats.received++;
    if (this.queue.length === 1) this.emit('readable');
  }

  /** @internal */
  fail(err: TunstackError): void {
    this.pendingError = err;
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  private assertOpen(): void {
    if (this.closed) throw new TunstackError('EBADF', 'socket is closed');
  }
}

/**
 * Echo replies for ping sockets, registered as transport protocol 1 (ICMP) or 58 (ICMPv6): the
 * IP layers hand it echo replies and the errors that quote echo requests.
 */
export class PingProtocol implements TransportProtocol {
  readonly number: number;
  private readonly byId = new Map<number, PingSocket[]>();

  constructor(
    readonly stack: NetStack,
    readonly family: 4 | 6,
  ) {
    this.number = family === 4 ? 1 : 58;
  }

  createSocket(options: PingSocketOptions = {}): PingSocket {
    return new PingSocket(this, { ...options, family: this.family });
  }

  /** @internal */
  register(s: PingSocket): void {
    const l = this.byId.get(s.id);
    if (l) l.push(s);
    else this.byId.set(s.id, [s]);
  }

  /** @internal */
  unregister(s: PingSocket): void {
    const l = this.byId.get(s.id);
    if (!l) return;
    const i = l.indexOf(s);
    if (i >= 0) l.splice(i, 1);
    if (l.length === 0) this.byId.delete(s.id);
  }

  handlePacket(net: NetworkInfo, pkt: PacketBuffer): TransportResult {
    if (net.family !== this.family || this.byId.size === 0) return TransportResult.Handled;
    const data = pkt.data;
    const s = pkt.start;
    if (pkt.end - s < 8 || data[s] !== (this.family === 4 ? 0 : 129)) return TransportResult.Handled;
    const list = this.byId.get((data[s + 4]! << 8) | data[s + 5]!);
    if (!list) return TransportResult.Handled;
    const alen = this.family === 4 ? 4 : 16;
    for (const sock of list) {
      if (sock.localAddress !== null && !sameAt(sock.localAddress, data, net.dstOffset)) continue;
      if (sock.remoteAddress !== null && !sameAt(sock.remoteAddress, data, net.srcOffset)) continue;
      sock.deliver({ data: data.slice(s, pkt.end), address: formatIP(data.slice(net.srcOffset, net.srcOffset + alen)), ttl: net.ttl });
    }
    return TransportResult.Handled;
  }

  handleError(net: NetworkInfo, error: TransportError, quoted: Uint8Array, off: number): void {
    if (net.family !== this.family) return;
    if (quoted[off] !== (this.family === 4 ? 8 : 128)) return;
    const list = this.byId.get((quoted[off + 4]! << 8) | quoted[off + 5]!);
    if (!list) return;
    // A path MTU report counts when a socket with that identifier could have sent the request.
    if (list.some((sock) => sock.remoteAddress === null || sameAt(sock.remoteAddress, net.data, net.dstOffset))) error.confirmPathMtu?.();
    for (const sock of list) {
      // As Linux without IP_RECVERR: hard errors go to connected sockets.
      if (sock.remoteAddress === null || !sameAt(sock.remoteAddress, net.data, net.dstOffset)) continue;
      sock.fail(icmpErrno(error, { syscall: 'recv' }));
    }
  }

  close(): void {
    for (const l of [...this.byId.values()]) for (const s of [...l]) s.close();
  }
}

export function pingFactory(family: 4 | 6): (stack: NetStack) => PingProtocol {
  return (stack) => new PingProtocol(stack, family);
}

// ------------------------------------------------------------------------------------- taps

export interface PacketTapOptions {
  /** One NIC (id or name); default every NIC, present and future. */
  nic?: number | string;
  /** Which directions; default both. */
  direction?: 'both' | 'in' | 'out';
  /** Queue bound in frames (default 1024). */
  queueLength?: number;
}

export interface TappedFrame {
  /** The frame: Ethernet header and payload on Ethernet NICs, the IP packet on IP links. */
  data: Uint8Array;
  nicId: number;
  outbound: boolean;
  /** EtherType of the network protocol (0 if unknown). */
  protocol: number;
  /** Inbound link-layer classification (Outgoing for outbound frames). */
  packetType: PacketType;
  /** Clock time when seen. */
  time: number;
}

export class PacketTap extends EventEmitter<RawEvents> implements NicPacketObserver {
  readonly stats = { captured: 0, dropped: 0 };
  private readonly queueLength: number;
  private readonly wantIn: boolean;
  private readonly wantOut: boolean;
  private queue: TappedFrame[] = [];
  private readonly nics: NIC[] = [];
  private closed = false;
  private readonly onNicAdded: ((nic: NIC) => void) | null;

  constructor(
    private readonly stack: NetStack,
    options: PacketTapOptions,
  ) {
    super();
    optionalInteger(options.queueLength, 'packetTap', 'options.queueLength', 1, 0x7fffffff);
    optionalOneOf(options.direction, 'packetTap', 'options.direction', ['both', 'in', 'out']);
    optionalNicRef(options.nic, 'packetTap', 'options.nic');
    this.queueLength = options.queueLength ?? 1024;
    const d = options.direction ?? 'both';
    this.wantIn = d !== 'out';
    this.wantOut = d !== 'in';
    if (options.nic !== undefined) {
      this.watch(stack.getNIC(options.nic));
      this.onNicAdded = null;
    } else {
      for (const n of stack.nics) this.watch(n);
      this.onNicAdded = (n) => this.watch(n);
      stack.on('nic-added', this.onNicAdded);
    }
  }

  private watch(nic: NIC): void {
    nic.addObserver(this);
    this.nics.push(nic);
  }

  get queued(): number {
    return this.queue.length;
  }

  recv(): TappedFrame | null {
    return this.queue.shift() ?? null;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const n of this.nics) n.removeObserver(this);
    if (this.onNicAdded) this.stack.off('nic-added', this.onNicAdded);
    this.queue = [];
    this.removeAllListeners();
  }

  /** @internal NicPacketObserver */
  observe(nic: NIC, outbound: boolean, pkt: PacketBuffer): void {
    if (outbound ? !this.wantOut : !this.wantIn) return;
    if (this.queue.length >= this.queueLength) {
      this.stats.dropped++;
      return;
    }
    let data: Uint8Array;
    let protocol = pkt.networkProtocol;
    if (protocol === 0 && pkt.end > pkt.start) {
      const v = pkt.data[pkt.start]! >>> 4;
      protocol = v === 4 ? ETHERTYPE_IPV4 : v === 6 ? ETHERTYPE_IPV6 : 0;
    }
    if (!outbound) {
      data = pkt.data.slice(pkt.linkHeaderStart >= 0 ? pkt.linkHeaderStart : pkt.start, pkt.end);
    } else if (nic.needsResolution && nic.linkAddress.length === 6) {
      // The Ethernet header the link will prepend.
      const len = pkt.end - pkt.start;
      data = new Uint8Array(14 + len);
      data.set(pkt.remoteLinkAddress ?? BROADCAST_MAC, 0);
      data.set(nic.linkAddress, 6);
      data[12] = protocol >>> 8;
      data[13] = protocol & 0xff;
      data.set(pkt.data.subarray(pkt.start, pkt.end), 14);
    } else {
      data = pkt.data.slice(pkt.start, pkt.end);
    }
    this.queue.push({
      data,
      nicId: nic.id,
      outbound,
      protocol,
      packetType: outbound ? PacketType.Outgoing : pkt.packetType,
      time: this.stack.clock.now(),
    });
    this.stats.captured++;
    if (this.queue.length === 1) this.emit('readable');
  }
}

// ------------------------------------------------------------------------------------- wiring

/** Raw sockets of one stack and the input hook the IP layers call. */
class RawManager {
  private sockets: RawSocket[] = [];
  constructor(readonly stack: NetStack) {}

  add(s: RawSocket): void {
    this.sockets = [...this.sockets, s];
    this.stack.attachRawInput(this.input);
  }

  removeRaw(s: RawSocket): void {
    this.sockets = this.sockets.filter((x) => x !== s);
    if (this.sockets.length === 0) this.stack.detachRawInput(this.input);
  }

  private readonly input = (family: 4 | 6, protocol: number, nic: NIC, data: Uint8Array, ip: number, end: number): boolean => {
    let took = false;
    for (const s of this.sockets) {
      if (s.family === family && s.protocol === protocol && s.input(nic, data, ip, end)) took = true;
    }
    return took;
  };
}

const managers = new WeakMap<NetStack, RawManager>();

function manager(stack: NetStack): RawManager {
  let m = managers.get(stack);
  if (m === undefined) {
    m = new RawManager(stack);
    managers.set(stack, m);
  }
  return m;
}

/** A raw IP socket on `stack` (what `stack.raw()` returns). */
export function openRawSocket(stack: NetStack, options: RawSocketOptions): RawSocket {
  const m = manager(stack);
  const s = new RawSocket(m, options);
  m.add(s);
  return s;
}

/** An unprivileged ICMP echo socket (what `stack.pingSocket()` returns): the ping protocol's. */
export function openPingSocket(stack: NetStack, options: PingSocketOptions): PingSocket {
  const family = options.family ?? 4;
  return stack.requireTransport<PingProtocol>(family === 4 ? 1 : 58).createSocket(options);
}

function isZero(a: Uint8Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) return false;
  return true;
}

function sameAt(a: Uint8Array, b: Uint8Array, off: number): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[off + i]) return false;
  return true;
}

import { EventEmitter } from 'eventemitter3';
import { TunstackError } from '../core/errors.js';
import { expectAddress, expectBytes, expectInteger, optionalBoolean, optionalInteger, optionalOneOf, optionsObject } from '../core/validate.js';
import { addrEqual, formatIP } from '../core/address.js';
import { pseudoHeaderSumV4, pseudoHeaderSumV6, sum } from '../headers/checksum.js';
import { IP_PROTO_UDP } from '../headers/ipv4.js';
import { UDP_HEADER_LENGTH } from '../headers/udp.js';
import { PacketBuffer } from '../core/packet.js';
import type { NetworkInfo, TransportError, TransportProtocol } from '../stack/protocol.js';
import { TransportResult } from '../stack/protocol.js';
import { icmpErrno } from '../stack/errno.js';
import type { Route } from '../stack/route.js';
import type { NetStack } from '../stack/stack.js';
import { UdpMulticast } from './udp-multicast.js';

export interface UdpStats {
  /** Linux UDP MIB names: InDatagrams, NoPorts, InErrors, OutDatagrams, RcvbufErrors, InCsumErrors. */
  inDatagrams: number;
  noPorts: number;
  inErrors: number;
  inCsumErrors: number;
  rcvbufErrors: number;
  outDatagrams: number;
}

/** Linux net.core.rmem_default. */
export const DEFAULT_UDP_RCVBUF = 212992;

export interface UdpMessage {
  data: Uint8Array;
  address: string;
  port: number;
  family: 4 | 6;
  /** Local address the datagram was sent to. */
  localAddress: string;
  nicId: number;
}

interface UdpEndpointEvents {
  /** The receive queue went from empty to non-empty. */
  readable: [];
  /** An asynchronous error (ICMP port unreachable on a connected socket: ECONNREFUSED). */
  error: [TunstackError];
  /** Closed (by close(), or by the stack closing). */
  close: [];
}

export interface UdpEndpointOptions {
  family?: 4 | 6;
  /** Receive queue limit in bytes (SO_RCVBUF); default 212992. */
  receiveBufferSize?: number;
  reuseAddress?: boolean;
  /**
   * IPV6_V6ONLY for a udp6 endpoint (default false): without it, an endpoint bound to :: (or to an
   * IPv4-mapped address) also receives IPv4, reported with IPv4-mapped addresses
   * (::ffff:a.b.c.d) as Node does, and can send to IPv4-mapped destinations.
   */
  v6Only?: boolean;
}

/**
 * A UDP endpoint: the stack-side socket (bind, connect, send, a bounded receive queue). Node's
 * dgram-like surface is built on it in src/adapters.
 */
export class UdpEndpoint extends EventEmitter<UdpEndpointEvents> {
  readonly family: 4 | 6;
  localAddress: Uint8Array | null = null;
  localPort = 0;
  remoteAddress: Uint8Array | null = null;
  remotePort = 0;
  broadcast = false;
  ttl: number;
  tos = 0;
  /** Bound to one NIC (SO_BINDTODEVICE), or 0. */
  bindNic = 0;
  receiveBufferSize: number;
  reuseAddress: boolean;
  /** IPV6_V6ONLY (udp6 only; set before binding). */
  v6Only: boolean;
  readonly stats = { received: 0, dropped: 0, sent: 0 };
  /** Group memberships and the multicast send options (TTL, loop, interface). */
  readonly multicast: UdpMulticast;
  private queue: UdpMessage[] = [];
  private queuedBytes = 0;
  private closed = false;
  private route: Route | null = null;
  /** @internal the first pending asynchronous error (SO_ERROR). */
  pendingError: TunstackError | null = null;

  constructor(
    private readonly proto: UdpProtocol,
    options: UdpEndpointOptions = {},
  ) {
    super();
    this.family = options.family ?? 4;
    this.ttl = proto.stack.defaultTtl;
    this.receiveBufferSize = options.receiveBufferSize ?? DEFAULT_UDP_RCVBUF;
    this.reuseAddress = options.reuseAddress ?? false;
    this.v6Only = this.family === 6 && (options.v6Only ?? false);
    this.multicast = new UdpMulticast(proto.stack, this.family, () => this.v6Only);
  }

  get isBound(): boolean {
    return this.localPort !== 0;
  }

  get isConnected(): boolean {
    return this.remoteAddress !== null;
  }

  get queuedMessages(): number {
    return this.queue.length;
  }

  /** Bind to an address ('' / undefined = any) and port (0 = ephemeral). EADDRINUSE, EADDRNOTAVAIL. */
  bind(address?: string | Uint8Array | null, port = 0): void {
    this.assertOpen();
    if (this.isBound) throw new TunstackError('EINVAL', 'socket is already bound', 'bind');
    let addr = address === undefined || address === null || address === '' ? null : expectAddress(address, 'bind', 'address');
    expectInteger(port, 'bind', 'port', 0, 65535);
    if (addr && isUnspecified(addr)) addr = null;
    if (addr && addr.length !== (this.family === 4 ? 4 : 16)) {
      throw new TunstackError('EAFNOSUPPORT', `address family does not match udp${this.family}`, 'bind');
    }
    const mapped = addr !== null && addr.length === 16 && isV4MappedAddr(addr);
    if (mapped && this.v6Only) throw new TunstackError('EINVAL', 'IPv4-mapped address on an IPV6_V6ONLY socket', 'bind');
    // The address as the network layer sees it (an IPv4-mapped one is IPv4).
    const netAddr = mapped ? addr!.slice(12) : addr;
    if (netAddr && !isBroadcastOrMulticast(netAddr) && this.proto.stack.nicForAddress(netAddr) === null
      && !this.proto.stack.nics.some((n) => n.spoofing)) {
      // A NIC in spoofing mode may send from any address (as gVisor's): then any bind is allowed.
      throw new TunstackError('EADDRNOTAVAIL', `${formatIP(addr!)} is not a local address`, 'bind');
    }
    const scope = this.family === 4 ? 'v4' : this.v6Only ? 'v6' : 'any';
    this.localPort = this.proto.stack.ports.reserve(IP_PROTO_UDP, netAddr, port, this, this.reuseAddress, scope);
    this.localAddress = addr ? addr.slice() : null;
    this.proto.register(this);
  }

  /** Set the default destination; datagrams from others are then filtered out. */
  connect(address: string | Uint8Array, port: number): void {
    this.assertOpen();
    const addr = expectAddress(address, 'connect', 'address').slice();
    checkPort(port, 'connect');
    if (addr.length !== (this.family === 4 ? 4 : 16)) {
      throw new TunstackError('EAFNOSUPPORT', 'address family mismatch', 'connect');
    }
    const route = this.proto.stack.findRoute(this.netRemote(addr, 'connect'), this.routeOptions(addr, 'connect'));
    if (!this.isBound) this.bind(null, 0);
    this.remoteAddress = addr;
    this.remotePort = port;
    this.route = route;
    this.proto.reindex(this);
  }

  disconnect(): void {
    if (!this.isConnected) throw new TunstackError('ENOTCONN', 'socket is not connected', 'disconnect');
    this.remoteAddress = null;
    this.remotePort = 0;
    this.route = null;
    this.proto.reindex(this);
  }

  /**
   * Send one datagram. Unconnected sockets need `address` and `port`. Throws EMSGSIZE, EACCES
   * (broadcast without setBroadcast), ENETUNREACH, EDESTADDRREQ, EISCONN (connected and a
   * different destination given).
   */
  send(data: Uint8Array, port?: number, address?: string | Uint8Array): number {
    this.assertOpen();
    expectBytes(data, 'send', 'data');
    let route: Route;
    let dstPort: number;
    if (address === undefined || port === undefined) {
      if (!this.isConnected || !this.route) throw new TunstackError('EDESTADDRREQ', 'no destination address', 'send');
      route = this.route;
      dstPort = this.remotePort;
    } else {
      checkPort(port, 'send');
      const addr = expectAddress(address, 'send', 'address');
      if (addr.length !== (this.family === 4 ? 4 : 16)) {
        throw new TunstackError('EAFNOSUPPORT', 'address family mismatch', 'send');
      }
      if (port === 0) throw new TunstackError('EINVAL', 'destination port 0', 'send');
      route = this.proto.stack.findRoute(this.netRemote(addr, 'send'), this.routeOptions(addr, 'send'));
      dstPort = port;
    }
    if (route.broadcast && !this.broadcast) {
      throw new TunstackError('EACCES', 'broadcast needs setBroadcast(true)', 'send');
    }
    const v4 = route.localAddress.length === 4;
    const maxPayload = 65535 - UDP_HEADER_LENGTH - (v4 ? 20 : 40);
    if (data.length > maxPayload) {
      throw new TunstackError('EMSGSIZE', `datagram of ${data.length} bytes is too long`, 'send');
    }
    if (!this.isBound) this.bind(null, 0);
    const pkt = PacketBuffer.fromPayload(data);
    const start = pkt.prepend(UDP_HEADER_LENGTH);
    const b = pkt.data;
    const len = data.length + UDP_HEADER_LENGTH;
    b[start] = this.localPort >>> 8;
    b[start + 1] = this.localPort & 0xff;
    b[start + 2] = dstPort >>> 8;
    b[start + 3] = dstPort & 0xff;
    b[start + 4] = len >>> 8;
    b[start + 5] = len & 0xff;
    b[start + 6] = 0;
    b[start + 7] = 0;
    const src = route.localAddress;
    const dst = route.remoteAddress;
    const ps = v4
      ? pseudoHeaderSumV4(src, 0, dst, 0, IP_PROTO_UDP, len)
      : pseudoHeaderSumV6(src, 0, dst, 0, IP_PROTO_UDP, len);
    let c = ~sum(b, start, len, ps) & 0xffff;
    if (c === 0) c = 0xffff;
    b[start + 6] = c >>> 8;
    b[start + 7] = c & 0xff;
    pkt.transportHeaderStart = start;
    pkt.transportHeaderLength = UDP_HEADER_LENGTH;
    const mc = route.multicast;
    route.send(pkt, { protocol: IP_PROTO_UDP, ttl: mc ? this.multicast.ttl : this.ttl, tos: this.tos, multicastLoop: mc && this.multicast.loop });
    this.stats.sent++;
    this.proto.stats.outDatagrams++;
    return data.length;
  }

  /** The next queued datagram, or null (EAGAIN semantics without throwing). */
  recv(): UdpMessage | null {
    const m = this.queue.shift();
    if (!m) return null;
    this.queuedBytes -= m.data.length;
    return m;
  }

  /** Take and clear the pending asynchronous error (SO_ERROR). */
  takeError(): TunstackError | null {
    const e = this.pendingError;
    this.pendingError = null;
    return e;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.proto.unregister(this);
    this.multicast.close();
    if (this.localPort !== 0) this.proto.stack.ports.release(IP_PROTO_UDP, this.localPort, this);
    this.queue = [];
    this.queuedBytes = 0;
    this.emit('close');
    this.removeAllListeners();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** @internal */
  deliver(msg: UdpMessage): void {
    if (this.queuedBytes + msg.data.length > this.receiveBufferSize) {
      this.stats.dropped++;
      this.proto.stats.rcvbufErrors++;
      return;
    }
    this.stats.received++;
    this.queue.push(msg);
    this.queuedBytes += msg.data.length;
    if (this.queue.length === 1) this.emit('readable');
  }

  /** @internal */
  fail(err: TunstackError): void {
    this.pendingError = err;
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  /** The destination as the network layer sees it: an IPv4-mapped one is IPv4 (dual stack). */
  private netRemote(addr: Uint8Array, syscall: string): Uint8Array {
    if (addr.length !== 16 || !isV4MappedAddr(addr)) {
      if (this.localAddress !== null && this.localAddress.length === 16 && isV4MappedAddr(this.localAddress)) {
        throw new TunstackError('EINVAL', 'an IPv4-mapped socket can only reach IPv4', syscall);
      }
      return addr;
    }
    // Linux udpv6_sendmsg: an IPV6_V6ONLY socket cannot reach IPv4.
    if (this.v6Only) throw new TunstackError('ENETUNREACH', 'IPv4-mapped destination on an IPV6_V6ONLY socket', syscall);
    if (this.localAddress !== null && !isV4MappedAddr(this.localAddress)) {
      throw new TunstackError('EINVAL', 'an IPv6-bound socket cannot reach IPv4', syscall);
    }
    return addr.slice(12);
  }

  private routeOptions(dst: Uint8Array, syscall: string): { local?: Uint8Array | null; nic?: number } {
    const o: { local?: Uint8Array | null; nic?: number } = {};
    const l = this.localAddress;
    if (l && !isBroadcastOrMulticast(l)) {
      const mapped = l.length === 16 && isV4MappedAddr(l);
      if (!mapped || isV4MappedAddr(dst)) o.local = mapped ? l.slice(12) : l;
    }
    if (this.bindNic) o.nic = this.bindNic;
    const net = dst.length === 16 && isV4MappedAddr(dst) ? dst.subarray(12) : dst;
    const mc = this.multicast;
    if (mc.nic !== null && isMulticastAddr(net)) {
      // IP_MULTICAST_IF: multicast leaves by that NIC, from its address unless bound to one.
      if (this.bindNic && this.bindNic !== mc.nic.id) throw new TunstackError('EINVAL', 'IP_MULTICAST_IF differs from the bound device', syscall);
      o.nic = mc.nic.id;
      if (o.local === undefined && mc.source !== null && net.length === 4) o.local = mc.source;
    }
    return o;
  }

  private assertOpen(): void {
    if (this.closed) throw new TunstackError('EBADF', 'socket is closed');
  }
}

/** A datagram no socket wanted, offered to the forwarder (a sandbox's NAT relay). */
export interface UdpForwardRequest {
  readonly family: 4 | 6;
  readonly nicId: number;
  /** Who sent it. */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** Where it was going (an address of this stack, or any address on a promiscuous NIC). */
  readonly localAddress: string;
  readonly localPort: number;
  /** The payload (a copy the forwarder may keep). */
  readonly data: Uint8Array;
}

/**
 * Returns true when it took the datagram; false lets the stack answer as for a closed port (ICMP
 * port unreachable). Called synchronously from packet processing.
 */
export type UdpForwarder = (req: UdpForwardRequest) => boolean;

/** UDP (RFC 768) with Linux-like demultiplexing. */
export class UdpProtocol implements TransportProtocol {
  readonly number = IP_PROTO_UDP;
  /** Takes datagrams that match no socket (gVisor's udp.Forwarder); null answers port unreachable. */
  forwarder: UdpForwarder | null = null;
  /** Text forms of the last source/destination seen, reused while they repeat (no string per datagram). */
  private readonly srcText = new AddressText();
  private readonly dstText = new AddressText();
  readonly stats: UdpStats = { inDatagrams: 0, noPorts: 0, inErrors: 0, inCsumErrors: 0, rcvbufErrors: 0, outDatagrams: 0 };
  private readonly byPort = new Map<number, UdpEndpoint[]>();

  constructor(readonly stack: NetStack) {}

  /** A new unbound endpoint. */
  createEndpoint(options: UdpEndpointOptions = {}): UdpEndpoint {
    const where = 'udp';
    const o = optionsObject<UdpEndpointOptions>(options, where);
    optionalOneOf(o.family, where, 'options.family', [4, 6]);
    optionalInteger(o.receiveBufferSize, where, 'options.receiveBufferSize', 1, 0x7fffffff);
    optionalBoolean(o.reuseAddress, where, 'options.reuseAddress');
    optionalBoolean(o.v6Only, where, 'options.v6Only');
    return new UdpEndpoint(this, o);
  }

  /** @internal */
  register(ep: UdpEndpoint): void {
    const list = this.byPort.get(ep.localPort);
    if (list) list.push(ep);
    else this.byPort.set(ep.localPort, [ep]);
  }

  /** @internal */
  unregister(ep: UdpEndpoint): void {
    const list = this.byPort.get(ep.localPort);
    if (!list) return;
    const i = list.indexOf(ep);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.byPort.delete(ep.localPort);
  }

  /** @internal connected endpoints sort first so they win the demux. */
  reindex(ep: UdpEndpoint): void {
    const list = this.byPort.get(ep.localPort);
    if (list) list.sort((a, b) => score(b) - score(a));
  }

  handlePacket(net: NetworkInfo, pkt: PacketBuffer): TransportResult {
    const data = pkt.data;
    const start = pkt.start;
    const avail = pkt.end - start;
    if (avail < UDP_HEADER_LENGTH) {
      this.stats.inErrors++;
      return TransportResult.Malformed;
    }
    const len = (data[start + 4]! << 8) | data[start + 5]!;
    if (len < UDP_HEADER_LENGTH || len > avail) {
      this.stats.inErrors++;
      return TransportResult.Malformed;
    }
    pkt.end = start + len;
    const stored = (data[start + 6]! << 8) | data[start + 7]!;
    if (!pkt.checksumOffload && (stored !== 0 || net.family === 6)) {
      if (stored === 0 || sum(data, start, len, net.pseudoHeaderSum(IP_PROTO_UDP, len)) !== 0xffff) {
        this.stats.inCsumErrors++;
        this.stats.inErrors++;
        return TransportResult.Malformed;
      }
    }
    pkt.transportHeaderStart = start;
    pkt.transportHeaderLength = UDP_HEADER_LENGTH;
    const dstPort = (data[start + 2]! << 8) | data[start + 3]!;
    const srcPort = (data[start]! << 8) | data[start + 1]!;
    const list = this.byPort.get(dstPort);
    const alen = net.family === 4 ? 4 : 16;
    if (!list || list.length === 0) return this.unmatched(net, data, start, len, srcPort, dstPort, alen);
    let delivered = false;
    let msg: UdpMessage | null = null;
    const d0 = data[net.dstOffset]!;
    const mcast = net.multicastOrBroadcast && (alen === 4 ? (d0 & 0xf0) === 0xe0 : d0 === 0xff);
    for (const ep of list) {
      // A dual-stack udp6 endpoint takes IPv4 too (IPv4-mapped addresses).
      if (ep.family !== net.family && (net.family === 6 || ep.v6Only)) continue;
      if (ep.bindNic !== 0 && ep.bindNic !== net.nic.id) continue;
      if (ep.localAddress && !sameAddr(ep.localAddress, data, net.dstOffset, alen)) continue;
      if (ep.remoteAddress) {
        if (ep.remotePort !== srcPort || !sameAddr(ep.remoteAddress, data, net.srcOffset, alen)) continue;
      }
      if (mcast && !ep.multicast.allows(net.nic.id, data, net.dstOffset, net.srcOffset, alen)) continue;
      msg ??= {
        data: data.slice(start + UDP_HEADER_LENGTH, start + len),
        address: this.srcText.of(data, net.srcOffset, alen),
        port: srcPort,
        family: net.family,
        localAddress: this.dstText.of(data, net.dstOffset, alen),
        nicId: net.nic.id,
      };
      let m = delivered ? { ...msg, data: msg.data.slice() } : msg;
      if (ep.family !== net.family) m = { ...m, address: `::ffff:${m.address}`, localAddress: `::ffff:${m.localAddress}`, family: 6 };
      // A multicast/broadcast datagram goes to every matching socket; unicast to the best one.
      ep.deliver(m);
      delivered = true;
      if (!net.multicastOrBroadcast) break;
    }
    if (!delivered) return this.unmatched(net, data, start, len, srcPort, dstPort, alen);
    this.stats.inDatagrams++;
    return TransportResult.Handled;
  }

  private unmatched(net: NetworkInfo, data: Uint8Array, start: number, len: number, srcPort: number, dstPort: number, alen: number): TransportResult {
    const fwd = this.forwarder;
    if (fwd !== null && !net.multicastOrBroadcast) {
      const taken = fwd({
        family: net.family,
        nicId: net.nic.id,
        remoteAddress: formatIP(data.slice(net.srcOffset, net.srcOffset + alen)),
        remotePort: srcPort,
        localAddress: formatIP(data.slice(net.dstOffset, net.dstOffset + alen)),
        localPort: dstPort,
        data: data.slice(start + UDP_HEADER_LENGTH, start + len),
      });
      if (taken) {
        this.stats.inDatagrams++;
        return TransportResult.Handled;
      }
    }
    this.stats.noPorts++;
    return TransportResult.PortUnreachable;
  }

  handleError(net: NetworkInfo, error: TransportError, quoted: Uint8Array, off: number): void {
    // The quoted datagram was sent by us: its source port is our local port.
    const localPort = (quoted[off]! << 8) | quoted[off + 1]!;
    const remotePort = (quoted[off + 2]! << 8) | quoted[off + 3]!;
    const list = this.byPort.get(localPort);
    if (!list) return;
    const alen = net.family === 4 ? 4 : 16;
    // A path MTU report counts once a socket that could have sent the quoted datagram exists
    // (Linux __udp4_lib_err: the socket lookup comes first, RFC 5927).
    if (error.confirmPathMtu !== undefined && list.some((ep) => this.couldHaveSent(ep, net, remotePort, alen))) {
      error.confirmPathMtu();
    }
    for (const ep of list) {
      // Linux reports ICMP errors only to connected sockets (without IP_RECVERR).
      if (!ep.remoteAddress || ep.remotePort !== remotePort) continue;
      if (!sameAddr(ep.remoteAddress, net.data, net.dstOffset, alen)) continue;
      ep.fail(icmpErrno(error, { syscall: 'recv' }));
    }
  }

  /** Whether `ep` matches the quoted datagram's flow (net: src = us, dst = the remote). */
  private couldHaveSent(ep: UdpEndpoint, net: NetworkInfo, remotePort: number, alen: number): boolean {
    if (ep.family !== net.family && (net.family === 6 || ep.v6Only)) return false;
    if (ep.localAddress && !sameAddr(ep.localAddress, net.data, net.srcOffset, alen)) return false;
    if (ep.remoteAddress && (ep.remotePort !== remotePort || !sameAddr(ep.remoteAddress, net.data, net.dstOffset, alen))) return false;
    return true;
  }

  close(): void {
    for (const list of [...this.byPort.values()]) for (const ep of [...list]) ep.close();
  }
}

/** Caches the text of the last address formatted. */
class AddressText {
  private readonly last = new Uint8Array(16);
  private lastLen = 0;
  private text = '';

  of(data: Uint8Array, off: number, len: number): string {
    const last = this.last;
    if (len === this.lastLen) {
      let same = true;
      for (let i = 0; i < len; i++) {
        if (last[i] !== data[off + i]) {
          same = false;
          break;
        }
      }
      if (same) return this.text;
    }
    last.set(data.subarray(off, off + len));
    this.lastLen = len;
    this.text = formatIP(data.slice(off, off + len));
    return this.text;
  }
}

/** Is `a` (4 bytes, or 16 possibly IPv4-mapped) the address of `alen` bytes at `off`? */
function sameAddr(a: Uint8Array, data: Uint8Array, off: number, alen: number): boolean {
  if (a.length === alen) return addrEqual(a, data, off, 0, alen);
  // An IPv4-mapped address of a dual-stack endpoint against an IPv4 packet.
  return alen === 4 && isV4MappedAddr(a) && addrEqual(a, data, off, 12, 4);
}

function isV4MappedAddr(a: Uint8Array): boolean {
  if (a.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return false;
  return a[10] === 0xff && a[11] === 0xff;
}

function score(ep: UdpEndpoint): number {
  return (ep.remoteAddress ? 2 : 0) + (ep.localAddress ? 1 : 0);
}

function checkPort(port: number, syscall: string): void {
  expectInteger(port, syscall, 'port', 0, 65535);
}

function isUnspecified(a: Uint8Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) return false;
  return true;
}

function isMulticastAddr(a: Uint8Array): boolean {
  return a.length === 4 ? (a[0]! & 0xf0) === 0xe0 : a[0] === 0xff;
}

function isBroadcastOrMulticast(a: Uint8Array): boolean {
  if (a.length === 4) return (a[0]! & 0xf0) === 0xe0 || (a[0] === 255 && a[1] === 255 && a[2] === 255 && a[3] === 255);
  return a[0] === 0xff;
}

export function udpFactory(): (stack: NetStack) => UdpProtocol {
  return (stack) => new UdpProtocol(stack);
}

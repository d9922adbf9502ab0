/**
 * PortableStack: a NetStack built with the usual protocols (IPv4 + ARP, IPv6 with NDP/MLD; UDP,
 * TCP and ping sockets), with the typed conveniences over them (udp, tcp, ping, raw, pingSocket,
 * packetTap, openTun). It names no Node module and no Node global, so the browser entry
 * (src/web) and the virtual networks (src/sim) use it as it is; the package's `Stack`
 * (src/adapters/stack.ts) extends it with Node's net, dgram and dns.
 *
 * Everything is wired here, explicitly: no module registers anything for another.
 */
import { expectAddress, expectObject, optionsObject } from '../core/validate.js';
import { NetStack, type NetStackOptions } from '../stack/stack.js';
import type { NetworkProtocolFactory, TransportProtocolFactory } from '../stack/protocol.js';
import { arpFactory } from '../network/arp.js';
import type { PingOptions, PingResult } from '../network/echo.js';
import { ipv4Factory, type IPv4Protocol } from '../network/ipv4.js';
import { ipv6Factory, type IPv6Protocol } from '../network/ipv6.js';
import {
  openPingSocket,
  openRawSocket,
  PacketTap,
  pingFactory,
  type PacketTapOptions,
  type PingSocket,
  type PingSocketOptions,
  type RawSocket,
  type RawSocketOptions,
} from '../transport/raw.js';
import { tcpFactory, type TcpEndpoint, type TcpEndpointOptions, type TcpProtocol, type TcpProtocolOptions } from '../transport/tcp/index.js';
import { udpFactory, type UdpEndpoint, type UdpEndpointOptions, type UdpProtocol } from '../transport/udp.js';
import { TunDevice, type TunOpenOptions } from '../tundev/device.js';

export interface StackOptions extends NetStackOptions {
  /** Network protocols (default IPv4 + ARP + IPv6: `usualNetworkProtocols()`). */
  networkProtocols?: NetworkProtocolFactory[];
  /** Transport protocols (default UDP, TCP, ping over ICMP and ICMPv6: `usualTransportProtocols()`). */
  transportProtocols?: TransportProtocolFactory[];
  /** Options of the default TCP (ignored with `transportProtocols`). */
  tcp?: TcpProtocolOptions;
}

/** IPv4 + ARP + IPv6 (with NDP, MLD, SLAAC): the network protocols of a default stack. */
export function usualNetworkProtocols(): NetworkProtocolFactory[] {
  return [ipv4Factory(), arpFactory(), ipv6Factory()];
}

/** UDP, TCP and ping (ICMP and ICMPv6 echo sockets): the transport protocols of a default stack. */
export function usualTransportProtocols(tcp: TcpProtocolOptions = {}): TransportProtocolFactory[] {
  return [udpFactory(), tcpFactory(tcp), pingFactory(4), pingFactory(6)];
}

export class PortableStack extends NetStack {
  constructor(options: StackOptions = {}) {
    const o = optionsObject<StackOptions>(options, 'new Stack');
    if (o.tcp !== undefined) expectObject(o.tcp, 'new Stack', 'options.tcp');
    super({
      ...o,
      networkProtocols: o.networkProtocols ?? usualNetworkProtocols(),
      transportProtocols: o.transportProtocols ?? usualTransportProtocols(o.tcp ?? {}),
    });
  }

  /** ICMP or ICMPv6 echo (by the address family); resolves with the reply, rejects ETIMEDOUT / routing errors. */
  ping(host: string | Uint8Array, options: PingOptions = {}): Promise<PingResult> {
    let dst: Uint8Array;
    try {
      dst = expectAddress(host, 'ping', 'host');
      if (dst.length === 16) return this.requireNetwork<IPv6Protocol>(0x86dd).ping(dst, options);
      return this.requireNetwork<IPv4Protocol>(0x0800).ping(dst, options);
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  /** A raw IP socket for one protocol (IP_HDRINCL-like: whole datagrams in and out). */
  raw(options: RawSocketOptions): RawSocket {
    this.assertOpen();
    return openRawSocket(this, expectObject<RawSocketOptions>(options, 'raw', 'options'));
  }

  /** An unprivileged ICMP echo socket (Linux's SOCK_DGRAM/IPPROTO_ICMP{,V6}). */
  pingSocket(options: PingSocketOptions = {}): PingSocket {
    this.assertOpen();
    return openPingSocket(this, optionsObject<PingSocketOptions>(options, 'pingSocket'));
  }

  /** A packet tap (AF_PACKET-like): every frame in and out of one NIC, or of all NICs. */
  packetTap(options: PacketTapOptions = {}): PacketTap {
    this.assertOpen();
    return new PacketTap(this, optionsObject<PacketTapOptions>(options, 'packetTap'));
  }

  /** A new UDP endpoint (bind/connect/send/recv). */
  udp(options: UdpEndpointOptions = {}): UdpEndpoint {
    return this.requireTransport<UdpProtocol>(17).createEndpoint(optionsObject<UdpEndpointOptions>(options, 'udp'));
  }

  /** A new TCP endpoint (bind/listen/accept or connect; read/write/shutdown/close). */
  tcp(options: TcpEndpointOptions = {}): TcpEndpoint {
    return this.requireTransport<TcpProtocol>(6).createEndpoint(optionsObject<TcpEndpointOptions>(options, 'tcp'));
  }

  /** Open the virtual /dev/net/tun: a new device object, not yet attached (call setIff). */
  openTun(options: TunOpenOptions = {}): TunDevice {
    this.assertOpen();
    return new TunDevice(this, options);
  }
}

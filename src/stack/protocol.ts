import type { PacketBuffer } from '../core/packet.js';
import type { NIC } from './nic.js';
import type { Route } from './route.js';
import type { NetStack } from './stack.js';

/**
 * Protocols register with the stack through these interfaces (as gVisor's NetworkProtocol /
 * TransportProtocol); the stack core knows no protocol by name.
 */

/** A network protocol, keyed by EtherType (IPv4 0x0800, ARP 0x0806, IPv6 0x86dd). */
export interface NetworkProtocol {
  readonly number: number;
  /** Address length for protocols that carry transport traffic (4, 16); 0 for ARP. */
  readonly addressLength: number;
  /** Handle one inbound packet; `pkt.start` is at the network header. Never throws. */
  handlePacket(nic: NIC, pkt: PacketBuffer): void;
  /** Send a transport packet along a route (the transport header is already at pkt.start). */
  writePacket?(route: Route, pkt: PacketBuffer, params: WriteParams): void;
  /** Called when a NIC is enabled, disabled, gets or loses an address, or is removed. */
  onNicEvent?(nic: NIC, event: NicEvent): void;
  /** Resolve a next-hop address to a link address on a NIC (ARP / NDP), if this protocol can. */
  readonly resolver?: LinkAddressResolver;
  /** Release timers and state. */
  close?(): void;
}

export type NicEvent =
  | { type: 'enabled' }
  | { type: 'disabled' }
  | { type: 'removed' }
  | { type: 'address-added'; address: Uint8Array; prefixLength: number }
  | { type: 'address-removed'; address: Uint8Array; prefixLength: number };

export interface WriteParams {
  /** IP protocol number of the transport header at pkt.start. */
  protocol: number;
  ttl: number;
  tos: number;
  /** Don't fragment (IPv4 DF bit / refuse IPv6 source fragmentation). */
  dontFragment?: boolean;
  /**
   * A multicast datagram also reaches this host's members of the group (IP_MULTICAST_LOOP). Off
   * unless set: sockets pass their own flag (on by default, as Linux's); the stack's control
   * messages (NDP, MLD, IGMP) are never looped, as Linux's control sockets have it off.
   */
  multicastLoop?: boolean;
}

/** The result of resolving a next hop. */
export interface LinkAddressResolver {
  /**
   * Send `pkt` to `nextHop` on `nic`, resolving its link address first if needed (queueing the
   * packet, bounded). `onError` is called if resolution fails (EHOSTUNREACH).
   */
  resolveAndSend(nic: NIC, nextHop: Uint8Array, pkt: PacketBuffer): void;
}

/** What a transport protocol did with an inbound packet. */
export const enum TransportResult {
  Handled = 0,
  /** Bad header or checksum: dropped and counted by the caller. */
  Malformed = 1,
  /** No endpoint: the network layer answers with ICMP port unreachable. */
  PortUnreachable = 2,
}

/**
 * Per-packet network information handed to a transport protocol. One reusable object per network
 * protocol instance: valid only during the call; copy addresses that must be kept.
 */
export interface NetworkInfo {
  readonly family: 4 | 6;
  nic: NIC;
  /** Bytes of the packet (pkt.data) and the offsets of source and destination addresses. */
  data: Uint8Array;
  srcOffset: number;
  dstOffset: number;
  ttl: number;
  tos: number;
  /** True when the destination was a broadcast or multicast address. */
  multicastOrBroadcast: boolean;
  /** Partial (uncomplemented) pseudo-header sum for a transport of `length` bytes. */
  pseudoHeaderSum(protocol: number, length: number): number;
}

/** An ICMP error delivered to the transport that sent the offending packet. */
export interface TransportError {
  kind: 'port-unreachable' | 'host-unreachable' | 'net-unreachable' | 'proto-unreachable' | 'frag-needed'
    | 'ttl-exceeded' | 'reassembly-timeout' | 'param-problem' | 'packet-too-big' | 'admin-prohibited';
  /** Next-hop MTU for frag-needed / packet-too-big. */
  mtu: number;
  /** Who sent the error. */
  from: Uint8Array;
  /**
   * frag-needed / packet-too-big: record `mtu` as the path MTU towards the quoted destination.
   * The IP layer never lowers the path MTU on its own word: the transport calls this (during
   * handleError) only once the quoted packet is shown to be one of its own flows (RFC 5927
   * section 4.1: TCP's quoted sequence number in flight, UDP/ping a matching socket).
   */
  confirmPathMtu?: () => void;
}

/** A transport protocol keyed by IP protocol number (TCP 6, UDP 17, ICMP 1 for ping sockets). */
export interface TransportProtocol {
  readonly number: number;
  /** `pkt.start` is at the transport header. */
  handlePacket(net: NetworkInfo, pkt: PacketBuffer): TransportResult;
  /**
   * An ICMP error quoting a packet this protocol sent: `quoted` holds the start of the original
   * transport header (at least 8 bytes), with the original addresses from `net` (src = us).
   */
  handleError?(net: NetworkInfo, error: TransportError, quoted: Uint8Array, quotedOff: number): void;
  close?(): void;
}

export type NetworkProtocolFactory = (stack: NetStack) => NetworkProtocol;
export type TransportProtocolFactory = (stack: NetStack) => TransportProtocol;


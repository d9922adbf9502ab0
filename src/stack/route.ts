import { TunstackError } from '../core/errors.js';
import { formatIP, maskAddress, parseCIDR, parseIP, prefixMatch } from '../core/address.js';
import type { NIC } from './nic.js';
import type { PacketBuffer } from '../core/packet.js';
import type { NetworkProtocol, WriteParams } from './protocol.js';

/** One entry of the routing table. */
export interface RouteEntry {
  destination: Uint8Array;
  prefixLength: number;
  /** Next-hop router, or null for an on-link (connected) route. */
  gateway: Uint8Array | null;
  nicId: number;
  metric: number;
  /** Added automatically for a NIC address (Linux's "proto kernel scope link"). */
  connected: boolean;
}

export interface RouteSpec {
  /** "10.0.0.0/24", "0.0.0.0/0", "::/0" */
  destination: string;
  gateway?: string;
  /** NIC id or name. */
  nic: number | string;
  metric?: number;
}

/** Longest-prefix-match routing table for IPv4 and IPv6 together. */
export class RouteTable {
  private entries: RouteEntry[] = [];

  get all(): readonly RouteEntry[] {
    return this.entries;
  }

  add(entry: RouteEntry): void {
    if (entry.gateway && entry.gateway.length !== entry.destination.length) {
      throw new TunstackError('EINVAL', 'route gateway family differs from destination family');
    }
    const dest = maskAddress(entry.destination, entry.prefixLength);
    const dup = this.entries.find(
      (e) =>
        e.prefixLength === entry.prefixLength &&
        e.nicId === entry.nicId &&
        e.metric === entry.metric &&
        prefixMatch(e.destination, dest, entry.prefixLength) &&
        e.destination.length === dest.length,
    );
    if (dup) throw new TunstackError('EEXIST', `route ${formatIP(dest)}/${entry.prefixLength} exists`);
    this.entries.push({ ...entry, destination: dest });
    // Keep sorted: longest prefix first, then lowest metric, so lookup takes the first match.
    this.entries.sort((a, b) => b.prefixLength - a.prefixLength || a.metric - b.metric);
  }

  /** Remove matching entries; returns how many were removed. */
  remove(match: (e: RouteEntry) => boolean): number {
    const before = this.entries.length;
    this.entries = this.entries.filter((e) => !match(e));
    return before - this.entries.length;
  }

  /** Best route to `dst`, optionally restricted to one NIC. */
  lookup(dst: Uint8Array, nicId = 0, usable?: (nicId: number) => boolean): RouteEntry | null {
    for (const e of this.entries) {
      if (e.destination.length !== dst.length) continue;
      if (nicId !== 0 && e.nicId !== nicId) continue;
      if (!prefixMatch(e.destination, dst, e.prefixLength)) continue;
      if (usable && !usable(e.nicId)) continue;
      return e;
    }
    return null;
  }
}

/** Parse a RouteSpec's addresses (the NIC is resolved by the stack). */
export function parseRouteSpec(spec: RouteSpec): { destination: Uint8Array; prefixLength: number; gateway: Uint8Array | null } {
  const { address, prefixLength } = parseCIDR(spec.destination);
  const gateway = spec.gateway ? parseIP(spec.gateway) : null;
  if (gateway && gateway.length !== address.length) {
    throw new TunstackError('EINVAL', `gateway ${spec.gateway} is not the family of ${spec.destination}`);
  }
  return { destination: address, prefixLength, gateway };
}

/**
 * A resolved path for sending: the NIC, our source address, the remote address and the next
 * hop. Transports keep a Route per connection and call `send`.
 */
export class Route {
  constructor(
    readonly nic: NIC,
    readonly netProto: NetworkProtocol,
    readonly localAddress: Uint8Array,
    readonly remoteAddress: Uint8Array,
    /** Where the packet goes on the link (gateway, or the remote itself when on-link). */
    readonly nextHop: Uint8Array,
    /** Sent as link-layer broadcast (limited or subnet broadcast). */
    readonly broadcast: boolean,
    readonly multicast: boolean,
    /** The NIC of this stack that owns `remoteAddress` (traffic to ourselves), or null. */
    readonly localDelivery: NIC | null = null,
  ) {}

  get family(): 4 | 6 {
    return this.localAddress.length === 4 ? 4 : 6;
  }

  /** Largest transport segment (payload of the network header) without fragmentation. */
  get mtu(): number {
    return this.nic.mtu - (this.family === 4 ? 20 : 40);
  }

  /** Send a packet whose transport header is at pkt.start. */
  send(pkt: PacketBuffer, params: WriteParams): void {
    if (!this.netProto.writePacket) {
      throw new TunstackError('EPROTONOSUPPORT', `network protocol 0x${this.netProto.number.toString(16)} cannot send`);
    }
    this.netProto.writePacket(this, pkt, params);
  }
}

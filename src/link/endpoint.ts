import type { PacketBuffer } from '../core/packet.js';

/**
 * The link-layer interface between a NIC and whatever carries its packets (gVisor's
 * stack.LinkEndpoint). Endpoints stack: e.g. NIC -> EthernetEndpoint -> SnifferEndpoint ->
 * ChannelEndpoint. Each endpoint declares the `wireFormat` of the bytes it accepts in
 * `writePackets` and delivers upward: raw IP packets, or Ethernet frames.
 */

export type WireFormat = 'ip' | 'ethernet';

/** Capability bits. */
export const LinkCapability = {
  None: 0,
  /** Transport checksums need not be computed on send (the link fills or ignores them). */
  TxChecksumOffload: 1 << 0,
  /** Received packets' transport checksums were verified by the link. */
  RxChecksumOffload: 1 << 1,
  /** Next-hop link addresses must be resolved (ARP/NDP) before sending. */
  ResolutionRequired: 1 << 2,
  /** The endpoint loops packets back to the sender (loopback). */
  Loopback: 1 << 3,
  /** The endpoint accepts GSO super-packets (pkt.gsoSize > 0). */
  GSO: 1 << 4,
  /**
   * The endpoint takes outbound packets with scatter-gather fragments (`pkt.frags`) and calls
   * `pkt.releaseFrags()` when done with them. Wrappers pass it through only if they handle them.
   */
  ScatterGather: 1 << 5,
} as const;

/**
 * The largest datagram a GSO super-packet (`gsoSize` > 0, transport header `transportHeaderLength`)
 * puts on the wire when the link cuts it up (LinkCapability.GSO in `capabilities`): its headers and
 * one segment's payload; else `total`, so that it is refused or fragmented as a whole.
 */
export function gsoWireLength(
  pkt: { gsoSize: number; transportHeaderLength: number },
  capabilities: number,
  ipHeader: number,
  total: number,
): number {
  if ((capabilities & LinkCapability.GSO) === 0 || pkt.transportHeaderLength <= 0) return total;
  const one = ipHeader + pkt.transportHeaderLength + pkt.gsoSize;
  return one < total ? one : total;
}

/** What an endpoint delivers inbound packets to (a NIC, or an outer endpoint). */
export interface NetworkDispatcher {
  /**
   * Deliver one inbound packet. `protocol` is the EtherType (0 when the link does not say; the
   * receiver then looks at the IP version nibble). For Ethernet links `pkt.linkHeaderStart`
   * points at the Ethernet header and `pkt.start` at the network header.
   */
  deliverNetworkPacket(protocol: number, pkt: PacketBuffer): void;
  /**
   * True when TCP delivered here is consumed locally and never forwarded, so a TCP segment larger
   * than the MTU (a kernel's TSO super-packet kept whole) is fine. Absent means false.
   */
  readonly terminatesTcp?: boolean;
}

export interface LinkEndpoint {
  /** Largest network-layer packet (no link header) the endpoint carries. */
  readonly mtu: number;
  /** Bytes of link header this endpoint (and those below it) prepend. */
  readonly maxHeaderLength: number;
  /** Link address (6-byte MAC for Ethernet, empty for IP-only links). */
  readonly linkAddress: Uint8Array;
  readonly capabilities: number;
  readonly wireFormat: WireFormat;
  /** Attach a dispatcher for inbound packets; null detaches. */
  attach(dispatcher: NetworkDispatcher | null): void;
  readonly isAttached: boolean;
  /**
   * Write outbound packets. Returns how many were accepted; the rest were dropped (and
   * counted by the endpoint). Ownership of accepted packets passes to the endpoint.
   */
  writePackets(pkts: readonly PacketBuffer[]): number;
  /** Release resources; inbound delivery stops. */
  close(): void;
}

/** A convenient base: holds the dispatcher and forwards the common properties. */
export abstract class BaseEndpoint implements LinkEndpoint {
  protected dispatcher: NetworkDispatcher | null = null;
  abstract readonly mtu: number;
  abstract readonly linkAddress: Uint8Array;
  abstract readonly capabilities: number;
  abstract readonly wireFormat: WireFormat;
  get maxHeaderLength(): number {
    return 0;
  }
  attach(dispatcher: NetworkDispatcher | null): void {
    this.dispatcher = dispatcher;
  }
  get isAttached(): boolean {
    return this.dispatcher !== null;
  }
  abstract writePackets(pkts: readonly PacketBuffer[]): number;
  close(): void {
    this.dispatcher = null;
  }
}

/**
 * Base for endpoints that wrap another (Ethernet framing, sniffer, fault link): it holds the inner
 * endpoint and the upper dispatcher, forwards the link properties, and attaches itself below as
 * the inner endpoint's dispatcher. Subclasses implement the two directions and override what
 * they change.
 */
export abstract class WrappingEndpoint implements LinkEndpoint, NetworkDispatcher {
  protected upper: NetworkDispatcher | null = null;
  protected closed = false;

  constructor(readonly inner: LinkEndpoint) {}

  get mtu(): number {
    return this.inner.mtu;
  }
  get maxHeaderLength(): number {
    return this.inner.maxHeaderLength;
  }
  get linkAddress(): Uint8Array {
    return this.inner.linkAddress;
  }
  get capabilities(): number {
    let c = this.inner.capabilities;
    if (!this.passesFrags) c &= ~LinkCapability.ScatterGather;
    if (!this.passesGso) c &= ~LinkCapability.GSO;
    return c;
  }
  /** Whether writePackets passes GSO super-packets on whole (else the capability is hidden). */
  protected get passesGso(): boolean {
    return false;
  }
  /** Whether writePackets handles packets with fragments (else the capability is hidden). */
  protected get passesFrags(): boolean {
    return false;
  }
  get wireFormat(): WireFormat {
    return this.inner.wireFormat;
  }
  get isAttached(): boolean {
    return this.upper !== null;
  }

  attach(dispatcher: NetworkDispatcher | null): void {
    this.upper = this.closed ? null : dispatcher;
    this.inner.attach(this.upper === null ? null : this);
  }

  get terminatesTcp(): boolean {
    return this.upper?.terminatesTcp === true;
  }

  abstract writePackets(pkts: readonly PacketBuffer[]): number;
  abstract deliverNetworkPacket(protocol: number, pkt: PacketBuffer): void;

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.upper = null;
    this.onClose();
    this.inner.close();
  }

  /** Release the wrapper's own resources (before the inner endpoint is closed). */
  protected onClose(): void {}
}

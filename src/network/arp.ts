import { BROADCAST_MAC } from '../core/address.js';
import { ARP_LENGTH, ARP_OP_REPLY, ARP_OP_REQUEST, ArpHeader, encodeArp } from '../headers/arp.js';
import { ETHERTYPE_ARP, ETHERTYPE_IPV4 } from '../headers/ethernet.js';
import type { NeighborCache, NeighborProber } from '../stack/neighbor.js';
import type { NIC } from '../stack/nic.js';
import { PacketBuffer, PacketType } from '../core/packet.js';
import type { LinkAddressResolver, NetworkProtocol, NicEvent } from '../stack/protocol.js';
import type { NetStack } from '../stack/stack.js';
import type { IPv4Protocol } from './ipv4.js';

export interface ArpStats {
  received: number;
  malformed: number;
  requestsReceived: number;
  repliesReceived: number;
  requestsSent: number;
  repliesSent: number;
  gratuitousSent: number;
  /** Requests not for any of our addresses. */
  notForUs: number;
}

export interface ArpOptions {
  /** Announce (gratuitous ARP) each address when it is added or the NIC comes up. Default true. */
  announce?: boolean;
}

/**
 * ARP (RFC 826) for IPv4 over Ethernet, and IPv4's link-address resolver. The neighbour cache
 * lives on each NIC (NIC.neighborCache(0x0800)).
 */
export class ArpProtocol implements NetworkProtocol, LinkAddressResolver {
  readonly number = ETHERTYPE_ARP;
  readonly addressLength = 0;
  readonly stats: ArpStats = {
    received: 0,
    malformed: 0,
    requestsReceived: 0,
    repliesReceived: 0,
    requestsSent: 0,
    repliesSent: 0,
    gratuitousSent: 0,
    notForUs: 0,
  };
  readonly resolver = this;
  announce: boolean;
  private readonly hdr = new ArpHeader(new Uint8Array(0));

  constructor(
    private readonly stack: NetStack,
    options: ArpOptions = {},
  ) {
    this.announce = options.announce ?? true;
  }

  /** The IPv4 neighbour cache of a NIC. */
  cache(nic: NIC): NeighborCache {
    return nic.neighborCache(ETHERTYPE_IPV4, () => this.prober(nic));
  }

  resolveAndSend(nic: NIC, nextHop: Uint8Array, pkt: PacketBuffer): void {
    this.cache(nic).send(nextHop, pkt);
  }

  handlePacket(nic: NIC, pkt: PacketBuffer): void {
    this.stats.received++;
    const h = this.hdr.reset(pkt.data, pkt.start, pkt.end - pkt.start);
    if (!h.isValid() || !nic.needsResolution) {
      this.stats.malformed++;
      return;
    }
    const data = pkt.data;
    const spa = h.senderProtocolOffset;
    const sha = h.senderHardwareOffset;
    const tpa = h.targetProtocolOffset;
    // A sender hardware address with the multicast bit is taken as it is, as Linux's arp_process
    // does (peers such as gVisor's test links use bb:bb:bb:bb:bb:bb).
    const isRequest = h.op === ARP_OP_REQUEST;
    if (isRequest) this.stats.requestsReceived++;
    else if (h.op === ARP_OP_REPLY) this.stats.repliesReceived++;
    else {
      this.stats.malformed++;
      return;
    }
    const forUs = nic.hasAddress(data, tpa, 4);
    const senderIp = data.slice(spa, spa + 4);
    const senderMac = data.slice(sha, sha + 6);
    const senderUnspecified = senderIp[0] === 0 && senderIp[1] === 0 && senderIp[2] === 0 && senderIp[3] === 0;
    const cache = this.cache(nic);
    if (!senderUnspecified) {
      // RFC 826: update an existing entry from any ARP packet; create one when it targets us.
      cache.update(senderIp, senderMac, {
        solicited: !isRequest && forUs && pkt.packetType === PacketType.Host,
        override: true,
        create: forUs,
      });
    }
    if (!forUs) {
      this.stats.notForUs++;
      return;
    }
    if (isRequest) {
      this.sendArp(nic, ARP_OP_REPLY, data.subarray(tpa, tpa + 4), senderMac, senderIp, senderMac);
      this.stats.repliesSent++;
    }
  }

  onNicEvent(nic: NIC, ev: NicEvent): void {
    if (!this.announce || !nic.needsResolution || !nic.enabled) return;
    if (ev.type === 'address-added' && ev.address.length === 4) this.sendGratuitous(nic, ev.address);
    if (ev.type === 'enabled') for (const a of nic.addresses) if (a.address.length === 4) this.sendGratuitous(nic, a.address);
  }

  /** Announce `address` (ARP request with sender = target = address, to broadcast). */
  sendGratuitous(nic: NIC, address: Uint8Array): void {
    this.stats.gratuitousSent++;
    this.sendArp(nic, ARP_OP_REQUEST, address, new Uint8Array(6), address, BROADCAST_MAC);
  }

  private prober(nic: NIC): NeighborProber {
    return {
      sendSolicit: (target, unicastTo) => {
        const src = nic.primaryAddress(4, target);
        if (!src) return;
        this.stats.requestsSent++;
        this.sendArp(nic, ARP_OP_REQUEST, src, new Uint8Array(6), target, unicastTo ?? BROADCAST_MAC);
      },
      transmit: (pkt, linkAddress) => {
        pkt.remoteLinkAddress = linkAddress;
        nic.transmit(pkt);
      },
      resolutionFailed: (_target, dropped) => {
        const ip = this.stack.networkProtocol(ETHERTYPE_IPV4) as IPv4Protocol | undefined;
        ip?.resolutionFailed(nic, dropped);
      },
    };
  }

  private sendArp(nic: NIC, op: number, spa: Uint8Array, tha: Uint8Array, tpa: Uint8Array, dstMac: Uint8Array): void {
    const pkt = PacketBuffer.alloc(ARP_LENGTH, 64);
    encodeArp(pkt.data, pkt.start, {
      op,
      senderHardwareAddress: nic.linkAddress,
      senderProtocolAddress: spa,
      targetHardwareAddress: tha,
      targetProtocolAddress: tpa,
    });
    pkt.networkProtocol = ETHERTYPE_ARP;
    pkt.networkHeaderStart = pkt.start;
    pkt.remoteLinkAddress = dstMac;
    nic.transmit(pkt);
  }

  toString(): string {
    return `ARP(${this.stack.nics.map((n) => n.name).join(',')})`;
  }
}

export function arpFactory(options: ArpOptions = {}): (stack: NetStack) => ArpProtocol {
  return (stack) => new ArpProtocol(stack, options);
}


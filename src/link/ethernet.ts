import { TunstackError } from '../core/errors.js';
import { expectFunction, expectMethods, optionalBytes, optionsObject } from '../core/validate.js';
import {
  ETHERNET_HEADER_LENGTH,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  EthernetHeader,
} from '../headers/ethernet.js';
import { PacketType, type PacketBuffer } from '../core/packet.js';
import { LinkCapability, WrappingEndpoint, type LinkEndpoint, type WireFormat } from './endpoint.js';

/**
 * EthernetEndpoint: presents an IP link on top of an endpoint that carries Ethernet frames (a
 * Wire, a TAP's channel, a sniffer over either).
 *
 * - MTU: the inner MTU, which (as Linux's dev->mtu) counts the network-layer packet only, not the
 *   14-byte Ethernet header: an MTU of 1500 carries frames of up to 1514 bytes.
 *   maxHeaderLength = inner + 14.
 * - Outbound: a 14-byte header is prepended into the packet's headroom: destination
 *   `pkt.remoteLinkAddress` (broadcast when null), source this endpoint's address, EtherType
 *   `pkt.networkProtocol` (or, when 0, derived from the IP version nibble). Short frames are NOT
 *   padded to 60 bytes: as with the Linux kernel, padding is the NIC driver's job, and a TAP
 *   reader sees unpadded frames. Packets whose EtherType cannot be determined, or whose
 *   remoteLinkAddress is not 6 bytes, are dropped and counted.
 * - Inbound: the frame is parsed; short frames are dropped and counted. 802.1Q-tagged frames are
 *   counted and dropped unless `vlanFilter` accepts their VLAN id, in which case the tag is
 *   stripped with the header. The packet is classified (Host / Broadcast / Multicast /
 *   OtherHost) and delivered with its EtherType, `linkHeaderStart` at the frame and `start` at
 *   the network header. Frames for other hosts are delivered too: the NIC decides (promiscuous).
 */

export interface EthernetEndpointOptions {
  /** This endpoint's MAC; default the inner endpoint's link address when it is 6 bytes. */
  linkAddress?: Uint8Array;
  /** Accept 802.1Q-tagged frames whose VLAN id passes; default: drop every tagged frame. */
  vlanFilter?: (vlanId: number) => boolean;
}

export interface EthernetStats {
  /** Frames passed down, and their bytes (header included). */
  txPackets: number;
  txBytes: number;
  /** Outbound packets dropped: unknown EtherType, bad remote address, or refused below. */
  txDropped: number;
  /** Frames delivered up, and their bytes (header included). */
  rxPackets: number;
  rxBytes: number;
  /** Frames too short to hold an Ethernet header (or its VLAN tag). */
  rxInvalid: number;
  /** 802.1Q-tagged frames seen, and those of them dropped by the VLAN filter. */
  rxVlanTagged: number;
  rxVlanDropped: number;
  /** Frames dropped because nothing was attached above. */
  rxNoDispatcher: number;
  /** Delivered frames by classification. */
  rxHost: number;
  rxBroadcast: number;
  rxMulticast: number;
  rxOtherHost: number;
}

const BROADCAST = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

export class EthernetEndpoint extends WrappingEndpoint {
  readonly stats: EthernetStats = {
    txPackets: 0,
    txBytes: 0,
    txDropped: 0,
    rxPackets: 0,
    rxBytes: 0,
    rxInvalid: 0,
    rxVlanTagged: 0,
    rxVlanDropped: 0,
    rxNoDispatcher: 0,
    rxHost: 0,
    rxBroadcast: 0,
    rxMulticast: 0,
    rxOtherHost: 0,
  };
  private mac: Uint8Array;
  private readonly vlanFilter: ((vlanId: number) => boolean) | null;
  private readonly rx = new EthernetHeader(new Uint8Array(0));
  private readonly lens: number[] = [];
  private lensBusy = false;

  constructor(inner: LinkEndpoint, options: EthernetEndpointOptions = {}) {
    super(expectMethods<LinkEndpoint>(inner, 'new EthernetEndpoint', 'inner', ['attach', 'writePackets']));
    options = optionsObject<EthernetEndpointOptions>(options, 'new EthernetEndpoint');
    optionalBytes(options.linkAddress, 'new EthernetEndpoint', 'options.linkAddress');
    if (options.vlanFilter !== undefined) expectFunction(options.vlanFilter, 'new EthernetEndpoint', 'options.vlanFilter');
    if (inner.wireFormat !== 'ethernet') {
      throw new TunstackError('EINVAL', `EthernetEndpoint needs an Ethernet link below, got '${inner.wireFormat}'`);
    }
    const mac = options.linkAddress ?? (inner.linkAddress.length === 6 ? inner.linkAddress : undefined);
    if (mac === undefined) throw new TunstackError('EINVAL', 'EthernetEndpoint needs a 6-byte linkAddress');
    this.mac = checkMac(mac);
    this.vlanFilter = options.vlanFilter ?? null;
  }

  /** What the NIC hands this endpoint: IP packets (it frames them). */
  override get wireFormat(): WireFormat {
    return 'ip';
  }

  override get linkAddress(): Uint8Array {
    return this.mac;
  }

  /** Change the MAC (SIOCSIFHWADDR). */
  setLinkAddress(mac: Uint8Array): void {
    this.mac = checkMac(mac);
  }

  override get maxHeaderLength(): number {
    return this.inner.maxHeaderLength + ETHERNET_HEADER_LENGTH;
  }

  override get capabilities(): number {
    return this.inner.capabilities | LinkCapability.ResolutionRequired;
  }

  protected override get passesFrags(): boolean {
    return true;
  }

  writePackets(pkts: readonly PacketBuffer[]): number {
    // Frame lengths are noted before passing down: below, ownership passes and a receiver may
    // consume the header before writePackets returns. (A fresh array only on re-entry.)
    const lens = this.lensBusy ? [] : this.lens;
    this.lensBusy = true;
    try {
      let bad = 0;
      for (let i = 0; i < pkts.length; i++) {
        const p = pkts[i]!;
        if (this.frame(p)) lens.push(p.length);
        else bad++;
      }
      let list = pkts;
      const st = this.stats;
      if (bad > 0) {
        // Rare path: pass only the packets that got a header.
        const ok: PacketBuffer[] = [];
        for (let i = 0; i < pkts.length; i++) if (pkts[i]!.linkHeaderStart >= 0) ok.push(pkts[i]!);
        list = ok;
        st.txDropped += bad;
      }
      if (list.length === 0) return 0;
      const n = this.inner.writePackets(list);
      st.txDropped += list.length - n;
      st.txPackets += n;
      // Endpoints below accept a prefix of the batch; count the bytes of the first n frames.
      for (let i = 0; i < n; i++) st.txBytes += lens[i]!;
      return n;
    } finally {
      lens.length = 0;
      if (lens === this.lens) this.lensBusy = false;
    }
  }

  /** Prepend the header; false when the packet cannot be framed (left untouched). */
  private frame(pkt: PacketBuffer): boolean {
    let type = pkt.networkProtocol;
    if (type === 0) {
      const v = pkt.length > 0 ? pkt.data[pkt.start]! >>> 4 : 0;
      if (v === 4) type = ETHERTYPE_IPV4;
      else if (v === 6) type = ETHERTYPE_IPV6;
      else {
        pkt.linkHeaderStart = -1;
        return false;
      }
    }
    const dst = pkt.remoteLinkAddress ?? BROADCAST;
    if (dst.length !== 6) {
      pkt.linkHeaderStart = -1;
      return false;
    }
    const o = pkt.prepend(ETHERNET_HEADER_LENGTH);
    const d = pkt.data;
    const src = this.mac;
    for (let k = 0; k < 6; k++) {
      d[o + k] = dst[k]!;
      d[o + 6 + k] = src[k]!;
    }
    d[o + 12] = type >>> 8;
    d[o + 13] = type & 0xff;
    pkt.linkHeaderStart = o;
    return true;
  }

  /** Inbound from the Ethernet link below. `protocol` is ignored: the frame says. */
  deliverNetworkPacket(_protocol: number, pkt: PacketBuffer): void {
    const st = this.stats;
    const up = this.upper;
    if (up === null) {
      st.rxNoDispatcher++;
      return;
    }
    const len = pkt.end - pkt.start;
    const h = this.rx.reset(pkt.data, pkt.start, len);
    if (!h.isValid()) {
      st.rxInvalid++;
      return;
    }
    if (h.hasVlan) {
      st.rxVlanTagged++;
      const f = this.vlanFilter;
      if (f === null || !f(h.vlanId)) {
        st.rxVlanDropped++;
        return;
      }
    }
    const type = h.etherType;
    const d = pkt.data;
    const o = pkt.start;
    const mac = this.mac;
    let cls: PacketType;
    if (
      d[o] === mac[0] &&
      d[o + 1] === mac[1] &&
      d[o + 2] === mac[2] &&
      d[o + 3] === mac[3] &&
      d[o + 4] === mac[4] &&
      d[o + 5] === mac[5]
    ) {
      cls = PacketType.Host;
      st.rxHost++;
    } else if (h.isBroadcast) {
      cls = PacketType.Broadcast;
      st.rxBroadcast++;
    } else if (h.isMulticast) {
      cls = PacketType.Multicast;
      st.rxMulticast++;
    } else {
      cls = PacketType.OtherHost;
      st.rxOtherHost++;
    }
    st.rxPackets++;
    st.rxBytes += len;
    pkt.linkHeaderStart = o;
    pkt.packetType = cls;
    pkt.networkProtocol = type;
    pkt.consume(h.headerLength);
    up.deliverNetworkPacket(type, pkt);
  }

}

function checkMac(mac: Uint8Array): Uint8Array {
  if (mac.length !== 6) throw new TunstackError('EINVAL', `link address must be 6 bytes, got ${mac.length}`);
  return mac.slice();
}

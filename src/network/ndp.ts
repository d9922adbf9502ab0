import {
  ICMPV6_NEIGHBOR_ADVERTISEMENT,
  ICMPV6_NEIGHBOR_SOLICITATION,
  ICMPV6_ROUTER_ADVERTISEMENT,
  ICMPV6_ROUTER_SOLICITATION,
  IcmpV6Header,
  NDP_NA_LENGTH,
  NDP_NS_LENGTH,
} from '../headers/icmpv6.js';
import {
  NDP_OPTIONS_END,
  NDP_OPTION_SOURCE_LINK_ADDRESS,
  NDP_OPTION_TARGET_LINK_ADDRESS,
  NdpOptionIterator,
  encodeNdpNeighborAdvertisement,
  encodeNdpNeighborSolicitation,
  encodeNdpOptions,
} from '../headers/ndp.js';
import type { Timer } from '../core/clock.js';
import type { NeighborProber } from '../stack/neighbor.js';
import type { NIC } from '../stack/nic.js';
import { PacketBuffer } from '../core/packet.js';
import type { IPv6Protocol } from './ipv6.js';
import {
  ALL_NODES,
  UNSPECIFIED,
  addrKey,
  isLinkLocal,
  isUnspecifiedAt,
  linkLocalFromMac,
  multicastMac,
  sameBytes,
  solicitedNode,
} from './ipv6-address.js';
import { RouterDiscovery, type RouterConfig, type RouterState } from './router-discovery.js';
import { Slaac, type SlaacAddress, type Timed } from './slaac.js';

export type { RouterConfig, RouterPrefix } from './router-discovery.js';

/**
 * Neighbor Discovery (RFC 4861) and stateless address autoconfiguration (RFC 4862). This file
 * has neighbour discovery proper and the NIC/address life cycle; router-discovery.ts has Router
 * Solicitations and Advertisements (host and router mode), slaac.ts prefixes and SLAAC addresses.
 *
 * - Address resolution and unreachability detection through the shared NeighborCache
 *   (NIC.neighborCache(0x86dd)): multicast NS to the solicited-node group with our link
 *   address, unicast NS probes, NA handling by the S and O flags (RFC 4861 7.2.5).
 * - NS/NA answering as Linux does: a multicast NS gets a solicited NA with O set and the Target
 *   Link-Layer Address; a unicast NS gets S only; a DAD probe for one of our addresses gets an
 *   unsolicited NA to all-nodes.
 * - DAD: a new address is tentative (unusable, packets to it dropped) while `dadTransmits` NS
 *   probes from :: go out, after a random delay of up to 1 s and `retransTimer` apart, each with
 *   a random Nonce option (RFC 7527, as Linux); an NA for it or another node's probe makes it
 *   `dadfailed`. Ethernet NICs get fe80::EUI-64 when enabled. NICs without link-layer
 *   resolution (TUN) skip all of NDP: their addresses are usable at once.
 * - Hosts solicit routers and learn from their Advertisements (router-discovery.ts), including
 *   on-link prefixes and SLAAC addresses (slaac.ts); router mode (`startRouter`) advertises.
 */

export interface NdpOptions {
  /** Add fe80::EUI-64/64 when an Ethernet NIC is enabled (default true). */
  autoLinkLocal?: boolean;
  /** DAD probes per address (Linux dad_transmits, default 1); 0 disables DAD. */
  dadTransmits?: number;
  /** Accept Router Advertisements (hosts; default true). */
  acceptRouterAdvertisements?: boolean;
  /** Form addresses from advertised prefixes (default true). */
  autoconf?: boolean;
  /** Router Solicitations sent at most (default 3) and their interval (default 4000 ms). */
  routerSolicitations?: number;
  routerSolicitationIntervalMs?: number;
  /** Largest random delay before the first DAD probe or RS (default 1000 ms). */
  solicitationDelayMs?: number;
}

export interface NdpStats {
  received: number;
  /** Failed RFC 4861 validation (hop limit, code, lengths, options, addresses). */
  invalid: number;
  nsReceived: number;
  naReceived: number;
  rsReceived: number;
  raReceived: number;
  /** RAs not processed: forwarding, router mode or acceptRouterAdvertisements off. */
  raIgnored: number;
  redirectsIgnored: number;
  nsSent: number;
  naSent: number;
  rsSent: number;
  raSent: number;
  dadStarted: number;
  dadSucceeded: number;
  dadFailed: number;
  slaacAddresses: number;
}

class DadState {
  remaining: number;
  readonly nonce: Uint8Array;
  timer: Timer | null = null;
  constructor(
    readonly address: Uint8Array,
    transmits: number,
    nonce: Uint8Array,
  ) {
    this.remaining = transmits;
    this.nonce = nonce;
  }
}

/** @internal Per-NIC NDP state, shared by Ndp, RouterDiscovery and Slaac. */
export class NdpIface {
  readonly dad = new Map<string, DadState>();
  /** Addresses whose solicited-node group we joined. */
  readonly joined = new Set<string>();
  rsTimer: Timer | null = null;
  rsCount = 0;
  router: RouterState | null = null;
  readonly routers = new Map<string, Timed & { metric: number }>();
  readonly prefixes = new Map<string, Timed>();
  readonly slaac = new Map<string, SlaacAddress>();
  readonly dns = new Map<string, Timed>();
  constructor(readonly nic: NIC) {}
}

const NDP_OPTION_NONCE = 14;

export class Ndp {
  readonly stats: NdpStats = {
    received: 0,
    invalid: 0,
    nsReceived: 0,
    naReceived: 0,
    rsReceived: 0,
    raReceived: 0,
    raIgnored: 0,
    redirectsIgnored: 0,
    nsSent: 0,
    naSent: 0,
    rsSent: 0,
    raSent: 0,
    dadStarted: 0,
    dadSucceeded: 0,
    dadFailed: 0,
    slaacAddresses: 0,
  };
  autoLinkLocal: boolean;
  dadTransmits: number;
  acceptRouterAdvertisements: boolean;
  autoconf: boolean;
  routerSolicitations: number;
  routerSolicitationIntervalMs: number;
  solicitationDelayMs: number;
  private readonly ifaces = new Map<number, NdpIface>();
  private readonly it = new NdpOptionIterator();
  /** @internal Router Solicitations and Advertisements. */
  readonly routers: RouterDiscovery;
  /** @internal Prefixes and SLAAC addresses from Router Advertisements. */
  readonly slaac: Slaac;

  constructor(
    private readonly ip: IPv6Protocol,
    options: NdpOptions,
  ) {
    this.autoLinkLocal = options.autoLinkLocal ?? true;
    this.dadTransmits = options.dadTransmits ?? 1;
    this.acceptRouterAdvertisements = options.acceptRouterAdvertisements ?? true;
    this.autoconf = options.autoconf ?? true;
    this.routerSolicitations = options.routerSolicitations ?? 3;
    this.routerSolicitationIntervalMs = options.routerSolicitationIntervalMs ?? 4_000;
    this.solicitationDelayMs = options.solicitationDelayMs ?? 1_000;
    this.routers = new RouterDiscovery(ip, this);
    this.slaac = new Slaac(ip, this);
  }


  /** @internal The NIC's NDP state, created on first use. */
  iface(nic: NIC): NdpIface {
    let s = this.ifaces.get(nic.id);
    if (s === undefined) {
      s = new NdpIface(nic);
      this.ifaces.set(nic.id, s);
    }
    return s;
  }

  /** @internal The NIC's NDP state if it has any. */
  existingIface(nic: NIC): NdpIface | undefined {
    return this.ifaces.get(nic.id);
  }

  private get clock() {
    return this.ip.stack.clock;
  }

  private get random() {
    return this.ip.stack.random;
  }

  close(): void {
    for (const s of this.ifaces.values()) this.stopAll(s);
    this.ifaces.clear();
  }

  // ---------------------------------------------------------------- NIC life cycle

  /** @internal */
  nicEnabled(nic: NIC): void {
    const s = this.iface(nic);
    for (const a of nic.addresses) if (a.address.length === 16) this.addressAdded(nic, a.address);
    if (nic.needsResolution && this.autoLinkLocal && nic.linkAddress.length === 6) {
      const ll = linkLocalFromMac(nic.linkAddress);
      if (nic.addressInfo(ll) === undefined) nic.addAddress({ address: ll, prefixLength: 64 });
    }
    if (s.router !== null) this.routers.routerReady(s);
  }

  /** @internal */
  nicDisabled(nic: NIC): void {
    const s = this.ifaces.get(nic.id);
    if (s === undefined) return;
    for (const d of s.dad.values()) d.timer?.cancel();
    s.dad.clear();
    s.rsTimer?.cancel();
    if (s.router !== null) {
      s.router.timer.cancel();
      s.router.solicited.cancel();
      s.router.started = false;
    }
    // Addresses go back to tentative: DAD runs again when the link comes up (as Linux).
    if (nic.needsResolution && this.dadTransmits > 0) {
      for (const a of nic.addresses) if (a.address.length === 16 && !a.nodad && a.state !== 'dadfailed') nic.setAddressState(a.address, 'tentative');
    }
  }

  /** @internal */
  nicRemoved(nic: NIC): void {
    const s = this.ifaces.get(nic.id);
    if (s === undefined) return;
    this.stopAll(s);
    this.ifaces.delete(nic.id);
  }

  private stopAll(s: NdpIface): void {
    for (const d of s.dad.values()) d.timer?.cancel();
    s.dad.clear();
    s.rsTimer?.cancel();
    if (s.router !== null) {
      s.router.timer.cancel();
      s.router.solicited.cancel();
    }
    for (const m of [s.routers, s.prefixes, s.dns]) for (const t of m.values()) t.timer.cancel();
    for (const a of s.slaac.values()) {
      a.timer.cancel();
      a.prefTimer.cancel();
    }
  }

  /** @internal An IPv6 address was added to a NIC: join its solicited-node group and run DAD. */
  addressAdded(nic: NIC, address: Uint8Array): void {
    const info = nic.addressInfo(address);
    if (info === undefined) return;
    const s = this.iface(nic);
    const key = addrKey(address, 0);
    if (!s.joined.has(key)) {
      s.joined.add(key);
      this.ip.joinGroup(nic, solicitedNode(address));
    }
    if (!nic.needsResolution || this.dadTransmits <= 0 || info.nodad === true) {
      nic.setAddressState(address, 'preferred');
      if (nic.enabled) this.addressUsable(s, address);
      return;
    }
    if (info.state === 'dadfailed') return;
    nic.setAddressState(address, 'tentative');
    if (nic.enabled) this.startDad(s, address);
  }

  /** @internal */
  addressRemoved(nic: NIC, address: Uint8Array): void {
    const s = this.ifaces.get(nic.id);
    if (s === undefined) return;
    const key = addrKey(address, 0);
    const d = s.dad.get(key);
    if (d !== undefined) {
      d.timer?.cancel();
      s.dad.delete(key);
    }
    const sl = s.slaac.get(key);
    if (sl !== undefined) {
      sl.timer.cancel();
      sl.prefTimer.cancel();
      s.slaac.delete(key);
    }
    if (s.joined.delete(key)) this.ip.leaveGroup(nic, solicitedNode(address));
  }

  // ---------------------------------------------------------------- DAD

  private startDad(s: NdpIface, address: Uint8Array): void {
    const key = addrKey(address, 0);
    s.dad.get(key)?.timer?.cancel();
    const nonce = new Uint8Array(6);
    this.random.fill(nonce);
    const d = new DadState(address.slice(), this.dadTransmits, nonce);
    d.timer = this.clock.setTimeout(() => this.dadStep(s, d), this.random.below(Math.max(1, this.solicitationDelayMs)));
    s.dad.set(key, d);
    this.stats.dadStarted++;
  }

  private dadStep(s: NdpIface, d: DadState): void {
    const nic = s.nic;
    if (s.dad.get(addrKey(d.address, 0)) !== d) return;
    if (d.remaining > 0) {
      // RFC 4862 5.4.2: the solicited-node group is joined (reported) before the probe.
      this.ip.mld.flush(nic);
      this.sendDadProbe(nic, d);
      d.remaining--;
      d.timer!.schedule(this.ip.cache(nic).config.retransTimeMs);
      return;
    }
    s.dad.delete(addrKey(d.address, 0));
    this.stats.dadSucceeded++;
    nic.setAddressState(d.address, 'preferred');
    this.addressUsable(s, d.address);
  }

  private sendDadProbe(nic: NIC, d: DadState): void {
    const pkt = PacketBuffer.alloc(NDP_NS_LENGTH + 8);
    const b = pkt.data;
    encodeNdpNeighborSolicitation(b, pkt.start, { target: d.address });
    encodeNdpOptions(b, pkt.start + NDP_NS_LENGTH, [{ kind: 'raw', type: NDP_OPTION_NONCE, data: d.nonce }]);
    const group = solicitedNode(d.address);
    this.stats.nsSent++;
    this.ip.sendIcmpDirect(nic, UNSPECIFIED, group, 255, pkt, false, multicastMac(group));
  }

  private dadFailed(s: NdpIface, address: Uint8Array): void {
    const key = addrKey(address, 0);
    const d = s.dad.get(key);
    if (d === undefined) return;
    d.timer?.cancel();
    s.dad.delete(key);
    this.stats.dadFailed++;
    s.nic.setAddressState(address, 'dadfailed');
  }

  /** An address became usable (DAD passed or skipped). */
  private addressUsable(s: NdpIface, address: Uint8Array): void {
    if (!isLinkLocal(address)) return;
    if (s.router !== null) {
      this.routers.routerReady(s);
      return;
    }
    if (s.rsTimer === null || !s.rsTimer.pending) this.routers.startSoliciting(s, this.wasDad(s.nic, address) ? 0 : -1);
  }

  private wasDad(nic: NIC, address: Uint8Array): boolean {
    const info = nic.addressInfo(address);
    return nic.needsResolution && this.dadTransmits > 0 && info !== undefined && info.nodad !== true;
  }

  // ---------------------------------------------------------------- resolution

  /** @internal The NeighborProber NIC.neighborCache(0x86dd) uses. */
  prober(nic: NIC): NeighborProber {
    return {
      sendSolicit: (target, unicastTo) => {
        const src = nic.primaryAddress(6, target);
        if (src === null) return;
        const pkt = PacketBuffer.alloc(NDP_NS_LENGTH + 8);
        encodeNdpNeighborSolicitation(pkt.data, pkt.start, { target });
        encodeNdpOptions(pkt.data, pkt.start + NDP_NS_LENGTH, [{ kind: 'sourceLinkAddress', address: nic.linkAddress }]);
        const dst = unicastTo !== null ? target : solicitedNode(target);
        this.stats.nsSent++;
        this.ip.sendIcmpDirect(nic, src, dst, 255, pkt, false, unicastTo ?? multicastMac(dst));
      },
      transmit: (pkt, linkAddress) => {
        pkt.remoteLinkAddress = linkAddress;
        nic.transmit(pkt);
      },
      resolutionFailed: (_target, dropped) => {
        this.ip.resolutionFailed(nic, dropped);
      },
    };
  }

  /** @internal Forwarding, or in router mode on this NIC. */
  isRouter(nic: NIC): boolean {
    return this.ip.stack.forwarding || this.ifaces.get(nic.id)?.router != null;
  }

  // ---------------------------------------------------------------- receive

  /** @internal An NDP message (RS, RA, NS, NA, redirect) whose checksum was verified. */
  handle(nic: NIC, pkt: PacketBuffer, h: IcmpV6Header): void {
    const st = this.stats;
    st.received++;
    if (!nic.needsResolution) {
      st.invalid++;
      return;
    }
    const data = pkt.data;
    const ip = pkt.networkHeaderStart;
    // RFC 4861 6.1 / 7.1: hop limit 255 (not forwarded), code 0, options of non-zero length.
    if (data[ip + 7] !== 255 || h.code !== 0) {
      st.invalid++;
      return;
    }
    const optStart = h.ndpOptionsOffset;
    const it = this.it.reset(data, optStart, h.end);
    let sll = -1;
    let tll = -1;
    let nonce = -1;
    let badLinkOption = false;
    while (it.next()) {
      if (it.type === NDP_OPTION_SOURCE_LINK_ADDRESS || it.type === NDP_OPTION_TARGET_LINK_ADDRESS) {
        // Ethernet: 6 bytes in an 8-byte option, never a group address.
        if (it.length !== 8 || (data[it.offset + 2]! & 1) !== 0) badLinkOption = true;
        else if (it.type === NDP_OPTION_SOURCE_LINK_ADDRESS) sll = it.offset + 2;
        else tll = it.offset + 2;
      } else if (it.type === NDP_OPTION_NONCE && it.length >= 8) nonce = it.offset + 2;
    }
    if (it.status !== NDP_OPTIONS_END || badLinkOption) {
      st.invalid++;
      return;
    }
    const srcUnspecified = isUnspecifiedAt(data, ip + 8);
    switch (h.type) {
      case ICMPV6_NEIGHBOR_SOLICITATION:
        this.onSolicitation(nic, pkt, h, srcUnspecified, sll, nonce);
        return;
      case ICMPV6_NEIGHBOR_ADVERTISEMENT:
        this.onAdvertisement(nic, pkt, h, tll);
        return;
      case ICMPV6_ROUTER_SOLICITATION: {
        if (srcUnspecified && sll >= 0) {
          st.invalid++;
          return;
        }
        st.rsReceived++;
        this.routers.onSolicitation(nic, pkt, sll);
        return;
      }
      case ICMPV6_ROUTER_ADVERTISEMENT:
        if (!isLinkLocal(data, ip + 8)) {
          st.invalid++;
          return;
        }
        st.raReceived++;
        this.routers.onAdvertisement(nic, pkt, h, sll);
        return;
      default:
        st.redirectsIgnored++;
        return;
    }
  }

  private onSolicitation(nic: NIC, pkt: PacketBuffer, h: IcmpV6Header, srcUnspecified: boolean, sll: number, nonce: number): void {
    const st = this.stats;
    const data = pkt.data;
    const ip = pkt.networkHeaderStart;
    const t = h.targetAddressOffset;
    const dstOff = ip + 24;
    // RFC 4861 7.1.1: target not multicast; from :: only to a solicited-node group and without SLLA.
    if (data[t] === 0xff || (srcUnspecified && (sll >= 0 || !isSolicitedNodeGroup(data, dstOff)))) {
      st.invalid++;
      return;
    }
    st.nsReceived++;
    const info = nic.addressInfo(data, t, 16);
    if (info === undefined) return; // not ours (no proxy NDP)
    const s = this.iface(nic);
    if (info.state === 'tentative') {
      if (!srcUnspecified) return; // RFC 4862 5.4.3: address resolution for a tentative address is ignored
      const d = s.dad.get(addrKey(info.address, 0));
      // Our own probe looped back (same nonce) is not a duplicate (RFC 7527).
      if (d !== undefined && nonce >= 0 && sameBytes(data, nonce, d.nonce)) return;
      this.dadFailed(s, info.address);
      return;
    }
    if (info.state === 'dadfailed') return;
    if (srcUnspecified) {
      // Another node probes for our address: defend it (RFC 4862 5.4.3).
      this.sendAdvertisement(nic, info.address, ALL_NODES, false, true, true);
      return;
    }
    const multicastNs = data[dstOff] === 0xff;
    const src = data.slice(ip + 8, ip + 24);
    if (sll >= 0) this.ip.cache(nic).update(src, data.slice(sll, sll + 6), { solicited: false, override: true, create: true });
    // As Linux: Override and the Target Link-Layer Address only in answer to a multicast NS.
    this.sendAdvertisement(nic, info.address, src, true, multicastNs, multicastNs);
  }

  private sendAdvertisement(nic: NIC, target: Uint8Array, dst: Uint8Array, solicited: boolean, override: boolean, withTll: boolean): void {
    const pkt = PacketBuffer.alloc(NDP_NA_LENGTH + (withTll ? 8 : 0));
    encodeNdpNeighborAdvertisement(pkt.data, pkt.start, { router: this.isRouter(nic), solicited, override, target });
    if (withTll) encodeNdpOptions(pkt.data, pkt.start + NDP_NA_LENGTH, [{ kind: 'targetLinkAddress', address: nic.linkAddress }]);
    this.stats.naSent++;
    this.ip.sendIcmpDirect(nic, target, dst, 255, pkt, false, null);
  }

  private onAdvertisement(nic: NIC, pkt: PacketBuffer, h: IcmpV6Header, tll: number): void {
    const st = this.stats;
    const data = pkt.data;
    const ip = pkt.networkHeaderStart;
    const t = h.targetAddressOffset;
    if (data[t] === 0xff || (data[ip + 24] === 0xff && h.solicitedFlag)) {
      st.invalid++;
      return;
    }
    st.naReceived++;
    const info = nic.addressInfo(data, t, 16);
    if (info !== undefined) {
      if (info.state === 'tentative') this.dadFailed(this.iface(nic), info.address);
      return;
    }
    const target = data.slice(t, t + 16);
    const cache = this.ip.cache(nic);
    const lla = tll >= 0 ? data.slice(tll, tll + 6) : cache.lookup(target);
    if (lla === null) return;
    cache.update(target, lla, { solicited: h.solicitedFlag, override: h.overrideFlag, create: false });
    if (!h.routerFlag) {
      const s = this.ifaces.get(nic.id);
      const r = s?.routers.get(addrKey(target, 0));
      if (s !== undefined && r !== undefined) this.routers.removeRouter(s, addrKey(target, 0));
    }
  }

  // ---------------------------------------------------------------- routers (router-discovery.ts)

  /** Recursive DNS servers learned from RAs on a NIC (RFC 8106). */
  dnsServers(nic: NIC): string[] {
    return this.routers.dnsServers(nic);
  }

  /** Default routers learned from RAs on a NIC. */
  defaultRouters(nic: NIC): string[] {
    return this.routers.defaultRouters(nic);
  }

  /**
   * Act as a router on this NIC: advertise `config` periodically and in answer to Router
   * Solicitations (RFC 4861 6.2). The NIC joins ff02::2 and sets the R flag in its NAs; RAs
   * from others are ignored. The first RA goes out as soon as the link-local address is usable.
   */
  startRouter(nic: NIC, config: RouterConfig = {}): void {
    this.routers.startRouter(nic, config);
  }

  /** Stop advertising; a final RA with router lifetime 0 tells hosts (RFC 4861 6.2.5). */
  stopRouter(nic: NIC): void {
    this.routers.stopRouter(nic);
  }
}

function isSolicitedNodeGroup(b: Uint8Array, off: number): boolean {
  if (b[off] !== 0xff || b[off + 1] !== 0x02) return false;
  for (let i = 2; i < 11; i++) if (b[off + i] !== 0) return false;
  return b[off + 11] === 1 && b[off + 12] === 0xff;
}

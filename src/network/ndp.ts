import { TunstackError } from '../errors.js';
import { formatIPv6, maskAddress, parseCIDR, parseIPv6 } from '../headers/address.js';
import {
  ICMPV6_NEIGHBOR_ADVERTISEMENT,
  ICMPV6_NEIGHBOR_SOLICITATION,
  ICMPV6_ROUTER_ADVERTISEMENT,
  ICMPV6_ROUTER_SOLICITATION,
  IcmpV6Header,
  NDP_NA_LENGTH,
  NDP_NS_LENGTH,
  NDP_RA_LENGTH,
  NDP_RS_LENGTH,
} from '../headers/icmpv6.js';
import {
  NDP_INFINITE_LIFETIME,
  NDP_OPTIONS_END,
  NDP_OPTION_MTU,
  NDP_OPTION_PREFIX_INFORMATION,
  NDP_OPTION_RDNSS,
  NDP_OPTION_SOURCE_LINK_ADDRESS,
  NDP_OPTION_TARGET_LINK_ADDRESS,
  NdpOptionIterator,
  encodeNdpNeighborAdvertisement,
  encodeNdpNeighborSolicitation,
  encodeNdpOptions,
  encodeNdpRouterAdvertisement,
  encodeNdpRouterSolicitation,
  ndpOptionsLength,
  type NdpOptionFields,
} from '../headers/ndp.js';
import type { Timer } from '../stack/clock.js';
import type { NeighborProber } from '../stack/neighbor.js';
import type { NIC } from '../stack/nic.js';
import { PacketBuffer } from '../stack/packet.js';
import type { IPv6Protocol } from './ipv6.js';
import {
  ALL_NODES,
  ALL_ROUTERS,
  UNSPECIFIED,
  addrKey,
  eui64,
  isLinkLocal,
  isUnspecifiedAt,
  linkLocalFromMac,
  multicastMac,
  solicitedNode,
} from './ipv6-address.js';

/**
 * Neighbor Discovery (RFC 4861) and stateless address autoconfiguration (RFC 4862).
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
 * - Hosts send Router Solicitations after the link-local address passes DAD and accept Router
 *   Advertisements (not while forwarding or in router mode): cur hop limit, reachable time,
 *   retrans timer, MTU, default router (metric 1024), on-link prefixes (metric 256), SLAAC
 *   addresses (prefix + EUI-64, lifetimes with the two-hour rule) and RDNSS (RFC 8106).
 * - Router mode (`startRouter`) for sandbox guests: periodic RAs (the first three at most 16 s
 *   apart) and answers to RS (random delay up to 500 ms, at most one multicast RA per 3 s),
 *   with prefixes, RDNSS and MTU.
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

/** A prefix a router advertises. */
export interface RouterPrefix {
  /** "fd00:1::/64". */
  prefix: string;
  onLink?: boolean;
  autonomous?: boolean;
  /** Seconds (defaults as radvd: 86400 and 14400). */
  validLifetimeSec?: number;
  preferredLifetimeSec?: number;
}

export interface RouterConfig {
  prefixes?: Array<string | RouterPrefix>;
  /** Recursive DNS servers (RDNSS option). */
  dnsServers?: string[];
  /** Seconds; default 3 x maxIntervalMs. */
  dnsLifetimeSec?: number;
  /** Advertise this link MTU (MTU option); default none. */
  mtu?: number;
  /** Seconds; default 1800 (3 x 600 s). 0: not a default router. */
  routerLifetimeSec?: number;
  /** Default 64. */
  curHopLimit?: number;
  managed?: boolean;
  other?: boolean;
  reachableTimeMs?: number;
  retransTimerMs?: number;
  /** Unsolicited RA interval (RFC 4861 defaults 200 s .. 600 s). */
  minIntervalMs?: number;
  maxIntervalMs?: number;
}

interface ParsedRouter {
  prefixes: Array<{ prefix: Uint8Array; length: number; onLink: boolean; autonomous: boolean; valid: number; preferred: number }>;
  dns: Uint8Array[];
  dnsLifetime: number;
  mtu: number;
  lifetime: number;
  hopLimit: number;
  managed: boolean;
  other: boolean;
  reachable: number;
  retrans: number;
  minInterval: number;
  maxInterval: number;
}

interface RouterState {
  cfg: ParsedRouter;
  timer: Timer;
  solicited: Timer;
  initialLeft: number;
  lastMulticastAt: number;
  started: boolean;
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

interface Timed {
  address: Uint8Array;
  prefixLength: number;
  timer: Timer;
  /** Clock time the valid lifetime ends (Infinity). */
  until: number;
}

interface SlaacAddress extends Timed {
  prefTimer: Timer;
}

class NdpIface {
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

const MAX_INITIAL_RTR_ADVERT_INTERVAL = 16_000;
const MAX_INITIAL_RTR_ADVERTISEMENTS = 3;
const MIN_DELAY_BETWEEN_RAS = 3_000;
const MAX_RA_DELAY_TIME = 500;
const NDP_OPTION_NONCE = 14;
const TWO_HOURS = 7_200_000;

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
  }

  private iface(nic: NIC): NdpIface {
    let s = this.ifaces.get(nic.id);
    if (s === undefined) {
      s = new NdpIface(nic);
      this.ifaces.set(nic.id, s);
    }
    return s;
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
    if (s.router !== null) this.routerReady(s);
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
      this.routerReady(s);
      return;
    }
    if (s.rsTimer === null || !s.rsTimer.pending) this.startSolicitingRouters(s, this.wasDad(s.nic, address) ? 0 : -1);
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

  private isRouter(nic: NIC): boolean {
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
        const r = this.ifaces.get(nic.id)?.router;
        if (r == null) return;
        if (sll >= 0) {
          this.ip.cache(nic).update(data.slice(ip + 8, ip + 24), data.slice(sll, sll + 6), { solicited: false, override: true, create: true });
        }
        this.solicitedAdvertisement(r);
        return;
      }
      case ICMPV6_ROUTER_ADVERTISEMENT:
        if (!isLinkLocal(data, ip + 8)) {
          st.invalid++;
          return;
        }
        st.raReceived++;
        this.onRouterAdvertisement(nic, pkt, h, sll);
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
      if (s !== undefined && r !== undefined) this.removeRouter(s, addrKey(target, 0));
    }
  }

  // ---------------------------------------------------------------- host: RS / RA

  private startSolicitingRouters(s: NdpIface, delay: number): void {
    const nic = s.nic;
    if (!nic.needsResolution || !this.acceptRouterAdvertisements || this.routerSolicitations <= 0 || this.isRouter(nic)) return;
    s.rsCount = 0;
    s.rsTimer ??= this.clock.timer(() => this.sendSolicitationStep(s));
    s.rsTimer.schedule(delay >= 0 ? delay : this.random.below(Math.max(1, this.solicitationDelayMs)));
  }

  private sendSolicitationStep(s: NdpIface): void {
    const nic = s.nic;
    if (!nic.enabled || this.isRouter(nic)) return;
    let src: Uint8Array = UNSPECIFIED;
    for (const a of nic.addresses) {
      if (a.address.length === 16 && isLinkLocal(a.address) && (a.state === undefined || a.state === 'deprecated')) {
        src = a.address;
        break;
      }
    }
    const withSll = src !== UNSPECIFIED;
    const pkt = PacketBuffer.alloc(NDP_RS_LENGTH + (withSll ? 8 : 0));
    encodeNdpRouterSolicitation(pkt.data, pkt.start);
    if (withSll) encodeNdpOptions(pkt.data, pkt.start + NDP_RS_LENGTH, [{ kind: 'sourceLinkAddress', address: nic.linkAddress }]);
    this.stats.rsSent++;
    this.ip.sendIcmpDirect(nic, src, ALL_ROUTERS, 255, pkt, false, multicastMac(ALL_ROUTERS));
    if (++s.rsCount < this.routerSolicitations) s.rsTimer!.schedule(this.routerSolicitationIntervalMs);
  }

  private onRouterAdvertisement(nic: NIC, pkt: PacketBuffer, h: IcmpV6Header, sll: number): void {
    const s = this.iface(nic);
    if (!this.acceptRouterAdvertisements || this.isRouter(nic)) {
      this.stats.raIgnored++;
      return;
    }
    const data = pkt.data;
    const ip = pkt.networkHeaderStart;
    const router = data.slice(ip + 8, ip + 24);
    const ipIf = this.ip.iface(nic);
    const cache = this.ip.cache(nic);
    if (h.curHopLimit !== 0) ipIf.hopLimit = h.curHopLimit;
    if (h.reachableTime !== 0 && h.reachableTime <= 3_600_000) cache.config.baseReachableTimeMs = h.reachableTime;
    if (h.retransTimer !== 0) cache.config.retransTimeMs = h.retransTimer;
    if (sll >= 0) cache.update(router, data.slice(sll, sll + 6), { solicited: false, override: true, create: true });
    const it = this.it.reset(data, h.ndpOptionsOffset, h.end);
    let dnsChanged = false;
    while (it.next()) {
      if (!it.wellFormed) continue;
      switch (it.type) {
        case NDP_OPTION_MTU: {
          const m = it.mtu;
          if (m >= 1280 && m <= nic.mtu) ipIf.mtu = m;
          break;
        }
        case NDP_OPTION_PREFIX_INFORMATION:
          this.onPrefix(s, data.slice(it.prefixOffset, it.prefixOffset + 16), it.prefixLength, it.onLinkFlag, it.autonomousFlag, it.validLifetime, it.preferredLifetime);
          break;
        case NDP_OPTION_RDNSS:
          for (let i = 0; i < it.rdnssServerCount; i++) {
            const o = it.rdnssServerOffset(i);
            if (this.timedEntry(s.dns, data.slice(o, o + 16), 128, it.rdnssLifetime, () => this.dnsExpired(s))) dnsChanged = true;
          }
          break;
        default:
          break;
      }
    }
    this.defaultRouter(s, router, h.routerLifetime);
    s.rsTimer?.cancel();
    if (dnsChanged) this.ip.emit('dns-servers', nic, this.dnsServers(nic));
    this.ip.emit('router-advertisement', nic, { router: formatIPv6(router), lifetimeSec: h.routerLifetime });
  }

  private onPrefix(s: NdpIface, prefix: Uint8Array, len: number, onLink: boolean, auto: boolean, valid: number, preferred: number): void {
    if (len > 128 || isLinkLocal(prefix) || prefix[0] === 0xff || preferred > valid) return;
    const nic = s.nic;
    const masked = maskAddress(prefix, len);
    if (onLink) {
      const key = addrKey(masked, 0) + len;
      const had = s.prefixes.get(key);
      if (valid === 0) {
        if (had !== undefined) {
          had.timer.cancel();
          s.prefixes.delete(key);
          this.ip.stack.routes.remove((e) => e.nicId === nic.id && e.metric === 256 && e.prefixLength === len && e.gateway === null && sameArray(e.destination, masked));
        }
      } else {
        if (had === undefined) {
          try {
            this.ip.stack.routes.add({ destination: masked, prefixLength: len, gateway: null, nicId: nic.id, metric: 256, connected: true });
          } catch {
            // already routed
          }
        }
        const entry: Timed = had ?? {
          address: masked,
          prefixLength: len,
          timer: this.clock.timer(() => {
            s.prefixes.delete(key);
            this.ip.stack.routes.remove((e) => e.nicId === nic.id && e.metric === 256 && e.prefixLength === len && e.gateway === null && sameArray(e.destination, masked));
          }),
          until: Infinity,
        };
        s.prefixes.set(key, entry);
        setLifetime(entry, valid, this.clock.now());
      }
    }
    if (auto && this.autoconf && len === 64 && nic.linkAddress.length === 6) this.slaac(s, masked, valid, preferred);
  }

  private slaac(s: NdpIface, prefix: Uint8Array, valid: number, preferred: number): void {
    const nic = s.nic;
    const addr = prefix.slice();
    addr.set(eui64(nic.linkAddress), 8);
    const key = addrKey(addr, 0);
    const now = this.clock.now();
    let a = s.slaac.get(key);
    if (a === undefined) {
      if (valid === 0 || nic.addressInfo(addr) !== undefined) return;
      const entry: SlaacAddress = {
        address: addr,
        prefixLength: 64,
        until: Infinity,
        timer: this.clock.timer(() => {
          s.slaac.delete(key);
          entry.prefTimer.cancel();
          if (nic.addressInfo(addr) !== undefined) nic.removeAddress(addr);
        }),
        prefTimer: this.clock.timer(() => {
          const info = nic.addressInfo(addr);
          if (info !== undefined && info.state === undefined) nic.setAddressState(addr, 'deprecated');
        }),
      };
      a = entry;
      s.slaac.set(key, a);
      this.stats.slaacAddresses++;
      setLifetime(a, valid, now);
      this.setPreferred(a, preferred);
      nic.addAddress({ address: addr, prefixLength: 64 }, { route: false });
      return;
    }
    // RFC 4862 5.5.3 (e): the two-hour rule against shortening a valid lifetime.
    const remaining = a.until - now;
    const v = valid === NDP_INFINITE_LIFETIME ? Infinity : valid * 1000;
    if (v > TWO_HOURS || v > remaining) setLifetime(a, valid, now);
    else if (remaining > TWO_HOURS) setLifetime(a, TWO_HOURS / 1000, now);
    this.setPreferred(a, preferred);
    const info = nic.addressInfo(addr);
    if (info !== undefined && info.state === 'deprecated' && preferred > 0) nic.setAddressState(addr, 'preferred');
  }

  private setPreferred(a: SlaacAddress, preferred: number): void {
    if (preferred === NDP_INFINITE_LIFETIME) a.prefTimer.cancel();
    else a.prefTimer.schedule(preferred * 1000);
  }

  private defaultRouter(s: NdpIface, router: Uint8Array, lifetime: number): void {
    const key = addrKey(router, 0);
    const had = s.routers.get(key);
    if (lifetime === 0) {
      if (had !== undefined) this.removeRouter(s, key);
      return;
    }
    if (had !== undefined) {
      setLifetime(had, lifetime, this.clock.now());
      return;
    }
    const nic = s.nic;
    for (let metric = 1024; metric < 1024 + 16; metric++) {
      try {
        this.ip.stack.routes.add({ destination: new Uint8Array(16), prefixLength: 0, gateway: router, nicId: nic.id, metric, connected: false });
      } catch {
        continue;
      }
      const entry = { address: router, prefixLength: 0, metric, until: Infinity, timer: this.clock.timer(() => this.removeRouter(s, key)) };
      s.routers.set(key, entry);
      setLifetime(entry, lifetime, this.clock.now());
      return;
    }
  }

  private removeRouter(s: NdpIface, key: string): void {
    const r = s.routers.get(key);
    if (r === undefined) return;
    r.timer.cancel();
    s.routers.delete(key);
    const nic = s.nic;
    this.ip.stack.routes.remove((e) => e.nicId === nic.id && e.prefixLength === 0 && e.metric === r.metric && e.gateway !== null && sameArray(e.gateway, r.address));
  }

  /** Add/refresh/remove a lifetime-bound entry of `map`; true when the set of keys changed. */
  private timedEntry(map: Map<string, Timed>, address: Uint8Array, prefixLength: number, lifetimeSec: number, expired: () => void): boolean {
    const key = addrKey(address, 0);
    const had = map.get(key);
    if (lifetimeSec === 0) {
      if (had === undefined) return false;
      had.timer.cancel();
      map.delete(key);
      return true;
    }
    if (had !== undefined) {
      setLifetime(had, lifetimeSec, this.clock.now());
      return false;
    }
    const entry: Timed = {
      address,
      prefixLength,
      until: Infinity,
      timer: this.clock.timer(() => {
        map.delete(key);
        expired();
      }),
    };
    map.set(key, entry);
    setLifetime(entry, lifetimeSec, this.clock.now());
    return true;
  }

  private dnsExpired(s: NdpIface): void {
    this.ip.emit('dns-servers', s.nic, this.dnsServers(s.nic));
  }

  /** Recursive DNS servers learned from RAs on a NIC (RFC 8106). */
  dnsServers(nic: NIC): string[] {
    const s = this.ifaces.get(nic.id);
    return s === undefined ? [] : [...s.dns.values()].map((e) => formatIPv6(e.address));
  }

  /** Default routers learned from RAs on a NIC. */
  defaultRouters(nic: NIC): string[] {
    const s = this.ifaces.get(nic.id);
    return s === undefined ? [] : [...s.routers.values()].map((e) => formatIPv6(e.address));
  }

  // ---------------------------------------------------------------- router mode

  /**
   * Act as a router on this NIC: advertise `config` periodically and in answer to Router
   * Solicitations (RFC 4861 6.2). The NIC joins ff02::2 and sets the R flag in its NAs; RAs
   * from others are ignored. The first RA goes out as soon as the link-local address is usable.
   */
  startRouter(nic: NIC, config: RouterConfig = {}): void {
    if (!nic.needsResolution) throw new TunstackError('EOPNOTSUPP', `${nic.name} has no link layer for router advertisements`);
    const s = this.iface(nic);
    const cfg = parseRouterConfig(config);
    if (s.router !== null) {
      s.router.cfg = cfg;
      return;
    }
    s.rsTimer?.cancel();
    const r: RouterState = {
      cfg,
      timer: this.clock.timer(() => this.unsolicitedAdvertisement(s, r)),
      solicited: this.clock.timer(() => this.sendAdvertisementNow(s, r)),
      initialLeft: MAX_INITIAL_RTR_ADVERTISEMENTS,
      lastMulticastAt: -Infinity,
      started: false,
    };
    s.router = r;
    this.ip.joinGroup(nic, ALL_ROUTERS);
    this.routerReady(s);
  }

  /** Stop advertising; a final RA with router lifetime 0 tells hosts (RFC 4861 6.2.5). */
  stopRouter(nic: NIC): void {
    const s = this.ifaces.get(nic.id);
    const r = s?.router;
    if (s === undefined || r == null) return;
    r.timer.cancel();
    r.solicited.cancel();
    if (r.started && nic.enabled) {
      r.cfg = { ...r.cfg, lifetime: 0 };
      this.sendAdvertisementNow(s, r);
    }
    s.router = null;
    this.ip.leaveGroup(nic, ALL_ROUTERS);
  }

  private linkLocalOf(nic: NIC): Uint8Array | null {
    for (const a of nic.addresses) {
      if (a.address.length === 16 && isLinkLocal(a.address) && (a.state === undefined || a.state === 'deprecated')) return a.address;
    }
    return null;
  }

  private routerReady(s: NdpIface): void {
    const r = s.router;
    if (r === null || r.started || !s.nic.enabled || this.linkLocalOf(s.nic) === null) return;
    r.started = true;
    r.initialLeft = MAX_INITIAL_RTR_ADVERTISEMENTS;
    r.timer.schedule(0);
  }

  private unsolicitedAdvertisement(s: NdpIface, r: RouterState): void {
    this.sendAdvertisementNow(s, r);
    let next = r.cfg.minInterval + this.random.below(Math.max(1, r.cfg.maxInterval - r.cfg.minInterval + 1));
    if (r.initialLeft > 0) {
      r.initialLeft--;
      next = Math.min(next, MAX_INITIAL_RTR_ADVERT_INTERVAL);
    }
    r.timer.schedule(next);
  }

  private solicitedAdvertisement(r: RouterState): void {
    if (!r.started || r.solicited.pending) return;
    const now = this.clock.now();
    const at = Math.max(now + this.random.below(MAX_RA_DELAY_TIME + 1), r.lastMulticastAt + MIN_DELAY_BETWEEN_RAS);
    if (r.timer.pending && r.timer.deadline <= at) return; // the periodic one comes first
    r.solicited.schedule(at - now);
  }

  private sendAdvertisementNow(s: NdpIface, r: RouterState): void {
    const nic = s.nic;
    const src = this.linkLocalOf(nic);
    if (src === null || !nic.enabled) return;
    const c = r.cfg;
    const opts: NdpOptionFields[] = [{ kind: 'sourceLinkAddress', address: nic.linkAddress }];
    if (c.mtu > 0) opts.push({ kind: 'mtu', mtu: c.mtu });
    for (const p of c.prefixes) {
      opts.push({
        kind: 'prefixInformation',
        prefixLength: p.length,
        onLink: p.onLink,
        autonomous: p.autonomous,
        validLifetime: p.valid,
        preferredLifetime: p.preferred,
        prefix: p.prefix,
      });
    }
    if (c.dns.length > 0) opts.push({ kind: 'rdnss', lifetime: c.dnsLifetime, servers: c.dns });
    const pkt = PacketBuffer.alloc(NDP_RA_LENGTH + ndpOptionsLength(opts));
    encodeNdpRouterAdvertisement(pkt.data, pkt.start, {
      curHopLimit: c.hopLimit,
      managed: c.managed,
      other: c.other,
      routerLifetime: c.lifetime,
      reachableTime: c.reachable,
      retransTimer: c.retrans,
    });
    encodeNdpOptions(pkt.data, pkt.start + NDP_RA_LENGTH, opts);
    r.lastMulticastAt = this.clock.now();
    this.stats.raSent++;
    this.ip.sendIcmpDirect(nic, src, ALL_NODES, 255, pkt, false, multicastMac(ALL_NODES));
  }
}

function parseRouterConfig(c: RouterConfig): ParsedRouter {
  const maxInterval = c.maxIntervalMs ?? 600_000;
  const minInterval = c.minIntervalMs ?? Math.max(3_000, Math.floor(maxInterval / 3));
  if (!(minInterval >= 0 && minInterval <= maxInterval)) throw new TunstackError('EINVAL', 'RA interval: need 0 <= min <= max');
  const prefixes = (c.prefixes ?? []).map((p) => {
    const spec: RouterPrefix = typeof p === 'string' ? { prefix: p } : p;
    const { address, prefixLength } = parseCIDR(spec.prefix);
    if (address.length !== 16) throw new TunstackError('EINVAL', `${spec.prefix} is not an IPv6 prefix`);
    return {
      prefix: maskAddress(address, prefixLength),
      length: prefixLength,
      onLink: spec.onLink ?? true,
      autonomous: spec.autonomous ?? true,
      valid: spec.validLifetimeSec ?? 86_400,
      preferred: spec.preferredLifetimeSec ?? 14_400,
    };
  });
  const dns = (c.dnsServers ?? []).map((d) => parseIPv6(d));
  return {
    prefixes,
    dns,
    dnsLifetime: c.dnsLifetimeSec ?? Math.ceil((3 * maxInterval) / 1000),
    mtu: c.mtu ?? 0,
    lifetime: c.routerLifetimeSec ?? Math.min(9000, Math.ceil((3 * maxInterval) / 1000)),
    hopLimit: c.curHopLimit ?? 64,
    managed: c.managed ?? false,
    other: c.other ?? false,
    reachable: c.reachableTimeMs ?? 0,
    retrans: c.retransTimerMs ?? 0,
    minInterval,
    maxInterval,
  };
}

function setLifetime(e: Timed, seconds: number, now: number): void {
  if (seconds === NDP_INFINITE_LIFETIME) {
    e.until = Infinity;
    e.timer.cancel();
    return;
  }
  e.until = now + seconds * 1000;
  e.timer.schedule(seconds * 1000);
}

function isSolicitedNodeGroup(b: Uint8Array, off: number): boolean {
  if (b[off] !== 0xff || b[off + 1] !== 0x02) return false;
  for (let i = 2; i < 11; i++) if (b[off + i] !== 0) return false;
  return b[off + 11] === 1 && b[off + 12] === 0xff;
}

function sameBytes(b: Uint8Array, off: number, x: Uint8Array): boolean {
  for (let i = 0; i < x.length; i++) if (b[off + i] !== x[i]) return false;
  return true;
}

function sameArray(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && sameBytes(a, 0, b);
}

import { TunstackError } from '../core/errors.js';
import { formatIPv6, maskAddress, parseCIDR, parseIPv6 } from '../core/address.js';
import { IcmpV6Header, NDP_RA_LENGTH, NDP_RS_LENGTH } from '../headers/icmpv6.js';
import {
  NDP_OPTION_MTU,
  NDP_OPTION_PREFIX_INFORMATION,
  NDP_OPTION_RDNSS,
  NdpOptionIterator,
  encodeNdpOptions,
  encodeNdpRouterAdvertisement,
  encodeNdpRouterSolicitation,
  ndpOptionsLength,
  type NdpOptionFields,
} from '../headers/ndp.js';
import type { Timer } from '../core/clock.js';
import type { NIC } from '../stack/nic.js';
import { PacketBuffer } from '../core/packet.js';
import type { IPv6Protocol } from './ipv6.js';
import { ALL_NODES, ALL_ROUTERS, UNSPECIFIED, addrKey, isLinkLocal, multicastMac, sameArray } from './ipv6-address.js';
import type { Ndp, NdpIface } from './ndp.js';
import { setLifetime, type Timed } from './slaac.js';

/**
 * Router and prefix discovery (RFC 4861 section 6) for Ndp, both sides:
 *
 * - Hosts send Router Solicitations after the link-local address passes DAD and accept Router
 *   Advertisements (not while forwarding or in router mode): cur hop limit, reachable time,
 *   retrans timer, MTU, default router (metric 1024), Prefix Information (handed to slaac.ts) and
 *   RDNSS (RFC 8106).
 * - Router mode (`Ndp.startRouter`) for sandbox guests: periodic RAs (the first three at most 16 s
 *   apart) and answers to RS (random delay up to 500 ms, at most one multicast RA per 3 s),
 *   with prefixes, RDNSS and MTU.
 */

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

/** @internal */
export interface RouterState {
  cfg: ParsedRouter;
  timer: Timer;
  solicited: Timer;
  initialLeft: number;
  lastMulticastAt: number;
  started: boolean;
}

const MAX_INITIAL_RTR_ADVERT_INTERVAL = 16_000;
const MAX_INITIAL_RTR_ADVERTISEMENTS = 3;
const MIN_DELAY_BETWEEN_RAS = 3_000;
const MAX_RA_DELAY_TIME = 500;

/** @internal Router Solicitation / Advertisement handling of one Ndp. */
export class RouterDiscovery {
  private readonly it = new NdpOptionIterator();

  constructor(
    private readonly ip: IPv6Protocol,
    private readonly ndp: Ndp,
  ) {}

  private get clock() {
    return this.ip.stack.clock;
  }

  private get random() {
    return this.ip.stack.random;
  }

  // ---------------------------------------------------------------- host: RS / RA

  /** @internal Start sending Router Solicitations (host). */
  startSoliciting(s: NdpIface, delay: number): void {
    const nic = s.nic;
    if (!nic.needsResolution || !this.ndp.acceptRouterAdvertisements || this.ndp.routerSolicitations <= 0 || this.ndp.isRouter(nic)) return;
    s.rsCount = 0;
    s.rsTimer ??= this.clock.timer(() => this.sendSolicitationStep(s));
    s.rsTimer.schedule(delay >= 0 ? delay : this.random.below(Math.max(1, this.ndp.solicitationDelayMs)));
  }

  private sendSolicitationStep(s: NdpIface): void {
    const nic = s.nic;
    if (!nic.enabled || this.ndp.isRouter(nic)) return;
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
    this.ndp.stats.rsSent++;
    this.ip.sendIcmpDirect(nic, src, ALL_ROUTERS, 255, pkt, false, multicastMac(ALL_ROUTERS));
    if (++s.rsCount < this.ndp.routerSolicitations) s.rsTimer!.schedule(this.ndp.routerSolicitationIntervalMs);
  }

  /** @internal A valid Router Solicitation: in router mode, answer it (RFC 4861 6.2.6). */
  onSolicitation(nic: NIC, pkt: PacketBuffer, sll: number): void {
    const r = this.ndp.existingIface(nic)?.router;
    if (r == null) return;
    const data = pkt.data;
    const ip = pkt.networkHeaderStart;
    if (sll >= 0) {
      this.ip.cache(nic).update(data.slice(ip + 8, ip + 24), data.slice(sll, sll + 6), { solicited: false, override: true, create: true });
    }
    this.solicitedAdvertisement(r);
  }

  /** @internal A Router Advertisement from a link-local source (RFC 4861 6.3.4). */
  onAdvertisement(nic: NIC, pkt: PacketBuffer, h: IcmpV6Header, sll: number): void {
    const s = this.ndp.iface(nic);
    if (!this.ndp.acceptRouterAdvertisements || this.ndp.isRouter(nic)) {
      this.ndp.stats.raIgnored++;
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
          this.ndp.slaac.onPrefix(s, data.slice(it.prefixOffset, it.prefixOffset + 16), it.prefixLength, it.onLinkFlag, it.autonomousFlag, it.validLifetime, it.preferredLifetime);
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

  /** @internal */
  removeRouter(s: NdpIface, key: string): void {
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
    const s = this.ndp.existingIface(nic);
    return s === undefined ? [] : [...s.dns.values()].map((e) => formatIPv6(e.address));
  }

  /** Default routers learned from RAs on a NIC. */
  defaultRouters(nic: NIC): string[] {
    const s = this.ndp.existingIface(nic);
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
    const s = this.ndp.iface(nic);
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
    const s = this.ndp.existingIface(nic);
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

  /** @internal The router is ready to advertise once its link-local address is usable. */
  routerReady(s: NdpIface): void {
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
    this.ndp.stats.raSent++;
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

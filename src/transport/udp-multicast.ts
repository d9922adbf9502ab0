import { TunstackError } from '../core/errors.js';
import { addrEqual, formatIP, parseIP } from '../core/address.js';
import type { FilterMode, IgmpMembership } from '../network/igmp.js';
import type { IPv4Protocol } from '../network/ipv4.js';
import type { IPv6Protocol } from '../network/ipv6.js';
import type { NIC } from '../stack/nic.js';
import type { NetStack } from '../stack/stack.js';

/**
 * The multicast side of a UDP socket, as Linux's setsockopt options: IP_ADD_MEMBERSHIP /
 * IP_DROP_MEMBERSHIP, IP_ADD_SOURCE_MEMBERSHIP / IP_DROP_SOURCE_MEMBERSHIP (and their IPv6
 * counterparts), IP_MULTICAST_IF, IP_MULTICAST_TTL, IP_MULTICAST_LOOP.
 *
 * A socket receives a multicast datagram for its port when the interface accepts the group (the
 * IGMP / MLD interface state); if the socket itself joined that group on that interface, its own
 * filter applies too, else it receives it anyway (IP_MULTICAST_ALL, on by default in Linux and
 * not settable from Node).
 */

/** Linux's `igmp_max_memberships` and `igmp_max_msf`. */
export const MAX_MEMBERSHIPS = 20;
export const MAX_SOURCES = 10;

interface Membership {
  nic: NIC;
  group: Uint8Array;
  mode: FilterMode;
  sources: Uint8Array[];
  igmp: IgmpMembership | null;
}

/** The interface argument of a membership or IP_MULTICAST_IF call. */
export type MulticastInterface = string | number | undefined;

function isMulticast(a: Uint8Array): boolean {
  return a.length === 4 ? (a[0]! & 0xf0) === 0xe0 : a[0] === 0xff;
}

function u32(b: Uint8Array): number {
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

function isV4Mapped(a: Uint8Array): boolean {
  if (a.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return false;
  return a[10] === 0xff && a[11] === 0xff;
}

export class UdpMulticast {
  /** IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS (Linux default 1). */
  ttl = 1;
  /** IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP (Linux default on). */
  loop = true;
  /** IP_MULTICAST_IF: the NIC multicast leaves by (null: the route's), and its source (IPv4). */
  nic: NIC | null = null;
  source: Uint8Array | null = null;
  private readonly list: Membership[] = [];

  constructor(
    private readonly stack: NetStack,
    /** The socket's family: a udp6 socket may join IPv4 groups unless it is v6-only. */
    private readonly family: 4 | 6,
    private readonly v6Only: () => boolean,
  ) {}

  get memberships(): number {
    return this.list.length;
  }

  private parseGroup(group: string | Uint8Array, syscall: string): Uint8Array {
    let g: Uint8Array;
    try {
      g = typeof group === 'string' ? parseIP(group) : group.slice();
    } catch {
      throw new TunstackError('EINVAL', `bad multicast address ${String(group)}`, syscall);
    }
    if (isV4Mapped(g)) g = g.slice(12);
    if (!isMulticast(g)) throw new TunstackError('EINVAL', `${formatIP(g)} is not a multicast address`, syscall);
    if (g.length === 4 && this.family === 6 && this.v6Only()) {
      throw new TunstackError('EINVAL', 'an IPv4 group on an IPV6_V6ONLY socket', syscall);
    }
    if (g.length === 16 && this.family === 4) throw new TunstackError('EINVAL', 'an IPv6 group on an IPv4 socket', syscall);
    return g;
  }

  /**
   * The NIC a membership is for: an address of one (IPv4), a name or index, `addr%scope` (IPv6),
   * or nothing / the unspecified address: the NIC the route to the group goes out of. ENODEV when
   * there is none.
   */
  private resolveNic(group: Uint8Array, iface: MulticastInterface, syscall: string): NIC {
    const fail = (): never => {
      throw new TunstackError('ENODEV', `no interface ${iface === undefined ? `for ${formatIP(group)}` : String(iface)}`, syscall);
    };
    if (typeof iface === 'number') return this.stack.nic(iface) ?? fail();
    let spec = iface ?? '';
    const pct = spec.indexOf('%');
    if (pct >= 0) {
      const scope = spec.slice(pct + 1);
      const byIndex = /^\d+$/.test(scope) ? this.stack.nic(Number(scope)) : undefined;
      return byIndex ?? this.stack.nic(scope) ?? fail();
    }
    if (spec === '0.0.0.0' || spec === '::') spec = '';
    if (spec === '') {
      try {
        return this.stack.findRoute(group).nic;
      } catch {
        return fail();
      }
    }
    let addr: Uint8Array | null = null;
    try {
      addr = parseIP(spec);
    } catch {
      return this.stack.nic(spec) ?? fail();
    }
    return this.stack.nicForAddress(addr) ?? fail();
  }

  private find(nic: NIC, g: Uint8Array): Membership | undefined {
    return this.list.find((m) => m.nic === nic && m.group.length === g.length && addrEqual(m.group, g));
  }

  private ip4(): IPv4Protocol {
    const p = this.stack.networkProtocol(0x0800) as IPv4Protocol | undefined;
    if (p === undefined) throw new TunstackError('EAFNOSUPPORT', 'IPv4 is not enabled on this stack');
    return p;
  }

  private ip6(): IPv6Protocol {
    const p = this.stack.networkProtocol(0x86dd) as IPv6Protocol | undefined;
    if (p === undefined) throw new TunstackError('EAFNOSUPPORT', 'IPv6 is not enabled on this stack');
    return p;
  }

  private apply(m: Membership): void {
    if (m.group.length === 4) {
      const sources = m.sources.map(u32);
      if (m.igmp === null) m.igmp = this.ip4().igmp.join(m.nic, m.group, m.mode, sources);
      else m.igmp.setFilter(m.mode, sources);
    }
  }

  /** IP_ADD_MEMBERSHIP: any-source join. EADDRINUSE when already joined there, ENOBUFS past 20. */
  add(group: string | Uint8Array, iface: MulticastInterface): void {
    const g = this.parseGroup(group, 'addMembership');
    const nic = this.resolveNic(g, iface, 'addMembership');
    if (this.find(nic, g) !== undefined) throw new TunstackError('EADDRINUSE', `already a member of ${formatIP(g)}`, 'addMembership');
    if (this.list.length >= MAX_MEMBERSHIPS) throw new TunstackError('ENOBUFS', `at most ${MAX_MEMBERSHIPS} memberships`, 'addMembership');
    const m: Membership = { nic, group: g, mode: 'exclude', sources: [], igmp: null };
    if (g.length === 16) this.ip6().joinGroup(nic, g);
    this.apply(m);
    this.list.push(m);
  }

  /** IP_DROP_MEMBERSHIP. EADDRNOTAVAIL when not joined there. */
  drop(group: string | Uint8Array, iface: MulticastInterface): void {
    const g = this.parseGroup(group, 'dropMembership');
    const nic = this.resolveNic(g, iface, 'dropMembership');
    const m = this.find(nic, g);
    if (m === undefined) throw new TunstackError('EADDRNOTAVAIL', `not a member of ${formatIP(g)}`, 'dropMembership');
    this.leave(m);
  }

  private leave(m: Membership): void {
    const i = this.list.indexOf(m);
    if (i >= 0) this.list.splice(i, 1);
    if (m.igmp !== null) m.igmp.leave();
    else if (m.group.length === 16) (this.stack.networkProtocol(0x86dd) as IPv6Protocol | undefined)?.leaveGroup(m.nic, m.group);
  }

  private parseSource(source: string | Uint8Array, g: Uint8Array, syscall: string): Uint8Array {
    let s: Uint8Array;
    try {
      s = typeof source === 'string' ? parseIP(source) : source.slice();
    } catch {
      throw new TunstackError('EINVAL', `bad source address ${String(source)}`, syscall);
    }
    if (isV4Mapped(s)) s = s.slice(12);
    if (s.length !== g.length || isMulticast(s)) throw new TunstackError('EINVAL', `bad source address ${formatIP(s)}`, syscall);
    return s;
  }

  /**
   * IP_ADD_SOURCE_MEMBERSHIP: receive `group` from `source` (INCLUDE mode). Joins the group if
   * needed; an any-source membership becomes INCLUDE {source} (Linux switches empty filters);
   * EADDRNOTAVAIL for a source already listed, ENOBUFS past 10 sources.
   */
  addSource(source: string | Uint8Array, group: string | Uint8Array, iface: MulticastInterface): void {
    const g = this.parseGroup(group, 'addSourceSpecificMembership');
    const s = this.parseSource(source, g, 'addSourceSpecificMembership');
    const nic = this.resolveNic(g, iface, 'addSourceSpecificMembership');
    let m = this.find(nic, g);
    if (m === undefined) {
      if (this.list.length >= MAX_MEMBERSHIPS) throw new TunstackError('ENOBUFS', `at most ${MAX_MEMBERSHIPS} memberships`, 'addSourceSpecificMembership');
      m = { nic, group: g, mode: 'include', sources: [s], igmp: null };
      if (g.length === 16) this.ip6().joinGroup(nic, g);
      this.apply(m);
      this.list.push(m);
      return;
    }
    if (m.mode !== 'include') {
      // Linux lets an empty filter change mode: an any-source join becomes INCLUDE {source}.
      if (m.sources.length > 0) throw new TunstackError('EINVAL', `${formatIP(g)} has an exclude filter`, 'addSourceSpecificMembership');
      m.mode = 'include';
      m.sources = [s];
      this.apply(m);
      return;
    }
    if (m.sources.some((x) => addrEqual(x, s))) throw new TunstackError('EADDRNOTAVAIL', `${formatIP(s)} is already a source`, 'addSourceSpecificMembership');
    if (m.sources.length >= MAX_SOURCES) throw new TunstackError('ENOBUFS', `at most ${MAX_SOURCES} sources`, 'addSourceSpecificMembership');
    m.sources.push(s);
    this.apply(m);
  }

  /** IP_DROP_SOURCE_MEMBERSHIP; dropping the last source leaves the group. */
  dropSource(source: string | Uint8Array, group: string | Uint8Array, iface: MulticastInterface): void {
    const g = this.parseGroup(group, 'dropSourceSpecificMembership');
    const s = this.parseSource(source, g, 'dropSourceSpecificMembership');
    const nic = this.resolveNic(g, iface, 'dropSourceSpecificMembership');
    const m = this.find(nic, g);
    const k = m === undefined || m.mode !== 'include' ? -1 : m.sources.findIndex((x) => addrEqual(x, s));
    if (m === undefined || k < 0) throw new TunstackError('EADDRNOTAVAIL', `not receiving ${formatIP(g)} from ${formatIP(s)}`, 'dropSourceSpecificMembership');
    if (m.sources.length === 1) {
      this.leave(m);
      return;
    }
    m.sources.splice(k, 1);
    this.apply(m);
  }

  /**
   * IP_MULTICAST_IF: by an address of a NIC (EADDRNOTAVAIL otherwise) or, for IPv6, `::%scope`
   * or a NIC name / index; the unspecified address (or undefined) goes back to the route's choice.
   */
  setInterface(iface: MulticastInterface): void {
    if (iface === undefined || iface === '0.0.0.0' || iface === '::') {
      this.nic = null;
      this.source = null;
      return;
    }
    if (typeof iface === 'number' || iface.includes('%')) {
      const nic = typeof iface === 'number' ? this.stack.nic(iface) : this.resolveNic(new Uint8Array(16), iface, 'setMulticastInterface');
      if (nic === undefined) throw new TunstackError('EADDRNOTAVAIL', `no interface ${iface}`, 'setMulticastInterface');
      this.nic = nic;
      this.source = null;
      return;
    }
    let addr: Uint8Array;
    try {
      addr = parseIP(iface);
    } catch {
      throw new TunstackError('EINVAL', `bad interface address ${iface}`, 'setMulticastInterface');
    }
    const nic = this.stack.nicForAddress(addr);
    if (nic === null) throw new TunstackError('EADDRNOTAVAIL', `${iface} is not an address of this stack`, 'setMulticastInterface');
    this.nic = nic;
    this.source = addr.length === 4 ? addr : null;
  }

  /**
   * Whether this socket takes a multicast datagram to the group at `goff` from the source at
   * `soff` (addresses of `alen` bytes) that arrived on `nicId`.
   */
  allows(nicId: number, data: Uint8Array, goff: number, soff: number, alen: number): boolean {
    for (const m of this.list) {
      if (m.nic.id !== nicId || m.group.length !== alen || !addrEqual(m.group, data, goff)) continue;
      let listed = false;
      for (const s of m.sources) if (addrEqual(s, data, soff)) listed = true;
      return m.mode === 'exclude' ? !listed : listed;
    }
    return true;
  }

  /** Leave every group (the socket is closing). */
  close(): void {
    for (const m of [...this.list]) this.leave(m);
  }
}

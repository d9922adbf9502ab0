import {
  IGMP_ALL_ROUTERS,
  IGMP_V1_MEMBERSHIP_REPORT,
  IGMP_V2_LEAVE_GROUP,
  IGMP_V2_MEMBERSHIP_REPORT,
  IGMPV3_ALLOW_NEW_SOURCES,
  IGMPV3_ALL_ROUTERS,
  IGMPV3_BLOCK_OLD_SOURCES,
  IGMPV3_CHANGE_TO_EXCLUDE,
  IGMPV3_CHANGE_TO_INCLUDE,
  IGMPV3_MODE_IS_EXCLUDE,
  IGMPV3_MODE_IS_INCLUDE,
  encodeIgmpV2,
  encodeIgmpV3Report,
  igmpV3ReportLength,
  parseIgmp,
  type IgmpV3Record,
} from '../headers/igmp.js';
import { TunstackError } from '../core/errors.js';
import type { Timer } from '../core/clock.js';
import type { NIC } from '../stack/nic.js';
import { PacketBuffer } from '../core/packet.js';
import type { IPv4Protocol } from './ipv4.js';

/**
 * IGMPv3 host side (RFC 3376) with IGMPv2 (RFC 2236) and IGMPv1 (RFC 1112) compatibility: the
 * interface state that IPv4 uses to accept multicast, and the reports that tell routers and
 * snooping switches about it.
 *
 * - Sockets hold memberships (`join`), each a filter: EXCLUDE {} for an any-source join, INCLUDE
 *   {S...} for source-specific ones. The interface state of a group merges them as RFC 3376 3.2
 *   says (any EXCLUDE: EXCLUDE with the intersection of the excluded sources minus every included
 *   one; else INCLUDE with the union).
 * - A change of interface state sends a State-Change Report at once (filter-mode change TO_EX /
 *   TO_IN with the new sources, or ALLOW / BLOCK with the difference), retransmitted robustness-1
 *   more times at random intervals up to `unsolicitedReportIntervalMs`; later changes are merged
 *   into the pending retransmissions (RFC 3376 5.1).
 * - Queries are answered after a random delay within their Maximum Response Time: a general query
 *   with Current-State Records (IS_EX / IS_IN) for every group, a group query with its record, a
 *   group-and-source query with IS_IN of the asked sources the host wants (RFC 3376 5.2).
 * - An IGMPv1 or IGMPv2 query puts the interface in that compatibility mode for the Older Version
 *   Querier Present Timeout (robustness x query interval + response interval, 260 s by default):
 *   v1/v2 reports to the group, suppressed when another host reports first, and (v2) a Leave to
 *   224.0.0.2 from the last reporter. Source filters are not expressed in v1/v2 (RFC 3376 7.2).
 * - 224.0.0.1 is always joined and never reported. Reports go out with TTL 1, TOS 0xc0, DF and the
 *   Router Alert option, from the NIC's primary address (0.0.0.0 when it has none), as Linux's.
 */

export type FilterMode = 'include' | 'exclude';

export interface IgmpOptions {
  /** Robustness variable (default 2; a v3 query's QRV replaces it per interface). */
  robustness?: number;
  /** Largest interval between state-change retransmissions (v3: 1 s, v1/v2: 10 s, as Linux). */
  unsolicitedReportIntervalMs?: number;
  /** Memberships one socket may hold (Linux `igmp_max_memberships`, 20). */
  maxMemberships?: number;
  /** Sources one membership may list (Linux `igmp_max_msf`, 10). */
  maxSources?: number;
}

export interface IgmpStats {
  received: number;
  /** Malformed: short, bad checksum, counts past the end. */
  invalid: number;
  queriesReceived: number;
  v1QueriesReceived: number;
  v2QueriesReceived: number;
  reportsReceived: number;
  /** IGMPv3 reports sent (state changes and query answers). */
  reportsSent: number;
  v2ReportsSent: number;
  v1ReportsSent: number;
  leavesSent: number;
  /** v1/v2 reports not sent because another host reported the group first. */
  reportsSuppressed: number;
}

/** A group's interface state as `ip maddr` / /proc/net/mcfilter would show it. */
export interface IgmpGroupState {
  group: string;
  mode: FilterMode;
  sources: string[];
  /** Memberships (sockets) holding it. */
  users: number;
}

const ALL_HOSTS_KEY = 0xe0000001;
const DEFAULT_QUERY_INTERVAL_MS = 125_000;
const DEFAULT_QUERY_RESPONSE_INTERVAL_MS = 10_000;
const V2_UNSOLICITED_REPORT_INTERVAL_MS = 10_000;
/** Records per IGMPv3 report packet, so that one fits any MTU of 576 or more. */
const MAX_REPORT_BYTES = 576 - 24;

function u32(b: Uint8Array, o = 0): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function bytes(v: number): Uint8Array {
  return Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}

function dotted(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
}

function sameSet(a: Set<number>, b: Set<number>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

/** One socket's membership of a group on an interface. */
export class IgmpMembership {
  /** @internal */
  constructor(
    private readonly igmp: Igmp,
    readonly nic: NIC,
    readonly group: number,
    public mode: FilterMode,
    public sources: Set<number>,
  ) {}

  /** @internal */ left = false;

  /** Replace the filter (mode and sources); the interface state and reports follow. */
  setFilter(mode: FilterMode, sources: Iterable<number>): void {
    if (this.left) throw new TunstackError('EADDRNOTAVAIL', 'membership was dropped');
    this.mode = mode;
    this.sources = new Set(sources);
    this.igmp.recompute(this.nic, this.group);
  }

  /** Whether this membership lets a datagram from `src` (u32) through (socket-level filter). */
  allows(src: number): boolean {
    return this.mode === 'exclude' ? !this.sources.has(src) : this.sources.has(src);
  }

  leave(): void {
    if (this.left) return;
    this.left = true;
    this.igmp.release(this);
  }
}

class GroupState {
  readonly members = new Set<IgmpMembership>();
  mode: FilterMode = 'include';
  sources = new Set<number>();
  /** State-change retransmissions still to send (v3). */
  modeLeft = 0;
  readonly allow = new Map<number, number>();
  readonly block = new Map<number, number>();
  /** v1/v2 report timer, or v3 group(-and-source) query answer timer. */
  timer: Timer | null = null;
  /** Sources a pending v3 group-and-source answer covers; null: the whole group. */
  querySources: Set<number> | null = null;
  /** v2: we sent the last report heard for the group (so we send the Leave). */
  reporter = false;
  /** v1/v2 unsolicited reports still to send after a join. */
  unsolicitedLeft = 0;
  constructor(readonly key: number) {}

  get pendingChange(): boolean {
    return this.modeLeft > 0 || this.allow.size > 0 || this.block.size > 0;
  }
}

class IgmpIface {
  readonly groups = new Map<number, GroupState>();
  changeTimer: Timer | null = null;
  generalTimer: Timer | null = null;
  v1Until = -Infinity;
  v2Until = -Infinity;
  robustness: number;
  queryIntervalMs = DEFAULT_QUERY_INTERVAL_MS;
  queryResponseIntervalMs = DEFAULT_QUERY_RESPONSE_INTERVAL_MS;
  constructor(
    readonly nic: NIC,
    robustness: number,
  ) {
    this.robustness = robustness;
  }
}

export class Igmp {
  readonly stats: IgmpStats = {
    received: 0,
    invalid: 0,
    queriesReceived: 0,
    v1QueriesReceived: 0,
    v2QueriesReceived: 0,
    reportsReceived: 0,
    reportsSent: 0,
    v2ReportsSent: 0,
    v1ReportsSent: 0,
    leavesSent: 0,
    reportsSuppressed: 0,
  };
  readonly robustness: number;
  readonly unsolicitedReportIntervalMs: number;
  readonly maxMemberships: number;
  readonly maxSources: number;
  private readonly ifaces = new Map<number, IgmpIface>();

  constructor(
    private readonly ip: IPv4Protocol,
    options: IgmpOptions = {},
  ) {
    this.robustness = Math.max(1, options.robustness ?? 2);
    this.unsolicitedReportIntervalMs = options.unsolicitedReportIntervalMs ?? 1000;
    this.maxMemberships = options.maxMemberships ?? 20;
    this.maxSources = options.maxSources ?? 10;
  }

  private get clock() {
    return this.ip.stack.clock;
  }

  private iface(nic: NIC): IgmpIface {
    let s = this.ifaces.get(nic.id);
    if (s === undefined) {
      s = new IgmpIface(nic, this.robustness);
      this.ifaces.set(nic.id, s);
    }
    return s;
  }

  // ---------------------------------------------------------------- memberships

  /** A new membership of `group` on `nic` with a filter; the interface state and reports follow. */
  join(nic: NIC, group: Uint8Array, mode: FilterMode = 'exclude', sources: Iterable<number> = []): IgmpMembership {
    const key = u32(group);
    if ((key >>> 28) !== 0xe) throw new TunstackError('EINVAL', `${dotted(key)} is not a multicast address`);
    const s = this.iface(nic);
    let g = s.groups.get(key);
    if (g === undefined) {
      g = new GroupState(key);
      s.groups.set(key, g);
    }
    const m = new IgmpMembership(this, nic, key, mode, new Set(sources));
    g.members.add(m);
    this.recompute(nic, key);
    return m;
  }

  /** @internal */
  release(m: IgmpMembership): void {
    const g = this.ifaces.get(m.nic.id)?.groups.get(m.group);
    if (g === undefined) return;
    g.members.delete(m);
    this.recompute(m.nic, m.group);
  }

  /** Whether the interface accepts a datagram to `group` from `src` (its merged filter). */
  accepts(nic: NIC, group: Uint8Array, goff: number, src: Uint8Array, soff: number): boolean {
    const key = u32(group, goff);
    if (key === ALL_HOSTS_KEY) return true;
    const g = this.ifaces.get(nic.id)?.groups.get(key);
    if (g === undefined || (g.mode === 'include' && g.sources.size === 0)) return false;
    const has = g.sources.has(u32(src, soff));
    return g.mode === 'exclude' ? !has : has;
  }

  /** The groups of a NIC with their interface state (224.0.0.1 first, always there). */
  groups(nic: NIC): IgmpGroupState[] {
    const out: IgmpGroupState[] = [{ group: '224.0.0.1', mode: 'exclude', sources: [], users: 0 }];
    const s = this.ifaces.get(nic.id);
    if (s === undefined) return out;
    for (const g of s.groups.values()) {
      if (g.mode === 'include' && g.sources.size === 0) continue;
      out.push({ group: dotted(g.key), mode: g.mode, sources: [...g.sources].sort((a, b) => a - b).map(dotted), users: g.members.size });
    }
    return out;
  }

  /** @internal Merge the memberships of a group into its interface state; report a change. */
  recompute(nic: NIC, key: number): void {
    const s = this.iface(nic);
    const g = s.groups.get(key);
    if (g === undefined) return;
    let mode: FilterMode = 'include';
    let excl: Set<number> | undefined;
    const incl = new Set<number>();
    for (const m of g.members) {
      if (m.mode === 'exclude') {
        mode = 'exclude';
        const prev: Set<number> | undefined = excl;
        excl = prev === undefined ? new Set(m.sources) : new Set([...prev].filter((x) => m.sources.has(x)));
      } else {
        for (const x of m.sources) incl.add(x);
      }
    }
    const base: Set<number> = excl ?? new Set<number>();
    const sources = mode === 'exclude' ? new Set([...base].filter((x) => !incl.has(x))) : incl;
    const oldMode = g.mode;
    const oldSources = g.sources;
    g.mode = mode;
    g.sources = sources;
    if (oldMode === mode && sameSet(oldSources, sources)) return;
    if (key !== ALL_HOSTS_KEY) this.stateChanged(s, g, oldMode, oldSources);
    if (g.members.size === 0 && !g.pendingChange && !(g.timer?.pending ?? false)) s.groups.delete(key);
  }

  private stateChanged(s: IgmpIface, g: GroupState, oldMode: FilterMode, oldSources: Set<number>): void {
    const wasMember = oldMode === 'exclude' || oldSources.size > 0;
    const isMember = g.mode === 'exclude' || g.sources.size > 0;
    const version = this.version(s);
    if (version !== 3) {
      // v1/v2 know groups only: a report when joining, a Leave (v2) when leaving.
      if (isMember && !wasMember) {
        g.unsolicitedLeft = this.robustness - 1;
        this.sendOldReport(s, g, version);
        if (g.unsolicitedLeft > 0) this.armOldTimer(s, g, V2_UNSOLICITED_REPORT_INTERVAL_MS);
      } else if (!isMember && wasMember) {
        g.timer?.cancel();
        g.unsolicitedLeft = 0;
        if (version === 2 && g.reporter && s.nic.enabled) this.sendV2(s.nic, IGMP_V2_LEAVE_GROUP, g.key, IGMP_ALL_ROUTERS);
        g.reporter = false;
      }
      return;
    }
    const r = s.robustness;
    if (oldMode !== g.mode) {
      g.modeLeft = r;
      g.allow.clear();
      g.block.clear();
    } else {
      // Same mode: the sources let in now (ALLOW) and those shut out (BLOCK).
      const letIn = g.mode === 'include' ? [...g.sources].filter((x) => !oldSources.has(x)) : [...oldSources].filter((x) => !g.sources.has(x));
      const shutOut = g.mode === 'include' ? [...oldSources].filter((x) => !g.sources.has(x)) : [...g.sources].filter((x) => !oldSources.has(x));
      for (const x of letIn) {
        g.block.delete(x);
        g.allow.set(x, r);
      }
      for (const x of shutOut) {
        g.allow.delete(x);
        g.block.set(x, r);
      }
    }
    if (!s.nic.enabled) return;
    s.changeTimer ??= this.clock.timer(() => this.sendChanges(s));
    // The first report goes at once (the next clock step, so that changes made together share it).
    s.changeTimer.schedule(0);
  }

  private version(s: IgmpIface): 1 | 2 | 3 {
    const now = this.clock.now();
    if (s.v1Until > now) return 1;
    if (s.v2Until > now) return 2;
    return 3;
  }

  private sendChanges(s: IgmpIface): void {
    if (!s.nic.enabled || this.version(s) < 3) return;
    const records: IgmpV3Record[] = [];
    for (const [key, g] of s.groups) {
      if (!g.pendingChange) continue;
      const group = bytes(key);
      if (g.modeLeft > 0) {
        records.push({ type: g.mode === 'exclude' ? IGMPV3_CHANGE_TO_EXCLUDE : IGMPV3_CHANGE_TO_INCLUDE, group, sources: [...g.sources].map(bytes) });
        g.modeLeft--;
      } else {
        if (g.allow.size > 0) records.push({ type: IGMPV3_ALLOW_NEW_SOURCES, group, sources: [...g.allow.keys()].map(bytes) });
        if (g.block.size > 0) records.push({ type: IGMPV3_BLOCK_OLD_SOURCES, group, sources: [...g.block.keys()].map(bytes) });
        for (const m of [g.allow, g.block]) for (const [x, n] of m) n <= 1 ? m.delete(x) : m.set(x, n - 1);
      }
      if (g.members.size === 0 && !g.pendingChange && !(g.timer?.pending ?? false)) s.groups.delete(key);
    }
    this.sendV3(s.nic, records);
    for (const g of s.groups.values()) {
      if (g.pendingChange) {
        s.changeTimer!.schedule(1 + this.ip.stack.random.below(Math.max(1, this.unsolicitedReportIntervalMs)));
        break;
      }
    }
  }

  // ---------------------------------------------------------------- receive

  /** @internal An IGMP message for `nic` (IPv4 header at pkt.networkHeaderStart). */
  handle(nic: NIC, pkt: PacketBuffer): void {
    const st = this.stats;
    st.received++;
    const msg = parseIgmp(pkt.data, pkt.start, pkt.end - pkt.start);
    if (msg === null) {
      st.invalid++;
      return;
    }
    const s = this.iface(nic);
    const now = this.clock.now();
    if (msg.kind === 'report') {
      st.reportsReceived++;
      // Another host reported the group: ours is not needed (v1/v2 suppression).
      const g = s.groups.get(u32(msg.group));
      if (g !== undefined && this.version(s) < 3 && g.timer?.pending) {
        g.timer.cancel();
        g.unsolicitedLeft = 0;
        g.reporter = false;
        st.reportsSuppressed++;
      }
      return;
    }
    if (msg.kind !== 'query') {
      st.reportsReceived++;
      return;
    }
    st.queriesReceived++;
    const older = s.robustness * s.queryIntervalMs + s.queryResponseIntervalMs;
    if (msg.version === 1) {
      st.v1QueriesReceived++;
      this.enterOldMode(s);
      s.v1Until = now + older;
    } else if (msg.version === 2) {
      st.v2QueriesReceived++;
      this.enterOldMode(s);
      s.v2Until = now + older;
    } else {
      if (msg.qrv > 0) s.robustness = msg.qrv;
      if (msg.qqiSeconds > 0) s.queryIntervalMs = msg.qqiSeconds * 1000;
    }
    const version = this.version(s);
    const groupKey = u32(msg.group);
    const maxMs = Math.max(1, msg.maxRespMs);
    if (version < 3) {
      // Every group (or the one asked) reports within the time, unless its timer is sooner.
      for (const g of s.groups.values()) {
        if (groupKey !== 0 && g.key !== groupKey) continue;
        if (g.mode === 'include' && g.sources.size === 0) continue;
        this.armOldTimer(s, g, maxMs);
      }
      return;
    }
    const delay = this.ip.stack.random.below(maxMs);
    if (groupKey === 0) {
      // RFC 3376 5.2 rules 1 and 2: one pending general answer, the sooner one wins.
      s.generalTimer ??= this.clock.timer(() => this.answerGeneral(s));
      if (!s.generalTimer.pending || s.generalTimer.deadline > now + delay) s.generalTimer.schedule(delay);
      return;
    }
    const g = s.groups.get(groupKey);
    if (g === undefined || (g.mode === 'include' && g.sources.size === 0)) return;
    if (s.generalTimer?.pending && s.generalTimer.deadline <= now + delay) return;
    const pending = g.timer?.pending === true;
    if (msg.sources.length === 0 || (pending && g.querySources === null)) g.querySources = null;
    else {
      if (!pending || g.querySources === null) g.querySources = new Set();
      for (const x of msg.sources) g.querySources.add(u32(x));
    }
    g.timer ??= this.clock.timer(() => this.answerGroup(s, g));
    if (!pending || g.timer.deadline > now + delay) g.timer.schedule(delay);
  }

  /** Leaving v3 for an older mode cancels pending v3 retransmissions and answers (RFC 3376 7.2.1). */
  private enterOldMode(s: IgmpIface): void {
    if (this.version(s) < 3) return;
    s.changeTimer?.cancel();
    s.generalTimer?.cancel();
    for (const g of s.groups.values()) {
      g.modeLeft = 0;
      g.allow.clear();
      g.block.clear();
      g.timer?.cancel();
      g.querySources = null;
    }
  }

  private armOldTimer(s: IgmpIface, g: GroupState, maxMs: number): void {
    const now = this.clock.now();
    const delay = this.ip.stack.random.below(Math.max(1, maxMs));
    g.timer ??= this.clock.timer(() => this.fireOld(s, g));
    if (!g.timer.pending || g.timer.deadline > now + delay) g.timer.schedule(delay);
  }

  private fireOld(s: IgmpIface, g: GroupState): void {
    const version = this.version(s);
    if (version === 3) {
      this.answerGroup(s, g);
      return;
    }
    if (g.mode === 'include' && g.sources.size === 0) return;
    this.sendOldReport(s, g, version);
    if (g.unsolicitedLeft > 0) {
      g.unsolicitedLeft--;
      if (g.unsolicitedLeft > 0) this.armOldTimer(s, g, V2_UNSOLICITED_REPORT_INTERVAL_MS);
    }
  }

  private sendOldReport(s: IgmpIface, g: GroupState, version: 1 | 2): void {
    if (!s.nic.enabled) return;
    g.reporter = true;
    this.sendV2(s.nic, version === 1 ? IGMP_V1_MEMBERSHIP_REPORT : IGMP_V2_MEMBERSHIP_REPORT, g.key, bytes(g.key));
  }

  private currentRecord(g: GroupState): IgmpV3Record | null {
    if (g.key === ALL_HOSTS_KEY || (g.mode === 'include' && g.sources.size === 0)) return null;
    return { type: g.mode === 'exclude' ? IGMPV3_MODE_IS_EXCLUDE : IGMPV3_MODE_IS_INCLUDE, group: bytes(g.key), sources: [...g.sources].map(bytes) };
  }

  private answerGeneral(s: IgmpIface): void {
    if (!s.nic.enabled || this.version(s) < 3) return;
    const records: IgmpV3Record[] = [];
    for (const g of s.groups.values()) {
      const r = this.currentRecord(g);
      if (r !== null) records.push(r);
    }
    this.sendV3(s.nic, records);
  }

  private answerGroup(s: IgmpIface, g: GroupState): void {
    const asked = g.querySources;
    g.querySources = null;
    if (!s.nic.enabled || this.version(s) < 3) return;
    if (asked === null) {
      const r = this.currentRecord(g);
      if (r !== null) this.sendV3(s.nic, [r]);
      return;
    }
    // IS_IN of the asked sources this host wants (RFC 3376 5.2, last table); none: no answer.
    const want = [...asked].filter((x) => (g.mode === 'include' ? g.sources.has(x) : !g.sources.has(x)));
    if (want.length > 0) this.sendV3(s.nic, [{ type: IGMPV3_MODE_IS_INCLUDE, group: bytes(g.key), sources: want.map(bytes) }]);
  }

  // ---------------------------------------------------------------- send

  private sendV3(nic: NIC, records: IgmpV3Record[]): void {
    // Split into packets that fit (a record with many sources goes whole; at most 10 per socket).
    let i = 0;
    while (i < records.length) {
      let j = i + 1;
      while (j < records.length && igmpV3ReportLength(records.slice(i, j + 1)) <= MAX_REPORT_BYTES) j++;
      const part = records.slice(i, j);
      const pkt = PacketBuffer.alloc(igmpV3ReportLength(part));
      encodeIgmpV3Report(pkt.data, pkt.start, part);
      this.stats.reportsSent++;
      this.ip.sendIgmp(nic, IGMPV3_ALL_ROUTERS, pkt);
      i = j;
    }
  }

  private sendV2(nic: NIC, type: number, group: number, dst: Uint8Array): void {
    const pkt = PacketBuffer.alloc(8);
    encodeIgmpV2(pkt.data, pkt.start, type, 0, bytes(group));
    if (type === IGMP_V2_LEAVE_GROUP) this.stats.leavesSent++;
    else if (type === IGMP_V1_MEMBERSHIP_REPORT) this.stats.v1ReportsSent++;
    else this.stats.v2ReportsSent++;
    this.ip.sendIgmp(nic, dst, pkt);
  }

  // ---------------------------------------------------------------- NIC lifecycle

  /** @internal The link went up: announce every group again (as Linux on NETDEV_UP). */
  nicEnabled(nic: NIC): void {
    const s = this.ifaces.get(nic.id);
    if (s === undefined) return;
    for (const g of s.groups.values()) {
      if (g.mode === 'include' && g.sources.size === 0) continue;
      this.stateChanged(s, g, 'include', new Set());
    }
  }

  /** @internal */
  nicDisabled(nic: NIC): void {
    const s = this.ifaces.get(nic.id);
    if (s === undefined) return;
    s.changeTimer?.cancel();
    s.generalTimer?.cancel();
    for (const g of s.groups.values()) {
      g.timer?.cancel();
      g.modeLeft = 0;
      g.allow.clear();
      g.block.clear();
    }
  }

  /** @internal */
  nicRemoved(nic: NIC): void {
    this.nicDisabled(nic);
    const s = this.ifaces.get(nic.id);
    if (s !== undefined) for (const g of s.groups.values()) for (const m of g.members) m.left = true;
    this.ifaces.delete(nic.id);
  }

  close(): void {
    for (const s of this.ifaces.values()) this.nicDisabled(s.nic);
    this.ifaces.clear();
  }
}

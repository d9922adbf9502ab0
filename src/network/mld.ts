import {
  ICMPV6_HEADER_LENGTH,
  ICMPV6_MLD_DONE,
  ICMPV6_MLD_QUERY,
  ICMPV6_MLD_REPORT,
  MLD_QUERY_V1_LENGTH,
  MLD_QUERY_V2_LENGTH,
  IcmpV6Header,
  encodeIcmpV6,
} from '../headers/icmpv6.js';
import {
  MLDV2_CHANGE_TO_EXCLUDE,
  MLDV2_CHANGE_TO_INCLUDE,
  MLDV2_MODE_IS_EXCLUDE,
  MLDV2_RECORD_HEADER_LENGTH,
  encodeMldV2Report,
  type MldV2RecordFields,
} from '../headers/mld.js';
import type { Timer } from '../core/clock.js';
import type { NIC } from '../stack/nic.js';
import { PacketBuffer } from '../core/packet.js';
import type { IPv6Protocol } from './ipv6.js';
import {
  ALL_MLDV2_ROUTERS,
  ALL_ROUTERS,
  UNSPECIFIED,
  addrKey,
  isLinkLocal,
  isUnspecifiedAt,
  multicastMac,
} from './ipv6-address.js';

/**
 * MLDv2 (RFC 3810), host side, with MLDv1 (RFC 2710) compatibility: enough for a Linux router or
 * a snooping bridge to know which groups a NIC listens to.
 *
 * - Joining or leaving a group sends a State Change Report (CHANGE_TO_EXCLUDE {} / CHANGE_TO_INCLUDE
 *   {}) after a random delay of up to `unsolicitedReportIntervalMs`, repeated `robustness` times;
 *   pending changes of a NIC go out together in one report. DAD flushes them first, so the
 *   solicited-node join is reported before the probe (RFC 4862 5.4.2).
 * - Queries (general or for one group) are answered with Current State Records (MODE_IS_EXCLUDE)
 *   after a random delay up to the query's Maximum Response Delay.
 * - An MLDv1 query switches the NIC to MLDv1 for the Older Version Querier Present Timeout (260 s):
 *   reports are then MLDv1 Reports sent to the group, and leaving sends Done to ff02::2.
 * - ff02::1 and groups of scope 0 and 1 are never reported. Reports go to ff02::16 (v2) with hop
 *   limit 1 and the Router Alert option, from the link-local address or :: while it is tentative.
 * - Only NICs with a link layer (Ethernet) send MLD.
 */

export interface MldOptions {
  /** Robustness variable (default 2). */
  robustness?: number;
  /** Largest delay of unsolicited reports (default 1000 ms, MLDv2). */
  unsolicitedReportIntervalMs?: number;
}

export interface MldStats {
  received: number;
  invalid: number;
  queriesReceived: number;
  reportsReceived: number;
  reportsSent: number;
  v1ReportsSent: number;
  doneSent: number;
}

interface Change {
  group: Uint8Array;
  type: number;
  left: number;
}

class MldIface {
  readonly changes = new Map<string, Change>();
  changeTimer: Timer | null = null;
  queryTimer: Timer | null = null;
  /** Groups a pending query response covers; null: all (a general query). */
  queryGroups: Uint8Array[] | null = null;
  /** MLDv1 compatibility mode until this clock time. */
  v1Until = -Infinity;
  constructor(readonly nic: NIC) {}
}

const OLDER_VERSION_QUERIER_TIMEOUT = 260_000;
const RECORDS_PER_REPORT = 60;

export class Mld {
  readonly stats: MldStats = {
    received: 0,
    invalid: 0,
    queriesReceived: 0,
    reportsReceived: 0,
    reportsSent: 0,
    v1ReportsSent: 0,
    doneSent: 0,
  };
  robustness: number;
  unsolicitedReportIntervalMs: number;
  private readonly ifaces = new Map<number, MldIface>();

  constructor(
    private readonly ip: IPv6Protocol,
    options: MldOptions,
  ) {
    this.robustness = Math.max(1, options.robustness ?? 2);
    this.unsolicitedReportIntervalMs = options.unsolicitedReportIntervalMs ?? 1000;
  }

  private iface(nic: NIC): MldIface {
    let s = this.ifaces.get(nic.id);
    if (s === undefined) {
      s = new MldIface(nic);
      this.ifaces.set(nic.id, s);
    }
    return s;
  }

  close(): void {
    for (const s of this.ifaces.values()) {
      s.changeTimer?.cancel();
      s.queryTimer?.cancel();
    }
    this.ifaces.clear();
  }

  /** @internal */
  nicDisabled(nic: NIC): void {
    const s = this.ifaces.get(nic.id);
    if (s === undefined) return;
    s.changeTimer?.cancel();
    s.queryTimer?.cancel();
    s.changes.clear();
  }

  /** @internal */
  nicRemoved(nic: NIC): void {
    this.nicDisabled(nic);
    this.ifaces.delete(nic.id);
  }

  private inV1(s: MldIface): boolean {
    return s.v1Until > this.ip.stack.clock.now();
  }

  /** @internal A group was joined (first reference). */
  joined(nic: NIC, group: Uint8Array): void {
    if (!reportable(group) || !nic.needsResolution) return;
    this.change(this.iface(nic), group, MLDV2_CHANGE_TO_EXCLUDE);
  }

  /** @internal A group was left (last reference). */
  left(nic: NIC, group: Uint8Array): void {
    if (!reportable(group) || !nic.needsResolution) return;
    this.change(this.iface(nic), group, MLDV2_CHANGE_TO_INCLUDE);
  }

  private change(s: MldIface, group: Uint8Array, type: number): void {
    s.changes.set(addrKey(group, 0), { group: group.slice(0, 16), type, left: this.robustness });
    if (!s.nic.enabled) return;
    s.changeTimer ??= this.ip.stack.clock.timer(() => this.sendChanges(s));
    const delay = this.ip.stack.random.below(Math.max(1, this.unsolicitedReportIntervalMs));
    if (!s.changeTimer.pending || s.changeTimer.deadline > this.ip.stack.clock.now() + delay) s.changeTimer.schedule(delay);
  }

  /** Send the pending state-change reports of a NIC now (DAD calls this before its probe). */
  flush(nic: NIC): void {
    const s = this.ifaces.get(nic.id);
    if (s === undefined || s.changes.size === 0) return;
    let fresh = false;
    for (const c of s.changes.values()) if (c.left === this.robustness) fresh = true;
    if (!fresh) return; // everything pending was announced once already
    s.changeTimer?.cancel();
    this.sendChanges(s);
  }

  private sendChanges(s: MldIface): void {
    const nic = s.nic;
    if (!nic.enabled || s.changes.size === 0) return;
    if (this.inV1(s)) {
      for (const c of s.changes.values()) {
        if (c.type === MLDV2_CHANGE_TO_EXCLUDE) this.sendV1(nic, ICMPV6_MLD_REPORT, c.group, c.group);
        else this.sendV1(nic, ICMPV6_MLD_DONE, c.group, ALL_ROUTERS);
      }
      s.changes.clear();
      return;
    }
    const records: MldV2RecordFields[] = [];
    for (const [k, c] of s.changes) {
      records.push({ recordType: c.type, multicastAddress: c.group });
      if (--c.left <= 0) s.changes.delete(k);
    }
    this.sendV2(nic, records);
    if (s.changes.size > 0) s.changeTimer!.schedule(this.ip.stack.random.below(Math.max(1, this.unsolicitedReportIntervalMs)));
  }

  /** @internal An MLD message (checksum verified). */
  handle(nic: NIC, pkt: PacketBuffer, h: IcmpV6Header): void {
    const st = this.stats;
    st.received++;
    if (!nic.needsResolution) return;
    const data = pkt.data;
    const ip = pkt.networkHeaderStart;
    if (h.type !== ICMPV6_MLD_QUERY) {
      st.reportsReceived++;
      return;
    }
    const len = pkt.end - pkt.start;
    // RFC 3810 5.1.14 / 2710: link-local source, hop limit 1; v1 queries are 24 bytes, v2 28+.
    if (!isLinkLocal(data, ip + 8) || data[ip + 7] !== 1 || (len !== MLD_QUERY_V1_LENGTH && len < MLD_QUERY_V2_LENGTH)) {
      st.invalid++;
      return;
    }
    st.queriesReceived++;
    const s = this.iface(nic);
    const now = this.ip.stack.clock.now();
    const code = h.mldMaxResponseCode;
    let maxDelay: number;
    if (len === MLD_QUERY_V1_LENGTH) {
      s.v1Until = now + OLDER_VERSION_QUERIER_TIMEOUT;
      maxDelay = code;
    } else {
      maxDelay = code < 0x8000 ? code : ((code & 0x0fff) | 0x1000) << (((code >>> 12) & 7) + 3);
    }
    const g = h.mldMulticastAddressOffset;
    const general = isUnspecifiedAt(data, g);
    if (!general && !this.ip.isMember(nic, data, g)) return;
    const pending = s.queryTimer?.pending === true;
    if (general) s.queryGroups = null;
    else if (!pending || s.queryGroups !== null) {
      // A pending answer to a general query covers this group already.
      if (!pending || s.queryGroups === null) s.queryGroups = [];
      s.queryGroups.push(data.slice(g, g + 16));
    }
    s.queryTimer ??= this.ip.stack.clock.timer(() => this.answerQuery(s));
    const delay = this.ip.stack.random.below(Math.max(1, maxDelay));
    if (!s.queryTimer.pending || s.queryTimer.deadline > now + delay) s.queryTimer.schedule(delay);
  }

  private answerQuery(s: MldIface): void {
    const nic = s.nic;
    if (!nic.enabled) return;
    const groups = (s.queryGroups ?? this.ip.groups(nic)).filter((g) => reportable(g) && this.ip.isMember(nic, g));
    s.queryGroups = null;
    if (groups.length === 0) return;
    if (this.inV1(s)) {
      for (const g of groups) this.sendV1(nic, ICMPV6_MLD_REPORT, g, g);
      return;
    }
    for (let i = 0; i < groups.length; i += RECORDS_PER_REPORT) {
      this.sendV2(nic, groups.slice(i, i + RECORDS_PER_REPORT).map((g) => ({ recordType: MLDV2_MODE_IS_EXCLUDE, multicastAddress: g })));
    }
  }

  private source(nic: NIC): Uint8Array {
    for (const a of nic.addresses) {
      if (a.address.length === 16 && isLinkLocal(a.address) && (a.state === undefined || a.state === 'deprecated')) return a.address;
    }
    return UNSPECIFIED;
  }

  private sendV2(nic: NIC, records: MldV2RecordFields[]): void {
    for (let i = 0; i < records.length; i += RECORDS_PER_REPORT) {
      const part = records.slice(i, i + RECORDS_PER_REPORT);
      const pkt = PacketBuffer.alloc(ICMPV6_HEADER_LENGTH + part.length * MLDV2_RECORD_HEADER_LENGTH);
      encodeMldV2Report(pkt.data, pkt.start, part);
      this.stats.reportsSent++;
      this.ip.sendIcmpDirect(nic, this.source(nic), ALL_MLDV2_ROUTERS, 1, pkt, true, multicastMac(ALL_MLDV2_ROUTERS));
    }
  }

  private sendV1(nic: NIC, type: number, group: Uint8Array, dst: Uint8Array): void {
    const pkt = PacketBuffer.alloc(MLD_QUERY_V1_LENGTH);
    encodeIcmpV6(pkt.data, pkt.start, { type, code: 0 });
    pkt.data.set(group.subarray(0, 16), pkt.start + 8);
    if (type === ICMPV6_MLD_DONE) this.stats.doneSent++;
    else this.stats.v1ReportsSent++;
    this.ip.sendIcmpDirect(nic, this.source(nic), dst, 1, pkt, true, multicastMac(dst));
  }
}

/** Groups MLD reports: not ff02::1, not reserved or interface-local scope (RFC 3810 6). */
function reportable(g: Uint8Array): boolean {
  if (g[0] !== 0xff) return false;
  const scope = g[1]! & 0x0f;
  if (scope <= 1) return false;
  if (scope === 2 && g[1] === 0x02) {
    let allNodes = true;
    for (let i = 2; i < 15 && allNodes; i++) if (g[i] !== 0) allNodes = false;
    if (allNodes && g[15] === 1) return false;
  }
  return true;
}

/**
 * Ladder (sequence) diagrams of a capture's exchanges: one column per host, one arrow per TCP,
 * UDP, ICMP, ICMPv6 or ARP frame, labelled with the TCP flags and relative seq/ack/len (as
 * Wireshark numbers them), the UDP length (and the DNS question for port 53), the ICMP type; the
 * time relative to the first frame on the left. Rendered as text (`renderLadder`) or as an SVG
 * sequence diagram (`renderSvg`) with exactly one arrow element per frame shown.
 */
import { formatIP } from '../core/address.js';
import { forEachRecord, type CaptureSource } from './analyze.js';
import { decodeFrame, tcpFlagNames, type FrameSummary } from './decode.js';
import { linkTypeName } from './linktype.js';
import { seqDiff } from './stream.js';

export interface FlowEvent {
  frame: number;
  /** Seconds since the first frame. */
  time: number;
  /** Column indices. */
  from: number;
  to: number;
  proto: 'tcp' | 'udp' | 'icmp' | 'icmpv6' | 'arp';
  /** What the arrow says: "[SYN, ACK] seq=0 ack=1 len=0", "UDP len=40", "ICMP echo request id=1 seq=1". */
  label: string;
  /** More: ports, window, DNS question. */
  detail: string;
}

export interface FlowDiagram {
  title: string;
  linkType: number;
  frames: number;
  /** Column names: host addresses (or address:port endpoints). */
  columns: string[];
  events: FlowEvent[];
  /** Frames not shown (not TCP/UDP/ICMP/ARP, or undecodable). */
  skipped: number;
  /** Frames not shown because they were the same datagram again, forwarded (another link's MACs). */
  forwardedCopies: number;
}

export interface FlowOptions {
  /** Columns per host address (default) or per address:port endpoint. 'auto': endpoints when the capture has one host. */
  columns?: 'host' | 'endpoint' | 'auto';
  /** Show at most this many frames (default all). */
  maxFrames?: number;
  /** Title (default the file name). */
  title?: string;
  /**
   * Multicast, broadcast, unspecified and link-local addresses share one column, `SPECIAL_COLUMN`
   * (default true), so that NDP, MLD, DHCP and mDNS chatter does not add a column per group.
   */
  foldSpecial?: boolean;
}

/** The column that folded multicast, broadcast, unspecified and link-local addresses share. */
export const SPECIAL_COLUMN = '(multicast/link-local)';

function isSpecialAddress(ip: string): boolean {
  if (ip.includes(':')) {
    const a = ip.toLowerCase();
    return a === '::' || a.startsWith('ff') || /^fe[89ab]/.test(a);
  }
  const [o0, o1] = ip.split('.').map(Number) as [number, number];
  return o0 >= 224 || o0 === 0 || (o0 === 169 && o1 === 254);
}

/** FNV-1a over a frame's bytes, for recognising one datagram seen on two interfaces. */
function hashBytes(b: Uint8Array, from: number, to: number, skip = -1): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) {
    if (i === skip) continue;
    h = Math.imul(h ^ b[i]!, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A datagram's identity across a router: IPv4 source, destination, protocol, id and the bytes
 * after the header; IPv6 everything after the hop limit. Null for ARP and undecodable frames.
 */
function datagramKey(s: FrameSummary, data: Uint8Array): string | null {
  if (s.ipProto < 0 || s.l3Offset < 0 || s.l3End > data.length) return null;
  const o = s.l3Offset;
  if (s.l3 === 'ipv4') {
    const hl = (data[o]! & 0x0f) * 4;
    return `4|${s.src}|${s.dst}|${s.ipProto}|${(data[o + 4]! << 8) | data[o + 5]!}|${hashBytes(data, o + hl, s.l3End)}`;
  }
  return `6|${hashBytes(data, o + 8, s.l3End)}|${hashBytes(data, o, o + 8, o + 7)}`;
}

const ICMP_TYPES: Record<number, string> = {
  0: 'echo reply',
  3: 'unreachable',
  4: 'source quench',
  5: 'redirect',
  8: 'echo request',
  11: 'time exceeded',
  12: 'parameter problem',
  13: 'timestamp',
  14: 'timestamp reply',
};
const UNREACH: Record<number, string> = {
  0: 'net unreachable',
  1: 'host unreachable',
  2: 'protocol unreachable',
  3: 'port unreachable',
  4: 'frag needed',
  13: 'admin prohibited',
};
const ICMP6_TYPES: Record<number, string> = {
  1: 'unreachable',
  2: 'packet too big',
  3: 'time exceeded',
  4: 'parameter problem',
  128: 'echo request',
  129: 'echo reply',
  130: 'MLD query',
  131: 'MLD report',
  133: 'router solicitation',
  134: 'router advertisement',
  135: 'neighbor solicitation',
  136: 'neighbor advertisement',
  137: 'redirect',
  143: 'MLDv2 report',
};

function icmpLabel(s: FrameSummary): string {
  const v6 = s.proto === 'icmpv6';
  const name = (v6 ? ICMP6_TYPES : ICMP_TYPES)[s.icmpType] ?? `type ${s.icmpType}`;
  let label = `${v6 ? 'ICMPv6' : 'ICMP'} ${name}`;
  if (!v6 && s.icmpType === 3) label = `ICMP ${UNREACH[s.icmpCode] ?? `unreachable code ${s.icmpCode}`}`;
  if (s.icmpId >= 0) label += ` id=${s.icmpId} seq=${s.icmpSeq}`;
  return label;
}

/** "DNS query 0x1234 A example.com" from a UDP payload on port 53, or '' when it does not parse. */
function dnsSummary(b: Uint8Array, off: number, len: number): string {
  if (len < 12) return '';
  const id = (b[off]! << 8) | b[off + 1]!;
  const flags = (b[off + 2]! << 8) | b[off + 3]!;
  const qd = (b[off + 4]! << 8) | b[off + 5]!;
  const an = (b[off + 6]! << 8) | b[off + 7]!;
  const response = (flags & 0x8000) !== 0;
  let text = `DNS ${response ? 'response' : 'query'} 0x${id.toString(16).padStart(4, '0')}`;
  if (qd < 1) return text;
  const labels: string[] = [];
  let p = off + 12;
  const end = off + len;
  for (let guard = 0; guard < 128; guard++) {
    if (p >= end) return text;
    const l = b[p]!;
    if (l === 0) {
      p++;
      break;
    }
    if (l > 63 || p + 1 + l > end) return text;
    let label = '';
    for (let i = 0; i < l; i++) {
      const c = b[p + 1 + i]!;
      label += c >= 0x21 && c < 0x7f ? String.fromCharCode(c) : '?';
    }
    labels.push(label);
    p += 1 + l;
  }
  if (p + 2 > end) return text;
  const qtype = (b[p]! << 8) | b[p + 1]!;
  const types: Record<number, string> = { 1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV', 65: 'HTTPS', 255: 'ANY' };
  text += ` ${types[qtype] ?? `type${qtype}`} ${labels.join('.') || '.'}`;
  if (response) text += ` (${an} answer${an === 1 ? '' : 's'})`;
  return text;
}

/** Build the diagram of a capture. */
export function buildFlow(source: CaptureSource, options: FlowOptions = {}): FlowDiagram {
  const summaries: { s: FrameSummary; time: number; dns: string }[] = [];
  let linkType = -1;
  let first = NaN;
  let frames = 0;
  let skipped = 0;
  let forwardedCopies = 0;
  // Datagrams seen in the last second: a router capturing both its interfaces sees each twice.
  const recent = new Map<string, { time: number; macs: string }>();
  const max = options.maxFrames ?? Infinity;
  forEachRecord(source, (rec, frame) => {
    frames = frame;
    if (linkType < 0) linkType = rec.linkType;
    const t = rec.hasTimestamp ? rec.timestampMs : NaN;
    if (Number.isNaN(first) && !Number.isNaN(t)) first = t;
    if (summaries.length >= max) {
      skipped++;
      return;
    }
    const s = decodeFrame(rec.linkType, rec.data, frame);
    if (s.proto === 'other' || s.src === '' || s.dst === '') {
      skipped++;
      return;
    }
    const time = Number.isNaN(t) || Number.isNaN(first) ? 0 : (t - first) / 1000;
    const key = datagramKey(s, rec.data);
    if (key !== null) {
      const seen = recent.get(key);
      const macs = `${s.srcMac}>${s.dstMac}`;
      if (seen !== undefined && time - seen.time <= 1 && seen.macs !== macs) {
        forwardedCopies++;
        return;
      }
      recent.set(key, { time, macs });
      if (recent.size > 4096) for (const [k, v] of recent) if (time - v.time > 1 || recent.size > 4096) recent.delete(k);
    }
    let dns = '';
    if (s.proto === 'udp' && (s.srcPort === 53 || s.dstPort === 53 || s.srcPort === 5353 || s.dstPort === 5353)) {
      dns = dnsSummary(rec.data, s.payloadOffset, s.payloadLength);
    } else if (s.proto === 'icmpv6' && (s.icmpType === 135 || s.icmpType === 136) && s.payloadOffset + 16 <= rec.data.length) {
      dns = `target ${formatIP(rec.data.subarray(s.payloadOffset, s.payloadOffset + 16))}`;
    }
    summaries.push({ s, time, dns });
  });
  const hostSet = new Set<string>();
  for (const { s } of summaries) {
    hostSet.add(s.src);
    hostSet.add(s.dst);
  }
  const mode = options.columns ?? 'auto';
  const byEndpoint = mode === 'endpoint' || (mode === 'auto' && hostSet.size === 1);
  const fold = options.foldSpecial ?? true;
  const colOf = (s: FrameSummary, src: boolean): string => {
    const ip = src ? s.src : s.dst;
    if (fold && isSpecialAddress(ip)) return SPECIAL_COLUMN;
    if (!byEndpoint || (s.proto !== 'tcp' && s.proto !== 'udp')) return ip;
    const port = src ? s.srcPort : s.dstPort;
    return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
  };
  const columns: string[] = [];
  const index = new Map<string, number>();
  const col = (name: string): number => {
    let i = index.get(name);
    if (i === undefined) {
      i = columns.length;
      columns.push(name);
      index.set(name, i);
    }
    return i;
  };
  // Relative TCP sequence numbers: per direction, from the SYN (or the first segment seen).
  const base = new Map<string, number>();
  const events: FlowEvent[] = [];
  for (const { s, time, dns } of summaries) {
    const from = col(colOf(s, true));
    const to = col(colOf(s, false));
    let label: string;
    let detail: string;
    switch (s.proto) {
      case 'tcp': {
        const t = s.tcp!;
        const dirKey = `${s.src}|${s.srcPort}|${s.dst}|${s.dstPort}`;
        const revKey = `${s.dst}|${s.dstPort}|${s.src}|${s.srcPort}`;
        const syn = (t.flags & 0x02) !== 0;
        if (syn) base.set(dirKey, t.seq);
        else if (!base.has(dirKey)) base.set(dirKey, (t.seq - 1) >>> 0);
        const seq = seqDiff(t.seq, base.get(dirKey)!) >>> 0;
        let text = `[${tcpFlagNames(t.flags)}] seq=${seq}`;
        if ((t.flags & 0x10) !== 0) {
          // The other direction not seen yet (capture started mid-connection): its base is
          // taken from this acknowledgment, so it shows as 1 (as Wireshark does).
          if (!base.has(revKey)) base.set(revKey, (t.ack - 1) >>> 0);
          text += ` ack=${seqDiff(t.ack, base.get(revKey)!) >>> 0}`;
        }
        label = `${text} len=${s.payloadLength}`;
        detail = `${s.srcPort} → ${s.dstPort} win=${t.window}`;
        break;
      }
      case 'udp':
        label = `UDP len=${s.payloadLength}`;
        detail = `${s.srcPort} → ${s.dstPort}${dns !== '' ? ` ${dns}` : ''}`;
        break;
      case 'icmp':
      case 'icmpv6':
        label = icmpLabel(s);
        detail = dns !== '' ? dns : `type ${s.icmpType} code ${s.icmpCode}`;
        break;
      case 'arp':
        label = s.icmpType === 1 ? `ARP who-has ${s.dst}` : s.icmpType === 2 ? `ARP ${s.src} is-at ${s.srcMac}` : `ARP op ${s.icmpType}`;
        detail = s.icmpType === 1 ? `tell ${s.src}` : `to ${s.dst}`;
        break;
      default:
        continue;
    }
    events.push({ frame: s.frame, time, from, to, proto: s.proto, label, detail });
  }
  return {
    title: options.title ?? (typeof source === 'string' ? source : 'capture'),
    linkType,
    frames,
    columns,
    events,
    skipped,
    forwardedCopies,
  };
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function fitLabel(label: string, room: number): string {
  if (label.length <= room) return label;
  if (room <= 1) return '';
  return `${label.slice(0, room - 1)}…`;
}

export interface LadderOptions {
  /** Largest space between two columns in characters (default 56). */
  maxGap?: number;
}

/** The diagram as text. */
export function renderLadder(d: FlowDiagram, options: LadderOptions = {}): string {
  const n = d.columns.length;
  const lines: string[] = [];
  lines.push(`${d.title}: ${linkTypeName(d.linkType)}, ${d.frames} frame${d.frames === 1 ? '' : 's'}, ${d.events.length} shown, ${n} host${n === 1 ? '' : 's'}`);
  if (n === 0) {
    lines.push('(no TCP, UDP, ICMP or ARP frames)');
    return `${lines.join('\n')}\n`;
  }
  const longestLabel = d.events.reduce((m, e) => Math.max(m, e.label.length), 0);
  const longestName = d.columns.reduce((m, c) => Math.max(m, c.length), 0);
  const gap = Math.max(Math.min(longestLabel + 6, options.maxGap ?? 56), longestName + 2, 16);
  const frameW = String(d.frames).length;
  const timeW = Math.max(8, ...d.events.map((e) => e.time.toFixed(6).length));
  const left = frameW + 2 + timeW + 2;
  const width = (n - 1) * gap + 1;
  const header = ' '.repeat(left) + d.columns.map((c, i) => (i < n - 1 ? pad(c, gap) : c)).join('');
  lines.push(header);
  const life = (): string[] => {
    const row = new Array<string>(width).fill(' ');
    for (let i = 0; i < n; i++) row[i * gap] = '|';
    return row;
  };
  lines.push(' '.repeat(left) + life().join(''));
  for (const e of d.events) {
    const row = life();
    const a = e.from * gap;
    const b = e.to * gap;
    let comment = e.detail;
    if (a === b) {
      // To itself (loopback between two ports of one host shown per host).
      const text = `<-> ${e.label}`;
      comment = `${e.label}  ${e.detail}`;
      // Beyond the last column the row simply grows.
      const room = gap - 2;
      const t = fitLabel(text, room);
      for (let k = 0; k < t.length; k++) row[a + 2 + k] = t[k]!;
      if (t === text) comment = e.detail;
    } else {
      const lo = Math.min(a, b);
      const hi = Math.max(a, b);
      for (let x = lo + 1; x < hi; x++) row[x] = '-';
      if (b > a) row[hi - 1] = '>';
      else row[lo + 1] = '<';
      const room = hi - lo - 5;
      const t = fitLabel(e.label, room);
      if (t !== e.label) comment = `${e.label}  ${e.detail}`;
      const start = lo + 1 + Math.max(2, Math.floor((hi - lo - 1 - t.length) / 2));
      for (let k = 0; k < t.length; k++) row[start + k] = t[k]!;
    }
    const prefix = `${String(e.frame).padStart(frameW)}  ${e.time.toFixed(6).padStart(timeW)}  `;
    lines.push(`${prefix}${row.join('')}  ${comment}`.trimEnd());
  }
  if (d.forwardedCopies > 0) lines.push(`(${d.forwardedCopies} frame${d.forwardedCopies === 1 ? '' : 's'} not shown: the same datagram again on another interface, forwarded)`);
  if (d.skipped > 0) lines.push(`(${d.skipped} frame${d.skipped === 1 ? '' : 's'} not shown: not TCP, UDP, ICMP or ARP${d.events.length > 0 ? ', or past --max' : ''})`);
  return `${lines.join('\n')}\n`;
}

function xml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** The diagram as an SVG sequence diagram: one `<path class="arrow ...">` per frame shown. */
export function renderSvg(d: FlowDiagram): string {
  const n = Math.max(1, d.columns.length);
  const charW = 6.6;
  const longestLabel = d.events.reduce((m, e) => Math.max(m, e.label.length), 0);
  const longestName = d.columns.reduce((m, c) => Math.max(m, c.length), 0);
  const gap = Math.max(160, Math.min(420, (longestLabel + 4) * charW), (longestName + 2) * charW);
  // The frame/time column ("frame  time (s)", then "1234  12.345678") ends near x = 10 + 16 chars:
  // the first host box starts after it.
  const timeColumnEnd = 10 + (Math.max(15, String(d.frames).length + 2 + 9) + 2) * charW;
  const firstBox = Math.max(80, ((d.columns[0]?.length ?? 0) + 2) * charW);
  const left = Math.max(150, Math.ceil(timeColumnEnd + firstBox / 2));
  const top = 70;
  const row = 26;
  const detailW = d.events.reduce((m, e) => Math.max(m, e.detail.length), 0) * charW + 40;
  const width = Math.ceil(left + (n - 1) * gap + 60 + detailW);
  const height = top + (d.events.length + 1) * row + 30;
  const x = (c: number): number => left + c * gap;
  const out: string[] = [];
  out.push('<?xml version="1.0" encoding="UTF-8"?>');
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="monospace" font-size="11">`);
  out.push(`<title>${xml(d.title)}</title>`);
  out.push('<defs><marker id="head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>');
  out.push(
    '<style>.arrow{fill:none;stroke-width:1.3}.tcp{stroke:#1f5fbf}.udp{stroke:#2a8a2a}.icmp,.icmpv6{stroke:#b35900}.arp{stroke:#7a3fb0}.life{stroke:#999;stroke-dasharray:4 3}.label{text-anchor:middle}.time{fill:#555}.detail{fill:#555}.host{font-weight:bold;text-anchor:middle}</style>',
  );
  out.push(`<text x="10" y="20" font-size="13">${xml(`${d.title}: ${linkTypeName(d.linkType)}, ${d.frames} frames, ${d.events.length} shown`)}</text>`);
  const bottom = top + (d.events.length + 1) * row;
  d.columns.forEach((c, i) => {
    const w = Math.max(80, (c.length + 2) * charW);
    out.push(`<rect x="${(x(i) - w / 2).toFixed(1)}" y="${top - 34}" width="${w.toFixed(1)}" height="22" rx="4" fill="#eef" stroke="#557"/>`);
    out.push(`<text class="host" x="${x(i)}" y="${top - 19}">${xml(c)}</text>`);
    out.push(`<line class="life" x1="${x(i)}" y1="${top - 12}" x2="${x(i)}" y2="${bottom}"/>`);
  });
  out.push(`<text class="time" x="10" y="${top - 19}">frame  time (s)</text>`);
  d.events.forEach((e, k) => {
    const y = top + (k + 1) * row;
    const x1 = x(e.from);
    const x2 = x(e.to);
    out.push(`<g class="packet" id="frame-${e.frame}">`);
    out.push(`<title>${xml(`frame ${e.frame}: ${e.label} ${e.detail}`)}</title>`);
    out.push(`<text class="time" x="10" y="${y + 4}">${e.frame}  ${e.time.toFixed(6)}</text>`);
    if (x1 === x2) {
      out.push(`<path class="arrow ${e.proto}" d="M${x1},${y - 6} h28 v12 h-28" marker-end="url(#head)"/>`);
      out.push(`<text x="${x1 + 34}" y="${y + 4}">${xml(e.label)}</text>`);
    } else {
      out.push(`<path class="arrow ${e.proto}" d="M${x1},${y} L${x2},${y}" marker-end="url(#head)"/>`);
      out.push(`<text class="label" x="${((x1 + x2) / 2).toFixed(1)}" y="${y - 4}">${xml(e.label)}</text>`);
    }
    out.push(`<text class="detail" x="${(x(n - 1) + 40).toFixed(1)}" y="${y + 4}">${xml(e.detail)}</text>`);
    out.push('</g>');
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

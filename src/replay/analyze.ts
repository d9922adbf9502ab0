/**
 * The first pass of a replay over a capture: which hosts are in it (and their link addresses),
 * the TCP connections and UDP/ICMP answers of the hosts whose role the stack is to take, and the
 * timing. The second pass (replay.ts) feeds frames and compares answers against this.
 */
import { TunstackError, ParseError } from '../core/errors.js';
import { parseIP, formatIP, parseMAC } from '../core/address.js';
import type { PcapRecord } from '../pcap/reader.js';
import { PcapReader } from '../pcap/file.js';
import { decodeFrame, type FrameSummary } from './decode.js';
import { assertSupportedLinkType, LinkInfo, decapsulate, LinkTypes } from './linktype.js';
import { StreamAssembly, seqDiff } from './stream.js';

/** Where a capture comes from: a file path or its bytes. */
export type CaptureSource = string | Uint8Array;

/** Open a capture for reading, with errors that name the file. */
export function openCapture(source: CaptureSource): PcapReader {
  try {
    return typeof source === 'string' ? PcapReader.open(source) : PcapReader.fromBytes(source);
  } catch (e) {
    throw captureError(e, 1, source);
  }
}

/** An error of the reader turned into one that names the frame (1-based) it was reading. */
export function captureError(e: unknown, frame: number, source: CaptureSource): Error {
  const name = typeof source === 'string' ? source : 'capture';
  if (e instanceof ParseError) {
    return new TunstackError('EBADMSG', `${name}: frame ${frame}: corrupt capture: ${e.message.replace(/^EBADMSG: /, '')}`);
  }
  if (e instanceof TunstackError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err.code === 'string' && err.code === 'ENOENT') return new TunstackError('ENOENT', `${name}: no such file`);
  return e instanceof Error ? e : new Error(String(e));
}

/** Read every record, with the frame number in errors; `fn` sees each record and its number. */
export function forEachRecord(source: CaptureSource, fn: (rec: PcapRecord, frame: number) => void): PcapReader {
  const reader = openCapture(source);
  let frame = 0;
  try {
    for (;;) {
      let rec: PcapRecord | null;
      try {
        rec = reader.read();
      } catch (e) {
        throw captureError(e, frame + 1, source);
      }
      if (rec === null) break;
      frame++;
      assertSupportedLinkType(rec.linkType, frame);
      fn(rec, frame);
    }
  } finally {
    reader.close();
  }
  return reader;
}

/** One direction of a captured TCP data exchange, in capture order. */
export interface Turn {
  from: 'role' | 'peer';
  bytes: number;
}

/** A TCP connection of the capture with one end (the "role") played by the stack. */
export class CapturedTcpFlow {
  /** Who opened it: the peer (the stack is the server), the role host (the stack was client), or unknown. */
  opener: 'peer' | 'role' | 'unknown' = 'unknown';
  peerIsn: number | null = null;
  roleIsn: number | null = null;
  readonly roleData = new StreamAssembly();
  readonly peerData = new StreamAssembly();
  /** New data in capture order, consecutive segments of one side merged. */
  readonly turns: Turn[] = [];
  roleFin = false;
  peerFin = false;
  roleRst = false;
  /** Frames of this connection. */
  frames = 0;
  private peerHigh = 0;
  private roleHigh = 0;

  constructor(
    readonly index: number,
    readonly roleIp: string,
    readonly rolePort: number,
    readonly peerIp: string,
    readonly peerPort: number,
  ) {}

  get key(): string {
    return tcpKey(this.roleIp, this.rolePort, this.peerIp, this.peerPort);
  }

  /** @internal */
  addSegment(fromRole: boolean, s: FrameSummary, data: Uint8Array): void {
    this.frames++;
    const t = s.tcp!;
    const syn = (t.flags & 0x02) !== 0;
    if (syn) {
      if (fromRole) this.roleIsn = t.seq;
      else this.peerIsn = t.seq;
      if ((t.flags & 0x10) === 0 && this.opener === 'unknown') this.opener = fromRole ? 'role' : 'peer';
    }
    if ((t.flags & 0x04) !== 0 && fromRole) this.roleRst = true;
    const isn = fromRole ? this.roleIsn : this.peerIsn;
    if (isn === null) return;
    const off = seqDiff(t.seq, isn) - 1 + (syn ? 1 : 0);
    const payload = data.subarray(s.payloadOffset, s.payloadOffset + s.payloadLength);
    const stream = fromRole ? this.roleData : this.peerData;
    stream.add(off, payload);
    const end = off + payload.length;
    const high = fromRole ? this.roleHigh : this.peerHigh;
    if (end > high) {
      const fresh = end - Math.max(high, off);
      if (fromRole) this.roleHigh = end;
      else this.peerHigh = end;
      const last = this.turns[this.turns.length - 1];
      const from = fromRole ? 'role' : 'peer';
      if (last !== undefined && last.from === from) last.bytes += fresh;
      else this.turns.push({ from, bytes: fresh });
    }
    if ((t.flags & 0x01) !== 0) {
      if (fromRole) this.roleFin = true;
      else this.peerFin = true;
    }
  }
}

export function tcpKey(roleIp: string, rolePort: number, peerIp: string, peerPort: number): string {
  return `${roleIp}|${rolePort}|${peerIp}|${peerPort}`;
}

/** Datagrams the role host sent on one UDP flow (for comparison with the stack's). */
export interface CapturedUdpFlow {
  roleIp: string;
  rolePort: number;
  peerIp: string;
  peerPort: number;
  /** Datagrams the peer sent to the role host. */
  fromPeer: number;
  /** Payloads the role host sent back. */
  fromRole: Uint8Array[];
}

export interface CaptureAnalysis {
  /** Link type of the first interface (that of most captures' every frame). */
  linkType: number;
  frames: number;
  /** Timestamp of the first frame, ms since the epoch (0 when none has a time). */
  firstTimeMs: number;
  lastTimeMs: number;
  /** The addresses whose role the stack takes, normalized. */
  roles: string[];
  /** The link address of the role hosts as seen (Ethernet / SLL), else null. */
  roleMac: Uint8Array | null;
  /** Link address per IP address as seen in frames it sent (the router's, for remote hosts). */
  macs: Map<string, Uint8Array>;
  /** Every IP address seen, in order of first appearance. */
  hosts: string[];
  /** Largest network packet length (to size the MTU). */
  maxPacket: number;
  /** Families used by frames to or from the role hosts. */
  ipv4: boolean;
  ipv6: boolean;
  /** NULL/LOOP captures: the AF_INET6 value and byte order found. */
  inet6Family: number;
  familyLittleEndian: boolean;
  /** TCP connections with a role host on one end, in order of first frame. */
  tcp: CapturedTcpFlow[];
  /** For each frame (1-based index), the index in `tcp` of its connection, or -1. */
  frameFlow: Int32Array;
  udp: Map<string, CapturedUdpFlow>;
  /** Echo replies the role hosts sent: "peer|id|seq". */
  echoReplies: Set<string>;
  /** ICMP/ICMPv6 errors the role hosts sent. */
  icmpErrors: number;
  /** Frames that did not decode as IP or ARP. */
  undecodable: number;
}

/** The first pass. `roles` are IP addresses (v4 or v6 text). */
export function analyzeCapture(source: CaptureSource, roles: readonly string[]): CaptureAnalysis {
  const roleSet = new Set(roles.map((r) => formatIP(parseIP(r))));
  const a: CaptureAnalysis = {
    linkType: -1,
    frames: 0,
    firstTimeMs: 0,
    lastTimeMs: 0,
    roles: [...roleSet],
    roleMac: null,
    macs: new Map(),
    hosts: [],
    maxPacket: 0,
    ipv4: false,
    ipv6: false,
    inet6Family: 24,
    familyLittleEndian: true,
    tcp: [],
    frameFlow: new Int32Array(0),
    udp: new Map(),
    echoReplies: new Set(),
    icmpErrors: 0,
    undecodable: 0,
  };
  const seen = new Set<string>();
  const current = new Map<string, CapturedTcpFlow>();
  const flowOfFrame: number[] = [0];
  const info = new LinkInfo();
  let haveTime = false;
  const reader = forEachRecord(source, (rec, frame) => {
    if (a.linkType < 0) a.linkType = rec.linkType;
    a.frames = frame;
    if (rec.hasTimestamp) {
      if (!haveTime) {
        a.firstTimeMs = rec.timestampMs;
        haveTime = true;
      }
      a.lastTimeMs = rec.timestampMs;
    }
    flowOfFrame.push(-1);
    const data = rec.data;
    const s = decodeFrame(rec.linkType, data, frame);
    if (s.error !== '' && s.l3 === 'other') {
      a.undecodable++;
      return;
    }
    if ((rec.linkType === LinkTypes.NULL || rec.linkType === LinkTypes.LOOP) && decapsulate(rec.linkType, data, info)) {
      if (info.etherType === 0x86dd) a.inet6Family = info.family;
      a.familyLittleEndian = info.familyLittleEndian;
    }
    for (const ip of [s.src, s.dst]) {
      if (ip !== '' && !seen.has(ip)) {
        seen.add(ip);
        a.hosts.push(ip);
      }
    }
    if (s.srcMac !== '' && s.src !== '' && !a.macs.has(s.src) && s.srcMac !== '00:00:00:00:00:00') a.macs.set(s.src, parseMAC(s.srcMac));
    const fromRole = roleSet.has(s.src);
    const toRole = roleSet.has(s.dst);
    if (!fromRole && !toRole) return;
    if (fromRole && a.roleMac === null && s.srcMac !== '') a.roleMac = parseMAC(s.srcMac);
    if (toRole && a.roleMac === null && s.dstMac !== '' && !s.dstMac.startsWith('ff:ff') && (parseMAC(s.dstMac)[0]! & 1) === 0) {
      a.roleMac = parseMAC(s.dstMac);
    }
    if (s.l3 === 'ipv4') a.ipv4 = true;
    if (s.l3 === 'ipv6') a.ipv6 = true;
    if (s.l3 === 'arp') a.ipv4 = true;
    a.maxPacket = Math.max(a.maxPacket, s.l3End - s.l3Offset);
    if (fromRole && toRole) return;
    const roleIp = fromRole ? s.src : s.dst;
    const peerIp = fromRole ? s.dst : s.src;
    const rolePort = fromRole ? s.srcPort : s.dstPort;
    const peerPort = fromRole ? s.dstPort : s.srcPort;
    if (s.proto === 'tcp' && s.tcp !== null) {
      const key = tcpKey(roleIp, rolePort, peerIp, peerPort);
      let f = current.get(key);
      const t = s.tcp;
      const pureSyn = (t.flags & 0x12) === 0x02;
      // A SYN with a new sequence number on a finished 4-tuple starts a new connection.
      if (f !== undefined && pureSyn) {
        const isn = fromRole ? f.roleIsn : f.peerIsn;
        if (isn !== null && isn !== t.seq && f.frames > 1) f = undefined;
      }
      if (f === undefined) {
        f = new CapturedTcpFlow(a.tcp.length, roleIp, rolePort, peerIp, peerPort);
        a.tcp.push(f);
        current.set(key, f);
      }
      f.addSegment(fromRole, s, data);
      flowOfFrame[frame] = f.index;
    } else if (s.proto === 'udp') {
      const key = `${roleIp}|${rolePort}|${peerIp}|${peerPort}`;
      let u = a.udp.get(key);
      if (u === undefined) {
        u = { roleIp, rolePort, peerIp, peerPort, fromPeer: 0, fromRole: [] };
        a.udp.set(key, u);
      }
      if (fromRole) {
        if (u.fromRole.length < 100_000) u.fromRole.push(data.slice(s.payloadOffset, s.payloadOffset + s.payloadLength));
      } else u.fromPeer++;
    } else if ((s.proto === 'icmp' && s.icmpType === 0) || (s.proto === 'icmpv6' && s.icmpType === 129)) {
      if (fromRole) a.echoReplies.add(`${peerIp}|${s.icmpId}|${s.icmpSeq}`);
    } else if (fromRole && isIcmpError(s)) {
      a.icmpErrors++;
    }
  });
  if (a.linkType < 0) a.linkType = reader.linkType;
  a.frameFlow = Int32Array.from(flowOfFrame);
  return a;
}

/** ICMP Destination Unreachable / Time Exceeded / Parameter Problem, ICMPv6 errors (types < 128). */
export function isIcmpError(s: FrameSummary): boolean {
  return (s.proto === 'icmp' && (s.icmpType === 3 || s.icmpType === 11 || s.icmpType === 12)) || (s.proto === 'icmpv6' && s.icmpType < 128);
}

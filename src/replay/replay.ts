/**
 * Replay: feed a capture's frames into a stack (or a virtual tun device) that takes the role of
 * one or more hosts of the capture, record what it answers, and compare with what those hosts
 * answered in the capture.
 *
 * - Frames addressed to a role host (IP destination, ARP or NDP target) are injected; frames the
 *   role hosts sent are what the stack should reproduce; all others are skipped.
 * - Timing: the original gaps scaled by `speed` (2 = twice as fast), or `fast` (no gaps), on
 *   virtual time (a ManualClock whose wall time starts at the capture's first timestamp, so the
 *   answers' timestamps line up with the capture), or on the real clock with `realtime`.
 * - TCP connections opened by a peer towards a role host are replayed as tcpliveplay does: the
 *   peer's segments keep their sequence numbers, their acknowledgment numbers (and SACK edges and
 *   echoed timestamps) are rewritten into the live stack's sequence space, and each is held back
 *   until the live stack has sent what it acknowledges (`gateTimeoutMs` at most). The bytes the
 *   stack sends are compared with the bytes the captured host sent.
 * - The stack's ARP and neighbour solicitations for hosts of the capture are answered with the
 *   link addresses the capture shows, so answers go out addressed as the originals were.
 * - Checksums: `fix` (default) recomputes IPv4/TCP/UDP/ICMP/ICMPv6 checksums of injected frames
 *   (captures taken with checksum offload hold unfinished ones); `ignore` tells the stack they
 *   were verified (as a NIC with receive offload does); `keep` injects them as captured (frames
 *   whose sequence numbers were rewritten are always fixed).
 * - The answers (or, with `record: 'both'`, the whole replayed conversation) go to a pcap in the
 *   capture's link type (raw IP for the DLT_RAW variants).
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { TunstackError } from '../core/errors.js';
import { formatIP, parseIP } from '../core/address.js';
import { arpFactory } from '../network/arp.js';
import { ipv4Factory } from '../network/ipv4.js';
import { ipv6Factory } from '../network/ipv6.js';
import type { PcapRecord } from '../pcap/reader.js';
import { PcapWriter } from '../pcap/file.js';
import { ManualClock, RealClock, type Clock } from '../core/clock.js';
import type { NetworkProtocolFactory } from '../stack/protocol.js';
import { Stack } from '../adapters/stack.js';
import { IFF_NO_PI, IFF_TAP, IFF_TUN } from '../tundev/constants.js';
import type { TunDevice } from '../tundev/device.js';
import { analyzeCapture, captureError, isIcmpError, openCapture, tcpKey, type CaptureAnalysis, type CaptureSource, type CapturedTcpFlow } from './analyze.js';
import { fixChecksums } from './checksums.js';
import { decodeFrame, type FrameSummary } from './decode.js';
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, LinkInfo, LinkTypes, assertSupportedLinkType, decapsulate, encapsulate, linkTypeName, outputLinkType } from './linktype.js';
import { StreamAssembly, seqAdd, seqDiff } from './stream.js';
import { StackTarget, TunTarget, type ReplayTarget } from './target.js';
import { RealDriver, VirtualDriver, type Driver } from './driver.js';
import type { ReplayReport, TcpFlowReport } from './report.js';
import { serveCaptured } from './serve.js';

export { formatReplayReport, type ReplayReport, type TcpFlowReport, type UdpFlowReport } from './report.js';

export type ChecksumMode = 'fix' | 'ignore' | 'keep';

export interface ReplayProgress {
  frame: number;
  frames: number;
  injected: number;
  answers: number;
  /** Virtual (or real) ms since the replay started. */
  elapsedMs: number;
}

export interface ReplayOptions {
  /** Addresses of the hosts whose role the stack takes. */
  as: string | readonly string[];
  /** Time scale: 1 = original timing (default), 2 = twice as fast. */
  speed?: number;
  /** As fast as possible: no gaps (TCP segments still wait for what they acknowledge). */
  fast?: boolean;
  /** Pace on the wall clock (RealClock) instead of virtual time. */
  realtime?: boolean;
  checksums?: ChecksumMode;
  /** Where the answers go: a pcap path or a writer (its link type must be the output link type). */
  out?: string | PcapWriter | null;
  /** Record only the stack's answers (default) or the injected frames too. */
  record?: 'answers' | 'both';
  /** Feed this virtual tun device (set up with IFF_NO_PI) instead of a stack made here. */
  device?: TunDevice;
  /** Seed of the stack made here (default 1). */
  seed?: number;
  /** Install services on the stack before the first frame (a server on the captured port...). */
  setup?: (stack: Stack, capture: CaptureAnalysis) => void | Promise<void>;
  /**
   * Serve each captured TCP connection the role host accepted with the bytes it sent then
   * (taking turns as the capture did), so that a capture replays against the stack by itself.
   */
  serveCaptured?: boolean;
  /** Rewrite TCP acknowledgments into the live sequence space (default true). */
  tcpRewrite?: boolean;
  /** Longest wait for the live stack before a TCP segment goes anyway (ms, default 1000). */
  gateTimeoutMs?: number;
  /** Time given to the stack after the last frame (ms, default 2000). */
  tailMs?: number;
  onProgress?: (p: ReplayProgress) => void;
  /** Frames between progress reports (default 1000). */
  progressEvery?: number;
}

/** The live side of one replayed TCP connection. */
class LiveTcpFlow {
  isn: number | null = null;
  /** Highest sequence offset sent (SYN and FIN count one). */
  maxRel = 0;
  readonly data = new StreamAssembly();
  tsVal = -1;
  fin = false;
  rst = false;
}

function u32(b: Uint8Array, p: number): number {
  return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
}
function put32(b: Uint8Array, p: number, v: number): void {
  b[p] = v >>> 24;
  b[p + 1] = (v >>> 16) & 0xff;
  b[p + 2] = (v >>> 8) & 0xff;
  b[p + 3] = v & 0xff;
}

/** Find the timestamp option's TSval offset in a TCP header (-1 when absent). */
function tsOptionOffset(b: Uint8Array, tcp: number, hl: number): number {
  let p = tcp + 20;
  const end = tcp + hl;
  while (p < end) {
    const kind = b[p]!;
    if (kind === 0) break;
    if (kind === 1) {
      p++;
      continue;
    }
    if (p + 1 >= end) break;
    const len = b[p + 1]!;
    if (len < 2 || p + len > end) break;
    if (kind === 8 && len === 10) return p + 2;
    p += len;
  }
  return -1;
}

/** Rewrite SACK block edges by `delta` (mod 2^32). */
function rewriteSack(b: Uint8Array, tcp: number, hl: number, map: (v: number) => number): void {
  let p = tcp + 20;
  const end = tcp + hl;
  while (p < end) {
    const kind = b[p]!;
    if (kind === 0) break;
    if (kind === 1) {
      p++;
      continue;
    }
    if (p + 1 >= end) break;
    const len = b[p + 1]!;
    if (len < 2 || p + len > end) break;
    if (kind === 5) for (let q = p + 2; q + 8 <= p + len; q += 4) put32(b, q, map(u32(b, q)));
    p += len;
  }
}

/** A MAC for an address the capture gives none for: 02:ff and four bytes of the address. */
function syntheticMac(ip: string): Uint8Array {
  const a = parseIP(ip);
  const t = a.subarray(a.length - 4);
  return Uint8Array.of(0x02, 0xfe, t[0]!, t[1]!, t[2]!, t[3]!);
}

class ReplayEngine {
  readonly report: ReplayReport;
  private readonly roles: Set<string>;
  private readonly live = new Map<string, LiveTcpFlow>();
  /** For each captured flow index, the live flow it maps to. */
  private readonly liveOf = new Map<number, LiveTcpFlow>();
  private readonly liveUdp = new Map<string, Uint8Array[]>();
  private readonly liveEcho = new Set<string>();
  private readonly writer: PcapWriter | null;
  private readonly ownsWriter: boolean;
  private readonly outLinkType: number;
  private readonly checksums: ChecksumMode;
  private readonly rewrite: boolean;
  private readonly info = new LinkInfo();
  private readonly roleMac: Uint8Array;
  private activity = 0;
  private deferred: Uint8Array[] = [];
  private deferredScheduled = false;

  constructor(
    readonly source: CaptureSource,
    readonly a: CaptureAnalysis,
    readonly target: ReplayTarget,
    readonly driver: Driver,
    readonly options: ReplayOptions,
  ) {
    this.roles = new Set(a.roles);
    this.checksums = options.checksums ?? 'fix';
    this.rewrite = options.tcpRewrite ?? true;
    this.outLinkType = outputLinkType(a.linkType);
    this.roleMac = target.mac ?? a.roleMac ?? syntheticMac(a.roles[0]!);
    const out = options.out ?? null;
    if (out === null) {
      this.writer = null;
      this.ownsWriter = false;
    } else if (typeof out === 'string') {
      mkdirSync(dirname(out), { recursive: true });
      this.writer = PcapWriter.toFile(out, { linkType: this.outLinkType, nanosecond: true });
      this.ownsWriter = true;
    } else {
      if (out.linkType !== this.outLinkType) {
        throw new TunstackError('EINVAL', `the output writer's link type ${out.linkType} is not ${this.outLinkType} (${linkTypeName(this.outLinkType)})`);
      }
      this.writer = out;
      this.ownsWriter = false;
    }
    this.report = {
      roles: [...a.roles],
      linkType: a.linkType,
      outputLinkType: this.outLinkType,
      frames: a.frames,
      injected: 0,
      fromRole: 0,
      unrelated: 0,
      undecodable: a.undecodable,
      answers: 0,
      resolutionsAnswered: 0,
      checksumsFixed: 0,
      gateTimeouts: 0,
      tcp: [],
      udp: [],
      icmp: { echoRequestsIn: 0, capturedEchoReplies: a.echoReplies.size, liveEchoReplies: 0, capturedErrors: a.icmpErrors, liveErrors: 0 },
      ok: true,
      mismatches: [],
      notes: [],
      elapsedMs: 0,
      out: typeof out === 'string' ? out : null,
    };
    target.onOutput = (f) => this.onOutput(f);
  }

  get activityCount(): number {
    return this.activity;
  }

  // ---- the stack's output ----

  private onOutput(frame: Uint8Array): void {
    this.activity++;
    this.report.answers++;
    const t = this.target;
    let ip: Uint8Array;
    let et: number;
    if (t.format === 'ethernet') {
      if (!decapsulate(LinkTypes.ETHERNET, frame, this.info)) return;
      et = this.info.etherType;
      ip = frame.subarray(this.info.offset);
    } else {
      ip = frame;
      et = frame.length > 0 && frame[0]! >>> 4 === 6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4;
    }
    this.record(frame, ip, et, true);
    const s = decodeFrame(t.format === 'ethernet' ? LinkTypes.ETHERNET : LinkTypes.RAW, frame);
    if (t.format === 'ethernet') this.answerResolution(s, frame);
    if (s.proto === 'tcp' && s.tcp !== null && this.roles.has(s.src)) this.trackTcp(s, frame);
    else if (s.proto === 'udp' && this.roles.has(s.src)) {
      const key = `${s.src}|${s.srcPort}|${s.dst}|${s.dstPort}`;
      let l = this.liveUdp.get(key);
      if (l === undefined) this.liveUdp.set(key, (l = []));
      if (l.length < 100_000) l.push(frame.slice(s.payloadOffset, s.payloadOffset + s.payloadLength));
    } else if (s.proto === 'icmp' || s.proto === 'icmpv6') {
      if ((s.proto === 'icmp' && s.icmpType === 0) || (s.proto === 'icmpv6' && s.icmpType === 129)) {
        this.report.icmp.liveEchoReplies++;
        this.liveEcho.add(`${s.dst}|${s.icmpId}|${s.icmpSeq}`);
      } else if (isIcmpError(s)) {
        this.report.icmp.liveErrors++;
      }
    }
    this.driver.wake();
  }

  private trackTcp(s: FrameSummary, frame: Uint8Array): void {
    const t = s.tcp!;
    const key = tcpKey(s.src, s.srcPort, s.dst, s.dstPort);
    const l = this.live.get(key);
    if (l === undefined) return;
    const syn = (t.flags & 0x02) !== 0;
    if (syn && (t.flags & 0x10) !== 0 && l.isn === null) l.isn = t.seq;
    if (l.isn === null) return;
    const off = seqDiff(t.seq, l.isn) - 1 + (syn ? 1 : 0);
    l.data.add(off, frame.subarray(s.payloadOffset, s.payloadOffset + s.payloadLength));
    const fin = (t.flags & 0x01) !== 0;
    const rel = seqDiff(t.seq, l.isn) + s.payloadLength + (syn ? 1 : 0) + (fin ? 1 : 0);
    if (rel > l.maxRel) l.maxRel = rel;
    if (fin) l.fin = true;
    if ((t.flags & 0x04) !== 0) l.rst = true;
    const ts = tsOptionOffset(frame, t.headerOffset, t.headerLength);
    if (ts >= 0) l.tsVal = u32(frame, ts);
  }

  /** ARP requests and neighbour solicitations for hosts of the capture get answered. */
  private answerResolution(s: FrameSummary, frame: Uint8Array): void {
    if (s.proto === 'arp' && s.icmpType === 1) {
      const mac = this.macFor(s.dst);
      if (mac === null) return;
      const reply = new Uint8Array(42);
      reply.set(frame.subarray(6, 12), 0);
      reply.set(mac, 6);
      reply[12] = 0x08;
      reply[13] = 0x06;
      reply.set([0, 1, 8, 0, 6, 4, 0, 2], 14);
      reply.set(mac, 22);
      reply.set(parseIP(s.dst), 28);
      reply.set(frame.subarray(22, 28), 32);
      reply.set(frame.subarray(28, 32), 38);
      this.report.resolutionsAnswered++;
      this.injectLater(reply);
    } else if (s.proto === 'icmpv6' && s.icmpType === 135 && s.payloadOffset + 16 <= frame.length) {
      const target = formatIP(frame.subarray(s.payloadOffset, s.payloadOffset + 16));
      const mac = this.macFor(target);
      if (mac === null) return;
      const ipOff = s.l3Offset;
      const srcIsUnspecified = frame.subarray(ipOff + 8, ipOff + 24).every((x) => x === 0);
      const na = new Uint8Array(14 + 40 + 32);
      na.set(frame.subarray(6, 12), 0);
      na.set(mac, 6);
      na[12] = 0x86;
      na[13] = 0xdd;
      const ip = 14;
      na[ip] = 0x60;
      na[ip + 5] = 32;
      na[ip + 6] = 58;
      na[ip + 7] = 255;
      na.set(parseIP(target), ip + 8);
      if (srcIsUnspecified) na.set(parseIP('ff02::1'), ip + 24);
      else na.set(frame.subarray(ipOff + 8, ipOff + 24), ip + 24);
      const icmp = ip + 40;
      na[icmp] = 136;
      na[icmp + 4] = srcIsUnspecified ? 0x20 : 0x60; // (S)olicited and (O)verride
      na.set(parseIP(target), icmp + 8);
      na[icmp + 24] = 2; // target link-layer address option
      na[icmp + 25] = 1;
      na.set(mac, icmp + 26);
      fixChecksums(na, ip, na.length);
      this.report.resolutionsAnswered++;
      this.injectLater(na);
    }
  }

  private macFor(ip: string): Uint8Array | null {
    if (this.roles.has(ip)) return null;
    const m = this.a.macs.get(ip);
    if (m !== undefined) return m;
    return this.a.hosts.includes(ip) ? syntheticMac(ip) : null;
  }

  /** Inject outside the stack's own call chain (the answer to a frame it is sending). */
  private injectLater(frame: Uint8Array): void {
    this.deferred.push(frame);
    if (this.deferredScheduled) return;
    this.deferredScheduled = true;
    queueMicrotask(() => {
      this.deferredScheduled = false;
      const list = this.deferred;
      this.deferred = [];
      for (const f of list) this.injectFrame(f, false);
    });
  }

  private injectFrame(frame: Uint8Array, checksumVerified: boolean): void {
    this.activity++;
    const t = this.target;
    if (t.format === 'ethernet') {
      if (decapsulate(LinkTypes.ETHERNET, frame, this.info)) this.record(frame, frame.subarray(this.info.offset), this.info.etherType, false);
    } else {
      this.record(frame, frame, frame[0]! >>> 4 === 6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4, false);
    }
    t.inject(frame, checksumVerified);
  }

  /** Write a frame to the output capture in its link type. */
  private record(frame: Uint8Array, ip: Uint8Array, etherType: number, answer: boolean): void {
    const w = this.writer;
    if (w === null) return;
    if (!answer && this.options.record !== 'both') return;
    const now = this.driver.clock.wallNow();
    if (this.outLinkType === LinkTypes.ETHERNET) {
      if (this.target.format === 'ethernet') w.write(frame, now);
      else {
        const dst = answer ? this.macFor(ipDst(ip)) : this.roleMac;
        const src = answer ? this.roleMac : this.macFor(ipSrc(ip));
        w.write(encapsulate(LinkTypes.ETHERNET, ip, etherType, { dstMac: dst, srcMac: src }), now);
      }
      return;
    }
    if (etherType === ETHERTYPE_ARP) return; // ARP exists only on Ethernet; not representable otherwise
    w.write(
      encapsulate(this.outLinkType, ip, etherType, {
        srcMac: answer ? this.roleMac : this.a.macs.get(ipSrc(ip)) ?? null,
        sllPacketType: answer ? 4 : 0,
        inet6Family: this.a.inet6Family,
        littleEndian: this.a.familyLittleEndian,
      }),
      now,
    );
  }

  // ---- the capture's frames ----

  async run(): Promise<void> {
    const o = this.options;
    const speed = o.speed ?? 1;
    if (!(speed > 0) || !Number.isFinite(speed)) throw new TunstackError('EINVAL', `speed ${speed} must be a number > 0`);
    const fast = o.fast ?? false;
    const gate = o.gateTimeoutMs ?? 1000;
    const every = o.progressEvery ?? 1000;
    const d = this.driver;
    const start = d.now();
    let shift = 0;
    const r = this.report;
    // Streamed: one record at a time, read synchronously between awaits.
    const reader = openCapture(this.source);
    let frame = 0;
    try {
      for (;;) {
        let rec: PcapRecord | null;
        try {
          rec = reader.read();
        } catch (e) {
          throw captureError(e, frame + 1, this.source);
        }
        if (rec === null) break;
        frame++;
        assertSupportedLinkType(rec.linkType, frame);
        const s = decodeFrame(rec.linkType, rec.data, frame);
        const action = this.classify(s, rec.data);
        if (action === 'role') r.fromRole++;
        else if (action === 'skip') {
          if (s.l3 !== 'other') r.unrelated++;
        } else {
          const at = rec.hasTimestamp ? rec.timestampMs : this.a.firstTimeMs;
          const due = fast ? d.now() : start + (at - this.a.firstTimeMs) / speed + shift;
          if (due > d.now()) await d.wait(due, null);
          shift += await this.feed(s, rec.data, rec.linkType, gate);
        }
        if (o.onProgress && (frame % every === 0 || frame === this.a.frames)) {
          o.onProgress({ frame, frames: this.a.frames, injected: r.injected, answers: r.answers, elapsedMs: d.now() - start });
        }
      }
    } finally {
      reader.close();
    }
    await d.wait(d.now() + (o.tailMs ?? 2000), null);
    r.elapsedMs = d.now() - start;
  }

  private classify(s: FrameSummary, data: Uint8Array): 'inject' | 'role' | 'skip' {
    if (s.l3 === 'other') return 'skip';
    if (this.roles.has(s.src)) return 'role';
    if (this.roles.has(s.dst)) return 'inject';
    // Neighbour solicitations for a role address go to a multicast group.
    if (s.proto === 'icmpv6' && s.icmpType === 135 && s.payloadOffset + 16 <= data.length) {
      if (this.roles.has(formatIP(data.subarray(s.payloadOffset, s.payloadOffset + 16)))) return 'inject';
    }
    return 'skip';
  }

  /** Inject one frame (TCP: rewritten and gated). Returns the ms spent waiting at the gate. */
  private async feed(s: FrameSummary, data: Uint8Array, linkType: number, gateMs: number): Promise<number> {
    const r = this.report;
    const t = this.target;
    // The network packet, copied (it is rewritten).
    const ip = data.slice(s.l3Offset, s.l3End);
    const tcpOff = s.tcp !== null ? s.tcp.headerOffset - s.l3Offset : -1;
    let waited = 0;
    let rewritten = false;
    // Fix what the capture holds first (counted), then again after any rewriting (not counted).
    if (this.checksums === 'fix' || (this.checksums === 'ignore' && t instanceof TunTarget)) {
      r.checksumsFixed += fixChecksums(ip, 0, ip.length);
    }
    if ((s.proto === 'icmp' && s.icmpType === 8) || (s.proto === 'icmpv6' && s.icmpType === 128)) r.icmp.echoRequestsIn++;
    if (s.proto === 'tcp' && s.tcp !== null && this.rewrite) {
      const idx = this.a.frameFlow[s.frame] ?? -1;
      const flow = idx >= 0 ? this.a.tcp[idx]! : null;
      if (flow !== null && flow.opener === 'peer' && flow.roleIsn !== null) {
        const res = await this.gateAndRewrite(flow, s, ip, tcpOff, gateMs);
        waited = res.waited;
        rewritten = res.rewritten;
      }
    }
    if (rewritten) fixChecksums(ip, 0, ip.length);
    let frame: Uint8Array;
    if (t.format === 'ethernet') {
      if (linkType === LinkTypes.ETHERNET) {
        frame = new Uint8Array(s.l3Offset + ip.length);
        frame.set(data.subarray(0, s.l3Offset));
        frame.set(ip, s.l3Offset);
        // Unicast to a role host: to the target's MAC.
        if ((frame[0]! & 1) === 0) frame.set(t.mac!, 0);
      } else {
        const dst = this.roles.has(s.dst) ? t.mac! : Uint8Array.of(0x33, 0x33, 0, 0, 0, 1);
        frame = encapsulate(LinkTypes.ETHERNET, ip, s.etherType, { dstMac: dst, srcMac: this.macFor(s.src) ?? syntheticMac(s.src) });
      }
    } else {
      if (s.etherType === ETHERTYPE_ARP) {
        r.unrelated++;
        return waited;
      }
      frame = ip;
    }
    r.injected++;
    this.injectFrame(frame, this.checksums === 'ignore');
    return waited;
  }

  /** tcpliveplay-style: map the peer's acknowledgment into the live sequence space, waiting for it. */
  private async gateAndRewrite(
    flow: CapturedTcpFlow,
    s: FrameSummary,
    ip: Uint8Array,
    tcp: number,
    gateMs: number,
  ): Promise<{ waited: number; rewritten: boolean }> {
    const t = s.tcp!;
    const pureSyn = (t.flags & 0x12) === 0x02;
    let l = this.liveOf.get(flow.index);
    if (l === undefined || (pureSyn && l.isn !== null && l.maxRel > 1)) {
      l = new LiveTcpFlow();
      this.liveOf.set(flow.index, l);
      this.live.set(flow.key, l);
    }
    if ((t.flags & 0x10) === 0) return { waited: 0, rewritten: false };
    const need = seqDiff(t.ack, flow.roleIsn!);
    const live = l;
    const ready = (): boolean => live.isn !== null && (live.maxRel >= need || live.rst);
    let waited = 0;
    if (!ready()) {
      const t0 = this.driver.now();
      const ok = await this.driver.wait(t0 + gateMs, ready);
      waited = this.driver.now() - t0;
      if (!ok) this.report.gateTimeouts++;
    }
    if (live.isn === null) return { waited, rewritten: false };
    const isn = live.isn;
    const capIsn = flow.roleIsn!;
    const map = (v: number): number => seqAdd(isn, Math.min(seqDiff(v, capIsn), Math.max(live.maxRel, 1)));
    put32(ip, tcp + 8, map(t.ack));
    rewriteSack(ip, tcp, t.headerLength, map);
    const ts = tsOptionOffset(ip, tcp, t.headerLength);
    if (ts >= 0 && live.tsVal >= 0) put32(ip, ts + 4, live.tsVal);
    return { waited, rewritten: true };
  }

  // ---- the verdict ----

  finish(): ReplayReport {
    const r = this.report;
    for (const f of this.a.tcp) {
      const client = f.opener === 'role' ? `${f.roleIp}:${f.rolePort}` : `${f.peerIp}:${f.peerPort}`;
      const server = f.opener === 'role' ? `${f.peerIp}:${f.peerPort}` : `${f.roleIp}:${f.rolePort}`;
      const captured = f.roleData.bytes();
      const l = this.liveOf.get(f.index);
      const liveBytes = l ? l.data.bytes() : new Uint8Array(0);
      let status: TcpFlowReport['status'] = 'compared';
      if (f.opener === 'role') status = 'role-was-client';
      else if (f.roleIsn === null || f.peerIsn === null || !this.rewrite) status = 'unsynced';
      let first: number | null = null;
      const n = Math.min(captured.length, liveBytes.length);
      for (let i = 0; i < n; i++) {
        if (captured[i] !== liveBytes[i]) {
          first = i;
          break;
        }
      }
      if (first === null && captured.length !== liveBytes.length) first = n;
      const rep: TcpFlowReport = {
        client,
        server,
        status,
        capturedBytes: captured.length,
        liveBytes: liveBytes.length,
        match: first === null,
        firstDifference: first,
        capturedFin: f.roleFin,
        liveFin: l?.fin ?? false,
      };
      r.tcp.push(rep);
      if (status === 'compared' && !rep.match) {
        r.mismatches.push(
          `tcp ${client} -> ${server}: ${rep.liveBytes} bytes served, ${rep.capturedBytes} captured, first difference at byte ${first}`,
        );
      }
    }
    for (const [key, u] of this.a.udp) {
      if (u.fromPeer === 0) continue;
      const live = this.liveUdp.get(key) ?? [];
      let match = live.length === u.fromRole.length;
      for (let i = 0; match && i < live.length; i++) match = Buffer.from(live[i]!).equals(Buffer.from(u.fromRole[i]!));
      const flow = `${u.peerIp}:${u.peerPort} -> ${u.roleIp}:${u.rolePort}`;
      r.udp.push({ flow, datagramsIn: u.fromPeer, capturedReplies: u.fromRole.length, liveReplies: live.length, match });
      if (!match) r.mismatches.push(`udp ${flow}: ${live.length} replies from the stack, ${u.fromRole.length} captured${live.length === u.fromRole.length ? ' (payloads differ)' : ''}`);
    }
    for (const e of this.a.echoReplies) {
      if (!this.liveEcho.has(e)) {
        const [peer, id, seq] = e.split('|');
        r.mismatches.push(`icmp echo reply to ${peer} id=${id} seq=${seq} captured, not sent by the stack`);
      }
    }
    const opened = r.tcp.filter((t) => t.status === 'role-was-client').length;
    if (opened > 0) r.notes.push(`${opened} TCP connection${opened === 1 ? ' was' : 's were'} opened by a role host: the stack opens none, so the peer's segments met resets`);
    if (r.icmp.capturedErrors !== r.icmp.liveErrors) {
      r.notes.push(
        `the role host${this.a.roles.length === 1 ? '' : 's'} sent ${r.icmp.capturedErrors} ICMP error${r.icmp.capturedErrors === 1 ? '' : 's'} in the capture, the stack ${r.icmp.liveErrors} (ICMP errors are rate-limited; services differ)`,
      );
    }
    const unsynced = r.tcp.filter((t) => t.status === 'unsynced').length;
    if (unsynced > 0) r.notes.push(`${unsynced} TCP connection${unsynced === 1 ? '' : 's'} without a captured handshake (or with --no-rewrite): not compared`);
    if (r.injected === 0) {
      r.mismatches.push(
        r.fromRole > 0 && r.fromRole === r.frames - r.undecodable
          ? 'nothing to replay: every frame is from a role address (a loopback capture between two ports of one host cannot be split by address)'
          : `nothing to replay: no frame is addressed to ${this.a.roles.join(', ')}`,
      );
    }
    r.ok = r.mismatches.length === 0;
    if (this.ownsWriter) this.writer?.close();
    this.target.close();
    return r;
  }
}

function ipSrc(ip: Uint8Array): string {
  return ip[0]! >>> 4 === 6 ? formatIP(ip.subarray(8, 24)) : formatIP(ip.subarray(12, 16));
}
function ipDst(ip: Uint8Array): string {
  return ip[0]! >>> 4 === 6 ? formatIP(ip.subarray(24, 40)) : formatIP(ip.subarray(16, 20));
}

/**
 * Replay a capture (a path or its bytes) with the stack in the role of `options.as`, and return
 * the report. Throws TunstackError naming the frame for corrupt captures and unsupported link
 * types, and EINVAL for a role address that is not in the capture.
 */
export async function replay(source: CaptureSource, options: ReplayOptions): Promise<ReplayReport> {
  const roles = (typeof options.as === 'string' ? [options.as] : [...options.as]).flatMap((x) => x.split(',')).filter((x) => x.length > 0);
  if (roles.length === 0) throw new TunstackError('EINVAL', 'replay needs at least one address to take the role of');
  for (const r of roles) parseIP(r);
  const a = analyzeCapture(source, roles);
  const missing = a.roles.filter((r) => !a.hosts.includes(r));
  if (missing.length > 0) {
    throw new TunstackError('EINVAL', `${missing.join(', ')} not in the capture (its hosts: ${a.hosts.slice(0, 12).join(', ')}${a.hosts.length > 12 ? ', ...' : ''})`);
  }
  const realtime = options.realtime ?? false;
  let clock: Clock;
  let target: ReplayTarget;
  if (options.device !== undefined) {
    clock = options.device.stack.clock;
    const tun = new TunTarget(options.device);
    // A TAP answers from the role host's MAC, as the capture shows it.
    if (tun.format === 'ethernet' && a.roleMac !== null) options.device.mac = a.roleMac;
    target = tun;
    configureRoles(target, a);
  } else {
    clock = realtime ? new RealClock({ ref: true }) : new ManualClock({ wallBase: a.firstTimeMs });
    const net: NetworkProtocolFactory[] = [ipv4Factory(), arpFactory()];
    if (a.ipv6) net.push(ipv6Factory());
    const stack = new Stack({ clock, seed: options.seed ?? 1, networkProtocols: net });
    const format = a.linkType === LinkTypes.ETHERNET ? 'ethernet' : 'ip';
    const mtu = Math.max(1500, Math.min(65535, a.maxPacket));
    const mac = a.roleMac ?? (format === 'ethernet' ? syntheticMac(a.roles[0]!) : undefined);
    target = new StackTarget(stack, mac !== undefined ? { format, mtu, mac } : { format, mtu });
    configureRoles(target, a);
  }
  if (options.realtime && !(clock instanceof RealClock)) throw new TunstackError('EINVAL', 'realtime replay needs a stack on a RealClock');
  let engineRef: ReplayEngine | null = null;
  const driver: Driver = clock instanceof ManualClock ? new VirtualDriver(clock, () => engineRef?.activityCount ?? 0) : new RealDriver(clock as RealClock);
  const engine = new ReplayEngine(source, a, target, driver, options);
  engineRef = engine;
  if (options.serveCaptured) serveCaptured(target.stack, a);
  // The stack is one made here (a Stack) or the device's, which the caller made.
  if (options.setup) await options.setup(target.stack as Stack, a);
  try {
    await engine.run();
  } finally {
    if (options.device === undefined) {
      // Stop the stack made here (its timers would keep a real clock's process alive).
      target.stack.close();
    }
  }
  return engine.finish();
}

/**
 * A virtual tun device for replaying `source` through the /dev/net/tun path: a TAP for Ethernet
 * captures, a TUN otherwise, IFF_NO_PI, up, on a new stack with a ManualClock whose wall time
 * starts at the capture's first frame. Pass it as `options.device`.
 */
export function replayDevice(source: CaptureSource, options: { seed?: number } = {}): TunDevice {
  let linkType = -1;
  let first = 0;
  const reader = openCapture(source);
  try {
    const rec = reader.read();
    linkType = rec?.linkType ?? reader.linkType;
    first = rec?.hasTimestamp ? rec.timestampMs : 0;
  } catch (e) {
    throw captureError(e, 1, source);
  } finally {
    reader.close();
  }
  const stack = new Stack({ clock: new ManualClock({ wallBase: first }), seed: options.seed ?? 1 });
  const dev = stack.openTun();
  dev.setIff({ name: linkType === LinkTypes.ETHERNET ? 'tap%d' : 'tun%d', flags: (linkType === LinkTypes.ETHERNET ? IFF_TAP : IFF_TUN) | IFF_NO_PI });
  dev.up();
  return dev;
}

/** Give the target's NIC the role addresses, and an on-link default route per family. */
function configureRoles(target: ReplayTarget, a: CaptureAnalysis): void {
  const nic = target.nic;
  const stack = target.stack;
  let v4 = false;
  let v6 = false;
  for (const r of a.roles) {
    const addr = parseIP(r);
    if (!nic.hasAddress(addr)) {
      if (addr.length === 4 && stack.networkProtocol(ETHERTYPE_IPV4) !== undefined) nic.addAddress(`${r}/32`);
      else if (addr.length === 16 && stack.networkProtocol(ETHERTYPE_IPV6) !== undefined) nic.addAddress(`${r}/128`, { nodad: true });
      else continue;
    }
    if (addr.length === 4) v4 = true;
    else v6 = true;
  }
  const add = (destination: string): void => {
    try {
      stack.addRoute({ destination, nic: nic.name, metric: 1000 });
    } catch {
      // a default route is there already
    }
  };
  if (v4) add('0.0.0.0/0');
  if (v6) add('::/0');
}

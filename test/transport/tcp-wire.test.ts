/**
 * The TCP protocol's one header writer (headers/tcp.ts writeTcpHeader, its option writers and
 * finishTcpChecksum, via segment.ts finishSegment) and its one segment parser (segment.ts
 * parseSegment), checked against the TcpHeader view and against segments built by scapy (Linux's
 * option layouts, its checksums).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseIP } from '../../src/core/address.js';
import { sum } from '../../src/headers/checksum.js';
import {
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TcpHeader,
  encodeTcpOptions,
  finishTcpChecksum,
  writeSackOption,
  writeTcpHeader,
  writeTimestampOption,
  type TcpOptionFields,
} from '../../src/headers/tcp.js';
import { PacketBuffer } from '../../src/core/packet.js';
import type { NetworkInfo } from '../../src/stack/protocol.js';
import type { Route } from '../../src/stack/route.js';
import { Segment, finishSegment, parseSegment, tcpPseudoBase } from '../../src/transport/tcp/segment.js';

const PY = '/usr/bin/python3';
const noScapy = !existsSync(PY) || spawnSync(PY, ['-c', 'import scapy.all'], { stdio: 'ignore' }).status !== 0;
if (noScapy) console.warn('test/transport/tcp-wire.test.ts: scapy cases skipped: /usr/bin/python3 with scapy missing (python3-scapy)');

interface Case {
  name: string;
  family: 4 | 6;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** Our encoding of the options. */
  options: 'none' | 'ts' | 'ts+sack' | TcpOptionFields;
  tsVal?: number;
  tsEcr?: number;
  sack?: number[];
  /** scapy's options list, as Python source. */
  py: string;
  payload: number[];
}

const CASES: Case[] = [
  {
    name: 'SYN with Linux option layout (IPv4)',
    family: 4,
    src: '198.18.0.1',
    dst: '198.18.0.2',
    sport: 40000,
    dport: 80,
    seq: 0xdeadbeef,
    ack: 0,
    flags: TCP_SYN,
    window: 64240,
    options: { mss: 1460, sackPermitted: true, timestamp: true, tsVal: 0x01020304, tsEcr: 0, windowScale: 7 },
    py: "[('MSS',1460),('SAckOK',b''),('Timestamp',(0x01020304,0)),('NOP',None),('WScale',7)]",
    payload: [],
  },
  {
    name: 'SYN-ACK without timestamps (IPv6)',
    family: 6,
    src: '2001:db8::1',
    dst: '2001:db8::2',
    sport: 443,
    dport: 51000,
    seq: 7,
    ack: 0xffffffff,
    flags: TCP_SYN | TCP_ACK,
    window: 65535,
    options: { mss: 1440, sackPermitted: true, windowScale: 14 },
    py: "[('MSS',1440),('NOP',None),('NOP',None),('SAckOK',b''),('NOP',None),('WScale',14)]",
    payload: [],
  },
  {
    name: 'data with NOP,NOP,timestamps (IPv4)',
    family: 4,
    src: '198.18.5.6',
    dst: '198.19.7.8',
    sport: 1234,
    dport: 5678,
    seq: 0x80000000,
    ack: 0x12345678,
    flags: TCP_ACK | TCP_PSH,
    window: 501,
    options: 'ts',
    tsVal: 0xfffffff0,
    tsEcr: 0x00abcdef,
    py: "[('NOP',None),('NOP',None),('Timestamp',(0xfffffff0,0x00abcdef))]",
    payload: [1, 2, 3, 4, 5, 6, 7],
  },
  {
    name: 'ACK with timestamps and SACK blocks (IPv6)',
    family: 6,
    src: '2001:db8:1::a',
    dst: '2001:db8:2::b',
    sport: 22,
    dport: 60001,
    seq: 100,
    ack: 2000,
    flags: TCP_ACK,
    window: 1024,
    options: 'ts+sack',
    tsVal: 5,
    tsEcr: 6,
    sack: [3000, 4000, 5000, 6000],
    py: "[('NOP',None),('NOP',None),('Timestamp',(5,6)),('NOP',None),('NOP',None),('SAck',(3000,4000,5000,6000))]",
    payload: [],
  },
  {
    name: 'RST,ACK without options (IPv4)',
    family: 4,
    src: '198.18.0.9',
    dst: '198.18.0.10',
    sport: 80,
    dport: 40001,
    seq: 0,
    ack: 0x11111111,
    flags: TCP_RST | TCP_ACK,
    window: 0,
    options: 'none',
    py: '[]',
    payload: [],
  },
  {
    name: 'FIN with odd-length payload (IPv6)',
    family: 6,
    src: '2001:db8::7',
    dst: '2001:db8::8',
    sport: 9,
    dport: 10,
    seq: 42,
    ack: 43,
    flags: TCP_FIN | TCP_ACK,
    window: 3,
    options: 'none',
    py: '[]',
    payload: [0xff, 0xfe, 0xfd],
  },
];

function route(c: Case): Route {
  return { family: c.family, localAddress: parseIP(c.src), remoteAddress: parseIP(c.dst) } as unknown as Route;
}

/** Build the segment the way the TCP protocol does: header writer, options, payload, finisher. */
function build(c: Case, offload: boolean): PacketBuffer {
  let ol = 0;
  const opts = c.options;
  if (opts === 'ts') ol = 12;
  else if (opts === 'ts+sack') ol = 12 + 4 + 4 * c.sack!.length;
  else if (opts !== 'none') {
    const tmp = new Uint8Array(40);
    ol = encodeTcpOptions(tmp, 0, opts);
  }
  const hl = 20 + ol;
  const total = hl + c.payload.length;
  const pkt = PacketBuffer.allocUninitialized(total, 64);
  const b = pkt.data;
  const o = pkt.start;
  writeTcpHeader(b, o, c.sport, c.dport, c.seq, c.ack, c.flags, c.window, hl);
  if (opts === 'ts' || opts === 'ts+sack') {
    writeTimestampOption(b, o + 20, c.tsVal!, c.tsEcr!);
    if (opts === 'ts+sack') writeSackOption(b, o + 32, Uint32Array.from(c.sack!), c.sack!.length / 2);
  } else if (opts !== 'none') {
    encodeTcpOptions(b, o + 20, opts);
  }
  b.set(c.payload, o + hl);
  finishSegment(pkt, hl, total, tcpPseudoBase(route(c)), offload);
  return pkt;
}

function scapySegments(): Uint8Array[] {
  const lines = CASES.map((c) => {
    const ip = c.family === 4 ? `IP(src='${c.src}',dst='${c.dst}')` : `IPv6(src='${c.src}',dst='${c.dst}')`;
    const fl = c.flags;
    return (
      `p=${ip}/TCP(sport=${c.sport},dport=${c.dport},seq=${c.seq},ack=${c.ack},flags=${fl},window=${c.window},options=${c.py})` +
      `/Raw(bytes([${c.payload.join(',')}]))\n` +
      `p=${c.family === 4 ? 'IP' : 'IPv6'}(bytes(p))\n` +
      `print(bytes(p[TCP]).hex())`
    );
  });
  const r = spawnSync(PY, ['-c', `from scapy.all import IP, IPv6, TCP, Raw\n${lines.join('\n')}`], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`scapy failed: ${r.stderr}`);
  return r.stdout
    .trim()
    .split('\n')
    .map((h) => Uint8Array.from(Buffer.from(h, 'hex')));
}

/** Ports, sequence numbers, flags and window a case asks for. */
function expected(c: Case): number[] {
  return [c.sport, c.dport, c.seq, c.ack, c.flags, c.window];
}

function segmentBytes(pkt: PacketBuffer): Uint8Array {
  return pkt.data.subarray(pkt.start, pkt.end);
}

describe('TCP header writer and segment parser', () => {
  it('writes what the TcpHeader view reads back, checksum valid', () => {
    for (const c of CASES) {
      const pkt = build(c, false);
      const seg = segmentBytes(pkt);
      const v = new TcpHeader(seg, 0, seg.length);
      expect([v.srcPort, v.dstPort, v.seq, v.ack, v.flags, v.window, v.urgentPointer], c.name).toEqual([...expected(c), 0]);
      expect(v.headerLength, c.name).toBe(pkt.transportHeaderLength);
      const la = parseIP(c.src);
      const ra = parseIP(c.dst);
      expect(c.family === 4 ? v.checksumValidV4(la, 0, ra, 0) : v.checksumValidV6(la, 0, ra, 0), c.name).toBe(true);
      expect(pkt.transportHeaderStart).toBe(pkt.start);
      expect(pkt.transportProtocol).toBe(6);
      expect(pkt.checksumOffload).toBe(false);
    }
  });

  it('with checksum offload leaves the pseudo-header sum that completes to the full checksum', () => {
    for (const c of CASES) {
      const full = segmentBytes(build(c, false));
      const pkt = build(c, true);
      expect(pkt.checksumOffload).toBe(true);
      const seg = segmentBytes(pkt);
      // What the NIC does: sum the segment with the partial value in the field, complement.
      const done = ~sum(seg, 0, seg.length) & 0xffff;
      expect(done, c.name).toBe((full[16]! << 8) | full[17]!);
    }
  });

  it('parses every field the view reads, and the options', () => {
    for (const c of CASES) {
      const bytes = segmentBytes(build(c, false));
      const framed = new Uint8Array(bytes.length + 5);
      framed.set(bytes, 5);
      const seg = new Segment();
      const net = {} as NetworkInfo;
      const pkt = PacketBuffer.wrap(framed);
      parseSegment(seg, framed, 5, bytes.length, (bytes[12]! >>> 4) << 2, net, pkt);
      const v = new TcpHeader(bytes, 0, bytes.length);
      expect([seg.srcPort, seg.dstPort, seg.seq, seg.ack, seg.flags, seg.wnd, seg.hl], c.name).toEqual([
        v.srcPort,
        v.dstPort,
        v.seq,
        v.ack,
        v.flags,
        v.window,
        v.headerLength,
      ]);
      expect([seg.off, seg.plOff, seg.plLen], c.name).toEqual([5, 5 + v.headerLength, c.payload.length]);
      expect(Array.from(framed.subarray(seg.plOff, seg.plOff + seg.plLen))).toEqual(c.payload);
      expect(seg.net).toBe(net);
      expect(seg.pkt).toBe(pkt);
      const o = seg.opts;
      if (c.options === 'none') {
        expect([o.mss, o.windowScale, o.timestamp, o.sackPermitted, o.sackCount]).toEqual([-1, -1, false, false, 0]);
      } else if (c.options === 'ts' || c.options === 'ts+sack') {
        expect([o.timestamp, o.tsVal, o.tsEcr]).toEqual([true, c.tsVal, c.tsEcr]);
        const blocks = [];
        for (let i = 0; i < o.sackCount; i++) blocks.push(o.sackLeft(i), o.sackRight(i));
        expect(blocks).toEqual(c.sack ?? []);
      } else {
        const f = c.options;
        expect([o.mss, o.windowScale, o.sackPermitted, o.timestamp]).toEqual([f.mss, f.windowScale, f.sackPermitted ?? false, f.timestamp ?? false]);
        if (f.timestamp) expect([o.tsVal, o.tsEcr]).toEqual([f.tsVal, f.tsEcr]);
      }
    }
  });

  it('ignores a malformed option list and keeps the segment', () => {
    const c = CASES[2]!;
    const bytes = segmentBytes(build(c, false)).slice();
    bytes[20] = 2; // MSS kind with the timestamp option's bytes after it: length 1 is malformed
    bytes[21] = 1;
    const seg = new Segment();
    parseSegment(seg, bytes, 0, bytes.length, 32, {} as NetworkInfo, PacketBuffer.wrap(bytes));
    expect([seg.opts.timestamp, seg.opts.mss, seg.plLen, seg.seq]).toEqual([false, -1, c.payload.length, c.seq]);
  });

  it.skipIf(noScapy)('builds the same bytes as scapy, and parses scapy-built segments', () => {
    const theirs = scapySegments();
    expect(theirs.length).toBe(CASES.length);
    CASES.forEach((c, i) => {
      const ours = segmentBytes(build(c, false));
      expect(Buffer.from(ours).toString('hex'), c.name).toBe(Buffer.from(theirs[i]!).toString('hex'));
      const t = theirs[i]!;
      const seg = new Segment();
      parseSegment(seg, t, 0, t.length, (t[12]! >>> 4) << 2, {} as NetworkInfo, PacketBuffer.wrap(t));
      expect([seg.srcPort, seg.dstPort, seg.seq, seg.ack, seg.flags, seg.wnd, seg.plLen], c.name).toEqual([...expected(c), c.payload.length]);
    });
  });

  it('finishTcpChecksum matches the view for a header written by writeTcpHeader', () => {
    const b = new Uint8Array(24);
    writeTcpHeader(b, 0, 1, 2, 3, 4, TCP_ACK, 5, 20);
    b.set([9, 8, 7, 6], 20);
    const la = parseIP('198.18.0.1');
    const ra = parseIP('198.18.0.2');
    const v = new TcpHeader(b, 0, 24);
    finishTcpChecksum(b, 0, 24, tcpPseudoBase({ family: 4, localAddress: la, remoteAddress: ra } as unknown as Route) + 24, false);
    expect(v.checksumValidV4(la, 0, ra, 0)).toBe(true);
    expect(v.checksum).toBe(v.computeChecksumV4(la, 0, ra, 0));
  });
});

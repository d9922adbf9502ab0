/**
 * Forged ICMP "fragmentation needed" / "Packet Too Big" against a running TCP transfer (issue 11):
 * two stacks on a ManualClock over an IP wire; B's raw socket plays the attacker on the path and
 * sends ICMP errors to A (the sender) quoting A's segments. The path MTU may go down only for a
 * message about a segment in flight on an existing connection (RFC 5927), never below 552 (IPv4,
 * Linux min_pmtu) or 1280 (IPv6), and a segment the IP layer refuses for its size makes TCP
 * re-segment instead of stalling. Every transfer must arrive intact (sha256).
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildIcmpV4DestUnreachable } from '../../src/headers/icmpv4.js';
import { parseIP, type IPv4Protocol, type IPv6Protocol, type TcpEndpoint } from '../../src/index.js';
import { pair, pattern, type Pair } from './helpers/tcp.js';

const TOTAL = 512 * 1024;

interface Net {
  family: 4 | 6;
  a: string;
  b: string;
}
const V4: Net = { family: 4, a: '10.0.0.1', b: '10.0.0.2' };
const V6: Net = { family: 6, a: 'fd00::1', b: 'fd00::2' };

function setup(net: Net): { p: Pair; client: TcpEndpoint; server: TcpEndpoint } {
  const p = pair({ latencyMs: 5, tap: true });
  if (net.family === 6) {
    p.a.nic('eth0')!.addAddress('fd00::1/64', { nodad: true });
    p.b.nic('eth0')!.addAddress('fd00::2/64', { nodad: true });
  }
  const listener = p.b.tcp({ family: net.family });
  listener.bind(null, 80);
  listener.listen(8);
  const client = p.a.tcp({ family: net.family });
  client.connect(net.b, 80);
  for (let i = 0; i < 1000; i++) {
    const s = listener.accept();
    if (s !== null) return { p, client, server: s };
    p.clock.advance(1);
  }
  throw new Error('not accepted');
}

/** A's TCP segments (IP header included) recorded by the tap, oldest first. */
function segmentsOfA(p: Pair, net: Net): Uint8Array[] {
  const src = parseIP(net.a);
  const so = net.family === 4 ? 12 : 8;
  return p.tap!.packets.filter(
    (b) => b[0]! >>> 4 === net.family && (net.family === 4 ? b[9] : b[6]) === 6 && src.every((v, k) => b[so + k] === v),
  );
}

/**
 * A data segment of A's in flight once B's application has read `read` bytes: A's real headers
 * with the sequence number ISN + 1 + read (between SND.UNA and SND.NXT: B has received that far,
 * and A has not heard of more than B received).
 */
function inFlightSegment(p: Pair, net: Net, read: number): Uint8Array {
  const segs = segmentsOfA(p, net);
  const hl = net.family === 4 ? 20 : 40;
  const isn = new DataView(segs[0]!.buffer, segs[0]!.byteOffset).getUint32(hl + 4);
  const data = segs.filter((b) => b.length > hl + (b[hl + 12]! >>> 4) * 4);
  const seg = data[data.length - 1]!.slice();
  new DataView(seg.buffer).setUint32(hl + 4, (isn + 1 + read) >>> 0);
  return seg;
}

/** The ICMP error B's raw socket sends to A about `quoted` (A's datagram), reporting `mtu`. */
function forge(p: Pair, net: Net, quoted: Uint8Array, mtu: number): void {
  if (net.family === 4) {
    const raw = p.b.raw({ family: 4, protocol: 1 });
    raw.sendTo(buildIcmpV4DestUnreachable(4, quoted.subarray(0, 48), { mtu }), net.a);
    raw.close();
  } else {
    const raw = p.b.raw({ family: 6, protocol: 58 });
    const q = quoted.subarray(0, Math.min(quoted.length, 1232));
    const m = new Uint8Array(8 + q.length);
    m[0] = 2; // Packet Too Big
    new DataView(m.buffer).setUint32(4, mtu);
    m.set(q, 8);
    raw.sendTo(m, net.a); // (the raw ICMPv6 socket computes the checksum)
    raw.close();
  }
}

/** Rewrite the quoted TCP header: sequence number and/or source port. */
function tamper(seg: Uint8Array, net: Net, f: { seqDelta?: number; portDelta?: number }): Uint8Array {
  const out = seg.slice();
  const t = net.family === 4 ? (out[0]! & 15) * 4 : 40;
  const dv = new DataView(out.buffer);
  if (f.portDelta) dv.setUint16(t, (dv.getUint16(t) + f.portDelta) & 0xffff);
  if (f.seqDelta) dv.setUint32(t + 4, (dv.getUint32(t + 4) + f.seqDelta) >>> 0);
  return out;
}

/**
 * A writes TOTAL bytes to B; once B has read a quarter, `attack` runs once. Returns whether B
 * got everything with the same sha256, and the bytes read.
 */
function transfer(p: Pair, client: TcpEndpoint, server: TcpEndpoint, attack: (read: number) => void): { intact: boolean; received: number } {
  const data = pattern(TOTAL, 7);
  const want = createHash('sha256').update(data).digest('hex');
  const got = createHash('sha256');
  let off = 0;
  let received = 0;
  let attacked = false;
  const t0 = p.clock.now();
  for (let guard = 0; guard < 1_000_000; guard++) {
    if (off < TOTAL) {
      off += client.write(data.subarray(off));
      if (off === TOTAL) client.shutdown();
    }
    for (let c = server.readChunk(); c !== null; c = server.readChunk()) {
      got.update(c);
      received += c.length;
    }
    if (!attacked && received >= TOTAL / 4) {
      attacked = true;
      attack(received);
    }
    if (server.readEnded) break;
    const d = p.clock.nextDeadline();
    if (d === Infinity || d - t0 > 600_000) break;
    p.clock.advanceTo(Math.max(d, p.clock.now()));
  }
  return { intact: received === TOTAL && got.digest('hex') === want, received };
}

function pathMtu(p: Pair, net: Net): number {
  const ip = net.family === 4 ? p.a.requireNetwork<IPv4Protocol>(0x0800) : p.a.requireNetwork<IPv6Protocol>(0x86dd);
  return ip.pathMtu(parseIP(net.b), 1500);
}

describe.each([V4, V6])('forged path MTU messages against TCP over IPv$family', (net) => {
  const reported = net.family === 4 ? 1000 : 1280;

  it('ignores one quoting no existing connection: path MTU unchanged, transfer intact', () => {
    const { p, client, server } = setup(net);
    const r = transfer(p, client, server, (read) => forge(p, net, tamper(inFlightSegment(p, net, read), net, { portDelta: 1 }), reported));
    expect(r).toEqual({ intact: true, received: TOTAL });
    expect(pathMtu(p, net)).toBe(1500);
    expect(client.info().pmtu).toBe(1500);
  });

  it('ignores one quoting a sequence number outside SND.UNA..SND.NXT: path MTU unchanged, transfer intact', () => {
    const { p, client, server } = setup(net);
    const r = transfer(p, client, server, (read) => {
      const seg = inFlightSegment(p, net, read);
      forge(p, net, tamper(seg, net, { seqDelta: 0x20000000 }), reported);
      forge(p, net, tamper(seg, net, { seqDelta: -0x20000000 }), reported);
    });
    expect(r).toEqual({ intact: true, received: TOTAL });
    expect(pathMtu(p, net)).toBe(1500);
    expect(client.info().pmtu).toBe(1500);
    expect(p.tcpA.stats.pmtuUpdates).toBe(0);
  });

  it('applies one quoting a segment in flight: the MSS goes down and the transfer completes', () => {
    const { p, client, server } = setup(net);
    const r = transfer(p, client, server, (read) => forge(p, net, inFlightSegment(p, net, read), reported));
    expect(r).toEqual({ intact: true, received: TOTAL });
    expect(pathMtu(p, net)).toBe(reported);
    expect(client.info().pmtu).toBe(reported);
    // MTU - IP header - TCP header - timestamps.
    expect(client.info().mss).toBe(reported - (net.family === 4 ? 20 : 40) - 20 - 12);
  });

  it(`clamps a tiny reported MTU to ${net.family === 4 ? 552 : 1280} and keeps sending`, () => {
    const { p, client, server } = setup(net);
    const floor = net.family === 4 ? 552 : 1280;
    let mark = 0;
    const r = transfer(p, client, server, (read) => {
      forge(p, net, inFlightSegment(p, net, read), net.family === 4 ? 68 : 500);
      mark = p.tap!.packets.length;
    });
    expect(r).toEqual({ intact: true, received: TOTAL });
    expect(pathMtu(p, net)).toBe(floor);
    expect(client.info().pmtu).toBe(floor);
    if (net.family === 4) {
      // A clamped (locked) path MTU: once the message arrived, A's packets to B are at most 552
      // bytes and leave without DF, as Linux's.
      const fromA = p.tap!.packets.slice(mark).filter((b) => b[0] === 0x45 && b[15] === 1 && b[19] === 2);
      const later = fromA.slice(fromA.findIndex((b) => b.length === 552));
      expect(later.length).toBeGreaterThan(100);
      expect(later.filter((b) => (b[6]! & 0x40) !== 0 || b.length > 552)).toEqual([]);
    }
  });

  it('re-segments when the IP layer refuses a segment as too big (path MTU learned through another socket)', () => {
    const { p, client, server } = setup(net);
    // A UDP socket of A's towards B: a frag-needed about its datagram is valid and lowers the
    // path MTU to B under the TCP connection's feet; its next full-size segment gets EMSGSIZE.
    const u = p.a.udp({ family: net.family });
    u.connect(net.b, 9);
    const r = transfer(p, client, server, () => {
      const mark = p.tap!.packets.length;
      u.send(new Uint8Array(100));
      const dgram = p.tap!.packets.slice(mark).find((b) => (net.family === 4 ? b[9] : b[6]) === 17)!;
      forge(p, net, dgram, reported);
    });
    expect(r).toEqual({ intact: true, received: TOTAL });
    expect(pathMtu(p, net)).toBe(reported);
    expect(p.tcpA.stats.sendTooBig).toBeGreaterThan(0);
    expect(client.info().pmtu).toBe(reported);
    u.close();
  });
});

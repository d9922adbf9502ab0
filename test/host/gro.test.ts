/**
 * TCP coalescing for kernel writes (src/host/gro.ts): bursts of segments become one GSO
 * super-packet that the kernel (or our own GSO split, src/tundev/gso.ts, which does what the
 * kernel does) turns back into exactly the segments sent; tshark validates the completed
 * super-packet; segments that Linux's GRO would not merge are not merged.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  parseIPv4,
  parseIPv6,
  parseMAC,
  type PacketBuffer,
} from '../../src/index.js';
import { buildEthernet, buildIPv4, buildIPv6, buildTcp, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6, VirtioNetHeader } from '../../src/headers/index.js';
import { LinkType } from '../../src/pcap/index.js';
import { completePartialChecksum, segmentGso } from '../../src/tundev/gso.js';
import { TcpCoalescer, GRO_MAX_IP_LENGTH } from '../../src/host/gro.js';
import { dissect, field, haveTshark } from '../helpers/tshark.js';

const ACK = 0x10;
const PSH = 0x08;
const SRC4 = parseIPv4('198.18.0.2');
const DST4 = parseIPv4('198.18.0.1');
const SRC6 = parseIPv6('2001:db8::2');
const DST6 = parseIPv6('2001:db8::1');
const MAC_A = parseMAC('02:00:00:00:00:0a');
const MAC_B = parseMAC('02:00:00:00:00:0b');

interface SegSpec {
  seq: number;
  len: number;
  flags?: number;
  window?: number;
  dport?: number;
  tsVal?: number;
  id?: number;
}

function payloadFor(seq: number, len: number): Uint8Array {
  const p = new Uint8Array(len);
  for (let i = 0; i < len; i++) p[i] = ((seq + i) * 131) >>> 3;
  return p;
}

/** One frame: [Ethernet] IPv4/IPv6 TCP with timestamps, checksums valid. */
function segment(v6: boolean, l2: boolean, s: SegSpec): Uint8Array {
  const src = v6 ? SRC6 : SRC4;
  const dst = v6 ? DST6 : DST4;
  const tcp = buildTcp(
    {
      srcPort: 40000,
      dstPort: s.dport ?? 8080,
      seq: s.seq,
      ack: 777,
      flags: s.flags ?? ACK,
      window: s.window ?? 500,
      options: { timestamp: true, tsVal: s.tsVal ?? 1000, tsEcr: 2000 },
      pseudoHeader: { src, dst },
    },
    payloadFor(s.seq, s.len),
  );
  const ip = v6
    ? buildIPv6({ nextHeader: 6, hopLimit: 64, source: src, destination: dst }, tcp)
    : buildIPv4({ src, dst, protocol: 6, id: s.id ?? 100, dontFragment: true }, tcp);
  return l2 ? buildEthernet({ destination: MAC_B, source: MAC_A, etherType: v6 ? 0x86dd : 0x0800 }, ip) : ip;
}

function asPkt(b: Uint8Array): { data: Uint8Array; start: number; end: number } {
  // Put the frame behind some headroom, as the stack's packets are.
  const data = new Uint8Array(b.length + 64);
  data.set(b, 64);
  return { data, start: 64, end: 64 + b.length };
}

/** A burst of `n` full segments of `mss` (ids consecutive), the last one PSH and `lastLen` long. */
function burst(v6: boolean, l2: boolean, n: number, mss: number, lastLen = mss): Uint8Array[] {
  const out: Uint8Array[] = [];
  let seq = 1_000_000;
  for (let i = 0; i < n; i++) {
    const last = i === n - 1;
    const len = last ? lastLen : mss;
    out.push(segment(v6, l2, { seq, len, flags: last ? ACK | PSH : ACK, id: 100 + i }));
    seq += len;
  }
  return out;
}

/** Run the coalescer over a list; returns [count per output packet]. */
function runs(frames: Uint8Array[], l2: number): number[] {
  const c = new TcpCoalescer(l2);
  const pkts = frames.map(asPkt);
  const hdr = new Uint8Array(10);
  const out: number[] = [];
  for (let i = 0; i < pkts.length; ) {
    const k = c.coalesce(pkts, i, pkts.length, hdr, 0);
    out.push(k === 0 ? 1 : k);
    i += k === 0 ? 1 : k;
  }
  return out;
}

const variants: Array<[string, boolean, boolean]> = [
  ['IPv4 over Ethernet (TAP)', false, true],
  ['IPv6 over Ethernet (TAP)', true, true],
  ['IPv4 (TUN)', false, false],
  ['IPv6 (TUN)', true, false],
];

describe('TCP coalescing into GSO super-packets', () => {
  for (const [label, v6, l2] of variants) {
    const l2Len = l2 ? 14 : 0;
    it(`${label}: a burst becomes super-packets of at most 64 KiB that split back into the same segments`, () => {
      const mss = 1448;
      const frames = burst(v6, l2, 50, mss, 700);
      const c = new TcpCoalescer(l2Len);
      const pkts = frames.map(asPkt);
      const hdr = new Uint8Array(10);
      const k = c.coalesce(pkts, 0, pkts.length, hdr, 0);
      // As many as fit 65535 bytes of IP: (65535 - ipHl - 32) / 1448.
      const ipHl = v6 ? 40 : 20;
      const expected = Math.floor((GRO_MAX_IP_LENGTH - (v6 ? 0 : ipHl) - 32) / mss);
      expect(k).toBe(expected);
      const sp = c.packet!;
      expect(sp.length).toBe(l2Len + ipHl + 32 + k * mss);
      // virtio_net_hdr: NEEDS_CSUM at the TCP checksum, GSO of the segment size.
      const vh = new VirtioNetHeader(hdr);
      expect(vh.flags).toBe(VIRTIO_NET_HDR_F_NEEDS_CSUM);
      expect(vh.gsoType).toBe(v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4);
      expect(vh.gsoSize).toBe(mss);
      expect(vh.hdrLen).toBe(l2Len + ipHl + 32);
      expect(vh.csumStart).toBe(l2Len + ipHl);
      expect(vh.csumOffset).toBe(16);
      // What the kernel does with it: split at gso_size (checksums completed per segment).
      const segs: PacketBuffer[] = [];
      const n = segmentGso(sp, 0, sp.length, l2Len, v6 ? 0x86dd : 0x0800, vh.gsoType, vh.gsoSize, segs);
      expect(n).toBe(k);
      for (let i = 0; i < n; i++) expect(segs[i]!.toBytes()).toEqual(frames[i]);
      // The rest of the burst: one more run with the short PSH segment last.
      const k2 = c.coalesce(pkts, k, pkts.length, hdr, 0);
      expect(k2).toBe(50 - k);
      const sp2 = c.packet!;
      const segs2: PacketBuffer[] = [];
      expect(segmentGso(sp2, 0, sp2.length, l2Len, v6 ? 0x86dd : 0x0800, hdr[1]!, mss, segs2)).toBe(k2);
      for (let i = 0; i < k2; i++) expect(segs2[i]!.toBytes()).toEqual(frames[k + i]);
    });

    it.skipIf(!haveTshark())(`${label}: tshark reads the completed super-packet as one valid TCP segment`, () => {
      const frames = burst(v6, l2, 10, 1000, 400);
      const c = new TcpCoalescer(l2Len);
      const hdr = new Uint8Array(10);
      expect(c.coalesce(frames.map(asPkt), 0, 10, hdr, 0)).toBe(10);
      const sp = c.packet!.slice();
      const vh = new VirtioNetHeader(hdr);
      expect(completePartialChecksum(sp, 0, sp.length, l2Len, vh.csumStart, vh.csumOffset)).toBe(true);
      const d = dissect([sp], ['tcp.len', 'tcp.seq_raw', 'tcp.flags', 'tcp.checksum.status', v6 ? 'ipv6.plen' : 'ip.checksum.status'], {
        linkType: l2 ? LinkType.ETHERNET : LinkType.RAW,
      });
      expect(d.expert).toEqual([]);
      expect(field(d, 0, 'tcp.len')).toBe(String(9 * 1000 + 400));
      expect(field(d, 0, 'tcp.seq_raw')).toBe('1000000');
      expect(field(d, 0, 'tcp.flags')).toBe('0x0018'); // PSH from the last segment
      expect(field(d, 0, 'tcp.checksum.status')).toBe('1'); // 1 = good (0 bad, 2 unverified)
      if (v6) expect(field(d, 0, 'ipv6.plen')).toBe(String(32 + 9400));
      else expect(field(d, 0, 'ip.checksum.status')).toBe('1');
    });
  }

  it('segments whose payload is scatter-gather fragments build the same super-packet as whole ones', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), fc.integer({ min: 2, max: 30 }), fc.integer({ min: 64, max: 1448 }), fc.nat(), (v6, l2, n, mss, cutSeed) => {
        const l2Len = l2 ? 14 : 0;
        const frames = burst(v6, l2, n, mss, Math.max(1, mss >> 1));
        // Each frame split: headers (and some payload) in data, the rest in 1-3 fragments.
        const hl = l2Len + (v6 ? 40 : 20) + 32;
        let r = cutSeed;
        const next = (m: number): number => {
          r = (r * 1103515245 + 12345) >>> 0;
          return r % m;
        };
        const split = frames.map((f) => {
          const head = hl + next(f.length - hl + 1);
          const frags: Uint8Array[] = [];
          let o = head;
          while (o < f.length) {
            const len = frags.length === 2 ? f.length - o : 1 + next(f.length - o);
            frags.push(f.slice(o, o + len));
            o += len;
          }
          const p = asPkt(f.subarray(0, head));
          return { ...p, frags: frags.length > 0 ? frags : null, fragBytes: f.length - head };
        });
        const whole = new TcpCoalescer(l2Len);
        const sg = new TcpCoalescer(l2Len);
        const h1 = new Uint8Array(10);
        const h2 = new Uint8Array(10);
        const wp = frames.map(asPkt);
        for (let i = 0; i < n; ) {
          const k1 = whole.coalesce(wp, i, n, h1, 0);
          const k2 = sg.coalesce(split, i, n, h2, 0);
          expect(k2).toBe(k1);
          if (k1 > 0) {
            expect(sg.packet).toEqual(whole.packet);
            expect(h2).toEqual(h1);
          }
          i += Math.max(1, k1);
        }
      }),
      { numRuns: 60, seed: 11 },
    );
  });

  it('reuses super-packet buffers after recycle() and builds the same bytes into them', () => {
    const c = new TcpCoalescer(14);
    const hdr = new Uint8Array(10);
    const a = burst(false, true, 8, 1000).map(asPkt);
    const b = burst(true, true, 5, 1200, 300).map(asPkt);
    expect(c.coalesce(a, 0, a.length, hdr, 0)).toBe(8);
    const first = c.packet!;
    expect(c.coalesce(b, 0, b.length, hdr, 0)).toBe(5);
    expect(c.packet!.buffer).not.toBe(first.buffer); // both still out: separate buffers
    const want = new TcpCoalescer(14);
    want.coalesce(b, 0, b.length, new Uint8Array(10), 0);
    c.recycle();
    expect(c.coalesce(b, 0, b.length, hdr, 0)).toBe(5);
    expect(c.packet!.buffer).toBe(first.buffer); // written into the first one's memory
    expect(c.packet).toEqual(want.packet);
  });

  it('segments Linux would not merge stay apart', () => {
    const s = (spec: SegSpec): Uint8Array => segment(false, true, spec);
    const base = 5000;
    // contiguous, same everything: merged
    expect(runs([s({ seq: base, len: 100 }), s({ seq: base + 100, len: 100 })], 14)).toEqual([2]);
    // a gap in sequence numbers
    expect(runs([s({ seq: base, len: 100 }), s({ seq: base + 101, len: 100 })], 14)).toEqual([1, 1]);
    // a later segment longer than the first
    expect(runs([s({ seq: base, len: 100 }), s({ seq: base + 100, len: 101 })], 14)).toEqual([1, 1]);
    // a short segment ends the run
    expect(runs([s({ seq: base, len: 100 }), s({ seq: base + 100, len: 50 }), s({ seq: base + 150, len: 50 })], 14)).toEqual([2, 1]);
    // PSH ends the run; PSH on the first: alone
    expect(runs([s({ seq: base, len: 100, flags: ACK | PSH }), s({ seq: base + 100, len: 100 })], 14)).toEqual([1, 1]);
    expect(runs([s({ seq: base, len: 100 }), s({ seq: base + 100, len: 100, flags: ACK | PSH }), s({ seq: base + 200, len: 100 })], 14)).toEqual([2, 1]);
    // different window, different timestamp option, different port
    expect(runs([s({ seq: base, len: 100 }), s({ seq: base + 100, len: 100, window: 501 })], 14)).toEqual([1, 1]);
    expect(runs([s({ seq: base, len: 100 }), s({ seq: base + 100, len: 100, tsVal: 1001 })], 14)).toEqual([1, 1]);
    expect(runs([s({ seq: base, len: 100 }), s({ seq: base + 100, len: 100, dport: 8081 })], 14)).toEqual([1, 1]);
    // FIN, SYN, RST, URG, pure ACKs
    for (const f of [ACK | 0x01, 0x02, ACK | 0x04, ACK | 0x20]) {
      expect(runs([s({ seq: base, len: 100, flags: f }), s({ seq: base + 100, len: 100 })], 14)).toEqual([1, 1]);
      expect(runs([s({ seq: base, len: 100 }), s({ seq: base + 100, len: 100, flags: f })], 14)).toEqual([1, 1]);
    }
    expect(runs([s({ seq: base, len: 0 }), s({ seq: base, len: 0 })], 14)).toEqual([1, 1]);
    // IPv4 and IPv6 segments of "the same" flow, and a UDP datagram
    expect(runs([s({ seq: base, len: 100 }), segment(true, true, { seq: base + 100, len: 100 })], 14)).toEqual([1, 1]);
    const udp = buildEthernet({ destination: MAC_B, source: MAC_A, etherType: 0x0800 }, buildIPv4({ src: SRC4, dst: DST4, protocol: 17 }, new Uint8Array(108)));
    expect(runs([udp, udp], 14)).toEqual([1, 1]);
    // an IPv4 fragment
    const frag = buildEthernet({ destination: MAC_B, source: MAC_A, etherType: 0x0800 }, buildIPv4({ src: SRC4, dst: DST4, protocol: 6, moreFragments: true }, buildTcp({ srcPort: 1, dstPort: 2, seq: 1, flags: ACK, window: 1 }, new Uint8Array(64))));
    expect(runs([frag, frag], 14)).toEqual([1, 1]);
  });

  it('a run stops at 64 segments and at 64 KiB of IP', () => {
    expect(runs(burst(false, false, 100, 100), 0)).toEqual([64, 36]);
    expect(runs(burst(false, false, 4, 30000), 0)).toEqual([2, 2]);
  });

  it('random bit flips and truncations never throw, and whatever is merged splits back into its inputs', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 2, max: 12 }),
        fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat(7)), { maxLength: 6 }),
        fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 2 }),
        (v6, l2, n, flips, cuts) => {
          const l2Len = l2 ? 14 : 0;
          const frames = burst(v6, l2, n, 200, 150).map((f) => f.slice());
          for (const [pi, bi, bit] of flips) {
            const f = frames[pi % n]!;
            f[bi % f.length]! ^= 1 << bit;
          }
          for (const [pi, len] of cuts) {
            const i = pi % n;
            frames[i] = frames[i]!.subarray(0, len % (frames[i]!.length + 1));
          }
          const c = new TcpCoalescer(l2Len);
          const pkts = frames.map(asPkt);
          const hdr = new Uint8Array(10);
          for (let i = 0; i < n; ) {
            const k = c.coalesce(pkts, i, n, hdr, 0);
            if (k === 0) {
              i++;
              continue;
            }
            const sp = c.packet!;
            const segs: PacketBuffer[] = [];
            const m = segmentGso(sp, 0, sp.length, l2Len, v6 ? 0x86dd : 0x0800, hdr[1]!, hdr[4]! | (hdr[5]! << 8), segs);
            expect(m).toBe(k);
            // Payload bytes survive in order.
            for (let j = 0; j < k; j++) {
              const orig = frames[i + j]!;
              const seg = segs[j]!.toBytes();
              const hl = sp.length - (sp.length - (hdr[2]! | (hdr[3]! << 8)));
              expect(seg.subarray(hl)).toEqual(orig.subarray(orig.length - (seg.length - hl)));
            }
            i += k;
          }
        },
      ),
      { numRuns: 300, seed: 42 },
    );
  });
});

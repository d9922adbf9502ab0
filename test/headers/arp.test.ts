import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ArpHeader, buildArp, encodeArp, ARP_LENGTH, ARP_OP_REPLY, ARP_OP_REQUEST, type ArpFields } from '../../src/headers/arp.js';
import { buildEthernet, ETHERTYPE_ARP } from '../../src/headers/ethernet.js';
import { BROADCAST_MAC, formatIPv4, formatMAC, parseIPv4, parseMAC } from '../../src/core/address.js';
import { dissect, field, haveTshark } from '../helpers/tshark.js';

const macA = parseMAC('02:aa:bb:cc:dd:01');
const macB = parseMAC('02:aa:bb:cc:dd:02');
const A = parseIPv4('192.168.7.1');
const B = parseIPv4('192.168.7.200');

function frame(arp: Uint8Array, dst: Uint8Array, src: Uint8Array): Uint8Array {
  // Pad to the 60-byte Ethernet minimum, as a real NIC does.
  const f = buildEthernet({ destination: dst, source: src, etherType: ETHERTYPE_ARP }, arp);
  const out = new Uint8Array(Math.max(60, f.length));
  out.set(f);
  return out;
}

describe('ARP', () => {
  it('reads back a request and a reply', () => {
    const req = new ArpHeader(buildArp({ op: ARP_OP_REQUEST, senderHardwareAddress: macA, senderProtocolAddress: A, targetProtocolAddress: B }));
    expect(req.isValid()).toBe(true);
    expect([req.hardwareType, req.protocolType, req.hardwareLength, req.protocolLength]).toEqual([1, 0x0800, 6, 4]);
    expect(req.isRequest).toBe(true);
    expect(req.isReply).toBe(false);
    expect(formatMAC(req.senderHardwareAddress)).toBe('02:aa:bb:cc:dd:01');
    expect(formatIPv4(req.senderProtocolAddress)).toBe('192.168.7.1');
    expect(formatMAC(req.targetHardwareAddress)).toBe('00:00:00:00:00:00');
    expect(formatIPv4(req.buf, req.targetProtocolOffset)).toBe('192.168.7.200');
    expect(req.targetProtocolU32).toBe(0xc0a807c8);
    expect(req.senderProtocolU32).toBe(0xc0a80701);
    expect(req.isGratuitous).toBe(false);

    // Turn the request into the reply in place, as a responder does.
    req.op = ARP_OP_REPLY;
    req.targetHardwareAddress = req.senderHardwareAddress.slice();
    req.targetProtocolAddress = req.senderProtocolAddress.slice();
    req.senderHardwareAddress = macB;
    req.senderProtocolAddress = B;
    const rep = new ArpHeader(buildArp({ op: ARP_OP_REPLY, senderHardwareAddress: macB, senderProtocolAddress: B, targetHardwareAddress: macA, targetProtocolAddress: A }));
    expect(req.buf).toEqual(rep.buf);
    expect(rep.isReply).toBe(true);
    expect(formatMAC(rep.buf, rep.targetHardwareOffset)).toBe('02:aa:bb:cc:dd:01');
    expect(formatMAC(rep.buf, rep.senderHardwareOffset)).toBe('02:aa:bb:cc:dd:02');
    expect(formatIPv4(rep.buf, rep.senderProtocolOffset)).toBe('192.168.7.200');
  });

  it('isValid checks the fixed Ethernet/IPv4 fields and the length; padding is allowed', () => {
    const good = buildArp({ op: 1, senderHardwareAddress: macA, senderProtocolAddress: A, targetProtocolAddress: B });
    expect(new ArpHeader(good, 0, 27).isValid()).toBe(false);
    const padded = new Uint8Array(46);
    padded.set(good);
    expect(new ArpHeader(padded).isValid()).toBe(true);
    for (const [i, v] of [[0, 1], [1, 6], [2, 0x86], [3, 0xdd], [4, 8], [5, 16]] as const) {
      const b = good.slice();
      b[i] = v;
      expect(new ArpHeader(b).isValid(), `byte ${i} = ${v}`).toBe(false);
    }
    // encodeArp at an offset, return value.
    const buf = new Uint8Array(40).fill(0xff);
    expect(encodeArp(buf, 5, { op: 2, senderHardwareAddress: macA, senderProtocolAddress: A, targetProtocolAddress: B })).toBe(ARP_LENGTH);
    expect(new ArpHeader(buf, 5, ARP_LENGTH).isValid()).toBe(true);
    expect(Array.from(buf.subarray(23, 29))).toEqual([0, 0, 0, 0, 0, 0]); // target MAC zeroed
  });

  it('never throws on random bytes; round-trips arbitrary addresses', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.boolean(), (bytes, fix) => {
        if (fix && bytes.length >= 6) bytes.set([0, 1, 8, 0, 6, 4]);
        const a = new ArpHeader(bytes);
        if (!a.isValid()) return;
        expect(bytes.length).toBeGreaterThanOrEqual(28);
        void [a.op, a.senderHardwareAddress, a.targetProtocolU32, a.isGratuitous];
      }),
      { numRuns: 2000 },
    );
    const six = fc.uint8Array({ minLength: 6, maxLength: 6 });
    const four = fc.uint8Array({ minLength: 4, maxLength: 4 });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), six, four, six, four, (op, sha, spa, tha, tpa) => {
        const a = new ArpHeader(buildArp({ op, senderHardwareAddress: sha, senderProtocolAddress: spa, targetHardwareAddress: tha, targetProtocolAddress: tpa }));
        expect(a.isValid()).toBe(true);
        expect(a.op).toBe(op);
        expect([a.senderHardwareAddress, a.senderProtocolAddress, a.targetHardwareAddress, a.targetProtocolAddress]).toEqual([sha, spa, tha, tpa]);
      }),
      { numRuns: 500 },
    );
  });

  it.skipIf(!haveTshark())('is dissected by tshark as built', () => {
    const cases: ArpFields[] = [
      { op: ARP_OP_REQUEST, senderHardwareAddress: macA, senderProtocolAddress: A, targetProtocolAddress: B },
      { op: ARP_OP_REPLY, senderHardwareAddress: macB, senderProtocolAddress: B, targetHardwareAddress: macA, targetProtocolAddress: A },
      // Gratuitous ARP (announcement): sender and target IP equal.
      { op: ARP_OP_REQUEST, senderHardwareAddress: macB, senderProtocolAddress: B, targetProtocolAddress: B },
    ];
    const frames = cases.map((c, i) => frame(buildArp(c), i === 1 ? macA : BROADCAST_MAC, c.senderHardwareAddress));
    const d = dissect(frames, ['arp.hw.type', 'arp.proto.type', 'arp.hw.size', 'arp.proto.size', 'arp.opcode', 'arp.src.hw_mac', 'arp.src.proto_ipv4', 'arp.dst.hw_mac', 'arp.dst.proto_ipv4', 'arp.isgratuitous']);
    expect(d.expert).toEqual([]);
    cases.forEach((c, i) => {
      expect(field(d, i, 'arp.hw.type')).toBe('1');
      expect(field(d, i, 'arp.proto.type')).toBe('0x0800');
      expect(field(d, i, 'arp.hw.size')).toBe('6');
      expect(field(d, i, 'arp.proto.size')).toBe('4');
      expect(field(d, i, 'arp.opcode')).toBe(String(c.op));
      expect(field(d, i, 'arp.src.hw_mac')).toBe(formatMAC(c.senderHardwareAddress));
      expect(field(d, i, 'arp.src.proto_ipv4')).toBe(formatIPv4(c.senderProtocolAddress));
      expect(field(d, i, 'arp.dst.hw_mac')).toBe(formatMAC(c.targetHardwareAddress ?? new Uint8Array(6)));
      expect(field(d, i, 'arp.dst.proto_ipv4')).toBe(formatIPv4(c.targetProtocolAddress));
    });
    expect(field(d, 2, 'arp.isgratuitous')).toBe('1');
    expect(field(d, 0, 'arp.isgratuitous')).toBeUndefined(); // tshark only marks the gratuitous one
  });
});

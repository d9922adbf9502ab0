import { describe, expect, it } from 'vitest';
import {
  IFF_NO_PI,
  IFF_TAP,
  IFF_TUN,
  formatIPv4,
  formatMAC,
  parseIPv4,
  parseMAC,
} from '../../src/index.js';
import { ARP_OP_REPLY, ARP_OP_REQUEST, ArpHeader, buildArp, buildEthernet, checksum } from '../../src/headers/index.js';
import { LinkType } from '../../src/pcap/index.js';
import { dissect, field, haveTshark } from '../helpers/tshark.js';
import { drain, echoRequest, LOCAL, newStack, PEER } from './helpers.js';

const PEER_MAC = parseMAC('02:00:00:00:00:02');

/** Check an echo reply (at `o` in `b`) answers `req` byte for byte: addresses swapped, checksums valid. */
function expectEchoReply(b: Uint8Array, o: number, req: Uint8Array): void {
  const len = req.length;
  expect(b.length - o).toBe(len);
  expect(b[o]).toBe(0x45);
  expect((b[o + 2]! << 8) | b[o + 3]!).toBe(len);
  expect(b[o + 8]).toBe(64); // TTL: the stack's default
  expect(b[o + 9]).toBe(1);
  expect(formatIPv4(b, o + 12)).toBe(LOCAL);
  expect(formatIPv4(b, o + 16)).toBe(PEER);
  expect(checksum(b, o, 20)).toBe(0); // header checksum valid
  const i = o + 20;
  expect(b[i]).toBe(0); // echo reply
  expect(b[i + 1]).toBe(0);
  expect(checksum(b, i, len - 20)).toBe(0); // ICMP checksum valid
  // identifier, sequence and data as sent
  expect([...b.subarray(i + 4, o + len)]).toEqual([...req.subarray(24)]);
}

describe('tun device: ping through the stack', () => {
  it('TUN: an echo request written as raw bytes comes back as an echo reply', () => {
    const { stack } = newStack();
    const tun = stack.openTun();
    tun.setIff({ name: 'tun0', flags: IFF_TUN | IFF_NO_PI });
    tun.up();
    tun.addAddress(`${LOCAL}/24`);
    const req = echoRequest({ ident: 0xbeef, seq: 7 });
    expect(tun.write(req)).toBe(req.length);
    const [reply, ...rest] = drain(tun);
    expect(rest).toEqual([]);
    expectEchoReply(reply!, 0, req);
  });

  it('TAP: the stack ARPs for the sender first; answered, the echo reply follows', () => {
    const { stack, clock } = newStack();
    const tap = stack.openTun();
    tap.setIff({ name: 'tap0', flags: IFF_TAP | IFF_NO_PI });
    tap.up();
    tap.addAddress(`${LOCAL}/24`);
    drain(tap); // the gratuitous ARP sent when the address was added
    const mac = tap.mac;
    const req = echoRequest({ ident: 0x0101, seq: 2 });
    tap.write(buildEthernet({ destination: mac, source: PEER_MAC, etherType: 0x0800 }, req));

    const [arpFrame, ...none] = drain(tap);
    expect(none).toEqual([]);
    expect(formatMAC(arpFrame!, 0)).toBe('ff:ff:ff:ff:ff:ff');
    expect(formatMAC(arpFrame!, 6)).toBe(formatMAC(mac));
    expect((arpFrame![12]! << 8) | arpFrame![13]!).toBe(0x0806);
    const arp = new ArpHeader(arpFrame!, 14);
    expect(arp.isValid()).toBe(true);
    expect(arp.op).toBe(ARP_OP_REQUEST);
    expect(formatIPv4(arpFrame!, 14 + 24)).toBe(PEER); // target protocol address
    expect(formatIPv4(arpFrame!, 14 + 14)).toBe(LOCAL); // sender protocol address

    // Answer the ARP request from the test.
    const answer = buildArp({
      op: ARP_OP_REPLY,
      senderHardwareAddress: PEER_MAC,
      senderProtocolAddress: parseIPv4(PEER),
      targetHardwareAddress: mac,
      targetProtocolAddress: parseIPv4(LOCAL),
    });
    tap.write(buildEthernet({ destination: mac, source: PEER_MAC, etherType: 0x0806 }, answer));
    clock.advance(1);
    const [frame, ...more] = drain(tap);
    expect(more).toEqual([]);
    expect(formatMAC(frame!, 0)).toBe(formatMAC(PEER_MAC));
    expect(formatMAC(frame!, 6)).toBe(formatMAC(mac));
    expect((frame![12]! << 8) | frame![13]!).toBe(0x0800);
    expectEchoReply(frame!, 14, req);
  });

  it.skipIf(!haveTshark())('tshark reads the replies as valid ICMP with good checksums', () => {
    const { stack } = newStack();
    const tun = stack.openTun();
    tun.setIff({ flags: IFF_TUN | IFF_NO_PI });
    tun.up();
    tun.addAddress(`${LOCAL}/24`);
    const reqs = [1, 2, 3].map((seq) => echoRequest({ seq, data: new Uint8Array(seq * 100).fill(seq) }));
    for (const r of reqs) tun.write(r);
    const replies = drain(tun);
    const d = dissect([...reqs, ...replies], ['icmp.type', 'icmp.seq', 'icmp.checksum.status', 'ip.checksum.status', 'ip.src', 'icmp.resp_to'], { linkType: LinkType.RAW });
    expect(d.expert).toEqual([]);
    for (let k = 0; k < 3; k++) {
      expect(field(d, 3 + k, 'icmp.type')).toBe('0');
      expect(field(d, 3 + k, 'icmp.checksum.status')).toBe('1');
      expect(field(d, 3 + k, 'ip.checksum.status')).toBe('1');
      expect(field(d, 3 + k, 'ip.src')).toBe(LOCAL);
      expect(field(d, 3 + k, 'icmp.resp_to')).toBe(String(k + 1));
    }
  });
});

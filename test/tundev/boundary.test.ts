/**
 * The virtual tun device as a boundary (issue 11): what a guest on the other side of a TAP can
 * make the stack do, and what a persistent interface keeps between opens. Linux is the reference:
 * frames for another host's MAC are dropped (PACKET_OTHERHOST) unless the interface is
 * promiscuous; packets sent while no file is attached are discarded, and the last close empties
 * the queue.
 */
import { describe, expect, it } from 'vitest';
import {
  IFF_NO_PI,
  IFF_TAP,
  IFF_TUN,
  parseIPv4,
  parseMAC,
  type TunDevice,
} from '../../src/index.js';
import { buildArp, buildEthernet } from '../../src/headers/index.js';
import { drain, echoRequest, errno, LOCAL, newStack, PEER } from './helpers.js';

const PEER_MAC = parseMAC('02:00:00:00:00:02');
const OTHER_MAC = parseMAC('02:00:00:00:00:99');
const BROADCAST = parseMAC('ff:ff:ff:ff:ff:ff');

function arpRequest(dst: Uint8Array, srcMac = PEER_MAC): Uint8Array {
  const arp = buildArp({ op: 1, senderHardwareAddress: srcMac, senderProtocolAddress: parseIPv4(PEER), targetProtocolAddress: parseIPv4(LOCAL) });
  return buildEthernet({ destination: dst, source: srcMac, etherType: 0x0806 }, arp);
}

function echoFrame(dst: Uint8Array, srcMac = PEER_MAC, seq = 1): Uint8Array {
  return buildEthernet({ destination: dst, source: srcMac, etherType: 0x0800 }, echoRequest({ seq }));
}

function tap(): { tap: TunDevice; mac: Uint8Array; stack: ReturnType<typeof newStack>['stack'] } {
  const { stack } = newStack();
  const t = stack.openTun();
  t.setIff({ name: 'tap0', flags: IFF_TAP | IFF_NO_PI });
  t.up();
  t.addAddress(`${LOCAL}/24`);
  drain(t);
  return { tap: t, mac: t.mac, stack };
}

/** EtherTypes of the frames read, with the ICMP type for IPv4 (0 = echo reply). */
function kinds(frames: Uint8Array[]): string[] {
  return frames.map((f) => {
    const type = (f[12]! << 8) | f[13]!;
    if (type === 0x0806) return `arp op ${f[21]}`;
    if (type === 0x0800) return `ipv4 icmp ${f[14 + 20]}`;
    return `0x${type.toString(16)}`;
  });
}

describe('TAP: frames for another host (PACKET_OTHERHOST)', () => {
  it('drops ARP and IPv4 addressed to another unicast MAC, answers its own and broadcast', () => {
    const { tap: t, mac, stack } = tap();
    t.write(arpRequest(OTHER_MAC));
    expect(drain(t)).toEqual([]);
    t.write(arpRequest(BROADCAST));
    expect(kinds(drain(t))).toEqual(['arp op 2']);
    // The peer is now known: an echo to our MAC is answered, one to another MAC is not.
    t.write(echoFrame(OTHER_MAC, PEER_MAC, 1));
    expect(drain(t)).toEqual([]);
    t.write(echoFrame(mac, PEER_MAC, 2));
    expect(kinds(drain(t))).toEqual(['ipv4 icmp 0']);
    expect(stack.nic('tap0')!.stats.rxDroppedOtherHost).toBe(2);
  });

  it('takes them when the NIC is promiscuous', () => {
    const { tap: t, stack } = tap();
    stack.nic('tap0')!.promiscuous = true;
    t.write(arpRequest(OTHER_MAC));
    expect(kinds(drain(t))).toEqual(['arp op 2']);
    t.write(echoFrame(OTHER_MAC));
    expect(kinds(drain(t))).toEqual(['ipv4 icmp 0']);
    expect(stack.nic('tap0')!.stats.rxDroppedOtherHost).toBe(0);
  });

  it('answers a peer whose MAC has the multicast bit (as Linux: gVisor tests use bb:bb:..)', () => {
    const { tap: t, mac } = tap();
    const odd = parseMAC('bb:bb:bb:bb:bb:bb');
    t.write(arpRequest(BROADCAST, odd));
    const arp = drain(t);
    expect(kinds(arp)).toEqual(['arp op 2']);
    expect(arp[0]!.subarray(0, 6)).toEqual(odd);
    t.write(echoFrame(mac, odd, 3));
    const reply = drain(t);
    expect(kinds(reply)).toEqual(['ipv4 icmp 0']);
    expect(reply[0]!.subarray(0, 6)).toEqual(odd);
  });
});

describe('persistent single-queue interface with no file attached', () => {
  for (const flags of [IFF_TUN | IFF_NO_PI, IFF_TAP | IFF_NO_PI]) {
    it(`discards what the stack sends, and the last close empties the queue (${flags & IFF_TAP ? 'TAP' : 'TUN'})`, () => {
      const { stack } = newStack();
      const a = stack.openTun();
      a.setIff({ name: 'p0', flags });
      a.up();
      a.addAddress(`${LOCAL}/24`);
      a.setPersist(true);
      const udp = stack.dgram.createSocket('udp4');
      udp.bind(5000);
      const send = (n: number): void => {
        for (let i = 0; i < n; i++) udp.send(new Uint8Array(10), 9, PEER);
      };
      // Queued while attached, then the last file goes: the queue is emptied.
      if (flags & IFF_TAP) {
        // Resolve the peer first, so the datagrams are sent rather than held for ARP.
        a.write(arpRequest(BROADCAST));
      }
      drain(a);
      send(3);
      expect(a.queue!.length).toBe(3);
      const q = a.queue!;
      a.close();
      expect(q.length).toBe(0);
      // Sent while nobody has the interface open: dropped, counted.
      const ep = stack.openTun();
      const before = stack.nic('p0')!.endpoint;
      expect(before).toBeDefined();
      send(5);
      const b = ep;
      b.setIff({ name: 'p0', flags });
      expect(errno(() => b.read())).toBe('EAGAIN');
      expect(b.endpoint!.stats.txNoCarrier + b.endpoint!.stats.txNoQueue).toBeGreaterThanOrEqual(5);
      // Attached again: packets flow.
      send(1);
      expect(b.read().length).toBeGreaterThan(0);
      udp.close();
      b.close();
    });
  }
});

/**
 * HostPolicy: which guest destinations are the host. Checked against the forms Linux delivers
 * locally, and through SandboxNetwork.mapDestination, which every relay (TCP, UDP, ICMP) asks.
 */
import type { NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ManualClock, Stack, Wire, parseIP, parseMAC } from '../../src/index.js';
import { PingRelay } from '../../src/sandbox/icmp-relay.js';
import { HostPolicy, embeddedIPv4, isLocalHostAddress } from '../../src/sandbox/host-policy.js';
import { SandboxNetwork } from '../../src/sandbox/network.js';

/** Every form Linux treats as the local host, whatever its interfaces. */
const LOCAL = [
  '0.0.0.0',
  '0.1.2.3',
  '0.255.255.255',
  '127.0.0.1',
  '127.1.2.3',
  '127.255.255.255',
  '::',
  '::1',
  '0:0:0:0:0:0:0:1',
  '::ffff:127.0.0.1',
  '::ffff:7f01:203',
  '::ffff:0.0.0.0',
  '::ffff:0.1.2.3',
  '::127.0.0.1',
  '::0.0.0.2',
  '::7f00:1',
];
const NOT_LOCAL = ['1.0.0.0', '126.255.255.255', '128.0.0.1', '198.18.0.1', '10.0.2.2', '::2:0:0', '::1:0:0:1', '2001:db8::1', '::fffe:127.0.0.1', '::ffff:198.18.0.1', 'fe80::1', '1::'];

function iface(address: string, netmask: string, family: 'IPv4' | 'IPv6'): NetworkInterfaceInfo {
  return family === 'IPv4'
    ? { address, netmask, family, mac: '00:00:00:00:00:00', internal: false, cidr: null }
    : { address, netmask, family, mac: '00:00:00:00:00:00', internal: false, cidr: null, scopeid: 0 };
}

describe('isLocalHostAddress', () => {
  it('is true for 0/8, 127/8, ::, ::1 and their IPv4-mapped and IPv4-compatible forms', () => {
    expect(LOCAL.filter((a) => !isLocalHostAddress(a))).toEqual([]);
  });
  it('is false for other addresses, and treats unparsable input as the host', () => {
    expect(NOT_LOCAL.filter((a) => isLocalHostAddress(a))).toEqual([]);
    expect(['', 'localhost', '1.2.3', '::g', '300.1.1.1'].map((a) => isLocalHostAddress(a))).toEqual([true, true, true, true, true]);
  });
  it('takes bytes too', () => {
    expect(isLocalHostAddress(Uint8Array.of(127, 0, 0, 1))).toBe(true);
    expect(isLocalHostAddress(new Uint8Array(16))).toBe(true);
    expect(isLocalHostAddress(Uint8Array.of(198, 18, 0, 1))).toBe(false);
    expect(embeddedIPv4(Uint8Array.of(0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1))).toBeNull();
  });
});

describe('HostPolicy', () => {
  const ifaces = {
    lo: [iface('127.0.0.1', '255.0.0.0', 'IPv4'), iface('::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'IPv6')],
    eth0: [iface('198.18.5.6', '255.255.255.0', 'IPv4'), iface('2001:db8::5', 'ffff:ffff:ffff:ffff::', 'IPv6')],
  };

  it('default (as slirp4netns): the loopback forms are the host, interface addresses are not', () => {
    const p = new HostPolicy({ interfaces: () => ifaces });
    expect(LOCAL.every((a) => p.isHost(a))).toBe(true);
    expect(['198.18.5.6', '2001:db8::5', '::ffff:198.18.5.6'].map((a) => p.isHost(a))).toEqual([false, false, false]);
  });

  it('hostAddresses false: the interface addresses in every form, and their subnet broadcast, are the host too', () => {
    const p = new HostPolicy({ hostAddresses: false, interfaces: () => ifaces });
    expect(['198.18.5.6', '2001:db8::5', '2001:db8:0:0::5', '::ffff:198.18.5.6', '::198.18.5.6', '198.18.5.255'].map((a) => p.isHost(a))).toEqual([true, true, true, true, true, true]);
    expect(['198.18.5.7', '2001:db8::6', '198.18.6.255'].map((a) => p.isHost(a))).toEqual([false, false, false]);
    expect(LOCAL.every((a) => p.isHost(a))).toBe(true);
  });

  it('re-reads the interface list once refreshMs has passed, and keeps the last one if reading fails', () => {
    let t = 0;
    let reads = 0;
    let list: NodeJS.Dict<NetworkInterfaceInfo[]> = ifaces;
    const p = new HostPolicy({
      hostAddresses: false,
      refreshMs: 1000,
      now: () => t,
      interfaces: () => {
        reads++;
        if (list === null) throw new Error('no');
        return list;
      },
    });
    expect(p.isHost('198.18.9.9')).toBe(false);
    list = { eth1: [iface('198.18.9.9', '255.255.255.255', 'IPv4')] };
    t = 999;
    expect(p.isHost('198.18.9.9')).toBe(false);
    t = 1000;
    expect(p.isHost('198.18.9.9')).toBe(true);
    expect(reads).toBe(2);
    list = null as unknown as NodeJS.Dict<NetworkInterfaceInfo[]>;
    t = 5000;
    expect(p.isHost('198.18.9.9')).toBe(true);
  });
});

describe('SandboxNetwork.mapDestination (what the TCP, UDP and ICMP relays relay)', () => {
  function net(options: { hostLoopback?: boolean; hostAddresses?: boolean }): SandboxNetwork {
    const wire = new Wire({ mtu: 1500, linkAddressA: parseMAC('52:55:0a:00:02:02') });
    return new SandboxNetwork({ link: wire.a, icmp: 'gateway', dnsUpstream: [], clock: new ManualClock(), ...options });
  }

  it('never relays a destination that is the host, with or without host loopback', () => {
    for (const hostLoopback of [true, false]) {
      const n = net({ hostLoopback });
      try {
        const v4 = LOCAL.filter((a) => !a.includes(':'));
        const v6 = LOCAL.filter((a) => a.includes(':'));
        expect(v4.map((a) => n.mapDestination(4, a))).toEqual(v4.map(() => null));
        expect(v6.map((a) => n.mapDestination(6, a))).toEqual(v6.map(() => null));
        // Mapped/compatible forms of any IPv4 address are not valid on the wire: not relayed either.
        expect(['::ffff:198.18.0.1', '::198.18.0.1', '::ffff:10.0.2.2'].map((a) => n.mapDestination(6, a))).toEqual([null, null, null]);
        // IPv4 multicast and broadcast are not relayed (a host socket would loop them back).
        expect(['224.0.0.1', '239.1.2.3', '255.255.255.255'].map((a) => n.mapDestination(4, a))).toEqual([null, null, null]);
        expect([n.mapDestination(4, '10.0.2.2'), n.mapDestination(6, 'fd00::2')]).toEqual(hostLoopback ? ['127.0.0.1', '::1'] : [null, null]);
        expect([n.mapDestination(4, '198.18.0.1'), n.mapDestination(6, '2001:db8::1')]).toEqual(['198.18.0.1', '2001:db8::1']);
      } finally {
        n.close();
      }
    }
  });

  it('hostAddresses false refuses the gateway and an address of this host', () => {
    const n = net({ hostAddresses: false });
    try {
      const own = [...n.hostPolicy.ownAddresses()].find((a) => !isLocalHostAddress(a));
      expect(n.mapDestination(4, '10.0.2.2')).toBeNull();
      if (own !== undefined) expect(n.mapDestination(own.includes(':') ? 6 : 4, own)).toBeNull();
      expect(n.mapDestination(4, '198.18.200.200')).toBe('198.18.200.200');
    } finally {
      n.close();
    }
  });
});

describe('SandboxNetwork with hostAddresses false', () => {
  it('refuses an address the host gains once its interface list is re-read (1 s on the stack clock), despite remembered decisions', () => {
    const clock = new ManualClock();
    let list: NodeJS.Dict<NetworkInterfaceInfo[]> = { lo: [iface('127.0.0.1', '255.0.0.0', 'IPv4')] };
    const wire = new Wire({ mtu: 1500, linkAddressA: parseMAC('52:55:0a:00:02:02') });
    const n = new SandboxNetwork({ link: wire.a, icmp: 'gateway', dnsUpstream: [], clock, hostAddresses: false, hostInterfaces: () => list });
    try {
      expect(n.mapDestination(4, '198.18.9.9')).toBe('198.18.9.9');
      list = { eth1: [iface('198.18.9.9', '255.255.255.255', 'IPv4'), iface('2001:db8::99', 'ffff:ffff:ffff:ffff::', 'IPv6')] };
      clock.advance(999);
      expect(n.mapDestination(4, '198.18.9.9')).toBe('198.18.9.9');
      clock.advance(1);
      expect([n.mapDestination(4, '198.18.9.9'), n.mapDestination(6, '2001:db8::99'), n.mapDestination(4, '198.18.9.8')]).toEqual([null, null, '198.18.9.8']);
    } finally {
      n.close();
    }
  });
});

describe('PingRelay without a map', () => {
  it('never pings the host itself for the guest', () => {
    const stack = new Stack({ clock: new ManualClock() });
    const relay = new PingRelay(stack, { command: 'true' });
    try {
      for (const a of LOCAL) {
        const dst = parseIP(a);
        const v6 = dst.length === 16;
        const datagram = new Uint8Array(v6 ? 48 : 28);
        datagram[0] = v6 ? 0x60 : 0x45;
        datagram.set(dst, v6 ? 24 : 16);
        relay.handle({ family: v6 ? 6 : 4, datagram, icmpOffset: v6 ? 40 : 20 });
      }
      expect(relay.stats).toMatchObject({ requests: LOCAL.length, notRelayed: LOCAL.length });
    } finally {
      relay.close();
      stack.close();
    }
  });
});

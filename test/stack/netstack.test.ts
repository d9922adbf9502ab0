/**
 * Explicit wiring (issue 13): NetStack knows only the protocols it is given; PortableStack adds the
 * usual ones and the typed conveniences; the package's Stack adds Node's surfaces as members. The
 * raw sockets' hook is attached and detached, never assigned.
 */
import { totalmem } from 'node:os';
import { describe, expect, it } from 'vitest';
import {
  ChannelEndpoint,
  ManualClock,
  NetStack,
  PortableStack,
  Stack,
  arpFactory,
  defaultTcpMemory,
  ipv4Factory,
  udpFactory,
  usualNetworkProtocols,
  usualTransportProtocols,
  type TcpProtocol,
} from '../../src/index.js';
import { buildIPv4, buildUdp } from '../../src/headers/index.js';
import { parseIPv4 } from '../../src/core/address.js';

describe('NetStack: only the protocols it is given', () => {
  it('with none, it drops every packet as an unknown protocol, and counts it', () => {
    const s = new NetStack({ clock: new ManualClock(), seed: 1 });
    expect(s.networkProtocol(0x0800)).toBeUndefined();
    expect(s.transportProtocol(6)).toBeUndefined();
    const link = new ChannelEndpoint({ mtu: 1500 });
    const nic = s.createNIC({ name: 'ip0', endpoint: link });
    const A = parseIPv4('198.18.0.1');
    const B = parseIPv4('198.18.0.2');
    link.injectBytes(buildIPv4({ src: A, dst: B, protocol: 17 }, buildUdp({ srcPort: 1, dstPort: 2, pseudoHeader: { src: A, dst: B } }, new Uint8Array(4))));
    expect(nic.stats.rxDroppedUnknownProtocol).toBe(1);
    expect(() => s.requireTransport(17)).toThrow(/EPROTONOSUPPORT/);
    s.close();
  });

  it('IPv4 + ARP + UDP only: no TCP, no IPv6, no Node surfaces', () => {
    const s = new NetStack({ clock: new ManualClock(), networkProtocols: [ipv4Factory(), arpFactory()], transportProtocols: [udpFactory()] });
    expect(s.networkProtocol(0x0800)).toBeDefined();
    expect(s.networkProtocol(0x86dd)).toBeUndefined();
    expect(s.transportProtocol(17)).toBeDefined();
    expect(s.transportProtocol(6)).toBeUndefined();
    expect('tcp' in s).toBe(false);
    expect('net' in s).toBe(false);
    s.close();
  });

  it('the usual lists are what PortableStack and Stack carry', () => {
    const p = new PortableStack({ clock: new ManualClock() });
    const st = new Stack({ clock: new ManualClock() });
    const n = new NetStack({ clock: new ManualClock(), networkProtocols: usualNetworkProtocols(), transportProtocols: usualTransportProtocols() });
    for (const s of [p, st, n]) {
      expect([0x0800, 0x0806, 0x86dd].map((x) => s.networkProtocol(x) !== undefined)).toEqual([true, true, true]);
      expect([17, 6, 1, 58].map((x) => s.transportProtocol(x) !== undefined)).toEqual([true, true, true, true]);
    }
    expect('net' in p).toBe(false);
    expect(st).toBeInstanceOf(PortableStack);
    expect(st).toBeInstanceOf(NetStack);
    // Node's surfaces are members, made once per stack.
    expect(st.net).toBe(st.net);
    expect(st.dgram).toBe(st.dgram);
    expect(st.dns).toBe(st.dns);
    expect(new Stack({ clock: new ManualClock() }).net).not.toBe(st.net);
    for (const s of [p, st, n]) s.close();
  });
});

describe('TCP options', () => {
  it('tcp.totalMemory sizes the default budget (Linux tcp_mem proportions); a bad value is EINVAL', () => {
    const s = new Stack({ clock: new ManualClock(), tcp: { totalMemory: 64 * 1024 ** 2 } });
    const tcp = s.requireTransport<TcpProtocol>(6);
    // 64 MiB / 16 = 4 MiB pressure, low 3/4 of it, high twice low.
    expect([tcp.memory.low, tcp.memory.pressure, tcp.memory.high]).toEqual([3 * 1024 ** 2, 4 * 1024 ** 2, 6 * 1024 ** 2]);
    s.close();
    expect(() => new Stack({ tcp: { totalMemory: Number.NaN } })).toThrow(/EINVAL.*totalMemory/);
    expect(() => new Stack({ tcp: 5 as unknown as object })).toThrow(/EINVAL/);
  });

  it("Stack sizes it from the machine (os.totalmem()), PortableStack from 4 GiB", () => {
    const st = new Stack({ clock: new ManualClock() });
    const p = new PortableStack({ clock: new ManualClock() });
    expect(st.requireTransport<TcpProtocol>(6).memory.pressure).toBe(defaultTcpMemory(totalmem()).pressure);
    expect(p.requireTransport<TcpProtocol>(6).memory.pressure).toBe(defaultTcpMemory(4 * 1024 ** 3).pressure);
    st.close();
    p.close();
  });
});

describe('raw input hook', () => {
  it('raw sockets attach it while open and detach it when the last closes; a second hook is EBUSY', () => {
    const s = new Stack({ clock: new ManualClock() });
    expect(s.rawInput).toBeNull();
    const r1 = s.raw({ family: 4, protocol: 253 });
    const r2 = s.raw({ family: 4, protocol: 254 });
    const hook = s.rawInput;
    expect(hook).not.toBeNull();
    const other = (): boolean => false;
    expect(() => s.attachRawInput(other)).toThrow(/EBUSY/);
    s.detachRawInput(other); // not the attached one: nothing happens
    expect(s.rawInput).toBe(hook);
    r1.close();
    expect(s.rawInput).toBe(hook);
    r2.close();
    expect(s.rawInput).toBeNull();
    s.attachRawInput(other);
    expect(s.rawInput).toBe(other);
    s.close();
  });
});

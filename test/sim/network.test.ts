import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gilbertElliottMeanLoss } from '../../src/link/fault.js';
import { Network } from '../../src/sim/index.js';
import { PcapReader } from '../../src/pcap/index.js';
import { CHECKSUM_PREFS, haveTshark } from '../helpers/tshark.js';

const dir = mkdtempSync(join(tmpdir(), 'tunstack-sim-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('Network: building topologies', () => {
  it('assigns a /24 per link, MACs per host and interface, and routes through a chain of routers', async () => {
    const net = new Network({ seed: 1 });
    const a = net.host('a');
    const r1 = net.router('r1');
    const r2 = net.router('r2');
    const b = net.host('b');
    net.link(a, r1);
    net.link(r1, r2);
    net.link(r2, b);
    expect(a.interfaces.map((i) => i.cidr)).toEqual(['10.0.1.1/24']);
    expect(r1.interfaces.map((i) => i.cidr)).toEqual(['10.0.1.2/24', '10.0.2.1/24']);
    expect(r2.interfaces.map((i) => i.cidr)).toEqual(['10.0.2.2/24', '10.0.3.1/24']);
    expect(b.address).toBe('10.0.3.2');
    expect(r1.interfaces.map((i) => i.mac)).toEqual(['02:00:00:00:02:00', '02:00:00:00:02:01']);
    const r = await net.runUntil(a.ping(b));
    expect(r.from).toBe('10.0.3.2');
    expect(r.ttl).toBe(62);
    const back = await net.runUntil(b.ping(a));
    expect(back.ttl).toBe(62);
    // The router in the middle learnt both far subnets; hosts got routes for the subnets beyond.
    const routes = (h: typeof a): string[] =>
      h.stack.routes.all.filter((e) => !e.connected && e.destination.length === 4).map((e) => `${e.destination.join('.')}/${e.prefixLength}`).sort();
    expect(routes(a)).toEqual(['10.0.2.0/24', '10.0.3.0/24']);
    expect(routes(r1)).toEqual(['10.0.3.0/24']);
    expect(routes(r2)).toEqual(['10.0.1.0/24']);
    net.close();
  });

  it('takes given subnets and addresses, and keeps routes added by hand', async () => {
    const net = new Network({ seed: 2 });
    const a = net.host('a');
    const r = net.router('r');
    const b = net.host('b');
    net.link(a, r, { subnet: '192.168.7.0/24' });
    net.link(r, b, { a: '172.16.0.1/30', b: '172.16.0.2/30' });
    expect(a.address).toBe('192.168.7.1');
    expect(b.interfaces[0]!.cidr).toBe('172.16.0.2/30');
    b.stack.addRoute({ destination: '0.0.0.0/0', gateway: '172.16.0.1', nic: 'eth0' });
    net.prepare();
    const auto = b.stack.routes.all.filter((e) => !e.connected && e.destination.length === 4).map((e) => `${e.destination.join('.')}/${e.prefixLength}`);
    expect(auto.sort()).toEqual(['0.0.0.0/0', '192.168.7.0/24']);
    expect((await net.runUntil(a.ping(b))).ttl).toBe(63);
    expect(() => net.link(a, a)).toThrow(/two different hosts/);
    expect(() => net.host('a')).toThrow(/exists/);
    net.close();
  });

  it('gives each link an IPv6 /64 too, and ICMPv6 echo crosses a router', async () => {
    const net = new Network({ seed: 3 });
    const a = net.host('a');
    const r = net.router('r');
    const b = net.host('b');
    net.link(a, r);
    net.link(r, b);
    expect(a.address6).toBe('fd00:0:0:1::1');
    expect(b.address6).toBe('fd00:0:0:2::2');
    const reply = await net.runUntil(a.ping6(b));
    expect(reply.from).toBe('fd00:0:0:2::2');
    expect(reply.ttl).toBe(63);
    net.close();
  });
});

describe('Network: ports to the outside', () => {
  it('a virtual TAP device plugged into a router port is reachable from the rest of the network', async () => {
    const { Stack } = await import('../../src/index.js');
    const { IFF_NO_PI, IFF_TAP } = await import('../../src/tundev/constants.js');
    const { PacketBuffer } = await import('../../src/core/packet.js');
    const net = new Network({ seed: 14 });
    const a = net.host('a');
    const r = net.router('r');
    net.link(a, r, { latencyMs: 1 });
    const port = net.port(r, { latencyMs: 2 });
    expect([port.cidr, port.cidr6, port.gateway, port.gateway6]).toEqual(['10.0.2.2/24', 'fd00:0:0:2::2/64', '10.0.2.1', 'fd00:0:0:2::1']);
    expect(port.iface.peer).toBe(null);
    // a learnt the port's subnets through the router.
    const dests = a.stack.routes.all.filter((e) => !e.connected).map((e) => `${e.destination.length === 4 ? e.destination.join('.') : 'v6'}/${e.prefixLength}`);
    expect(dests).toContain('10.0.2.0/24');
    expect(dests).toContain('v6/64');
    const vm = new Stack({ clock: net.clock, seed: 5 });
    const tap = vm.openTun();
    tap.setIff({ name: 'tap0', flags: IFF_TAP | IFF_NO_PI });
    tap.addAddress(port.cidr);
    tap.nic.addAddress(port.cidr6, { nodad: true });
    tap.up();
    vm.addRoute({ destination: '0.0.0.0/0', gateway: port.gateway, nic: 'tap0' });
    vm.addRoute({ destination: '::/0', gateway: port.gateway6, nic: 'tap0' });
    const buf = new Uint8Array(2048);
    tap.on('readable', () => {
      for (;;) {
        let n: number;
        try {
          n = tap.readInto(buf, 0);
        } catch {
          return;
        }
        port.end.writePackets([PacketBuffer.fromPayload(buf.subarray(0, n))]);
      }
    });
    port.end.attach({ deliverNetworkPacket: (_p, pkt) => void tap.write(pkt.data.subarray(pkt.start, pkt.end)) });
    const p4 = await net.runUntil(a.ping(port.address));
    expect(p4.ttl).toBe(63);
    expect(p4.rttMs).toBeGreaterThan(6); // the first waits for ARP
    const again = await net.runUntil(a.ping(port.address));
    expect(again.rttMs).toBe(6);
    const p6 = await net.runUntil(vm.ping(a.address6));
    expect(p6.ttl).toBe(63);
    expect(port.link.stats.bToA.offered).toBeGreaterThanOrEqual(4);
    tap.close();
    vm.close();
    net.close();
  });
});

describe('Network: link properties', () => {
  it('delays by exactly the latency each way', async () => {
    const net = new Network({ seed: 4, ipv6: false });
    const a = net.host('a');
    const r = net.router('r');
    const b = net.host('b');
    net.link(a, r, { latencyMs: 7 });
    net.link(r, b, { latencyMs: 3 });
    await net.runUntil(a.ping(b)); // resolves ARP on both hops
    const p = await net.runUntil(a.ping(b));
    expect(p.rttMs).toBeCloseTo(20, 9);
    net.close();
  });

  it('serializes at the link rate: n datagrams of s bytes arrive n*s*8/rate after the first bit', async () => {
    const net = new Network({ seed: 5, ipv6: false });
    const a = net.host('a');
    const b = net.host('b');
    net.link(a, b, { rateBps: 1_000_000, latencyMs: 5 });
    await net.runUntil(a.ping(b));
    const rx = b.stack.udp();
    rx.bind(null, 9);
    const arrivals: number[] = [];
    rx.on('readable', () => {
      while (rx.recv() !== null) arrivals.push(net.now);
    });
    const tx = a.stack.udp();
    const payload = new Uint8Array(1000 - 42); // 1000-byte frames
    const t0 = net.now;
    for (let i = 0; i < 20; i++) tx.send(payload, 9, b.address);
    await net.runUntilIdle(10_000);
    expect(arrivals).toHaveLength(20);
    // Each 1000-byte frame takes 8 ms at 1 Mbit/s, plus 5 ms of latency.
    arrivals.forEach((t, i) => expect(t - t0).toBeCloseTo(5 + 8 * (i + 1), 6));
    net.close();
  });

  it('carries packets up to the link MTU; bigger ones are fragmented, or refused with DF', async () => {
    const net = new Network({ seed: 6, ipv6: false });
    const a = net.host('a');
    const b = net.host('b');
    net.link(a, b, { mtu: 1000 });
    expect(a.interfaces[0]!.nic.mtu).toBe(1000);
    const big = await net.runUntil(a.ping(b, { size: 1500 }));
    expect(big.bytes).toBe(1508);
    expect(b.interfaces[0]!.nic.stats.rxPackets).toBeGreaterThanOrEqual(3); // ARP + 2 fragments
    await expect(net.runUntil(a.ping(b, { size: 1500, dontFragment: true }))).rejects.toMatchObject({ code: 'EMSGSIZE' });
    net.close();
  });

  it('10% loss over 100k packets loses 10% +- 0.5%, and every packet not lost arrives', async () => {
    const net = new Network({ seed: 7, ipv6: false });
    const a = net.host('a');
    const b = net.host('b');
    const link = net.link(a, b, { loss: 0.1 });
    await net.runUntil(a.ping(b, { timeoutMs: 60_000 }).catch(() => a.ping(b)));
    link.configure({ loss: 0.1 });
    const rx = b.stack.udp();
    rx.bind(null, 9);
    let received = 0;
    rx.on('readable', () => {
      while (rx.recv() !== null) received++;
    });
    const tx = a.stack.udp();
    const before = { ...link.stats.aToB };
    const payload = new Uint8Array(16);
    for (let i = 0; i < 100_000; i++) {
      tx.send(payload, 9, b.address);
      if (i % 1000 === 999) net.runSync(net.now + 1);
    }
    await net.runUntilIdle(10_000);
    const offered = link.stats.aToB.offered - before.offered;
    const lost = link.stats.aToB.lost - before.lost;
    // The 100k datagrams, and at most a couple of ARP refreshes.
    const extra = offered - 100_000;
    expect(extra).toBeGreaterThanOrEqual(0);
    expect(extra).toBeLessThanOrEqual(3);
    expect(lost / offered).toBeGreaterThan(0.095);
    expect(lost / offered).toBeLessThan(0.105);
    expect(Math.abs(received - (100_000 - lost))).toBeLessThanOrEqual(extra);
    net.close();
  });

  it('burst loss, duplication and corruption follow their configuration', async () => {
    const net = new Network({ seed: 8, ipv6: false });
    const a = net.host('a');
    const b = net.host('b');
    const ge = { p: 0.01, r: 0.2 };
    const link = net.link(a, b);
    await net.runUntil(a.ping(b));
    link.configure({ burstLoss: ge, duplicate: 0.05, corrupt: 0.02 }, 'aToB');
    const rx = b.stack.udp();
    rx.bind(null, 9);
    let received = 0;
    rx.on('readable', () => {
      while (rx.recv() !== null) received++;
    });
    const tx = a.stack.udp();
    const payload = new Uint8Array(100);
    for (let i = 0; i < 50_000; i++) tx.send(payload, 9, b.address);
    await net.runUntilIdle(1000);
    const s = link.stats.aToB;
    const n = s.offered - 2; // the ping's ARP request and echo request came first
    expect(s.burstLost / n).toBeGreaterThan(gilbertElliottMeanLoss(ge) - 0.01);
    expect(s.burstLost / n).toBeLessThan(gilbertElliottMeanLoss(ge) + 0.01);
    const passed = n - s.burstLost;
    expect(s.duplicated / passed).toBeCloseTo(0.05, 1);
    expect(s.corrupted / passed).toBeCloseTo(0.02, 1);
    // A corrupted frame fails a checksum or a header check, unless the bit fell where nothing
    // checks it (an Ethernet source address bit): most never reach the socket.
    expect(received).toBeLessThanOrEqual(passed + s.duplicated);
    expect(received).toBeGreaterThanOrEqual(passed + s.duplicated - s.corrupted);
    expect(passed + s.duplicated - received).toBeGreaterThan(0.8 * s.corrupted);
    net.close();
  });
});

describe('Network: time', () => {
  it('runs a 60-second TCP conversation (a message a second) in well under a second of real time', async () => {
    const net = new Network({ seed: 9 });
    const a = net.host('a');
    const b = net.host('b');
    net.link(a, b, { latencyMs: 25 });
    const server = b.stack.tcp();
    server.bind(null, 7);
    server.listen();
    const echo = (c: NonNullable<ReturnType<typeof server.accept>>): void => {
      c.on('readable', () => {
        for (let d = c.read(); d !== null; d = c.read()) c.write(d);
      });
      c.on('end', () => c.close());
    };
    server.on('connection', (c) => {
      if (c) echo(c);
      for (let x = server.accept(); x !== null; x = server.accept()) echo(x);
    });
    const client = a.stack.tcp();
    const echoes: number[] = [];
    client.on('readable', () => {
      for (let d = client.read(); d !== null; d = client.read()) echoes.push(net.now);
    });
    let sent = 0;
    const tick = a.stack.clock.timer(() => {
      client.write(Buffer.from(`tick ${sent++}`));
      if (sent < 60) tick.schedule(1000);
      else client.shutdown();
    });
    client.on('connect', () => tick.schedule(0));
    client.connect(b.address, 7);
    const t0 = performance.now();
    await net.runUntil(new Promise<void>((r) => client.on('close', () => r())), 600_000);
    const real = performance.now() - t0;
    expect(echoes).toHaveLength(60);
    expect(echoes[59]! - echoes[0]!).toBeCloseTo(59_000, 0);
    expect(net.now).toBeGreaterThan(59_000);
    expect(real).toBeLessThan(3000);
    net.close();
  });

  it('lets promise chains and setImmediate work run between timer steps', async () => {
    const net = new Network({ seed: 10, ipv6: false });
    const a = net.host('a');
    const b = net.host('b');
    net.link(a, b, { latencyMs: 10 });
    const steps: string[] = [];
    const flow = async (): Promise<number> => {
      const p1 = await a.ping(b);
      steps.push(`ping ${p1.rttMs}`);
      await new Promise<void>((r) => setImmediate(r));
      await Promise.resolve();
      const p2 = await a.ping(b);
      steps.push(`ping ${p2.rttMs}`);
      return net.now;
    };
    const end = await net.runUntil(flow());
    expect(steps).toEqual(['ping 30', 'ping 20']);
    expect(end).toBe(50);
    // Nothing left to happen that would settle this: the network goes idle and says so.
    await expect(net.runUntil(new Promise(() => {}), 60_000)).rejects.toThrow(/idle|passed/);
    await net.run(100_000);
    expect(net.now).toBe(100_000);
    await net.runFor(5);
    expect(net.now).toBe(100_005);
    net.close();
  });
});

describe('Network: captures', () => {
  const scenario = async (seed: number, path: string): Promise<void> => {
    const net = new Network({ seed });
    const a = net.host('a');
    const r = net.router('r');
    const b = net.host('b');
    net.link(a, r, { latencyMs: 3, jitterMs: 2, loss: 0.05, reorder: 0.1 });
    net.link(r, b, { latencyMs: 4, duplicate: 0.05 });
    net.capture(a, path);
    const rx = b.dgram.createSocket('udp4');
    rx.bind(5000);
    rx.on('message', (m, ri) => rx.send(m, ri.port, ri.address));
    const tx = a.dgram.createSocket('udp4');
    tx.bind(6000);
    for (let i = 0; i < 50; i++) tx.send(Buffer.from(`datagram ${i}`), 5000, b.address);
    await net.runUntilIdle(20_000);
    await net.runUntil(a.ping(b).catch(() => null));
    tx.close();
    rx.close();
    net.close();
  };

  it('records both directions of a host; the same seed writes the same bytes, another seed other bytes', async () => {
    await scenario(11, join(dir, 'c1.pcap'));
    await scenario(11, join(dir, 'c2.pcap'));
    await scenario(12, join(dir, 'c3.pcap'));
    const one = readFileSync(join(dir, 'c1.pcap'));
    expect(one.length).toBeGreaterThan(24 + 50 * 60);
    expect(one.equals(readFileSync(join(dir, 'c2.pcap')))).toBe(true);
    expect(one.equals(readFileSync(join(dir, 'c3.pcap')))).toBe(false);
    const recs = PcapReader.open(join(dir, 'c1.pcap')).readAll();
    const out = recs.filter((r) => r.data[6] === 0x02 && r.data[11] === 0x00 && r.data[10] === 0x01).length;
    expect(out).toBeGreaterThan(50);
    expect(recs.length - out).toBeGreaterThan(30);
    // Timestamps come from the virtual clock: never backwards.
    for (let i = 1; i < recs.length; i++) expect(recs[i]!.timestampNs >= recs[i - 1]!.timestampNs).toBe(true);
  });

  it.skipIf(!haveTshark())('writes what tshark reads without malformed packets or bad checksums', async () => {
    const path = join(dir, 'judge.pcap');
    await scenario(13, path);
    const out = execFileSync('tshark', ['-n', '-r', path, ...CHECKSUM_PREFS, '-T', 'fields', '-e', 'frame.protocols', '-e', 'ip.checksum.status', '-e', 'udp.checksum.status', '-e', '_ws.malformed'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const lines = out.trim().split('\n');
    expect(lines.length).toBeGreaterThan(80);
    let udp = 0;
    for (const l of lines) {
      const [protos, ipc, udpc, malformed] = l.split('\t');
      expect(protos).not.toContain('malformed');
      expect(malformed ?? '').toBe('');
      if (ipc) expect(ipc).toBe('1');
      if (udpc) {
        expect(udpc).toBe('1');
        udp++;
      }
    }
    expect(udp).toBeGreaterThan(80);
  });
});

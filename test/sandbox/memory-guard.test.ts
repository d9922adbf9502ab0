/**
 * The sandbox's resident-memory guard (src/sandbox/memory-guard.ts): `--tcp-mem` bounds the RSS
 * growth, TCP's buffers get what the rest of the process leaves. A fake RSS source and a
 * ManualClock drive it; the TCP budget it sets is the stack's real TcpMemory.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket as NetSocket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EthernetEndpoint, ManualClock, Stack, Wire, parseMAC, type TcpEndpoint } from '../../src/index.js';
import { FIXED_RESERVE, MemoryGuard, PER_FLOW_RESERVE, guardBudget } from '../../src/sandbox/memory-guard.js';
import { SandboxNetwork } from '../../src/sandbox/network.js';
import { TcpMemory, tcpMemoryFromHigh, type MemoryHolder } from '../../src/transport/tcp/memory.js';
import { newTcpStats } from '../../src/transport/tcp/types.js';

const MiB = 1 << 20;
const closers: Array<() => void> = [];
afterEach(() => {
  while (closers.length) closers.pop()!();
});

function setup(limit: number, flows = 0): { clock: ManualClock; mem: TcpMemory; guard: MemoryGuard; rss: { v: number }; flows: { n: number } } {
  const clock = new ManualClock();
  const mem = new TcpMemory(tcpMemoryFromHigh(limit), newTcpStats());
  const rss = { v: 100 * MiB };
  const f = { n: flows };
  const guard = new MemoryGuard({ limit, memory: mem, clock, flows: () => f.n, rss: () => rss.v });
  closers.push(() => guard.close());
  return { clock, mem, guard, rss, flows: f };
}

describe('memory guard arithmetic', () => {
  it('budget = limit - max(rest, 40 MiB + 40 KiB a flow), at least limit / 8', () => {
    expect(FIXED_RESERVE).toBe(40 * MiB);
    expect(PER_FLOW_RESERVE).toBe(40 * 1024);
    expect(guardBudget(128 * MiB, 0, 0)).toBe(88 * MiB);
    expect(guardBudget(128 * MiB, 10 * MiB, 0)).toBe(88 * MiB);
    expect(guardBudget(128 * MiB, 50 * MiB, 0)).toBe(78 * MiB);
    expect(guardBudget(128 * MiB, 0, 1000)).toBe(128 * MiB - 40 * MiB - 1000 * 40 * 1024);
    // The rest wins when it is above the reserve the flows would take.
    expect(guardBudget(128 * MiB, 80 * MiB, 1000)).toBe(48 * MiB);
    // The floor: a limit smaller than the reserve still leaves TCP an eighth of it.
    expect(guardBudget(64 * MiB, 0, 1000)).toBe(8 * MiB);
    expect(guardBudget(64 * MiB, 500 * MiB, 0)).toBe(8 * MiB);
    expect(guardBudget(16 * MiB, 0, 0)).toBe(2 * MiB);
  });

  it('samples on the clock: the rest is RSS growth minus what TCP charges, and sets TCP\'s levels', () => {
    const { clock, mem, guard, rss } = setup(128 * MiB);
    // At start: no growth, the fixed reserve only.
    expect(guard.baseline).toBe(100 * MiB);
    expect(mem.high).toBe(88 * MiB);
    expect(mem.limits).toEqual(tcpMemoryFromHigh(88 * MiB));
    // TCP holds 20 MiB and the process grew 70 MiB: the rest is 50 MiB.
    mem.charge(20 * MiB);
    rss.v += 70 * MiB;
    expect(mem.high).toBe(88 * MiB); // not before the next sample
    clock.advance(9);
    expect(mem.high).toBe(88 * MiB);
    clock.advance(1);
    expect(guard.growth).toBe(70 * MiB);
    expect(guard.rest).toBe(50 * MiB);
    expect(mem.high).toBe(78 * MiB);
    expect(mem.pressure).toBe(Math.floor((78 * MiB * 2) / 3));
    expect(mem.low).toBe(39 * MiB);
    // The rest falls back (a collection): the budget rises again, sample after sample.
    rss.v -= 40 * MiB;
    clock.advance(10);
    expect(guard.rest).toBe(10 * MiB);
    expect(mem.high).toBe(88 * MiB);
    // RSS below the baseline counts as no rest.
    rss.v = 50 * MiB;
    clock.advance(10);
    expect(guard.rest).toBe(0);
    const n = guard.samples;
    clock.advance(100);
    expect(guard.samples).toBe(n + 10);
    guard.close();
    clock.advance(100);
    expect(guard.samples).toBe(n + 10);
  });

  it('the budget follows the flows open; over the new limit, TCP refuses new memory and prunes out-of-order data', () => {
    const { clock, mem, flows } = setup(128 * MiB);
    const holder = { held: 30 * MiB, pruned: 0 };
    const h: MemoryHolder = {
      get oooHeld() {
        return holder.held;
      },
      pruneOoo(bytes: number): number {
        const k = Math.min(bytes, holder.held);
        holder.held -= k;
        holder.pruned += k;
        mem.oooAllocated -= k;
        mem.charge(-k);
        return k > 0 ? 1 : 0;
      },
    };
    mem.charge(70 * MiB);
    mem.oooAllocated = 30 * MiB;
    mem.oooHolders.add(h);
    expect(mem.admits(MiB, 0, 4096)).toBe(true);
    flows.n = 1000;
    clock.advance(10);
    const b = 128 * MiB - 40 * MiB - 1000 * 40 * 1024;
    expect(mem.high).toBe(b);
    // 70 MiB were charged, the limit is now ~57 MiB: the out-of-order data went first.
    expect(holder.pruned).toBe(70 * MiB - b);
    expect(mem.allocated).toBe(b);
    expect(mem.underPressure).toBe(true);
    // New data is refused unless the connection holds less than its minimum.
    expect(mem.admits(MiB, 64 * 1024, 4096)).toBe(false);
    expect(mem.admits(MiB, 0, 4096)).toBe(true);
  });
});

describe('memory guard in the sandbox network', () => {
  it('updates the budget as each relayed flow opens, reserving 40 KiB a flow', async () => {
    const hosts: NetSocket[] = [];
    const srv = createServer((c) => {
      hosts.push(c);
      c.on('error', () => {});
    });
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    closers.push(() => {
      for (const h of hosts) h.destroy();
      srv.close();
    });
    const port = (srv.address() as AddressInfo).port;
    const clock = new ManualClock();
    const rss = 300 * MiB;
    const wire = new Wire({ mtu: 1500, linkAddressA: parseMAC('52:55:0a:00:02:02') });
    const net = new SandboxNetwork({
      link: wire.a,
      icmp: 'gateway',
      dnsUpstream: [],
      clock,
      limits: { tcpMemory: 64 * MiB },
      memoryGuard: { rss: () => rss },
    });
    const guest = new Stack({ seed: 7, clock });
    guest.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.b, { linkAddress: parseMAC('52:54:00:12:34:56') }) }).addAddress('10.0.2.100/24');
    guest.addRoute({ destination: '0.0.0.0/0', gateway: '10.0.2.2', nic: 'eth0' });
    const eps: TcpEndpoint[] = [];
    closers.push(() => {
      for (const e of eps) e.abort();
      net.close();
      guest.close();
    });
    const guard = net.memoryGuard!;
    expect(guard).not.toBeNull();
    expect(guard.baseline).toBe(300 * MiB);
    expect(net.stats.tcpMemory.limit).toBe(24 * MiB);
    const before = guard.updates;
    const samples = guard.samples;
    for (let i = 0; i < 3; i++) {
      const e = guest.tcp();
      e.connect('10.0.2.2', port);
      eps.push(e);
    }
    // The clock stands still: only the relay's hook can change the budget (RSS not read again).
    for (let t = 0; t < 200 && net.tcp.flowCount < 3; t++) await new Promise((r) => setTimeout(r, 5));
    expect(net.tcp.flowCount).toBe(3);
    expect(guard.updates).toBe(before + 3);
    expect(guard.samples).toBe(samples);
    expect(net.stats.tcpMemory.limit).toBe(24 * MiB - 3 * 40 * 1024);
    // Without the option there is no guard: the limit is TCP's budget as before.
    const plain = new SandboxNetwork({ link: new Wire({ mtu: 1500, linkAddressA: parseMAC('52:55:0a:00:02:03') }).a, icmp: 'gateway', dnsUpstream: [], clock, limits: { tcpMemory: 64 * MiB } });
    closers.push(() => plain.close());
    expect(plain.memoryGuard).toBeNull();
    expect(plain.stats.tcpMemory.limit).toBe(64 * MiB);
  });
});

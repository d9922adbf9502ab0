/**
 * The sandbox's TCP memory budget (`--tcp-mem`): guest connections to a host service that
 * streams, whose guest never reads, hold no more than the budget in the relay's send buffers.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket as NetSocket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EthernetEndpoint, RealClock, Stack, Wire, parseMAC, type TcpEndpoint } from '../../src/index.js';
import { BLOCK_SIZE, sendBlocksInUse } from '../../src/transport/tcp/buffers.js';
import { parseSandboxArgs } from '../../src/cli/sandbox.js';
import { SandboxNetwork, sandboxTcpMemory } from '../../src/sandbox/network.js';
import { RANGE_OVERHEAD } from '../../src/transport/tcp/memory.js';

const MiB = 1 << 20;
const closers: Array<() => void> = [];
afterEach(() => {
  while (closers.length) closers.pop()!();
});

describe('sandbox TCP memory budget', () => {
  it('--tcp-mem takes a byte count with K/M/G; the default follows the machine within 16M..512M', () => {
    expect(parseSandboxArgs(['--tcp-mem', '64M', 'x']).guest.network.limits?.tcpMemory).toBe(64 * MiB);
    expect(parseSandboxArgs(['--tcp-mem', '2G', 'x']).guest.network.limits?.tcpMemory).toBe(2048 * MiB);
    expect(parseSandboxArgs(['--tcp-mem', '3145728', 'x']).guest.network.limits?.tcpMemory).toBe(3 * MiB);
    for (const bad of ['', '1K', '-5M', '12X', 'lots']) expect(() => parseSandboxArgs(['--tcp-mem', bad, 'x'])).toThrow(/--tcp-mem/);
    expect(sandboxTcpMemory(256 * MiB)).toBe(16 * MiB);
    expect(sandboxTcpMemory(16384 * MiB)).toBe(256 * MiB);
    expect(sandboxTcpMemory(2 ** 40)).toBe(512 * MiB);
  });

  it('100 never-reading guest connections to a streaming host service stay within the budget', async () => {
    await streamIntoNonReaders(4 * MiB, (s) => {
      // Each flow may hold its minimum plus one landing block beyond the limit.
      const bound = s.limit + s.n * (s.wmemMin + BLOCK_SIZE);
      expect(s.maxBlocks * BLOCK_SIZE).toBeLessThanOrEqual(bound);
      expect(s.maxCharged).toBeLessThanOrEqual(bound);
    });
  }, 30_000);

  it('once the budget is spent, host reads take no new send block and add a parked read at most', async () => {
    await streamIntoNonReaders(4 * MiB, (s) => {
      // Every block is charged from the moment a reader takes it: the blocks stay within the
      // limit (one in flight), and what flows add beyond it is one small read each.
      expect(s.maxBlocks).toBeLessThanOrEqual(s.limit / BLOCK_SIZE + 1);
      expect(s.maxCharged).toBeLessThanOrEqual(s.limit + s.n * (16384 + 4096 + 2 * RANGE_OVERHEAD));
    });
  }, 30_000);
});

interface BudgetRun {
  n: number;
  limit: number;
  wmemMin: number;
  /** Most send blocks in use, and most bytes charged, sampled while the host streamed. */
  maxBlocks: number;
  maxCharged: number;
}

/**
 * 100 guest connections that never read, to a host service that streams into each, through a
 * sandbox with `limit` of TCP memory; `check` gets the peaks seen while sampling.
 */
async function streamIntoNonReaders(LIMIT: number, check: (r: BudgetRun) => void): Promise<void> {
  const N = 100;
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  const hosts: NetSocket[] = [];
  let hostWrote = 0;
  const srv = createServer((c) => {
    hosts.push(c);
    c.on('error', () => {});
    const pump = (): void => {
      while (!c.destroyed && c.write(chunk)) hostWrote += chunk.length;
    };
    c.on('drain', pump);
    pump();
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  closers.push(() => {
    for (const h of hosts) h.destroy();
    srv.close();
  });
  const port = (srv.address() as AddressInfo).port;
  const clock = new RealClock();
  const wire = new Wire({ mtu: 1500, linkAddressA: parseMAC('52:55:0a:00:02:02') });
  const net = new SandboxNetwork({ link: wire.a, icmp: 'gateway', dnsUpstream: [], clock, limits: { tcpMemory: LIMIT } });
  const guest = new Stack({ seed: 7, clock });
  guest.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.b, { linkAddress: parseMAC('52:54:00:12:34:56') }) }).addAddress('10.0.2.100/24');
  guest.addRoute({ destination: '0.0.0.0/0', gateway: '10.0.2.2', nic: 'eth0' });
  const eps: TcpEndpoint[] = [];
  closers.push(() => {
    for (const e of eps) e.abort();
    net.close();
    guest.close();
  });
  const base = sendBlocksInUse();
  for (let i = 0; i < N; i++) {
    const e = guest.tcp();
    e.connect('10.0.2.2', port);
    eps.push(e);
  }
  // Sample the relay's send memory while the host streams and the guest reads nothing.
  let maxBlocks = 0;
  let maxCharged = 0;
  for (let t = 0; t < 300; t++) {
    await new Promise((r) => setTimeout(r, 5));
    maxBlocks = Math.max(maxBlocks, sendBlocksInUse() - base);
    maxCharged = Math.max(maxCharged, net.stats.tcpMemory.memoryAllocated);
  }
  const tcp = net.stack.requireTransport<import('../../src/index.js').TcpProtocol>(6);
  const st = net.stats.tcpMemory;
  expect(st.limit).toBe(LIMIT);
  expect(eps.every((e) => e.state === 'ESTABLISHED')).toBe(true);
  // The guests' windows are full (128 KiB each): everything else waits in the relay.
  expect(eps.reduce((n, e) => n + e.readableLength, 0)).toBeGreaterThan(N * 64 * 1024);
  expect(hostWrote).toBeGreaterThan(2 * LIMIT);
  expect(st.memoryPressure).toBe(1);
  expect(st.memoryPressures).toBeGreaterThanOrEqual(1);
  expect(st.sndMemRefusals).toBeGreaterThan(0);
  maxCharged = Math.max(maxCharged, st.memoryAllocated);
  check({ n: N, limit: LIMIT, wmemMin: tcp.wmemMin, maxBlocks, maxCharged });
}

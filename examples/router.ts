/**
 * A router between two subnets: alice (10.0.1.0/24) and bob (10.0.2.0/24) talk through r1, which
 * forwards between its two interfaces. Addresses and routes are assigned by the Network helper.
 * Pings cross the router (TTL 64 becomes 63), a UDP datagram crosses it, and a ping with TTL 1
 * dies at the router, which answers with ICMP Time Exceeded, as traceroute's first hop does.
 *
 *   npx tsx examples/router.ts [capture-of-r1.pcap]
 */
import { pathToFileURL } from 'node:url';
import { Network } from '../src/sim/index.js';

export interface RouterExampleResult {
  addresses: Record<string, string[]>;
  pings: { from: string; to: string; ttl: number; rttMs: number }[];
  udp: { message: string; from: string };
  ttlExpired: { code: string; message: string };
  forwarded: number;
  virtualMs: number;
}

export async function routerBetweenSubnets(options: { seed?: number; capture?: string } = {}): Promise<RouterExampleResult> {
  const net = new Network({ seed: options.seed ?? 1 });
  const alice = net.host('alice');
  const bob = net.host('bob');
  const r1 = net.router('r1');
  net.link(alice, r1, { latencyMs: 2 });
  net.link(r1, bob, { latencyMs: 3, rateBps: 10_000_000 });
  if (options.capture) net.capture(r1, options.capture);

  const pings: RouterExampleResult['pings'] = [];
  for (const [from, to] of [
    [alice, bob],
    [bob, alice],
    [alice, bob],
  ] as const) {
    const r = await net.runUntil(from.ping(to));
    pings.push({ from: from.name, to: to.name, ttl: r.ttl, rttMs: r.rttMs });
  }

  // A datagram from bob to alice, through the router.
  const inbox = alice.dgram.createSocket('udp4');
  inbox.bind(7000);
  const got = new Promise<{ message: string; from: string }>((resolve) =>
    inbox.once('message', (m, rinfo) => resolve({ message: Buffer.from(m).toString(), from: rinfo.address })),
  );
  const out = bob.dgram.createSocket('udp4');
  out.send(Buffer.from('hello across the router'), 7000, alice.address);
  const udp = await net.runUntil(got);
  inbox.close();
  out.close();

  // TTL 1: the router drops it and says so.
  const ttlExpired = await net.runUntil(
    alice.ping(bob, { ttl: 1, timeoutMs: 1000 }).then(
      () => ({ code: 'none', message: 'answered' }),
      (e: Error & { code?: string }) => ({ code: e.code ?? '', message: e.message }),
    ),
  );

  const forwarded = r1.interfaces.reduce((n, i) => n + i.nic.stats.txPackets, 0);
  const result: RouterExampleResult = {
    addresses: Object.fromEntries(net.hosts.map((h) => [h.name, h.interfaces.map((i) => i.cidr)])),
    pings,
    udp,
    ttlExpired,
    forwarded,
    virtualMs: net.now,
  };
  net.close();
  return result;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await routerBetweenSubnets({ capture: process.argv[2] });
  for (const [h, a] of Object.entries(r.addresses)) console.log(`${h.padEnd(6)} ${a.join('  ')}`);
  for (const p of r.pings) console.log(`ping ${p.from} -> ${p.to}: ttl=${p.ttl} time=${p.rttMs.toFixed(3)} ms`);
  console.log(`udp to alice from ${r.udp.from}: "${r.udp.message}"`);
  console.log(`ping with ttl 1: ${r.ttlExpired.code} (${r.ttlExpired.message})`);
  console.log(`r1 sent ${r.forwarded} packets; ${r.virtualMs.toFixed(3)} ms of virtual time`);
}

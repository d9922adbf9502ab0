import { describe, expect, it } from 'vitest';
import { routerBetweenSubnets } from './router.js';

describe('example: a router between two subnets', () => {
  it('assigns addresses and routes, forwards pings and UDP (TTL 63), and answers TTL 1 with Time Exceeded', async () => {
    const r = await routerBetweenSubnets({ seed: 1 });
    expect(r.addresses).toEqual({ alice: ['10.0.1.1/24'], bob: ['10.0.2.2/24'], r1: ['10.0.1.2/24', '10.0.2.1/24'] });
    expect(r.pings.map((p) => p.ttl)).toEqual([63, 63, 63]);
    // 2 ms + 3 ms each way; the first ping also waits for two ARP exchanges.
    expect(r.pings[1]!.rttMs).toBeGreaterThanOrEqual(10);
    expect(r.pings[1]!.rttMs).toBeLessThan(11);
    expect(r.pings[0]!.rttMs).toBeGreaterThan(r.pings[2]!.rttMs);
    expect(r.udp).toEqual({ message: 'hello across the router', from: '10.0.2.2' });
    expect(r.ttlExpired.message).toMatch(/time to live exceeded.*10\.0\.1\.2/);
    expect(await routerBetweenSubnets({ seed: 1 })).toEqual(r);
  });
});

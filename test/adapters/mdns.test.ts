/**
 * mDNS between two stacks with the `multicast-dns` package from npm, unchanged, over
 * `stack.dgram`: it binds 5353, joins 224.0.0.251 (IGMP), sets the multicast TTL, loopback and
 * interface, and answers a query, all through tunstack's dgram surface.
 */
import type { Socket } from 'node:dgram';
import makeMdns from 'multicast-dns';
import { describe, expect, it } from 'vitest';
import { EthernetEndpoint, Stack, Wire, parseMAC, type IPv4Protocol } from '../../src/index.js';

describe('multicast-dns over stack.dgram', () => {
  it('one stack answers another\'s A query for a .local name', async () => {
    const wire = new Wire();
    const a = new Stack({ seed: 1 });
    const b = new Stack({ seed: 2 });
    a.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.a, { linkAddress: parseMAC('02:00:00:00:06:01') }) }).addAddress('198.18.6.1/24');
    b.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.b, { linkAddress: parseMAC('02:00:00:00:06:02') }) }).addAddress('198.18.6.2/24');
    const socketOf = (s: Stack) => s.dgram.createSocket({ type: 'udp4', reuseAddr: true }) as unknown as Socket;
    const server = makeMdns({ socket: socketOf(b), interface: '198.18.6.2', bind: '0.0.0.0' });
    const client = makeMdns({ socket: socketOf(a), interface: '198.18.6.1', bind: '0.0.0.0' });
    const warnings: Error[] = [];
    server.on('warning', (e: Error) => warnings.push(e));
    client.on('warning', (e: Error) => warnings.push(e));
    server.on('query', (q) => {
      if (q.questions.some((x) => x.name === 'tunstack.local' && x.type === 'A')) {
        server.respond({ answers: [{ name: 'tunstack.local', type: 'A', ttl: 120, data: '198.18.6.2' }] });
      }
    });
    try {
      await Promise.all([new Promise((r) => server.once('ready', r)), new Promise((r) => client.once('ready', r))]);
      const answer = new Promise<{ data: unknown; from: string }>((resolve) => {
        client.on('response', (res, rinfo) => {
          const a1 = res.answers.find((x) => x.name === 'tunstack.local' && x.type === 'A');
          if (a1 && 'data' in a1) resolve({ data: a1.data, from: rinfo.address });
        });
      });
      client.query({ questions: [{ name: 'tunstack.local', type: 'A' }] });
      const got = await answer;
      expect(got).toEqual({ data: '198.18.6.2', from: '198.18.6.2' });
      expect(warnings).toEqual([]);
      // Both joined 224.0.0.251 through IGMP.
      for (const s of [a, b]) {
        const ip4 = s.requireNetwork<IPv4Protocol>(0x0800);
        expect(ip4.igmp.groups(s.nics[0]!).map((g) => g.group)).toContain('224.0.0.251');
      }
    } finally {
      await new Promise<void>((r) => client.destroy(() => r()));
      await new Promise<void>((r) => server.destroy(() => r()));
      a.close();
      b.close();
    }
  });
});

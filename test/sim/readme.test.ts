import http from 'node:http';
import { expect, it } from 'vitest';
// The README's "Simulation" example, run as written (imports from the package entry).
import { Network } from '../../src/sim/index.js';

it("README's Simulation example works as written", async () => {
  const net = new Network({ seed: 1 }); // every random decision comes from the seed
  const client = net.host('client');
  const r = net.router('r'); // a host with forwarding on
  const server = net.host('server');
  net.link(client, r, { latencyMs: 10 }); // 10.0.1.0/24 (+ fd00:0:0:1::/64)
  net.link(r, server, { latencyMs: 10, loss: 0.02, rateBps: 10e6 });

  const site = http.createServer((_req, res) => res.end('hello'));
  server.net.createServer((s) => site.emit('connection', s)).listen(80);
  const body = await net.runUntil(
    new Promise<string>((resolve) =>
      http.get({ host: server.address, agent: client.net.httpAgent() }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c)).on('end', () => resolve(text));
      }),
    ),
  );
  expect(body).toBe('hello');
  expect(server.address).toBe('10.0.2.2');
  expect(client.interfaces[0]!.cidr6).toBe('fd00:0:0:1::1/64');
  net.close(); // stacks, links and capture files
});

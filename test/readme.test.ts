import { once } from 'node:events';
import { expect, it } from 'vitest';
// The README's "Using it" example, run as written (imports from the package entry).
import { EthernetEndpoint, ManualClock, Stack, Wire, parseMAC } from '../src/index.js';

it("README's example works as written", async () => {
  const clock = new ManualClock();
  const wire = new Wire({ clock, latencyMs: 1 });
  const a = new Stack({ clock, seed: 1 });
  const b = new Stack({ clock, seed: 2 });
  a.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.a, { linkAddress: parseMAC('02:00:00:00:00:01') }) }).addAddress('10.0.0.1/24');
  b.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.b, { linkAddress: parseMAC('02:00:00:00:00:02') }) }).addAddress('10.0.0.2/24');
  a.addRoute({ destination: '0.0.0.0/0', gateway: '10.0.0.254', nic: 'eth0' });

  const reply = a.ping('10.0.0.2');
  clock.advance(10);
  const r = await reply;
  expect(r.from).toBe('10.0.0.2');
  expect(r.ttl).toBe(64);

  const server = b.dgram.createSocket('udp4');
  server.on('message', (msg, rinfo) => server.send(msg, rinfo.port, rinfo.address)).bind(7);
  await once(server, 'listening');
  const client = a.dgram.createSocket('udp4');
  const echoed = once(client, 'message');
  client.send('hello', 7, '10.0.0.2');
  for (let i = 0; i < 10; i++) {
    await new Promise((res) => setImmediate(res));
    clock.advance(1);
  }
  expect(String((await echoed)[0])).toBe('hello');
});

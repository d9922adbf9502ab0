import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { ManualClock, Stack, parseMAC } from '../../src/index.js';
import { Wire } from '../../src/link/wire.js';
import { EthernetEndpoint } from '../../src/link/ethernet.js';

function pair() {
  const clock = new ManualClock();
  const wire = new Wire({ clock });
  const a = new Stack({ clock, seed: 11 });
  const b = new Stack({ clock, seed: 12 });
  a.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.a, { linkAddress: parseMAC('02:00:00:00:00:0a') }) }).addAddress('192.168.1.1/24');
  b.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.b, { linkAddress: parseMAC('02:00:00:00:00:0b') }) }).addAddress('192.168.1.2/24');
  return { clock, a, b };
}

describe('stack.dgram (Node dgram surface)', () => {
  it('binds, emits listening, exchanges messages with rinfo, and reports address()', async () => {
    const { a, b } = pair();
    const server = b.dgram.createSocket('udp4');
    server.bind(4000, '192.168.1.2');
    await once(server, 'listening');
    expect(server.address()).toEqual({ address: '192.168.1.2', family: 'IPv4', port: 4000 });
    server.on('message', (msg, rinfo) => server.send(Buffer.concat([Buffer.from('echo:'), msg]), rinfo.port, rinfo.address));

    const client = a.dgram.createSocket('udp4');
    const got = once(client, 'message');
    client.send('ping', 4000, '192.168.1.2');
    const [msg, rinfo] = (await got) as [Buffer, { address: string; port: number; family: string; size: number }];
    expect(msg.toString()).toBe('echo:ping');
    expect(rinfo).toEqual({ address: '192.168.1.2', family: 'IPv4', port: 4000, size: 9 });
    expect(client.address().port).toBeGreaterThanOrEqual(32768);
    client.close();
    server.close();
  });

  it('supports send(msg, offset, length, port, address, cb) and array messages', async () => {
    const { a, b } = pair();
    const server = b.dgram.createSocket('udp4');
    server.bind(4001);
    await once(server, 'listening');
    const msgs: string[] = [];
    server.on('message', (m) => msgs.push(m.toString()));
    const client = a.dgram.createSocket('udp4');
    const sent = await new Promise<number>((res, rej) =>
      client.send(Buffer.from('xxhelloxx'), 2, 5, 4001, '192.168.1.2', (err, n) => (err ? rej(err) : res(n))),
    );
    expect(sent).toBe(5);
    client.send(['ab', Buffer.from('cd')], 4001, '192.168.1.2');
    await new Promise((r) => setImmediate(r));
    expect(msgs).toEqual(['hello', 'abcd']);
  });

  it('connected sockets get ECONNREFUSED from ICMP port unreachable, and ERR_SOCKET_DGRAM_IS_CONNECTED on send with address', async () => {
    const { a } = pair();
    const s = a.dgram.createSocket('udp4');
    s.connect(9, '192.168.1.2');
    await once(s, 'connect');
    expect(s.remoteAddress()).toEqual({ address: '192.168.1.2', family: 'IPv4', port: 9 });
    const err = once(s, 'error');
    s.send('x');
    const [e] = (await err) as [{ code: string }];
    expect(e.code).toBe('ECONNREFUSED');
    // Node throws at once (not through the callback) for an address on a connected socket.
    expect(() => s.send('y', 10, '192.168.1.2', () => {})).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_DGRAM_IS_CONNECTED' }));
  });

  it('refuses broadcast until setBroadcast(true), then delivers to every bound socket', async () => {
    const { a, b } = pair();
    const r1 = b.dgram.createSocket({ type: 'udp4', reuseAddr: true });
    const r2 = b.dgram.createSocket({ type: 'udp4', reuseAddr: true });
    r1.bind(5000);
    r2.bind(5000);
    const got: string[] = [];
    r1.on('message', (m) => got.push(`r1:${m}`));
    r2.on('message', (m) => got.push(`r2:${m}`));
    const c = a.dgram.createSocket('udp4');
    const e = await new Promise<{ code?: string } | null>((res) => c.send('hi', 5000, '255.255.255.255', (er) => res(er as { code?: string } | null)));
    expect(e?.code).toBe('EACCES');
    c.setBroadcast(true);
    c.send('hi', 5000, '192.168.1.255');
    await new Promise((r) => setImmediate(r));
    expect(got.sort()).toEqual(['r1:hi', 'r2:hi']);
  });

  it('emits EADDRINUSE for a second bind of the same port', async () => {
    const { b } = pair();
    const s1 = b.dgram.createSocket('udp4');
    s1.bind(6000);
    const s2 = b.dgram.createSocket('udp4');
    const err = once(s2, 'error');
    s2.bind(6000);
    expect(((await err)[0] as { code: string }).code).toBe('EADDRINUSE');
  });

  it("a udp6 socket on '::' also receives IPv4 (reported as ::ffff:a.b.c.d, family IPv6) unless ipv6Only", async () => {
    const { a, b } = pair();
    const dual = b.dgram.createSocket('udp6');
    dual.bind(7100, '::');
    await once(dual, 'listening');
    const only6 = b.dgram.createSocket({ type: 'udp6', ipv6Only: true });
    only6.bind(7101, '::');
    await once(only6, 'listening');
    const got = once(dual, 'message');
    const c = a.dgram.createSocket('udp4');
    c.send('v4 to dual', 7100, '192.168.1.2');
    const [msg, rinfo] = (await got) as [Buffer, { address: string; family: string; port: number }];
    expect(msg.toString()).toBe('v4 to dual');
    expect(rinfo.address).toBe('::ffff:192.168.1.1');
    expect(rinfo.family).toBe('IPv6');
    // The v6-only socket does not take IPv4: the sender (connected, so it hears ICMP) is refused.
    const c2 = a.dgram.createSocket('udp4');
    c2.connect(7101, '192.168.1.2');
    await once(c2, 'connect');
    const err = once(c2, 'error');
    c2.send('v4 to v6-only');
    expect(((await err)[0] as { code: string }).code).toBe('ECONNREFUSED');
  });
});

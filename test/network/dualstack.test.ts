import { describe, expect, it } from 'vitest';
import { ManualClock, Stack, Wire } from '../../src/index.js';
import { attach } from './helpers.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

function twoHosts() {
  const clock = new ManualClock();
  const wire = new Wire({ clock });
  const a = new Stack({ clock, seed: 31 });
  const b = new Stack({ clock, seed: 32 });
  const na = attach(a, wire.a, '02:00:00:00:00:01', { clock });
  const nb = attach(b, wire.b, '02:00:00:00:00:02', { clock });
  na.addAddress('10.0.0.1/24');
  nb.addAddress('10.0.0.2/24');
  na.addAddress('fd00::1/64', { nodad: true });
  nb.addAddress('fd00::2/64', { nodad: true });
  return { clock, a, b };
}

describe('dual stack', () => {
  it('a udp6 endpoint bound to :: also receives IPv4, with IPv4-mapped addresses, and answers over IPv4', () => {
    const { a, b } = twoHosts();
    const server = b.udp({ family: 6 });
    server.bind(null, 53);
    const c4 = a.udp();
    c4.send(enc.encode('over v4'), 53, '10.0.0.2');
    const m = server.recv()!;
    expect(m).toMatchObject({ address: '::ffff:10.0.0.1', family: 6, localAddress: '::ffff:10.0.0.2', port: c4.localPort });
    expect(dec.decode(m.data)).toBe('over v4');
    server.send(enc.encode('reply'), m.port, m.address);
    const r = c4.recv()!;
    expect(r).toMatchObject({ address: '10.0.0.2', family: 4 });
    const c6 = a.udp({ family: 6 });
    c6.send(enc.encode('over v6'), 53, 'fd00::2');
    expect(server.recv()).toMatchObject({ address: 'fd00::1', family: 6, localAddress: 'fd00::2' });
  });

  it('a dual-stack udp6 client reaches IPv4 servers through ::ffff: addresses, connected too', () => {
    const { a, b } = twoHosts();
    const server = b.udp();
    server.bind('10.0.0.2', 7);
    const c = a.udp({ family: 6 });
    c.connect('::ffff:10.0.0.2', 7);
    c.send(enc.encode('x'));
    const m = server.recv()!;
    expect(m.address).toBe('10.0.0.1');
    server.send(enc.encode('y'), m.port, m.address);
    expect(c.recv()).toMatchObject({ address: '::ffff:10.0.0.2', family: 6 });
    // ICMP errors for IPv4 reach the connected udp6 socket.
    const c2 = a.udp({ family: 6 });
    c2.connect('::ffff:10.0.0.2', 9);
    const errs: string[] = [];
    c2.on('error', (e) => errs.push(e.code));
    c2.send(new Uint8Array(1));
    expect(errs).toEqual(['ECONNREFUSED']);
  });

  it('IPV6_V6ONLY: no IPv4 in, EINVAL binding a mapped address, ENETUNREACH sending to one', () => {
    const { a, b } = twoHosts();
    const s6 = b.udp({ family: 6, v6Only: true });
    s6.bind(null, 53);
    const s4 = b.udp();
    s4.bind(null, 53); // no conflict with a v6-only wildcard
    a.udp().send(enc.encode('v4'), 53, '10.0.0.2');
    expect(s6.recv()).toBeNull();
    expect(s4.recv()!.address).toBe('10.0.0.1');
    expect(() => b.udp({ family: 6, v6Only: true }).bind('::ffff:10.0.0.2', 54)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => s6.send(new Uint8Array(1), 53, '::ffff:10.0.0.1')).toThrow(expect.objectContaining({ code: 'ENETUNREACH' }));
  });

  it('reserves ports as Linux: a dual-stack wildcard conflicts with IPv4, specific addresses do not', () => {
    const { b } = twoHosts();
    b.udp().bind(null, 100);
    expect(() => b.udp({ family: 6 }).bind(null, 100)).toThrow(expect.objectContaining({ code: 'EADDRINUSE' }));
    b.udp({ family: 6 }).bind('fd00::2', 100); // an IPv6 address does not overlap 0.0.0.0
    b.udp({ family: 6 }).bind(null, 101);
    expect(() => b.udp().bind('10.0.0.2', 101)).toThrow(expect.objectContaining({ code: 'EADDRINUSE' }));
    expect(() => b.udp({ family: 6 }).bind('::ffff:10.0.0.2', 101)).toThrow(expect.objectContaining({ code: 'EADDRINUSE' }));
    b.udp({ family: 6 }).bind('::ffff:10.0.0.2', 102);
    expect(() => b.udp().bind('10.0.0.2', 102)).toThrow(expect.objectContaining({ code: 'EADDRINUSE' }));
  });

  it('a udp6 endpoint bound to an IPv4-mapped address gets only that IPv4 traffic', () => {
    const { a, b } = twoHosts();
    const s = b.udp({ family: 6 });
    s.bind('::ffff:10.0.0.2', 5000);
    a.udp().send(enc.encode('4'), 5000, '10.0.0.2');
    a.udp({ family: 6 }).send(enc.encode('6'), 5000, 'fd00::2');
    expect(s.recv()).toMatchObject({ address: '::ffff:10.0.0.1', localAddress: '::ffff:10.0.0.2' });
    expect(s.recv()).toBeNull();
    expect(() => s.send(new Uint8Array(1), 5000, 'fd00::1')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('dgram udp6 sockets report IPv4 senders as Node does', async () => {
    const { a, b } = twoHosts();
    const sock = b.dgram.createSocket('udp6');
    const got = new Promise<{ address: string; family: string }>((resolve) => sock.on('message', (_m: Uint8Array, rinfo: { address: string; family: string }) => resolve(rinfo)));
    await new Promise<void>((resolve) => sock.bind(4444, resolve));
    a.udp().send(enc.encode('hi'), 4444, '10.0.0.2');
    expect(await got).toMatchObject({ address: '::ffff:10.0.0.1', family: 'IPv6' });
    sock.close();
  });
});

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { EthernetEndpoint, ManualClock, Stack, Wire, parseMAC, type Socket } from '../../src/index.js';

// Node surfaces over two stacks on a zero-latency wire, on the real clock (Node's own http and tls
// run on top unchanged, with their own timers).
const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function pair() {
  const wire = new Wire();
  const a = new Stack({ seed: 21 });
  const b = new Stack({ seed: 22 });
  a.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.a, { linkAddress: parseMAC('02:00:00:00:01:01') }) }).addAddress('172.16.0.1/24');
  b.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.b, { linkAddress: parseMAC('02:00:00:00:01:02') }) }).addAddress('172.16.0.2/24');
  cleanups.push(() => {
    a.close();
    b.close();
  });
  return { a, b };
}

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

describe('stack.net (Node net surface over tunstack TCP)', () => {
  it('echoes 4 MiB through a Duplex socket with net.Socket properties and events in order', async () => {
    const { a, b } = pair();
    const server = b.net.createServer((s) => s.pipe(s));
    server.listen(7, '172.16.0.2');
    await once(server, 'listening');
    expect(server.address()).toEqual({ address: '172.16.0.2', family: 'IPv4', port: 7 });
    const events: string[] = [];
    const c = a.net.connect({ port: 7, host: '172.16.0.2' });
    c.on('connect', () => events.push('connect'));
    c.on('ready', () => events.push('ready'));
    c.on('end', () => events.push('end'));
    c.on('close', () => events.push('close'));
    await once(c, 'connect');
    expect(c.remoteAddress).toBe('172.16.0.2');
    expect(c.remotePort).toBe(7);
    expect(c.remoteFamily).toBe('IPv4');
    expect(c.localAddress).toBe('172.16.0.1');
    expect(c.localPort).toBeGreaterThanOrEqual(32768);
    const data = new Uint8Array(4 << 20).map((_, i) => (i * 31) & 0xff);
    const chunks: Buffer[] = [];
    c.on('data', (d: Buffer) => chunks.push(d));
    c.end(data);
    await once(c, 'close');
    const got = Buffer.concat(chunks);
    expect(got.length).toBe(data.length);
    expect(sha(got)).toBe(sha(data));
    expect(c.bytesRead).toBe(data.length);
    expect(c.bytesWritten).toBe(data.length);
    expect(events).toEqual(['connect', 'ready', 'end', 'close']);
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('refuses a connection to a closed port with ECONNREFUSED', async () => {
    const { a } = pair();
    const c = a.net.connect(9, '172.16.0.2');
    const [err] = (await once(c, 'error')) as [{ code: string }];
    expect(err.code).toBe('ECONNREFUSED');
  });

  it("fails a connect nobody answers with Node's ETIMEDOUT shape; a name without lookup goes through stack.dns", async () => {
    // Node's loopback cannot time a connect out, so the shape is libuv's connect error
    // (exceptionWithHostPort) and getaddrinfo's EAI_NONAME, as node:net gives them.
    const clock = new ManualClock();
    const wire = new Wire({ clock });
    const a = new Stack({ clock, seed: 23 });
    // The gateway is a stack that does not forward: it drops the SYNs silently.
    const gw = new Stack({ clock, seed: 24 });
    gw.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.b, { linkAddress: parseMAC('02:00:00:00:01:04') }) }).addAddress('198.18.0.254/24');
    a.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.a, { linkAddress: parseMAC('02:00:00:00:01:03') }) }).addAddress('198.18.0.1/24');
    a.addRoute({ destination: '0.0.0.0/0', gateway: '198.18.0.254', nic: 'eth0' });
    const c = a.net.connect(80, '203.0.113.9');
    const errs: Error[] = [];
    const closes: unknown[] = [];
    c.on('error', (e) => errs.push(e));
    c.on('close', (h: unknown) => closes.push(h));
    for (let i = 0; i < 400 && errs.length === 0; i++) {
      clock.advance(1000);
      await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setImmediate(r));
    const e = errs[0] as Error & Record<string, unknown>;
    expect({ keys: Object.keys(e), ...e, message: e.message }).toEqual({
      keys: ['errno', 'code', 'syscall', 'address', 'port'],
      errno: -110,
      code: 'ETIMEDOUT',
      syscall: 'connect',
      address: '203.0.113.9',
      port: 80,
      message: 'connect ETIMEDOUT 203.0.113.9:80',
    });
    expect(closes).toEqual([true]);
    // A name without a lookup goes through the stack's resolver (stack.dns.lookup). This stack has
    // no DNS server: getaddrinfo's answer when no resolver can be asked, EAI_AGAIN.
    const n = a.net.connect({ port: 80, host: 'nothing.test' });
    const [nf] = (await once(n, 'error')) as [Error & Record<string, unknown>];
    expect({ keys: Object.keys(nf), ...nf, message: nf.message }).toEqual({
      keys: ['errno', 'code', 'syscall', 'hostname'],
      errno: -3001,
      code: 'EAI_AGAIN',
      syscall: 'getaddrinfo',
      hostname: 'nothing.test',
      message: 'getaddrinfo EAI_AGAIN nothing.test',
    });
    // A name in the stack's hosts table is looked up and connected to ('lookup' is emitted).
    a.dns.hosts.add('gateway.test', '198.18.0.254');
    const g = a.net.connect({ port: 80, host: 'gateway.test' });
    g.on('error', () => {});
    const [lerr, laddr, lfam, lhost] = (await once(g, 'lookup')) as [Error | null, string, number, string];
    expect([lerr, laddr, lfam, lhost]).toEqual([null, '198.18.0.254', 4, 'gateway.test']);
    g.destroy();
    a.close();
    gw.close();
  });

  it('reports EADDRINUSE for a second listener on the same port', async () => {
    const { b } = pair();
    const s1 = b.net.createServer().listen(80);
    await once(s1, 'listening');
    const s2 = b.net.createServer().listen(80);
    const [err] = (await once(s2, 'error')) as [{ code: string }];
    expect(err.code).toBe('EADDRINUSE');
  });

  it('applies backpressure: write() returns false and drain follows', async () => {
    const { a, b } = pair();
    let serverSock: Socket | null = null;
    const server = b.net.createServer((s) => {
      serverSock = s;
      s.on('error', () => {}); // the stacks' teardown resets it
      s.pause(); // do not read: the window closes
    });
    server.listen(9000);
    await once(server, 'listening');
    const c = a.net.connect(9000, '172.16.0.2');
    await once(c, 'connect');
    const chunk = Buffer.alloc(64 * 1024);
    let writes = 0;
    while (c.write(chunk) && writes < 1000) writes++;
    expect(writes).toBeLessThan(1000);
    const drained = once(c, 'drain');
    serverSock!.resume();
    serverSock!.on('data', () => {});
    await drained;
    c.destroy();
  });

  it('keeps a half-open connection with allowHalfOpen, and closes it by default', async () => {
    const { a, b } = pair();
    const server = b.net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('end', () => {
        s.write('after your FIN');
        s.end();
      });
      s.resume();
    });
    server.listen(81);
    await once(server, 'listening');
    const c = a.net.connect({ port: 81, host: '172.16.0.2', allowHalfOpen: true });
    await once(c, 'connect');
    const chunks: Buffer[] = [];
    c.on('data', (d: Buffer) => chunks.push(d));
    c.end('bye');
    await once(c, 'end');
    expect(Buffer.concat(chunks).toString()).toBe('after your FIN');
  });

  it('emits timeout after idle time without closing the socket', async () => {
    const { a, b } = pair();
    const server = b.net.createServer((s) => s.on('error', () => {})); // reset by teardown
    server.listen(82);
    await once(server, 'listening');
    const c = a.net.connect(82, '172.16.0.2');
    await once(c, 'connect');
    c.setTimeout(30);
    await once(c, 'timeout');
    expect(c.destroyed).toBe(false);
    c.destroy();
  });

  it("serves Node's own http.createServer via stack.net.listen and http.get through the stack, names by lookup", async () => {
    const { a, b } = pair();
    const httpServer = http.createServer((req, res) => {
      res.setHeader('content-type', 'text/plain');
      res.end(`hello ${req.url} from ${req.socket.remoteAddress}`);
    });
    // No emit('connection') by hand; listen(port) is dual stack, so the IPv4 peer is ::ffff:.
    const listener = b.net.listen(httpServer, 80);
    await once(httpServer, 'listening');
    expect(listener.address()).toEqual({ address: '::', family: 'IPv6', port: 80 });
    const agent = a.net.httpAgent({ keepAlive: true });
    const looked: string[] = [];
    const lookup = (name: string, _o: object, cb: (e: Error | null, r: Array<{ address: string; family: number }>) => void): void => {
      looked.push(name);
      cb(null, [{ address: '172.16.0.2', family: 4 }]);
    };
    const body = async (path: string, host = '172.16.0.2'): Promise<{ status: number; text: string }> =>
      new Promise((resolve, reject) => {
        http
          .get({ host, port: 80, path, agent, lookup }, (res) => {
            const parts: Buffer[] = [];
            res.on('data', (d: Buffer) => parts.push(d));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString() }));
          })
          .on('error', reject);
      });
    expect(await body('/one')).toEqual({ status: 200, text: 'hello /one from ::ffff:172.16.0.1' });
    expect(await body('/two')).toEqual({ status: 200, text: 'hello /two from ::ffff:172.16.0.1' });
    expect(await body('/three', 'web.test')).toEqual({ status: 200, text: 'hello /three from ::ffff:172.16.0.1' });
    expect(looked).toEqual(['web.test']);
    agent.destroy();
    httpServer.close();
    await once(listener, 'close');
    expect(listener.listening).toBe(false);
  });

  it('carries TLS: tls.connect({ socket }) and a TLSSocket server over tunstack sockets', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tunstack-tls-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=tunstack.test', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    } catch {
      console.warn('openssl missing: TLS-over-tunstack test skipped');
      return;
    }
    const key = readFileSync(join(dir, 'key.pem'));
    const cert = readFileSync(join(dir, 'cert.pem'));
    const { a, b } = pair();
    const server = b.net.createServer((s) => {
      const t = new tls.TLSSocket(s, { isServer: true, key, cert });
      t.on('data', (d: Buffer) => t.end(`secure ${d.toString()}`));
    });
    server.listen(443);
    await once(server, 'listening');
    const raw = a.net.connect(443, '172.16.0.2');
    const t = tls.connect({ socket: raw, servername: 'tunstack.test', ca: cert });
    await once(t, 'secureConnect');
    t.write('hello');
    const chunks: Buffer[] = [];
    t.on('data', (d: Buffer) => chunks.push(d));
    await once(t, 'end');
    expect(Buffer.concat(chunks).toString()).toBe('secure hello');

    // A tls.Server served through stack.net.listen: no TLSSocket or emit('connection') by hand.
    const secure = tls.createServer({ key, cert }, (s) => s.end(`tls.Server saw ${s.remoteAddress}`));
    const l2 = b.net.listen(secure, 8443, '172.16.0.2');
    await once(secure, 'listening');
    const t2 = tls.connect({ socket: a.net.connect(8443, '172.16.0.2'), servername: 'tunstack.test', ca: cert });
    const got: Buffer[] = [];
    t2.on('data', (d: Buffer) => got.push(d));
    await once(t2, 'end');
    // Node's TLSSocket over a stream that is not a libuv handle cannot see the peer's address
    // (README: Node surfaces); the stack socket, given as 'connection', has it.
    expect(Buffer.concat(got).toString()).toBe('tls.Server saw undefined');
    secure.close();
    await once(l2, 'close');
  });

  it('handles 1000 concurrent connections each echoing data', async () => {
    const { a, b } = pair();
    const server = b.net.createServer((s) => s.pipe(s));
    server.listen(7000);
    await once(server, 'listening');
    const N = 1000;
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        new Promise<boolean>((resolve, reject) => {
          const msg = Buffer.from(`connection ${i} `.repeat(20));
          const c = a.net.connect(7000, '172.16.0.2');
          const parts: Buffer[] = [];
          c.on('data', (d: Buffer) => parts.push(d));
          c.on('error', reject);
          c.on('close', () => resolve(Buffer.concat(parts).equals(msg)));
          c.end(msg);
        }),
      ),
    );
    expect(results.filter(Boolean)).toHaveLength(N);
  });
});

/**
 * SandboxNetwork without a kernel: a guest tunstack stack on the other end of a Wire plays the
 * sandboxed program, the relays use real host sockets on the loopback (servers the test starts).
 */
import { once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createSocket } from 'node:dgram';
import { spawn } from 'node:child_process';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EthernetEndpoint, PacketBuffer, RealClock, Stack, Wire, parseMAC, type Socket } from '../../src/index.js';
import { sendBlocksInUse } from '../../src/transport/tcp/buffers.js';
import { buildIPv4 } from '../../src/headers/ipv4.js';
import { SandboxNetwork, type SandboxNetworkOptions } from '../../src/sandbox/network.js';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { nativeBinding } from '../../src/host/native.js';

const nativeConnect = nativeBinding()?.tcpConnect !== undefined;
const fdStreams = nativeConnect && nativeBinding()?.epollCtl !== undefined;

const closers: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

function setup({ latencyMs, ...options }: Partial<SandboxNetworkOptions> & { latencyMs?: number } = {}) {
  const clock = new RealClock();
  const wire = new Wire({ mtu: options.mtu ?? 1500, linkAddressA: parseMAC('52:55:0a:00:02:02'), ...(latencyMs ? { latencyMs, clock } : {}) });
  const net = new SandboxNetwork({ link: wire.a, icmp: 'gateway', dnsUpstream: [], clock, ...options });
  const guest = new Stack({ seed: 5, clock });
  const gnic = guest.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.b, { linkAddress: parseMAC('52:54:00:12:34:56') }) });
  gnic.addAddress('10.0.2.100/24');
  guest.addRoute({ destination: '0.0.0.0/0', gateway: '10.0.2.2', nic: 'eth0' });
  closers.push(() => {
    net.close();
    guest.close();
  });
  return { net, guest, gnic, wire };
}

async function listenLoopback(server: Server | HttpServer): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

function readAll(s: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (b: Buffer) => parts.push(b));
    s.on('end', () => resolve(Buffer.concat(parts)));
    s.on('error', reject);
  });
}

describe('SandboxNetwork', () => {
  it('relays a guest connection to the gateway to the host loopback (HTTP, both directions, half-close)', async () => {
    const body = Buffer.alloc(300_000, 7);
    const http = createHttpServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (b: Buffer) => parts.push(b));
      req.on('end', () => {
        res.setHeader('x-got', String(Buffer.concat(parts).length));
        res.end(body);
      });
    });
    const port = await listenLoopback(http);
    const { net, guest } = setup();
    const s = guest.net.connect({ host: '10.0.2.2', port });
    const upload = Buffer.alloc(200_000, 1);
    s.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${upload.length}\r\nConnection: close\r\n\r\n`);
    s.end(upload);
    const got = (await readAll(s)).toString('latin1');
    expect(got).toMatch(/^HTTP\/1.1 200/);
    expect(got).toContain('x-got: 200000');
    expect(got.length).toBeGreaterThan(300_000);
    expect(net.tcp.stats.connected).toBe(1);
    expect(net.tcp.stats.bytesToHost).toBeGreaterThan(200_000);
  });

  it('a host that speaks first (more than the early-read bound, then FIN) during a slow handshake: the guest gets all of it', async () => {
    const banner = Buffer.alloc(200_000);
    for (let i = 0; i < banner.length; i++) banner[i] = (i * 7 + (i >> 9)) & 0xff;
    const srv = createServer((c) => c.end(banner));
    const port = await listenLoopback(srv);
    // 20 ms each way: the host's bytes and FIN arrive while the guest's ACK is still on the wire.
    const { net, guest } = setup({ latencyMs: 20 });
    const s = guest.net.connect({ host: '10.0.2.2', port });
    const got = await readAll(s);
    expect(got.equals(banner)).toBe(true);
    expect(net.tcp.stats.hostFirst).toBe(1);
    expect(net.tcp.stats.bytesToGuest).toBe(banner.length);
  });

  it('while the TCP budget is spent, a host that speaks first gets one read in before the handshake completes; all of it arrives later', async () => {
    const banner = Buffer.alloc(200_000);
    for (let i = 0; i < banner.length; i++) banner[i] = (i * 13 + (i >> 8)) & 0xff;
    const srv = createServer((c) => c.end(banner));
    const port = await listenLoopback(srv);
    const { net, guest } = setup({ latencyMs: 20 });
    const mem = net.stack.requireTransport<import('../../src/index.js').TcpProtocol>(6).memory;
    // Spend the budget: early reads are not charged, so only this bound keeps 1000 new flows
    // from adding up to 64 KiB each beyond it.
    const spent = mem.high;
    mem.charge(spent);
    let early = -1;
    net.tcp.onFlow = () => queueMicrotask(() => (early = net.tcp.stats.bytesToGuest));
    const s = guest.net.connect({ host: '10.0.2.2', port });
    const t0 = Date.now();
    while (early < 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 5));
    expect(net.tcp.stats.hostFirst).toBe(1);
    expect(early).toBeGreaterThan(0);
    expect(early).toBeLessThanOrEqual(16384);
    mem.charge(-spent);
    const got = await readAll(s);
    expect(got.equals(banner)).toBe(true);
  });

  it.skipIf(!nativeConnect)('with the native connect, a short reply and the host FIN behind it reach the guest in one segment; Node connect gives the same bytes', async () => {
    const srv = createServer((c) => c.end('hi'));
    const port = await listenLoopback(srv);
    for (const native of [true, false]) {
      const { net, guest, wire } = setup({ nativeConnect: native });
      // The segments the relay sends the guest from the server's port: [flags, payload length].
      const segs: Array<[number, number]> = [];
      const write = wire.a.writePackets.bind(wire.a);
      wire.a.writePackets = (pkts) => {
        for (const p of pkts) {
          const b = p.toBytes();
          if (b.length < 34 || b[12] !== 0x08 || b[13] !== 0 || b[23] !== 6) continue;
          const t = 14 + (b[14]! & 15) * 4;
          if (((b[t]! << 8) | b[t + 1]!) !== port) continue;
          const ipLen = (b[16]! << 8) | b[17]!;
          segs.push([b[t + 13]!, ipLen - (t - 14) - (b[t + 12]! >> 4) * 4]);
        }
        return write(pkts);
      };
      const s = guest.net.connect({ host: '10.0.2.2', port });
      expect((await readAll(s)).toString()).toBe('hi');
      s.destroy();
      expect(net.tcp.stats.connected).toBe(1);
      const FIN = 1;
      const data = segs.filter(([, len]) => len > 0);
      expect(data.length).toBe(1);
      if (native) {
        // Read, then peeked: the FIN is known with the bytes.
        expect(data[0]![0] & FIN).toBe(FIN);
        expect(segs.filter(([f]) => f & FIN).length).toBe(1);
      }
    }
  });

  it.skipIf(!nativeConnect)('a native connect left in progress (the host listener\'s accept queue full) is answered when it completes; one that never does is dropped after the timeout', async () => {
    // A listener with backlog 0 that accepts only when told: one connection fills its queue, so
    // the kernel drops the relay's SYN and the connect stays in progress until a retransmission.
    const py = spawn('python3', ['-c', [
      'import socket, sys',
      's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)',
      'print(s.getsockname()[1], flush=True)',
      'sys.stdin.readline()',
      'while True:',
      '    c, _ = s.accept(); c.sendall(b"ok"); c.close()',
    ].join('\n')], { stdio: ['pipe', 'pipe', 'inherit'] });
    closers.push(() => void py.kill());
    const [line] = (await once(py.stdout, 'data')) as [Buffer];
    const port = Number(line.toString().trim());
    const filler = connect(port, '127.0.0.1');
    filler.on('error', () => {});
    closers.push(() => void filler.destroy());
    await once(filler, 'connect');
    const { net, guest } = setup({ limits: { connectTimeoutMs: 600 } });
    // Nothing answers within the timeout: the SYN is dropped, the guest hears nothing.
    const lost = guest.net.connect({ host: '10.0.2.2', port });
    lost.on('error', () => {});
    const t0 = Date.now();
    while (net.tcp.stats.failed === 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
    expect(net.tcp.stats.failed).toBe(1);
    expect(net.tcp.stats.connected).toBe(0);
    lost.destroy();
    // A longer timeout: the listener starts accepting meanwhile, a retransmitted SYN gets in.
    const b = setup();
    const s = b.guest.net.connect({ host: '10.0.2.2', port });
    setTimeout(() => py.stdin.write('go\n'), 300);
    const got = readAll(s);
    expect((await got).toString()).toBe('ok');
    expect(b.net.tcp.stats.connected).toBe(1);
    expect(b.net.tcp.stats.failed).toBe(0);
  });

  it('idle relayed flows hold no read buffer each; a bulk one reads into send blocks and returns them', async () => {
    const held: Array<import('node:net').Socket> = [];
    const srv = createServer((c) => {
      c.on('error', () => {});
      held.push(c);
    });
    const port = await listenLoopback(srv);
    closers.push(() => held.forEach((c) => c.destroy()));
    const { net, guest } = setup();
    const base = sendBlocksInUse();
    const socks = Array.from({ length: 100 }, () => guest.net.connect({ host: '10.0.2.2', port }));
    await Promise.all(socks.map((s) => once(s, 'connect')));
    while (held.length < 100) await new Promise((r) => setTimeout(r, 5));
    expect(net.tcp.stats.active).toBe(100);
    expect(sendBlocksInUse() - base).toBeLessThan(3);
    // One host socket sends 2 MiB: it switches to blocks; after the guest read it all and the
    // flow closed, every block is back.
    const big = Buffer.alloc(2 << 20, 3);
    held[0]!.end(big);
    const got = await Promise.all(socks.map((s, i) => (i === 0 ? readAll(s) : Promise.resolve(Buffer.alloc(0)))));
    expect(got[0]!.equals(big)).toBe(true);
    for (const s of socks) s.destroy();
    for (const c of held) c.destroy();
    const t0 = Date.now();
    while (net.tcp.stats.active > 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
    expect(net.tcp.stats.active).toBe(0);
    // (A previous test's sockets may still be closing and give theirs back meanwhile.)
    await new Promise((r) => setTimeout(r, 20));
    expect(sendBlocksInUse()).toBeLessThanOrEqual(base);
  });

  it('a refused host connect is a RST for the guest (ECONNREFUSED); so is the gateway with host loopback off', async () => {
    const srv = createServer();
    const port = await listenLoopback(srv);
    await new Promise<void>((r) => srv.close(() => r()));
    const { guest, net } = setup();
    const s = guest.net.connect({ host: '10.0.2.2', port });
    const [err] = (await once(s, 'error')) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNREFUSED');
    expect(net.tcp.stats.refused).toBe(1);

    const open = createServer((c) => c.end('hi'));
    const port2 = await listenLoopback(open);
    const b = setup({ hostLoopback: false });
    const s2 = b.guest.net.connect({ host: '10.0.2.2', port: port2 });
    const [err2] = (await once(s2, 'error')) as [NodeJS.ErrnoException];
    expect(err2.code).toBe('ECONNREFUSED');
    expect(b.net.tcp.stats.notRelayed).toBe(1);
  });

  it('relays UDP to the host loopback and answers from the address the guest used; flows expire', async () => {
    const echo = createSocket('udp4');
    echo.on('message', (m, r) => echo.send(Buffer.concat([Buffer.from('echo:'), m]), r.port, r.address));
    echo.bind(0, '127.0.0.1');
    await once(echo, 'listening');
    closers.push(() => void echo.close());
    const port = echo.address().port;
    const { guest, net } = setup({ limits: { udpIdleMs: 200 } });
    const g = guest.dgram.createSocket('udp4');
    closers.push(() => void g.close());
    const got = once(g, 'message');
    g.send(Buffer.from('ping'), port, '10.0.2.2');
    const [msg, rinfo] = (await got) as [Buffer, { address: string; port: number }];
    expect(msg.toString()).toBe('echo:ping');
    expect([rinfo.address, rinfo.port]).toEqual(['10.0.2.2', port]);
    // The flow's later datagrams go through the same host socket.
    const got2 = once(g, 'message');
    g.send(Buffer.from('again'), port, '10.0.2.2');
    expect(((await got2) as [Buffer])[0].toString()).toBe('echo:again');
    expect(net.udp.stats.flows).toBe(1);
    expect(net.udp.stats.datagramsToHost).toBe(2);
    await new Promise((r) => setTimeout(r, 600));
    expect(net.udp.flowCount).toBe(0);
    expect(net.udp.stats.idleClosed).toBe(1);
  });

  it('publishes host ports into the guest (TCP and UDP), from the gateway address', async () => {
    const { guest, net } = setup();
    const l = guest.net.createServer((c) => {
      c.end(`from ${c.remoteAddress}`);
    });
    l.listen(8080, '0.0.0.0'); // IPv4 only: a dual-stack listener would see ::ffff:10.0.2.2
    const ud = guest.dgram.createSocket('udp4');
    ud.bind(5353);
    ud.on('message', (m, r) => ud.send(Buffer.from(`u:${m.toString()}`), r.port, r.address));
    closers.push(() => void ud.close());
    const probe = createServer();
    const hostPort = await listenLoopback(probe);
    await new Promise<void>((r) => probe.close(() => r()));
    await net.publish({ protocol: 'tcp', hostPort, guestPort: 8080 });
    await net.publish({ protocol: 'udp', hostPort, guestPort: 5353 });
    const { connect } = await import('node:net');
    const c = connect(hostPort, '127.0.0.1');
    const text = await new Promise<string>((resolve, reject) => {
      let s = '';
      c.on('data', (b: Buffer) => (s += b.toString()));
      c.on('end', () => resolve(s));
      c.on('error', reject);
    });
    expect(text).toBe('from 10.0.2.2');
    const u = createSocket('udp4');
    closers.push(() => void u.close());
    const got = once(u, 'message');
    u.send('x', hostPort, '127.0.0.1');
    expect(((await got) as [Buffer])[0].toString()).toBe('u:x');
  });

  it('answers pings to the gateway; echo requests to foreign addresses are intercepted, not answered by the stack', async () => {
    const { guest, net } = setup();
    const r = await guest.ping('10.0.2.2', { timeoutMs: 1000 });
    expect(r.from).toBe('10.0.2.2');
    await expect(guest.ping('192.0.2.77', { timeoutMs: 200 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(net.stats.echoIntercepted).toBe(1);
  });

  it('relays foreign echo requests through ping(8) when allowed (a stand-in ping that always succeeds)', async () => {
    const { guest, net } = setup({ icmp: 'relay', pingCommand: 'true' });
    const r = await guest.ping('192.0.2.77', { timeoutMs: 2000 });
    expect(r.from).toBe('192.0.2.77');
    expect(net.ping!.stats.replies).toBe(1);
    // What is not relayed: the rest of the guest's subnet, loopback, link-local, multicast.
    expect(['10.0.2.50', '127.0.0.1', '0.0.0.0'].map((a) => net.mapDestination(4, a))).toEqual([null, null, null]);
    expect(['::1', 'fe80::1', 'ff02::1', 'fd00::77'].map((a) => net.mapDestination(6, a))).toEqual([null, null, null, null]);
    expect([net.mapDestination(4, '10.0.2.2'), net.mapDestination(6, 'fd00::2'), net.mapDestination(4, '198.51.100.1')]).toEqual(['127.0.0.1', '::1', '198.51.100.1']);
  });

  it('bounds UDP flows (least recently used closed first) and keeps serving under a flood of garbage', async () => {
    const echo = createSocket('udp4');
    echo.on('message', (m, r) => echo.send(m, r.port, r.address));
    echo.bind(0, '127.0.0.1');
    await once(echo, 'listening');
    closers.push(() => void echo.close());
    const port = echo.address().port;
    const { guest, net, wire } = setup({ limits: { maxUdpFlows: 64 } });
    // 500 flows from distinct source ports.
    const socks: Array<{ close(): unknown }> = [];
    for (let i = 0; i < 500; i++) {
      const s = guest.dgram.createSocket('udp4');
      s.on('error', () => {});
      s.send(Buffer.from('x'), port, '10.0.2.2');
      socks.push(s);
    }
    closers.push(() => socks.forEach((s) => void s.close()));
    expect(net.udp.flowCount).toBeLessThanOrEqual(64);
    expect(net.udp.stats.evicted).toBeGreaterThanOrEqual(436);
    // Garbage: IPv4 packets with random transport bytes (bad checksums, truncated headers, odd
    // protocols), some with broken IP headers, and random Ethernet frames.
    let seed = 1;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    const raw = guest.raw({ family: 4, protocol: 255 });
    for (let i = 0; i < 3000; i++) {
      const proto = [6, 17, 1, rnd()][i % 4]!;
      const payload = Uint8Array.from({ length: 8 + (rnd() % 64) }, rnd);
      const dst = Uint8Array.of(10, 0, 2, [2, 3, rnd()][i % 3]!);
      const pkt = buildIPv4({ src: Uint8Array.of(10, 0, 2, 100), dst, protocol: proto }, payload);
      if (i % 5 === 0) pkt[0] = 0x40 | (rnd() & 15); // bad header length
      try {
        raw.send(pkt);
      } catch {
        /* some are refused by the guest stack itself */
      }
    }
    raw.close();
    for (let i = 0; i < 2000; i++) {
      const frame = Uint8Array.from({ length: 14 + (rnd() % 120) }, rnd);
      frame.set([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02], 0);
      frame[12] = [0x08, 0x86, 0x08][i % 3]!;
      frame[13] = [0x00, 0xdd, 0x06][i % 3]!;
      wire.b.writePackets([PacketBuffer.fromPayload(frame)]);
    }
    // Still serving: a TCP connection and a UDP round trip.
    const srv = createServer((c) => c.end('alive'));
    const tport = await listenLoopback(srv);
    const s = guest.net.connect({ host: '10.0.2.2', port: tport });
    expect((await readAll(s)).toString()).toBe('alive');
    const g = guest.dgram.createSocket('udp4');
    closers.push(() => void g.close());
    const got = once(g, 'message');
    g.send(Buffer.from('still'), port, '10.0.2.2');
    expect(((await got) as [Buffer])[0].toString()).toBe('still');
    expect(net.stack.stats.internalErrors ?? 0).toBe(0);
  });
});

/** How the relay reaches host sockets: fds of its own, the native connect's fd in a Node socket, Node's connect. */
const hostPaths: Array<[string, Partial<SandboxNetworkOptions>, boolean]> = [
  ['raw fds (FdSocket)', {}, !fdStreams],
  ['native connect in a Node socket', { fdStreams: false }, !nativeConnect],
  ['Node connect', { nativeConnect: false }, false],
];

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond() && Date.now() - t0 < ms) await new Promise((r) => setTimeout(r, 10));
}

/**
 * Waits until `read()` has stayed the same for `quietMs` (sampled every 10 ms), and returns it.
 * A flow that is still growing can stand still for a few samples on a loaded machine (CI runs
 * other test files beside this one), so two equal samples in a row are not enough.
 */
async function settled(read: () => number, quietMs = 500, ms = 10_000): Promise<number> {
  const t0 = Date.now();
  let last = read();
  let since = Date.now();
  while (Date.now() - t0 < ms) {
    await new Promise((r) => setTimeout(r, 10));
    const now = read();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (now > 0 && Date.now() - since >= quietMs) break;
  }
  return last;
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

describe.each(hostPaths)('TCP relay host side: %s', (_name, opts, skip) => {
  it.skipIf(skip)('carries 4 MiB each way at once intact (sha256), the guest half-closing first; counts the bytes', async () => {
    const up = randomBytes(4 << 20);
    const down = randomBytes(4 << 20);
    let hostGot = '';
    const srv = createServer({ allowHalfOpen: true }, (c) => {
      const h = createHash('sha256');
      c.on('data', (b: Buffer) => h.update(b));
      c.on('end', () => {
        hostGot = h.digest('hex');
        // The guest's FIN is in: the host still sends, then ends.
        c.end(down.subarray(1 << 20));
      });
      c.write(down.subarray(0, 1 << 20));
    });
    const port = await listenLoopback(srv);
    const { net, guest } = setup(opts);
    const s = guest.net.connect({ host: '10.0.2.2', port });
    s.end(up);
    const got = await readAll(s);
    expect(sha256(got)).toBe(sha256(down));
    await until(() => hostGot !== '');
    expect(hostGot).toBe(sha256(up));
    expect(net.tcp.stats.bytesToHost).toBe(up.length);
    expect(net.tcp.stats.bytesToGuest).toBe(down.length);
    await until(() => net.tcp.stats.closed === 1);
    expect(net.tcp.stats.closed).toBe(1);
    expect(net.tcp.stats.active).toBe(0);
  });

  it.skipIf(skip)('the host half-closes first and still reads what the guest sends after', async () => {
    let late = '';
    const srv = createServer({ allowHalfOpen: true }, (c) => {
      c.end('bye');
      c.setEncoding('latin1');
      c.on('data', (d: string) => (late += d));
      c.on('end', () => (late += '|end'));
    });
    const port = await listenLoopback(srv);
    const { net, guest } = setup(opts);
    const s = guest.net.connect({ host: '10.0.2.2', port, allowHalfOpen: true });
    const got = await readAll(s);
    expect(got.toString()).toBe('bye');
    s.end('late data');
    await until(() => late.endsWith('|end'));
    expect(late).toBe('late data|end');
    await until(() => net.tcp.stats.closed === 1);
    expect(net.tcp.stats.active).toBe(0);
  });

  it.skipIf(skip)('a guest reset resets the host socket; a host reset resets the guest connection', async () => {
    const hostErr: Array<string | undefined> = [];
    const conns: Array<import('node:net').Socket> = [];
    const srv = createServer((c) => {
      conns.push(c);
      c.on('error', (e: NodeJS.ErrnoException) => hostErr.push(e.code));
    });
    const port = await listenLoopback(srv);
    const { net, guest } = setup(opts);
    const a = guest.net.connect({ host: '10.0.2.2', port });
    await once(a, 'connect');
    await until(() => conns.length === 1);
    a.write('x');
    await new Promise((r) => setTimeout(r, 30));
    a.resetAndDestroy();
    await until(() => hostErr.length === 1);
    expect(hostErr).toEqual(['ECONNRESET']);
    // The other way.
    const b = guest.net.connect({ host: '10.0.2.2', port });
    await once(b, 'connect');
    await until(() => conns.length === 2);
    conns[1]!.resetAndDestroy();
    const [err] = (await once(b, 'error')) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNRESET');
    await until(() => net.tcp.stats.closed === 2);
    expect(net.tcp.stats.active).toBe(0);
  });

  it.skipIf(skip)('a host that never reads holds the guest by its window; a guest that never reads holds the host: neither is buffered without bound', async () => {
    const conns: Array<import('node:net').Socket> = [];
    const srv = createServer((c) => {
      c.pause();
      conns.push(c);
    });
    const port = await listenLoopback(srv);
    closers.push(() => conns.forEach((c) => c.destroy()));
    const { net, guest } = setup(opts);
    const s = guest.net.connect({ host: '10.0.2.2', port });
    s.on('error', () => {});
    const big = Buffer.alloc(64 << 20, 5);
    s.write(big);
    // The guest keeps trying: what reached the host side settles (socket buffers and TCP windows).
    let last = await settled(() => net.tcp.stats.bytesToHost);
    await new Promise((r) => setTimeout(r, 500));
    expect(net.tcp.stats.bytesToHost).toBe(last);
    expect(last).toBeGreaterThan(0);
    expect(last).toBeLessThan(24 << 20);
    s.destroy();

    // The other way: the host streams, the guest reads nothing.
    const feeder = createServer((c) => {
      c.on('error', () => {});
      const chunk = Buffer.alloc(1 << 20, 9);
      const pump = (): void => {
        while (c.write(chunk));
      };
      c.on('drain', pump);
      pump();
      conns.push(c);
    });
    const port2 = await listenLoopback(feeder);
    // Closers run last-in first-out: the feeder's close waits for its connection, so end that first
    // (the guest's destroy below does it when the test gets there).
    closers.push(() => conns.forEach((c) => c.destroy()));
    const g = guest.net.connect({ host: '10.0.2.2', port: port2 });
    g.on('error', () => {});
    g.pause();
    last = await settled(() => net.tcp.stats.bytesToGuest);
    await new Promise((r) => setTimeout(r, 500));
    expect(net.tcp.stats.bytesToGuest).toBe(last);
    expect(last).toBeGreaterThan(0);
    expect(last).toBeLessThan(16 << 20);
    expect(net.tcp.queuedToGuest).toBeLessThan(16 << 20);
    g.destroy();
  });

  it.skipIf(skip)('200 flows opened and closed, then 50 left open when the network closes: no fd is left behind', async () => {
    let accepted = 0;
    const srv = createServer((c) => {
      accepted++;
      c.on('error', () => {});
      c.once('data', () => c.end('pong'));
    });
    const port = await listenLoopback(srv);
    const { net, guest } = setup(opts);
    // Warm up (lazily made fds: the epoll set, Node's own), then count.
    const w = guest.net.connect({ host: '10.0.2.2', port });
    w.write('ping');
    await readAll(w);
    await until(() => net.tcp.stats.active === 0);
    // The server's side of it closes a turn later.
    await new Promise((r) => setTimeout(r, 50));
    const before = openFds();
    for (let round = 0; round < 4; round++) {
      const socks = Array.from({ length: 50 }, () => guest.net.connect({ host: '10.0.2.2', port }));
      const replies = await Promise.all(
        socks.map((s) => {
          s.write('ping');
          return readAll(s);
        }),
      );
      for (const r of replies) expect(r.toString()).toBe('pong');
    }
    await until(() => net.tcp.stats.active === 0);
    expect(net.tcp.stats.closed).toBe(201);
    // Give the host side's closes a turn.
    await new Promise((r) => setTimeout(r, 50));
    expect(openFds()).toBeLessThanOrEqual(before);
    const open = Array.from({ length: 50 }, () => guest.net.connect({ host: '10.0.2.2', port }));
    for (const s of open) s.on('error', () => {});
    await Promise.all(open.map((s) => once(s, 'connect')));
    await until(() => net.tcp.stats.active === 50 && accepted === 251);
    // The relay's 50 and the test server's 50.
    expect(openFds()).toBeGreaterThanOrEqual(before + 100);
    net.close();
    await new Promise((r) => setTimeout(r, 50));
    // The relay's are closed; the server's are closing (the host saw them end or reset).
    expect(openFds()).toBeLessThanOrEqual(before + 50);
    await until(() => openFds() <= before);
    expect(openFds()).toBeLessThanOrEqual(before);
  });
});

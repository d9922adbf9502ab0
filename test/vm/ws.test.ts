/**
 * The WebSocket transport (v86's relay protocol: one binary message per Ethernet frame) with plain
 * clients: the `ws` package's client for relayed frames (DHCP through a per-connection network and
 * through a shared switch), and a raw TCP client writing WebSocket frames by hand for origins and
 * bad input (a text message, sizes outside 14..MTU + 18, a 4 GiB length field, half a message, a
 * peer that never reads). The v86 guest over this transport is in v86.test.ts.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ManualClock, RealClock, parseIPv4 } from '../../src/index.js';
import { buildEthernet, buildIPv4, buildUdp } from '../../src/headers/index.js';
import { BOOTREQUEST, DhcpMessageType, DhcpOption, encodeDhcp, parseDhcp } from '../../src/headers/dhcp.js';
import { SandboxNetwork } from '../../src/sandbox/network.js';
import { PacketBuffer } from '../../src/core/packet.js';
import { FramePort } from '../../src/link/frame-port.js';
import { WsFrameServer, type WsFrameServerOptions, type WsNetworkMode } from '../../src/vm/ws.js';

const closers: Array<() => unknown> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

function discover(mac: Uint8Array): Uint8Array {
  const zero = new Uint8Array(4);
  const options = new Map<number, Uint8Array>([[DhcpOption.MESSAGE_TYPE, Uint8Array.of(DhcpMessageType.DISCOVER)]]);
  const dhcp = encodeDhcp({ op: BOOTREQUEST, htype: 1, hlen: 6, hops: 0, xid: 0x1234abcd, secs: 0, flags: 0, ciaddr: zero, yiaddr: zero, siaddr: zero, giaddr: zero, chaddr: mac, options });
  const dst = parseIPv4('255.255.255.255');
  const udp = buildUdp({ srcPort: 68, dstPort: 67, pseudoHeader: { src: zero, dst } }, dhcp);
  return buildEthernet({ destination: new Uint8Array(6).fill(0xff), source: mac, etherType: 0x0800 }, buildIPv4({ src: zero, dst, protocol: 17, ttl: 64 }, udp));
}
const isDhcpReply = (f: Uint8Array): boolean => f.length > 42 && f[12] === 0x08 && f[13] === 0x00 && f[23] === 17 && f[36] === 0 && f[37] === 68;
const mac = (n: number): Uint8Array => Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, n);

/** A WsFrameServer on the loopback; `networks` counts the guest networks made. */
async function wsServer(opts: Partial<WsFrameServerOptions> & { mode?: WsNetworkMode; bare?: boolean } = {}) {
  const logs: string[] = [];
  const made: FramePort[] = [];
  const clock = opts.clock ?? new RealClock();
  const network = (): { port: FramePort; close: () => void } => {
    const port = new FramePort({ queueLength: 64 });
    made.push(port);
    if (opts.bare) {
      port.attach({ deliverNetworkPacket: () => {} });
      return { port, close: () => port.close() };
    }
    const net = new SandboxNetwork({ link: port, icmp: 'gateway', ipv6: false, dnsUpstream: [], clock });
    return { port, close: () => net.close() };
  };
  const server = new WsFrameServer({ network, clock, log: (l) => logs.push(l), ...opts });
  await server.listen('127.0.0.1', 0);
  closers.push(() => server.close());
  return { server, logs, made, url: `ws://127.0.0.1:${server.tcpPort}/` };
}

/** A `ws` client collecting the frames it gets. */
async function client(url: string): Promise<{ ws: WebSocket; frames: Uint8Array[]; wait: (m: (f: Uint8Array) => boolean) => Promise<Uint8Array> }> {
  const ws = new WebSocket(url);
  closers.push(() => ws.terminate());
  const frames: Uint8Array[] = [];
  ws.on('message', (d: Buffer) => frames.push(new Uint8Array(d)));
  await once(ws, 'open');
  return {
    ws,
    frames,
    async wait(m) {
      for (let i = 0; i < 2000; i++) {
        const f = frames.find(m);
        if (f) return f;
        await new Promise((r) => setTimeout(r, 5));
      }
      throw new Error('no matching frame');
    },
  };
}

/** A raw TCP client: the HTTP upgrade by hand, then WebSocket frames written byte by byte. */
async function rawClient(port: number, origin?: string, withRequest: Uint8Array = new Uint8Array(0)): Promise<{ sock: Socket; status: string; closed: Promise<void> }> {
  const sock = connect(port, '127.0.0.1');
  closers.push(() => void sock.destroy());
  sock.on('error', () => {});
  const closed = once(sock, 'close').then(() => {});
  await once(sock, 'connect');
  const request = `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${origin !== undefined ? `Origin: ${origin}\r\n` : ''}\r\n`;
  sock.write(Buffer.concat([Buffer.from(request, 'latin1'), withRequest]));
  let head = '';
  while (!head.includes('\r\n\r\n')) {
    const [b] = (await Promise.race([once(sock, 'data'), closed.then(() => [Buffer.from('\r\n\r\n')])])) as [Buffer];
    head += b.toString('latin1');
  }
  return { sock, status: head.split('\r\n')[0]!, closed };
}

/** A client-to-server WebSocket frame header (masked, mask 0) for a payload of `len` bytes. */
function wsHeader(opcode: number, len: number): Buffer {
  if (len < 126) return Buffer.from([0x80 | opcode, 0x80 | len, 0, 0, 0, 0]);
  if (len < 65536) return Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 255, 0, 0, 0, 0]);
  const b = Buffer.alloc(14);
  b[0] = 0x80 | opcode;
  b[1] = 0x80 | 127;
  b.writeBigUInt64BE(BigInt(len), 2);
  return b;
}
const wsFrame = (opcode: number, payload: Uint8Array): Buffer => Buffer.concat([wsHeader(opcode, payload.length), payload]);

describe('WebSocket transport: frames relayed', () => {
  it('per connection: each socket gets its own guest network (both are offered 10.0.2.100), closed with the socket', async () => {
    const { url, made, server } = await wsServer();
    const a = await client(url);
    const b = await client(url);
    a.ws.send(discover(mac(1)));
    b.ws.send(discover(mac(2)));
    const offers = await Promise.all([a.wait(isDhcpReply), b.wait(isDhcpReply)]);
    expect(offers.map((f) => parseDhcp(f.subarray(42)).yiaddr.join('.'))).toEqual(['10.0.2.100', '10.0.2.100']);
    expect(made).toHaveLength(2);
    a.ws.close();
    while (!made[0]!.isClosed) await tick();
    expect(server.connected).toBe(1);
    expect(server.stats.framesIn).toBe(2);
  });

  it('shared: one network and a switch: two guests are offered .100 and .101, and a unicast between them goes only to its MAC', async () => {
    const { url, made } = await wsServer({ mode: 'shared' });
    const a = await client(url);
    const b = await client(url);
    const c = await client(url);
    a.ws.send(discover(mac(1)));
    const offerA = parseDhcp((await a.wait(isDhcpReply)).subarray(42)).yiaddr.join('.');
    b.ws.send(discover(mac(2)));
    // (Offers may be broadcast: tell them apart by the client hardware address.)
    const offerB = parseDhcp((await b.wait((f) => isDhcpReply(f) && f[42 + 28 + 5] === 2)).subarray(42)).yiaddr.join('.');
    expect(made).toHaveLength(1);
    expect([offerA, offerB].sort()).toEqual(['10.0.2.100', '10.0.2.101']);
    // The broadcast DISCOVER of b reached a and c (a switch floods broadcasts).
    expect(a.frames.some((f) => f[11] === 2 && f[0] === 0xff)).toBe(true);
    const unicast = buildEthernet({ destination: mac(2), source: mac(1), etherType: 0x88b5 }, new Uint8Array(46).fill(7));
    const before = c.frames.length;
    a.ws.send(unicast);
    const got = await b.wait((f) => f[12] === 0x88 && f[13] === 0xb5);
    expect(got.subarray(14)).toEqual(new Uint8Array(46).fill(7));
    await new Promise((r) => setTimeout(r, 50));
    expect(c.frames.slice(before).some((f) => f[12] === 0x88 && f[13] === 0xb5)).toBe(false);
  });
});

describe('WebSocket transport: origins', () => {
  it('a browser Origin not allowed is refused with 403 and a log line; no Origin (Node) and an allowed one are let in', async () => {
    const { server, logs } = await wsServer({ allowOrigins: ['http://localhost:8080'], bare: true });
    const evil = await rawClient(server.tcpPort, 'http://evil.example');
    expect(evil.status).toBe('HTTP/1.1 403 Forbidden');
    await evil.closed;
    expect(server.stats.refusedOrigin).toBe(1);
    expect(logs.join('\n')).toContain('origin http://evil.example is not allowed');
    expect((await rawClient(server.tcpPort)).status).toBe('HTTP/1.1 101 Switching Protocols');
    expect((await rawClient(server.tcpPort, 'http://localhost:8080')).status).toBe('HTTP/1.1 101 Switching Protocols');
    expect(server.stats.connections).toBe(2);
  });

  it('by default every browser origin is refused; --ws-max-guests bounds the connections (503)', async () => {
    const { server } = await wsServer({ maxConnections: 1, bare: true });
    expect((await rawClient(server.tcpPort, 'http://localhost:8080')).status).toBe('HTTP/1.1 403 Forbidden');
    expect((await rawClient(server.tcpPort)).status).toBe('HTTP/1.1 101 Switching Protocols');
    expect((await rawClient(server.tcpPort)).status).toBe('HTTP/1.1 503 Service Unavailable');
  });
});

describe('WebSocket transport: bad input', () => {
  for (const [name, opcode, len, why] of [
    ['a text message', 1, 60, 'a text message (frames are binary messages)'],
    ['an empty message (length 0)', 2, 0, 'a message of 0 bytes, outside 14..1518'],
    ['a message of 13 bytes', 2, 13, 'a message of 13 bytes, outside 14..1518'],
    ['a message of MTU + 19 bytes', 2, 1519, 'Max payload size exceeded'],
  ] as const) {
    it(`${name} closes the connection with a log line; a frame of MTU + 18 before it was taken`, async () => {
      const { server, logs, made } = await wsServer({ bare: true, maxFrame: 1518 });
      const c = await rawClient(server.tcpPort);
      c.sock.write(wsFrame(2, new Uint8Array(1518)));
      c.sock.write(wsFrame(opcode, new Uint8Array(len)));
      await c.closed;
      expect(made[0]!.stats.rxFrames).toBe(1);
      expect(server.stats.badMessages).toBe(1);
      expect(logs.join('\n')).toContain(why);
      expect(logs.join('\n')).toContain('closing the connection');
    });
  }

  it('a length field of 4 GiB closes the connection at once, buffering nothing', async () => {
    const { server, logs } = await wsServer({ bare: true });
    const c = await rawClient(server.tcpPort);
    const before = process.memoryUsage().arrayBuffers;
    c.sock.write(wsHeader(2, 2 ** 32));
    c.sock.write(Buffer.alloc(1000));
    await c.closed;
    expect(server.stats.badMessages).toBe(1);
    expect(logs.join('\n')).toMatch(/Max payload size exceeded \(frames are at most 1518 bytes\); closing the connection/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 << 20);
  });

  it('half a message and a stall: closed after the idle timeout on the given clock, not before', async () => {
    const clock = new ManualClock();
    const { server, logs, made } = await wsServer({ bare: true, clock, idleTimeoutMs: 5000 });
    const c = await rawClient(server.tcpPort);
    c.sock.write(wsFrame(2, new Uint8Array(60)));
    c.sock.write(wsFrame(2, new Uint8Array(100)).subarray(0, 40));
    // Wait until the server has the whole frame and the half one (its idle timer is armed).
    while (server.stats.bytesIn < 66 + 40 || made[0]!.stats.rxFrames < 1) await tick();
    clock.advance(4999);
    await tick();
    expect(server.connected).toBe(1);
    clock.advance(1);
    await c.closed;
    expect(server.stats.idleTimeouts).toBe(1);
    expect(logs.join('\n')).toContain('a message stayed incomplete for 5000 ms; closing the connection');
  });

  it('half a frame sent with the upgrade request, then the rest: complete, no idle close', async () => {
    const clock = new ManualClock();
    const { server, made } = await wsServer({ bare: true, clock, idleTimeoutMs: 5000 });
    const f = wsFrame(2, new Uint8Array(100));
    const c = await rawClient(server.tcpPort, undefined, f.subarray(0, 40));
    while (made.length === 0) await tick();
    c.sock.write(f.subarray(40));
    // (ws may parse a chunk after the server counted its bytes: wait for the frame itself.)
    while (made[0]!.stats.rxFrames < 1) await tick();
    clock.advance(60_000);
    await tick();
    expect(server.connected).toBe(1);
    expect(server.stats.idleTimeouts).toBe(0);
  });

  it('whole messages do not arm the idle timer', async () => {
    const clock = new ManualClock();
    const { server, made } = await wsServer({ bare: true, clock, idleTimeoutMs: 5000 });
    const c = await rawClient(server.tcpPort);
    for (let i = 0; i < 5; i++) c.sock.write(wsFrame(2, new Uint8Array(60)));
    while (made[0]?.stats.rxFrames !== 5) await tick();
    clock.advance(60_000);
    await tick();
    expect(server.connected).toBe(1);
  });

  it('a peer that never reads: the queue stays bounded, drops are counted, the connection is closed after the stall timeout', async () => {
    const clock = new ManualClock();
    const { server, logs, made } = await wsServer({ bare: true, clock, stallTimeoutMs: 10_000, writeBufferBytes: 64 * 1024 });
    const c = await rawClient(server.tcpPort);
    c.sock.pause();
    while (made.length === 0) await tick();
    const port = made[0]!;
    const frame = new Uint8Array(1514);
    for (let sent = 0; port.stats.txDropped < 100 && sent < 200_000; sent += 100) {
      for (let i = 0; i < 100; i++) port.writePackets([PacketBuffer.copyOf(frame)]);
      await tick();
    }
    expect(port.stats.txDropped).toBeGreaterThanOrEqual(100);
    expect(port.queued).toBeLessThanOrEqual(64);
    clock.advance(10_000);
    while (server.connected > 0) await tick();
    expect(server.stats.stallTimeouts).toBe(1);
    expect(logs.join('\n')).toMatch(/the guest read nothing for 10000 ms \(\d+ frames dropped so far\); closing the connection/);
  });
});

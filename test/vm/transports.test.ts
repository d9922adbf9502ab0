/**
 * QEMU's transports driven by a fake QEMU written here: a net client that speaks the stream
 * framing (32-bit big-endian length, then the frame) on a unix socket or TCP loopback, or a UDP
 * socket with one frame per datagram, in front of a SandboxNetwork on a FramePort. Raw frames
 * check DHCP, ARP and ping; a guest tunstack stack behind the fake peer checks a TCP download
 * through the relay; bad input closes the connection (or, over UDP, is dropped and counted).
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket as NetSocket } from 'node:net';
import { tmpdir } from 'node:os';
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ChannelEndpoint, EthernetEndpoint, ManualClock, RealClock, Stack, parseIPv4, parseMAC, type Socket } from '../../src/index.js';
import { buildEthernet, buildIPv4, buildUdp } from '../../src/headers/index.js';
import { buildArp } from '../../src/headers/arp.js';
import { BOOTREQUEST, DhcpMessageType, DhcpOption, encodeDhcp, parseDhcp } from '../../src/headers/dhcp.js';
import { buildIcmpV4Echo } from '../../src/headers/icmpv4.js';
import { SandboxNetwork } from '../../src/sandbox/network.js';
import { FramePort } from '../../src/link/frame-port.js';
import { StreamFrameServer } from '../../src/vm/stream.js';
import { UdpFrameServer } from '../../src/vm/udp.js';
import { UnixgramFrameServer, unixgramUnavailableReason } from '../../src/vm/unixgram.js';
import { requireNative, type PollerHandle } from '../../src/host/native.js';
import { PacketBuffer } from '../../src/core/packet.js';

const GUEST_MAC = parseMAC('52:54:00:12:34:56');
const BROADCAST = parseMAC('ff:ff:ff:ff:ff:ff');
const closers: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

/** A fake QEMU: frames to the stack, frames from it (kept, or handed to onFrame). */
interface Peer {
  frames: Uint8Array[];
  onFrame: ((f: Uint8Array) => void) | null;
  send(frame: Uint8Array): void;
  wait(match: (f: Uint8Array) => boolean): Promise<Uint8Array>;
}

/** QEMU's datagram transport: one frame per UDP datagram. */
class FakeUdpPeer implements Peer {
  readonly frames: Uint8Array[] = [];
  onFrame: ((f: Uint8Array) => void) | null = null;
  constructor(
    readonly sock: DgramSocket,
    private readonly to: number,
  ) {
    sock.on('message', (m: Buffer) => {
      const f = new Uint8Array(m);
      if (this.onFrame) this.onFrame(f);
      else this.frames.push(f);
    });
  }
  send(frame: Uint8Array): void {
    this.sock.send(frame, this.to, '127.0.0.1');
  }
  async wait(match: (f: Uint8Array) => boolean): Promise<Uint8Array> {
    for (;;) {
      const f = this.frames.find(match);
      if (f) return f;
      await once(this.sock, 'message');
    }
  }
}

/** QEMU's datagram transport over unix datagram sockets (through the native shim: Node has none). */
class FakeUnixgramPeer implements Peer {
  readonly frames: Uint8Array[] = [];
  onFrame: ((f: Uint8Array) => void) | null = null;
  private readonly n = requireNative();
  private readonly fd: number;
  private readonly poller: PollerHandle;
  private waiters: Array<() => void> = [];
  constructor(
    readonly path: string,
    private readonly to: string,
    read = true,
  ) {
    this.fd = this.n.unixDgram!(path);
    const buf = new Uint8Array(70000);
    const h = this.n.pollerCreate(this.fd, 0, () => {
      for (let r = this.n.recvFrom!(this.fd, buf, 0, buf.length); typeof r !== 'number'; r = this.n.recvFrom!(this.fd, buf, 0, buf.length)) {
        const f = buf.slice(0, r[0]);
        if (this.onFrame) this.onFrame(f);
        else this.frames.push(f);
      }
      for (const w of this.waiters.splice(0)) w();
    }, null, null, 0, 0);
    this.poller = h as PollerHandle;
    if (read) this.n.pollerStart(this.poller, 1);
    closers.push(() => this.close());
  }
  close(): void {
    this.n.pollerClose(this.poller);
    this.n.close(this.fd);
  }
  /** Dropped when tunstack's socket queue is full (EAGAIN), as a NIC would drop. */
  send(frame: Uint8Array): void {
    const r = this.n.sendTo!(this.fd, frame, 0, frame.length, this.to);
    if (r !== frame.length && r !== -11) throw new Error(`sendTo: ${r}`);
  }
  async wait(match: (f: Uint8Array) => boolean): Promise<Uint8Array> {
    for (;;) {
      const f = this.frames.find(match);
      if (f) return f;
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }
}

/** The fake QEMU's side of the stream framing: frames out with a length, frames in reassembled. */
class FakePeer implements Peer {
  readonly frames: Uint8Array[] = [];
  onFrame: ((f: Uint8Array) => void) | null = null;
  private buf = Buffer.alloc(0);
  readonly closed: Promise<void>;
  constructor(readonly sock: NetSocket) {
    sock.on('error', () => {});
    sock.on('data', (b: Buffer) => {
      this.buf = Buffer.concat([this.buf, b]);
      while (this.buf.length >= 4 && this.buf.length >= 4 + this.buf.readUInt32BE(0)) {
        const n = this.buf.readUInt32BE(0);
        const f = new Uint8Array(this.buf.subarray(4, 4 + n));
        this.buf = this.buf.subarray(4 + n);
        if (this.onFrame) this.onFrame(f);
        else this.frames.push(f);
      }
    });
    this.closed = new Promise((r) => sock.once('close', () => r()));
  }
  send(frame: Uint8Array): void {
    const h = Buffer.alloc(4);
    h.writeUInt32BE(frame.length);
    this.sock.write(Buffer.concat([h, frame]));
  }
  /** The first received frame that `match` accepts (waits for it). */
  async wait(match: (f: Uint8Array) => boolean): Promise<Uint8Array> {
    for (;;) {
      const f = this.frames.find(match);
      if (f) return f;
      await once(this.sock, 'data');
    }
  }
}

type Kind = 'unix' | 'tcp' | 'udp' | 'unixgram';
const noUnixgram = unixgramUnavailableReason();
if (noUnixgram) console.log(`skipping the unixgram transport: ${noUnixgram}`);

async function serve(kind: Kind, port: FramePort, clock: RealClock | ManualClock, opts: { stallTimeoutMs?: number; idleTimeoutMs?: number } = {}) {
  const logs: string[] = [];
  const server = new StreamFrameServer({ port, clock, log: (l) => logs.push(l), ...opts });
  let dial: () => NetSocket;
  if (kind === 'unix') {
    const dir = mkdtempSync(join(tmpdir(), 'tunstack-vm-'));
    const path = join(dir, 'qemu.sock');
    await server.listenUnix(path);
    closers.push(() => rmSync(dir, { recursive: true, force: true }));
    dial = () => connect(path);
  } else {
    await server.listenTcp('127.0.0.1', 0);
    dial = () => connect(server.tcpPort, '127.0.0.1');
  }
  closers.push(() => server.close());
  const peer = async (): Promise<FakePeer> => {
    const s = dial();
    await once(s, 'connect');
    closers.push(() => void s.destroy());
    return new FakePeer(s);
  };
  return { server, logs, peer };
}

async function udpPeer(port: number, bindPort = 0): Promise<FakeUdpPeer> {
  const s = createSocket('udp4');
  s.bind(bindPort, '127.0.0.1');
  await once(s, 'listening');
  closers.push(() => void s.close());
  return new FakeUdpPeer(s, port);
}

async function sandboxOver(kind: Kind): Promise<{ peer: () => Promise<Peer> }> {
  const clock = new RealClock();
  const port = new FramePort();
  const net = new SandboxNetwork({ link: port, icmp: 'gateway', dnsUpstream: [], clock, ipv6: false });
  closers.push(() => net.close());
  if (kind === 'unixgram') {
    const dir = mkdtempSync(join(tmpdir(), 'tunstack-vm-'));
    closers.push(() => rmSync(dir, { recursive: true, force: true }));
    const server = new UnixgramFrameServer({ port });
    server.listen(join(dir, 'tunstack.sock'));
    closers.push(() => server.close());
    let n = 0;
    return { peer: async () => new FakeUnixgramPeer(join(dir, `qemu${n++}.sock`), join(dir, 'tunstack.sock')) };
  }
  if (kind !== 'udp') return serve(kind, port, clock);
  const server = new UdpFrameServer({ port });
  await server.listen('127.0.0.1', 0);
  closers.push(() => server.close());
  return { peer: () => udpPeer(server.localPort) };
}

function dhcpFrame(type: number): Uint8Array {
  const options = new Map<number, Uint8Array>([[DhcpOption.MESSAGE_TYPE, Uint8Array.of(type)]]);
  const zero = new Uint8Array(4);
  const dhcp = encodeDhcp({ op: BOOTREQUEST, htype: 1, hlen: 6, hops: 0, xid: 0x1234abcd, secs: 0, flags: 0, ciaddr: zero, yiaddr: zero, siaddr: zero, giaddr: zero, chaddr: GUEST_MAC, options });
  const dst = parseIPv4('255.255.255.255');
  const udp = buildUdp({ srcPort: 68, dstPort: 67, pseudoHeader: { src: zero, dst } }, dhcp);
  return buildEthernet({ destination: BROADCAST, source: GUEST_MAC, etherType: 0x0800 }, buildIPv4({ src: zero, dst, protocol: 17, ttl: 64 }, udp));
}

const isDhcp = (f: Uint8Array): boolean => f[12] === 0x08 && f[13] === 0x00 && f[23] === 17 && f[36] === 0 && f[37] === 68;

describe.each<Kind>(noUnixgram ? ['unix', 'tcp', 'udp'] : ['unix', 'tcp', 'udp', 'unixgram'])('QEMU transport over %s', (kind) => {
  it('DHCP: DISCOVER gets an OFFER of 10.0.2.100 with router and DNS', async () => {
    const { peer } = await sandboxOver(kind);
    const p = await peer();
    p.send(dhcpFrame(DhcpMessageType.DISCOVER));
    const offer = parseDhcp((await p.wait(isDhcp)).subarray(42));
    expect(offer.options.get(DhcpOption.MESSAGE_TYPE)?.[0]).toBe(DhcpMessageType.OFFER);
    expect([...offer.yiaddr].join('.')).toBe('10.0.2.100');
    expect([...offer.options.get(DhcpOption.ROUTER)!].join('.')).toBe('10.0.2.2');
    expect([...offer.options.get(DhcpOption.DNS)!].join('.')).toBe('10.0.2.3');
  });

  it('ARP for the gateway and a ping to it are answered', async () => {
    const { peer } = await sandboxOver(kind);
    const p = await peer();
    const me = parseIPv4('10.0.2.100');
    const gw = parseIPv4('10.0.2.2');
    p.send(buildEthernet({ destination: BROADCAST, source: GUEST_MAC, etherType: 0x0806 }, buildArp({ op: 1, senderHardwareAddress: GUEST_MAC, senderProtocolAddress: me, targetProtocolAddress: gw })));
    const arp = await p.wait((f) => f[12] === 0x08 && f[13] === 0x06 && f[21] === 2);
    const gwMac = arp.slice(22, 28);
    expect([...arp.subarray(28, 32)].join('.')).toBe('10.0.2.2');
    const echo = buildIcmpV4Echo({ ident: 77, sequence: 1, data: Buffer.from('tunstack-vm') });
    p.send(buildEthernet({ destination: gwMac, source: GUEST_MAC, etherType: 0x0800 }, buildIPv4({ src: me, dst: gw, protocol: 1, ttl: 64 }, echo)));
    const reply = await p.wait((f) => f[12] === 0x08 && f[23] === 1 && f[34] === 0);
    expect([...reply.subarray(26, 30)].join('.')).toBe('10.0.2.2');
    expect(Buffer.from(reply.subarray(42)).toString()).toBe('tunstack-vm');
  });

  it('a guest TCP connection through the relay downloads 3 MiB from a host loopback server intact', async () => {
    const body = Buffer.alloc(3 << 20);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31 + (i >> 11)) & 0xff;
    const srv = createServer((c) => c.end(body));
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    closers.push(() => new Promise<void>((r) => srv.close(() => r())));
    const { peer } = await sandboxOver(kind);
    const p = await peer();
    // The guest: a tunstack stack whose NIC's frames travel through the fake QEMU's socket.
    const guest = new Stack({ seed: 9, clock: new RealClock() });
    closers.push(() => guest.close());
    const ch = new ChannelEndpoint({ wireFormat: 'ethernet', linkAddress: GUEST_MAC });
    guest.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(ch) }).addAddress('10.0.2.100/24');
    guest.addRoute({ destination: '0.0.0.0/0', gateway: '10.0.2.2', nic: 'eth0' });
    ch.on('readable', () => {
      for (let pkt = ch.read(); pkt !== null; pkt = ch.read()) p.send(pkt.toBytes());
    });
    p.onFrame = (f) => void ch.inject(0, PacketBuffer.wrap(f));
    const s: Socket = guest.net.connect({ host: '10.0.2.2', port: (srv.address() as AddressInfo).port });
    const hash = createHash('sha256');
    let n = 0;
    s.on('data', (b: Buffer) => {
      hash.update(b);
      n += b.length;
    });
    await once(s, 'end');
    expect(n).toBe(body.length);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
  });
});

describe.each(['unix', 'tcp'] as const)('QEMU stream transport over %s: bad input', (kind) => {
  function bare() {
    const clock = new ManualClock();
    const port = new FramePort({ queueLength: 64 });
    const got: Uint8Array[] = [];
    port.attach({ deliverNetworkPacket: (_p, pkt) => got.push(pkt.toBytes()) });
    return { clock, port, got };
  }

  for (const [name, len] of [
    ['0', 0],
    ['MTU + 14 + 4 + 1', 1500 + 19],
    ['4 GiB - 1', 0xffffffff],
  ] as const) {
    it(`a length prefix of ${name} closes the connection with a log line`, async () => {
      const { clock, port, got } = bare();
      const { peer, logs, server } = await serve(kind, port, clock);
      const p = await peer();
      p.send(new Uint8Array(60)); // one good frame first
      const h = Buffer.alloc(4);
      h.writeUInt32BE(len);
      p.sock.write(h);
      await p.closed;
      expect(got).toHaveLength(1);
      expect(server.stats.badLength).toBe(1);
      expect(logs.join('\n')).toContain(`frame length ${len} outside 1..1518; closing the connection`);
    });
  }

  it('a frame of exactly MTU + 18 bytes (VLAN-tagged) is taken', async () => {
    const { clock, port, got } = bare();
    const { peer } = await serve(kind, port, clock);
    const p = await peer();
    p.send(new Uint8Array(1518));
    p.send(new Uint8Array(60));
    while (got.length < 2) await new Promise((r) => setImmediate(r));
    expect(got.map((f) => f.length)).toEqual([1518, 60]);
  });

  it('half a frame and a stall: closed after the idle timeout on the stack clock, not before', async () => {
    const { clock, port, got } = bare();
    const { peer, logs, server } = await serve(kind, port, clock, { idleTimeoutMs: 5000 });
    const p = await peer();
    const h = Buffer.alloc(4 + 30);
    h.writeUInt32BE(100);
    p.sock.write(h);
    // Wait until the server has the half frame (its idle timer is armed).
    while (server.stats.bytesIn < 34) await new Promise((r) => setImmediate(r));
    clock.advance(4999);
    expect(server.connected).toBe(true);
    clock.advance(1);
    await p.closed;
    expect(got).toHaveLength(0);
    expect(server.stats.idleTimeouts).toBe(1);
    expect(logs.join('\n')).toContain('a frame stayed incomplete for 5000 ms; closing the connection');
  });

  it('a peer that never reads: the queue stays bounded, drops are counted, the connection is closed after the stall timeout', async () => {
    const { clock, port } = bare();
    const { peer, logs, server } = await serve(kind, port, clock, { stallTimeoutMs: 10_000 });
    const p = await peer();
    p.sock.pause();
    const frame = new Uint8Array(1514);
    let sent = 0;
    // Push until the socket and the port's queue are full and frames are being dropped.
    while (port.stats.txDropped < 100 && sent < 200_000) {
      for (let i = 0; i < 100; i++) port.writePackets([PacketBuffer.copyOf(frame)]);
      sent += 100;
      await new Promise((r) => setImmediate(r));
    }
    expect(port.stats.txDropped).toBeGreaterThanOrEqual(100);
    expect(port.queued).toBeLessThanOrEqual(64);
    expect(port.isBlocked).toBe(true);
    clock.advance(10_000);
    // (The fake peer reads nothing, so it is the server's side that tells the close.)
    while (server.connected) await new Promise((r) => setImmediate(r));
    expect(server.stats.stallTimeouts).toBe(1);
    expect(logs.join('\n')).toMatch(/the guest read nothing for 10000 ms \(\d+ frames dropped so far\); closing the connection/);
    // The port is free for the next guest, whose frames flow again.
    expect(server.connected).toBe(false);
    const q = await peer();
    port.writePackets([PacketBuffer.copyOf(new Uint8Array(60).fill(9))]);
    const f = await q.wait(() => true);
    expect(f.length).toBe(60);
  });

  it('a second connection while a guest is connected is refused', async () => {
    const { clock, port } = bare();
    const { peer, logs, server } = await serve('tcp', port, clock);
    await peer();
    const second = await peer();
    await second.closed;
    expect(server.stats.refused).toBe(1);
    expect(server.connected).toBe(true);
    expect(logs.join('\n')).toContain('refusing another connection');
  });
});

describe('QEMU datagram transport over UDP: bad input', () => {
  async function bare() {
    const port = new FramePort();
    const got: Uint8Array[] = [];
    port.attach({ deliverNetworkPacket: (_p, pkt) => got.push(pkt.toBytes()) });
    const logs: string[] = [];
    const server = new UdpFrameServer({ port, log: (l) => logs.push(l) });
    await server.listen('127.0.0.1', 0);
    closers.push(() => server.close());
    return { port, got, logs, server, peer: await udpPeer(server.localPort) };
  }
  const until = async (c: () => boolean): Promise<void> => {
    while (!c()) await new Promise((r) => setImmediate(r));
  };

  it('datagrams shorter than 14 or longer than MTU + 18 bytes are dropped, counted and logged once', async () => {
    const { got, logs, server, peer } = await bare();
    for (const n of [0, 13, 1519, 9000]) peer.send(new Uint8Array(n));
    peer.send(new Uint8Array(1518));
    await until(() => got.length === 1);
    expect(got[0]!.length).toBe(1518);
    expect(server.stats.badSize).toBe(4);
    expect(logs.filter((l) => l.includes('outside 14..1518'))).toHaveLength(1);
  });

  it('only the first sender is the guest: datagrams from another address are dropped and counted', async () => {
    const { port, got, logs, server, peer } = await bare();
    peer.send(new Uint8Array(60).fill(1));
    await until(() => got.length === 1);
    const other = await udpPeer(server.localPort);
    other.send(new Uint8Array(60).fill(2));
    peer.send(new Uint8Array(60).fill(3));
    await until(() => got.length === 2);
    await until(() => server.stats.foreign === 1);
    expect(got.map((f) => f[0])).toEqual([1, 3]);
    expect(logs.join('\n')).toContain('not the guest');
    port.writePackets([PacketBuffer.copyOf(new Uint8Array(60).fill(4))]);
    expect((await peer.wait(() => true))[0]).toBe(4);
    expect(other.frames).toHaveLength(0);
  });
});

describe.skipIf(noUnixgram !== '')('QEMU datagram transport over unix sockets: bad input', () => {
  function bare() {
    const port = new FramePort();
    const got: Uint8Array[] = [];
    port.attach({ deliverNetworkPacket: (_p, pkt) => got.push(pkt.toBytes()) });
    const logs: string[] = [];
    const dir = mkdtempSync(join(tmpdir(), 'tunstack-vm-'));
    closers.push(() => rmSync(dir, { recursive: true, force: true }));
    const server = new UnixgramFrameServer({ port, log: (l) => logs.push(l) });
    const path = join(dir, 'tunstack.sock');
    server.listen(path);
    closers.push(() => server.close());
    return { port, got, logs, server, peer: (name: string, read = true) => new FakeUnixgramPeer(join(dir, name), path, read) };
  }
  const until = async (c: () => boolean): Promise<void> => {
    while (!c()) await new Promise((r) => setImmediate(r));
  };

  it('datagrams shorter than 14 or longer than MTU + 18 bytes, and from another path, are dropped and counted', async () => {
    const { got, logs, server, peer } = bare();
    const p = peer('qemu.sock');
    for (const n of [1, 13, 1519, 65000]) p.send(new Uint8Array(n));
    p.send(new Uint8Array(1518).fill(1));
    await until(() => got.length === 1);
    peer('other.sock').send(new Uint8Array(60).fill(2));
    p.send(new Uint8Array(60).fill(3));
    await until(() => got.length === 2);
    expect(got.map((f) => [f.length, f[0]])).toEqual([[1518, 1], [60, 3]]);
    expect(server.stats.badSize).toBe(4);
    expect(server.stats.foreign).toBe(1);
    expect(logs.filter((l) => l.includes('outside 14..1518'))).toHaveLength(1);
    expect(logs.join('\n')).toContain('not the guest');
  });

  it('a guest that never reads: the kernel queue fills, later frames are dropped and counted, nothing grows', async () => {
    const { port, got, logs, server, peer } = bare();
    const p = peer('qemu.sock', false);
    p.send(new Uint8Array(60));
    await until(() => got.length === 1);
    for (let i = 0; i < 5000; i++) port.writePackets([PacketBuffer.copyOf(new Uint8Array(1514))]);
    expect(server.stats.sendDropped).toBeGreaterThan(0);
    expect(server.stats.framesOut + server.stats.sendDropped).toBe(5000);
    expect(port.queued).toBe(0);
    expect(logs.join('\n')).toContain('EAGAIN: the guest is not reading');
  });
});

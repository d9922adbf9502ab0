/**
 * The TcpEndpoint surface between two stacks: errors (ECONNREFUSED, ENETUNREACH, EADDRINUSE,
 * EPIPE, ECONNRESET), send-buffer backpressure and 'writable', half-close and 'end', close with
 * unread data (RST), receive windows (zero window, autotuning), backlog overflow, info(), IPv6,
 * plus ICMP (frag-needed, port unreachable) and PAWS at packet level, and fuzzing.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EthernetEndpoint, LinkCapability, ManualClock, Stack, Wire, parseMAC, type TcpEndpoint } from '../../src/index.js';
import { sendBlocksInUse } from '../../src/transport/tcp/buffers.js';
import { buildIPv4 } from '../../src/headers/ipv4.js';
import { checksum } from '../../src/headers/checksum.js';
import { connectPair, pair, pattern } from './helpers/tcp.js';
import { A, F, P, PEER, RawPeer, S, US, flagNames } from './helpers/raw-peer.js';

function drain(ep: TcpEndpoint): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let c = ep.read(); c !== null; c = ep.read()) parts.push(c.slice());
  return Buffer.concat(parts);
}

describe('errors', () => {
  it('ECONNREFUSED when nobody listens (RST,ACK answer to the SYN)', () => {
    const p = pair();
    const c = p.a.tcp();
    const events: string[] = [];
    c.on('error', (e) => events.push(e.code));
    c.on('close', () => events.push('close'));
    c.connect('10.0.0.2', 9);
    expect(events).toEqual(['ECONNREFUSED', 'close']);
    expect(c.state).toBe('CLOSED');
    expect(p.tcpA.stats.attemptFails).toBe(1);
    expect(p.tcpB.stats.outRsts).toBe(1);
  });

  it('ENETUNREACH synchronously when there is no route', () => {
    const p = pair();
    expect(() => p.a.tcp().connect('192.168.7.7', 80)).toThrow(expect.objectContaining({ code: 'ENETUNREACH' }));
  });

  it('EADDRINUSE, EADDRNOTAVAIL and reuseAddress on bind', () => {
    const p = pair();
    const l = p.b.tcp();
    l.bind(null, 80);
    expect(() => p.b.tcp().bind(null, 80)).toThrow(expect.objectContaining({ code: 'EADDRINUSE' }));
    expect(() => p.b.tcp().bind('10.9.9.9', 81)).toThrow(expect.objectContaining({ code: 'EADDRNOTAVAIL' }));
    const e = p.b.tcp();
    e.bind('10.0.0.2', 0);
    expect(e.localPort).toBeGreaterThanOrEqual(32768);
    expect(e.localAddress).toBe('10.0.0.2');
  });

  it('EPIPE on write after shutdown; ECONNRESET at the peer of an abort', () => {
    const p = pair();
    const { client, server } = connectPair(p);
    client.shutdown();
    expect(() => client.write(new Uint8Array(1))).toThrow(expect.objectContaining({ code: 'EPIPE' }));
    let err = '';
    server.on('error', (e) => (err = e.code));
    server.abort();
    expect(server.state).toBe('CLOSED');
    // The client had already sent its FIN; the server's RST reaches it in FIN_WAIT_2.
    expect(client.state).toBe('CLOSED');
    expect(err).toBe('');
  });

  it('EHOSTUNREACH when ARP gets no answer (Ethernet links)', () => {
    const clock = new ManualClock();
    const wire = new Wire({ clock, latencyMs: 1 });
    const a = new Stack({ clock, seed: 1 });
    const b = new Stack({ clock, seed: 2 });
    a.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.a, { linkAddress: parseMAC('02:00:00:00:00:01') }) }).addAddress('10.0.0.1/24');
    b.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.b, { linkAddress: parseMAC('02:00:00:00:00:02') }) }).addAddress('10.0.0.2/24');
    const c = a.tcp();
    let err = '';
    c.on('error', (e) => (err = e.code));
    c.connect('10.0.0.99', 80);
    clock.advance(10_000);
    expect(err).toBe('EHOSTUNREACH');
    expect(c.state).toBe('CLOSED');
    // And across the same links a real peer works (ARP, then the handshake).
    const l = b.tcp();
    l.bind(null, 80);
    l.listen();
    const ok = a.tcp();
    ok.connect('10.0.0.2', 80);
    clock.advance(100);
    expect(ok.state).toBe('ESTABLISHED');
  });

  it('ICMP port unreachable aborts a connect with ECONNREFUSED', () => {
    const p = new RawPeer();
    const c = p.stack.tcp();
    let err = '';
    c.on('error', (e) => (err = e.code));
    c.connect('10.0.0.1', 80);
    p.recv();
    const syn = p.packets[p.packets.length - 1]!;
    p.inject(icmpError(3, 3, 0, syn));
    expect(err).toBe('ECONNREFUSED');
  });
});

/** An ICMP error from the peer quoting `quoted` (an IPv4 packet we sent). */
function icmpError(type: number, code: number, mtu: number, quoted: Uint8Array): Uint8Array {
  const q = quoted.subarray(0, 28);
  const icmp = new Uint8Array(8 + q.length);
  icmp[0] = type;
  icmp[1] = code;
  icmp[6] = mtu >>> 8;
  icmp[7] = mtu & 0xff;
  icmp.set(q, 8);
  const c = checksum(icmp);
  icmp[2] = c >>> 8;
  icmp[3] = c & 0xff;
  return buildIPv4({ src: PEER, dst: US, protocol: 1 }, icmp);
}

describe('data flow', () => {
  it('write returns less than asked when the send buffer is full, then emits writable', () => {
    const p = pair({ latencyMs: 5 });
    const { client, server } = connectPair(p);
    client.sendBufferSize = 64 * 1024;
    const data = pattern(300_000);
    let off = client.write(data);
    expect(off).toBe(64 * 1024);
    expect(client.writableLength).toBe(64 * 1024);
    let writable = 0;
    client.on('writable', () => writable++);
    const got: Uint8Array[] = [];
    for (let i = 0; i < 10_000 && got.reduce((n, g) => n + g.length, 0) < data.length; i++) {
      if (off < data.length) off += client.write(data.subarray(off));
      got.push(drain(server));
      p.clock.advance(1);
    }
    expect(writable).toBeGreaterThan(0);
    expect(Buffer.concat(got).equals(Buffer.from(data))).toBe(true);
  });

  it('half-close: the reader gets end after the data, and can still send back', () => {
    const p = pair({ latencyMs: 1 });
    const { client, server } = connectPair(p);
    const ev: string[] = [];
    server.on('readable', () => ev.push('readable'));
    server.on('end', () => ev.push('end'));
    client.write(new TextEncoder().encode('question'));
    client.shutdown();
    p.clock.advance(10);
    expect(server.state).toBe('CLOSE_WAIT');
    expect(client.state).toBe('FIN_WAIT_2');
    expect(ev).toEqual(['readable']);
    expect(server.readEnded).toBe(false);
    expect(new TextDecoder().decode(server.read()!)).toBe('question');
    expect(server.read()).toBeNull();
    expect(server.readEnded).toBe(true);
    expect(ev).toEqual(['readable', 'end']);
    server.write(new TextEncoder().encode('answer'));
    server.close();
    p.clock.advance(10);
    expect(new TextDecoder().decode(client.read()!)).toBe('answer');
    expect(client.readEnded).toBe(true);
    expect(server.state).toBe('CLOSED');
    expect(client.state).toBe('CLOSED'); // TIME_WAIT record, user-visible socket done
    expect(p.tcpA.stats.timeWaitCount).toBe(1);
  });

  it('close() with unread data sends RST (Linux), the peer sees ECONNRESET', () => {
    const p = pair();
    const { client, server } = connectPair(p);
    client.write(new Uint8Array(10));
    let err = '';
    client.on('error', (e) => (err = e.code));
    server.close();
    expect(err).toBe('ECONNRESET');
    expect(p.tcpB.stats.abortOnClose).toBe(1);
  });

  it('data arriving after close() is answered with RST', () => {
    const p = pair({ latencyMs: 1 });
    const { client, server } = connectPair(p);
    server.close();
    p.clock.advance(5);
    expect(client.state).toBe('CLOSE_WAIT');
    let err = '';
    client.on('error', (e) => (err = e.code));
    client.write(new Uint8Array(100));
    p.clock.advance(5);
    expect(p.tcpB.stats.abortOnData).toBe(1);
    expect(err).toBe('EPIPE'); // reset in CLOSE_WAIT (Linux tcp_reset)
  });

  it('a reader that stops makes the window close; the sender probes; reading reopens it', () => {
    const p = pair({ latencyMs: 2 });
    const l = p.b.tcp({ receiveBufferSize: 16 * 1024 });
    l.bind(null, 81);
    l.listen();
    const c = p.a.tcp();
    c.connect('10.0.0.2', 81);
    p.clock.advance(10);
    const s = l.accept()!;
    const data = pattern(200_000, 3);
    let off = 0;
    for (let i = 0; i < 2000; i++) {
      off += c.write(data.subarray(off));
      p.clock.advance(1);
    }
    expect(s.info().rcvWnd).toBe(0);
    expect(s.readableLength).toBeGreaterThan(12 * 1024);
    expect(p.tcpA.stats.zeroWindowProbes).toBeGreaterThan(0);
    const got: Uint8Array[] = [];
    for (let i = 0; i < 100_000 && off < data.length + 1; i++) {
      if (off < data.length) off += c.write(data.subarray(off));
      got.push(drain(s));
      if (Buffer.concat(got).length === data.length) break;
      p.clock.advance(1);
    }
    expect(Buffer.concat(got).equals(Buffer.from(data))).toBe(true);
  });

  it('autotunes the receive buffer upward within its bound', () => {
    const p = pair({ latencyMs: 10 });
    const { client, server } = connectPair(p);
    const start = server.info().rcvBuf;
    const buf = new Uint8Array(1 << 16);
    for (let i = 0; i < 1500; i++) {
      client.write(buf);
      drain(server);
      p.clock.advance(1);
    }
    const info = server.info();
    expect(start).toBe(131072);
    expect(info.rcvBuf).toBeGreaterThan(start);
    expect(info.rcvBuf).toBeLessThanOrEqual(info.rcvBufMax);
    expect(client.info().sndWnd).toBeGreaterThan(65535);
  });

  it('writeOwned takes all bytes without copying, signals backpressure, and releases the lease once acknowledged', () => {
    const p = pair({ latencyMs: 5 });
    const { client, server } = connectPair(p);
    client.sendBufferSize = 64 * 1024;
    const data = pattern(200_000);
    const lease = { released: 0, release(): void { this.released++; } };
    let writable = 0;
    client.on('writable', () => writable++);
    expect(client.writeOwned(data, lease)).toBe(false);
    expect(client.writableLength).toBe(200_000);
    expect(lease.released).toBe(0);
    const got: Uint8Array[] = [];
    for (let i = 0; i < 5000 && client.writableLength > 0; i++) {
      got.push(drain(server));
      p.clock.advance(1);
    }
    got.push(drain(server));
    expect(Buffer.concat(got).equals(Buffer.from(data))).toBe(true);
    expect(writable).toBe(1);
    expect(lease.released).toBe(1);
    // Short writes are copied (the lease goes at once); after shutdown the lease still goes.
    const small = { released: 0, release(): void { this.released++; } };
    expect(client.writeOwned(pattern(100, 2), small)).toBe(true);
    expect(small.released).toBe(1);
    client.shutdown();
    const late = { released: 0, release(): void { this.released++; } };
    expect(() => client.writeOwned(pattern(10_000), late)).toThrow(expect.objectContaining({ code: 'EPIPE' }));
    expect(late.released).toBe(1);
  });

  it('an abort releases the leases of owned data still unacknowledged', () => {
    const p = pair({ latencyMs: 5 });
    const { client } = connectPair(p);
    const lease = { released: 0, release(): void { this.released++; } };
    client.writeOwned(pattern(50_000), lease);
    p.clock.advance(2);
    expect(lease.released).toBe(0);
    client.abort();
    expect(lease.released).toBe(1);
  });

  it('on a scatter-gather link segments borrow the send buffer: data intact through drops, every block returned', () => {
    const base = sendBlocksInUse();
    const caps = LinkCapability.TxChecksumOffload | LinkCapability.RxChecksumOffload | LinkCapability.ScatterGather;
    // A short queue on a slow wire: bursts overflow it, so segments are retransmitted too.
    const p = pair({ latencyMs: 4, capabilities: caps, queueLength: 48, tap: true });
    const { client, server } = connectPair(p);
    const data = pattern(3_000_000, 9);
    let off = 0;
    const got: Uint8Array[] = [];
    let n = 0;
    for (let i = 0; i < 60_000 && n < data.length; i++) {
      if (off < data.length) off += client.write(data.subarray(off, Math.min(data.length, off + 100_000)));
      const d = drain(server);
      n += d.length;
      got.push(d);
      p.clock.advance(1);
    }
    expect(Buffer.concat(got).equals(Buffer.from(data))).toBe(true);
    expect(p.tap!.sgPackets).toBeGreaterThan(1000);
    expect(p.tcpA.stats.retransSegs).toBeGreaterThan(0);
    client.close();
    server.close();
    p.clock.advance(200_000);
    expect(sendBlocksInUse()).toBe(base);
  });

  it('info() reports the connection', () => {
    const p = pair({ latencyMs: 3 });
    const { client, server } = connectPair(p);
    client.write(new Uint8Array(5000));
    p.clock.advance(50);
    drain(server);
    const i = client.info();
    expect(i.state).toBe('ESTABLISHED');
    expect(i.rttMs).toBe(6);
    expect(i.mss).toBe(1448);
    expect(i.bytesAcked).toBe(5000);
    expect(i.timestamps && i.sack).toBe(true);
    expect(i.congestionControl).toBe('cubic');
    expect(server.info().bytesReceived).toBe(5000);
  });
});

describe('listen backlog', () => {
  it('drops SYNs while the accept queue is full and counts them', () => {
    const p = pair();
    const l = p.b.tcp();
    l.bind(null, 80);
    l.listen(1);
    const clients = [0, 1, 2].map(() => {
      const c = p.a.tcp();
      c.connect('10.0.0.2', 80);
      return c;
    });
    // backlog 1: two connections fit the accept queue (Linux: > backlog is full).
    expect(clients.map((c) => c.state)).toEqual(['ESTABLISHED', 'ESTABLISHED', 'SYN_SENT']);
    expect(p.tcpB.stats.listenOverflows).toBe(1);
    expect(l.accept()).not.toBeNull();
    p.clock.advance(1000); // the SYN is retransmitted and now fits
    expect(clients[2]!.state).toBe('ESTABLISHED');
  });

  it("hands connections to a 'connection' listener instead of the accept queue", () => {
    const p = pair();
    const l = p.b.tcp();
    l.bind(null, 80);
    l.listen();
    const got: TcpEndpoint[] = [];
    l.on('connection', (c) => got.push(c));
    p.a.tcp().connect('10.0.0.2', 80);
    expect(got.length).toBe(1);
    expect(l.accept()).toBeNull();
  });
});

describe('path MTU and PAWS (packet level)', () => {
  it('shrinks the MSS on ICMP fragmentation-needed and resends in smaller segments', () => {
    const p = new RawPeer();
    const l = p.stack.tcp();
    l.bind(null, 80);
    l.listen();
    const h = p.handshakeIn({ ts: true, window: 65535 });
    const c = l.accept()!;
    c.write(new Uint8Array(3 * 1448));
    const segs = p.recvAll();
    expect(segs.map((s) => s.payload.length)).toEqual([1448, 1448, 1448]);
    const first = p.packets[p.packets.length - 3]!;
    p.inject(icmpError(3, 4, 1000, first));
    const again = p.recvAll();
    // 1000 - 20 (IP) - 20 (TCP) - 12 (timestamps) = 948 payload bytes per segment.
    expect(again[0]!.payload.length).toBe(948);
    expect(again[0]!.seq).toBe(h.ourIsn + 1);
    expect(c.info().pmtu).toBe(1000);
    expect(c.info().mss).toBe(948);
    expect(p.tcp.stats.pmtuUpdates).toBe(1);
  });

  it('writeOwned with end sends the data and the FIN in one segment (a second write is EPIPE)', () => {
    const p = new RawPeer();
    const l = p.stack.tcp();
    l.bind(null, 80);
    l.listen();
    const h = p.handshakeIn({ ts: true, window: 65535 });
    const c = l.accept()!;
    const lease = { released: 0, release(): void { this.released++; } };
    c.writeOwned(Uint8Array.of(1, 2, 3), lease, true);
    const segs = p.recvAll();
    expect(segs.map((s) => [flagNames(s.flags), s.payload.length])).toEqual([[flagNames(F | P | A), 3]]);
    expect(segs[0]!.seq).toBe(h.ourIsn + 1);
    expect(c.state).toBe('FIN_WAIT_1');
    expect(() => c.writeOwned(Uint8Array.of(4))).toThrow(expect.objectContaining({ code: 'EPIPE' }));
    // Nothing to write: end alone is a shutdown.
    const p2 = new RawPeer();
    const l2 = p2.stack.tcp();
    l2.bind(null, 80);
    l2.listen();
    const h2 = p2.handshakeIn({ ts: true, window: 65535 });
    const c2 = l2.accept()!;
    c2.writeOwned(new Uint8Array(0), null, true);
    const fin = p2.recvAll();
    expect(fin.map((s) => [flagNames(s.flags), s.payload.length, s.seq])).toEqual([[flagNames(F | A), 0, h2.ourIsn + 1]]);
  });

  it('drops a segment with an old timestamp (PAWS) and ACKs it', () => {
    const p = new RawPeer();
    const l = p.stack.tcp();
    l.bind(null, 80);
    l.listen();
    const h = p.handshakeIn({ ts: true });
    const c = l.accept()!;
    p.send({ seq: h.peerNxt, ack: h.ourIsn + 1, flags: A | P, ts: [50, 0], payload: new Uint8Array(10) });
    const ack = p.recv()!;
    expect(flagNames(ack.flags)).toBe('A');
    expect(ack.ack).toBe(h.peerNxt);
    expect(c.readableLength).toBe(0);
    expect(p.tcp.stats.pawsDropped).toBe(1);
  });
});

describe('IPv6', () => {
  it('connects and moves data over IPv6 with the same code', () => {
    const clock = new ManualClock();
    const wire = new Wire({ clock, latencyMs: 1, mtu: 1500, wireFormat: 'ip' });
    const a = new Stack({ clock, seed: 1 });
    const b = new Stack({ clock, seed: 2 });
    a.createNIC({ name: 'eth0', endpoint: wire.a }).addAddress('fd00::1/64');
    b.createNIC({ name: 'eth0', endpoint: wire.b }).addAddress('fd00::2/64');
    clock.advance(5000); // duplicate address detection, if any
    const l = b.tcp({ family: 6 });
    l.bind(null, 443);
    l.listen();
    const c = a.tcp({ family: 6 });
    c.connect('fd00::2', 443);
    clock.advance(10);
    const s = l.accept()!;
    expect(s).not.toBeNull();
    expect(s.remoteAddress).toBe('fd00::1');
    expect(c.info().mss).toBe(1500 - 40 - 20 - 12);
    const data = pattern(100_000, 9);
    let off = 0;
    const got: Uint8Array[] = [];
    for (let i = 0; i < 5000 && Buffer.concat(got).length < data.length; i++) {
      if (off < data.length) off += c.write(data.subarray(off));
      got.push(drain(s));
      clock.advance(1);
    }
    expect(Buffer.concat(got).equals(Buffer.from(data))).toBe(true);
  });
});

describe('bad input never throws out of the stack', () => {
  it('random segments to a listener and an established connection', () => {
    const p = new RawPeer();
    p.keep = false;
    const l = p.stack.tcp();
    l.bind(null, 80);
    l.listen();
    const h = p.handshakeIn({ ts: true });
    const c = l.accept()!;
    let internal = 0;
    p.stack.on('internal-error', () => internal++);
    fc.assert(
      fc.property(
        fc.record({
          seqOff: fc.integer({ min: -70000, max: 70000 }),
          ackOff: fc.integer({ min: -70000, max: 70000 }),
          flags: fc.integer({ min: 0, max: 255 }),
          window: fc.integer({ min: 0, max: 65535 }),
          opts: fc.uint8Array({ maxLength: 40 }),
          payload: fc.uint8Array({ maxLength: 300 }),
          sport: fc.constantFrom(40000, 40001, 5),
        }),
        (r) => {
          const o = new Uint8Array((r.opts.length + 3) & ~3);
          o.set(r.opts);
          const tcp = new Uint8Array(20 + o.length + r.payload.length);
          const seq = (h.peerNxt + r.seqOff) >>> 0;
          const ack = (h.ourIsn + 1 + r.ackOff) >>> 0;
          tcp[0] = r.sport >>> 8;
          tcp[1] = r.sport & 0xff;
          tcp[3] = 80;
          new DataView(tcp.buffer).setUint32(4, seq);
          new DataView(tcp.buffer).setUint32(8, ack);
          tcp[12] = ((20 + o.length) / 4) << 4;
          tcp[13] = r.flags;
          tcp[14] = r.window >>> 8;
          tcp[15] = r.window & 0xff;
          tcp.set(o, 20);
          tcp.set(r.payload, 20 + o.length);
          const pseudo = new Uint8Array(12 + tcp.length);
          pseudo.set(PEER, 0);
          pseudo.set(US, 4);
          pseudo[9] = 6;
          pseudo[10] = tcp.length >>> 8;
          pseudo[11] = tcp.length & 0xff;
          pseudo.set(tcp, 12);
          const cs = checksum(pseudo);
          tcp[16] = cs >>> 8;
          tcp[17] = cs & 0xff;
          p.inject(buildIPv4({ src: PEER, dst: US, protocol: 6 }, tcp));
          p.ch.drain();
          while (c.read() !== null);
          p.clock.advance(7);
        },
      ),
      { numRuns: 3000, seed: 42 },
    );
    expect(internal).toBe(0);
    expect(p.stack.stats.internalErrors).toBe(0);
  });

  it('bit-flipped real segments', () => {
    const p = new RawPeer();
    p.keep = false;
    const l = p.stack.tcp();
    l.bind(null, 80);
    l.listen();
    const h = p.handshakeIn({ ts: true });
    l.accept();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), (len, flips) => {
        p.keep = true;
        p.send({ seq: h.peerNxt, ack: h.ourIsn + 1, flags: A | P, ts: [200, 0], sack: [1, 2], payload: new Uint8Array(len % 600) });
        const bytes = p.packets.pop()!;
        p.keep = false;
        // Undo the delivery's effect by resending a flipped copy: flips may hit anything.
        for (const f of flips) bytes[f % bytes.length]! ^= 1 << (f % 8);
        p.inject(bytes);
        p.ch.drain();
      }),
      { numRuns: 1000, seed: 7 },
    );
    expect(p.stack.stats.internalErrors).toBe(0);
  });
});

void S;

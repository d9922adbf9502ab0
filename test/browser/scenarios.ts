/**
 * Scenarios run both in headless Chromium (bundled with the browser build as a separate module,
 * importing the bundle as './tunstack.js') and in Node (with src/web/index.ts), so the two can be
 * compared. They take the library as an argument and use only Web APIs (crypto.subtle, Web
 * Streams, TextEncoder), no Node module.
 */
import type * as Tunstack from '../../src/web/index.js';

export type Lib = typeof Tunstack;

function hex(bytes: ArrayBuffer | Uint8Array): string {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return hex(await crypto.subtle.digest('SHA-256', bytes));
}

/** Deterministic test bytes (xorshift32), the same in Node and in the page. */
export function patternBytes(n: number, seed = 0x9e3779b9): Uint8Array {
  const out = new Uint8Array(n);
  const words = new Uint32Array(out.buffer, 0, n >>> 2);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  for (let i = words.length * 4; i < n; i++) out[i] = i & 0xff;
  return out;
}

/** Two stacks joined by an Ethernet Wire (MACs 02:00:00:00:00:0a / 0b, 10.0.0.1 and 10.0.0.2). */
export function twoStacks(lib: Lib, clock: Tunstack.Clock, mtu = 1500): { a: Tunstack.Stack; b: Tunstack.Stack; wire: Tunstack.Wire } {
  const wire = new lib.Wire({ mtu });
  const a = new lib.Stack({ clock, seed: 1 });
  const b = new lib.Stack({ clock, seed: 2 });
  const ethA = new lib.EthernetEndpoint(wire.a, { linkAddress: lib.parseMAC('02:00:00:00:00:0a') });
  const ethB = new lib.EthernetEndpoint(wire.b, { linkAddress: lib.parseMAC('02:00:00:00:00:0b') });
  a.createNIC({ name: 'eth0', endpoint: ethA }).addAddress('10.0.0.1/24');
  b.createNIC({ name: 'eth0', endpoint: ethB }).addAddress('10.0.0.2/24');
  return { a, b, wire };
}

export interface ExchangeResult {
  arpResolvedA: number;
  arpEntriesA: number;
  arp: { outbound: boolean; senderMac: string; op: number }[];
  ping: { from: string; ttl: number; bytes: number };
  udp: { text: string; address: string; port: number } | null;
  tcpBytes: number;
  sentSha256: string;
  receivedSha256: string;
}

/**
 * (a) ARP, ping, UDP, then a TCP transfer of `bytes` through the Web Streams face (listenTcp /
 * connectTcp), on a RealClock: the receiver hashes what it read, the sender what it wrote.
 */
export async function exchange(lib: Lib, bytes: number): Promise<ExchangeResult> {
  const clock = new lib.RealClock();
  const { a, b } = twoStacks(lib, clock);
  try {
    const tap = a.packetTap({ nic: 'eth0' });
    const pong = await a.ping('10.0.0.2', { timeoutMs: 5000 });
    const n = a.nic('eth0')!.neighborStats().ipv4;
    // The ARP frames a saw: its request (out) and b's reply (in), whose sender MAC is b's.
    const arp: { outbound: boolean; senderMac: string; op: number }[] = [];
    for (let f = tap.recv(); f !== null; f = tap.recv()) {
      if (f.protocol === 0x0806) arp.push({ outbound: f.outbound, op: (f.data[20]! << 8) | f.data[21]!, senderMac: lib.formatMAC(f.data, 22) });
    }
    tap.close();

    const rx = b.udp();
    rx.bind('10.0.0.2', 5353);
    const tx = a.udp();
    tx.send(new TextEncoder().encode('hello over udp'), 5353, '10.0.0.2');
    let msg = rx.recv();
    if (msg === null) {
      await new Promise<void>((r) => rx.once('readable', () => r()));
      msg = rx.recv();
    }
    tx.close();
    rx.close();

    const data = patternBytes(bytes);
    const sentSha256 = await sha256Hex(data);
    const server = lib.listenTcp(b, { port: 5001 });
    const received = (async () => {
      const reader = server.connections.getReader();
      const { value: conn } = await reader.read();
      reader.releaseLock();
      if (conn === undefined) throw new Error('no connection accepted');
      const buf = new Uint8Array(bytes);
      let off = 0;
      for await (const chunk of conn.readable as unknown as AsyncIterable<Uint8Array>) {
        if (off + chunk.length > buf.length) throw new Error(`received more than ${bytes} bytes`);
        buf.set(chunk, off);
        off += chunk.length;
      }
      await conn.writable.close();
      await conn.closed;
      return buf.subarray(0, off);
    })();
    const client = await lib.connectTcp(a, { address: '10.0.0.2', port: 5001 });
    const writer = client.writable.getWriter();
    for (let off = 0; off < data.length; off += 65536) await writer.write(data.subarray(off, off + 65536));
    await writer.close();
    const got = await received;
    // The peer's FIN ends the client's readable once the server closed its side.
    const reader = client.readable.getReader();
    while (!(await reader.read()).done);
    await client.closed;
    server.close();
    return {
      arpResolvedA: n?.resolved ?? 0,
      arpEntriesA: n?.entries ?? 0,
      arp,
      ping: { from: pong.from, ttl: pong.ttl, bytes: pong.bytes },
      udp: msg === null ? null : { text: new TextDecoder().decode(msg.data), address: msg.address, port: msg.port },
      tcpBytes: got.length,
      sentSha256,
      receivedSha256: await sha256Hex(got),
    };
  } finally {
    a.close();
    b.close();
  }
}

/** (b) A TUN device answers a ping written into it through the Web Streams face; returns the reply. */
export async function tunPing(lib: Lib): Promise<number[]> {
  const stack = new lib.Stack({ clock: new lib.ManualClock(), seed: 3 });
  const tun = stack.openTun();
  tun.setIff({ name: 'tun%d', flags: lib.IFF_TUN | lib.IFF_NO_PI });
  tun.addAddress('198.18.0.1/24');
  tun.up();
  const { readable, writable } = lib.tunStreams(tun);
  const request = lib.buildIPv4(
    { src: lib.parseIPv4('198.18.0.2'), dst: lib.parseIPv4('198.18.0.1'), protocol: 1, ttl: 64 },
    lib.buildIcmpV4Echo({ ident: 0x1234, sequence: 7, data: new TextEncoder().encode('ping from the page') }),
  );
  const writer = writable.getWriter();
  await writer.write(request);
  const reader = readable.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  writer.releaseLock();
  tun.close();
  stack.close();
  return Array.from(value ?? []);
}

/**
 * (c) A fixed ManualClock scenario (sim Network, seed 7): ARP, ping, UDP and a small TCP exchange,
 * captured on host a into a MemorySink. Returns the pcap bytes' sha256 and length.
 */
export async function pcapScenario(lib: Lib): Promise<{ sha256: string; length: number; packets: number }> {
  const net = new lib.Network({ seed: 7 });
  const a = net.host('a');
  const b = net.host('b');
  net.link(a, b, { latencyMs: 2 });
  const sink = new lib.MemorySink();
  const writer = net.capture(a, new lib.PcapWriter(sink));
  await net.runUntil(a.ping(b));
  const rx = b.stack.udp();
  rx.bind(null, 7000);
  a.stack.udp().send(new TextEncoder().encode('datagram'), 7000, b.address);
  await net.runFor(10);
  const listener = b.stack.tcp();
  listener.bind(null, 80);
  listener.listen();
  const client = a.stack.tcp();
  client.connect(b.address, 80);
  await net.runFor(10);
  const server = listener.accept();
  client.write(patternBytes(20000));
  await net.runFor(50);
  server?.read();
  client.close();
  server?.close();
  await net.runFor(1000);
  const bytes = sink.bytes();
  const packets = writer.packets;
  net.close();
  return { sha256: await sha256Hex(bytes), length: bytes.length, packets };
}

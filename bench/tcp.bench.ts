/**
 * TCP: bulk throughput between two tunstack stacks in one process (MTU 1500 with checksums
 * computed and verified; MTU 65535 with checksum offload), beside Node's own `net` over the
 * kernel's loopback in the same run; connections per second (connect, one request, close);
 * request/response round trips per second; heap per idle established connection.
 *
 * The stacks run on a ManualClock advanced to real elapsed time each loop turn, so timers (delayed
 * ACKs, RTO) fire as they would on a RealClock while the loop runs as fast as it can. Every rate
 * is the best of 5 rounds of 400 ms (TCP_BENCH_ROUNDS, TCP_BENCH_MS), for tunstack and Node alike.
 */
import { createServer, connect, type Socket } from 'node:net';
import { LinkCapability, ManualClock, Stack, type TcpEndpoint, type TcpProtocol } from '../src/index.js';
import { Wire } from '../src/link/wire.js';
import type { BenchRow } from './run.js';

/** Each figure is the best of ROUNDS rounds of ROUND_MS (the machine is shared). */
const ROUNDS = Number(process.env.TCP_BENCH_ROUNDS ?? 5);
const ROUND_MS = Number(process.env.TCP_BENCH_MS ?? 400);
const DURATION_MS = ROUNDS * ROUND_MS;

/** Best rate over rounds: `count()` returns the running total, sampled at round boundaries. */
function bestOfRounds(step: () => void, count: () => number): number {
  let best = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const c0 = count();
    const t0 = performance.now();
    const end = t0 + ROUND_MS;
    let now = t0;
    while (now < end) {
      step();
      now = performance.now();
    }
    const rate = (count() - c0) / ((now - t0) / 1000);
    if (rate > best) best = rate;
  }
  return best;
}

/** The same over real time for the asynchronous Node references. */
async function bestOfRoundsAsync(count: () => number): Promise<number> {
  let best = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const c0 = count();
    const t0 = performance.now();
    await new Promise<void>((res) => setTimeout(res, ROUND_MS));
    const rate = (count() - c0) / ((performance.now() - t0) / 1000);
    if (rate > best) best = rate;
  }
  return best;
}

interface Net {
  clock: ManualClock;
  a: Stack;
  b: Stack;
  t0: number;
  tick(): void;
}

function makeNet(mtu: number, offload: boolean, family: 4 | 6 = 4): Net {
  const clock = new ManualClock();
  const caps = offload ? LinkCapability.TxChecksumOffload | LinkCapability.RxChecksumOffload : 0;
  const wire = new Wire({ mtu, wireFormat: 'ip', capabilities: caps, queueLength: 1 << 16 });
  const a = new Stack({ clock, seed: 1 });
  const b = new Stack({ clock, seed: 2 });
  a.createNIC({ name: 'eth0', endpoint: wire.a }).addAddress(family === 4 ? '10.0.0.1/24' : 'fd00::1/64');
  b.createNIC({ name: 'eth0', endpoint: wire.b }).addAddress(family === 4 ? '10.0.0.2/24' : 'fd00::2/64');
  if (family === 4) b.addRoute({ destination: '10.0.1.0/24', nic: 'eth0' });
  const t0 = performance.now();
  return {
    clock,
    a,
    b,
    t0,
    tick() {
      const t = performance.now() - t0;
      if (t > clock.now()) clock.advanceTo(t);
    },
  };
}

function establish(n: Net, port: number, family: 4 | 6 = 4): { client: TcpEndpoint; server: TcpEndpoint; listener: TcpEndpoint } {
  const listener = n.b.tcp({ family });
  listener.bind(null, port);
  listener.listen(4096);
  const client = n.a.tcp({ family });
  client.connect(family === 4 ? '10.0.0.2' : 'fd00::2', port);
  const server = listener.accept();
  if (server === null || client.state !== 'ESTABLISHED') throw new Error('handshake did not complete');
  return { client, server, listener };
}

/** Gbit/s of payload moved from A to B for `ms`. */
export function tunstackBulk(mtu: number, offload: boolean, ms = DURATION_MS, family: 4 | 6 = 4): number {
  const n = makeNet(mtu, offload, family);
  const { client, server } = establish(n, 5001, family);
  const src = new Uint8Array(1 << 20);
  for (let i = 0; i < src.length; i++) src[i] = i * 31;
  let off = 0;
  let received = 0;
  const step = (): void => {
    for (let k = 0; k < 16; k++) {
      const w = client.write(off === 0 ? src : src.subarray(off));
      off = (off + w) % src.length;
      for (let c = server.readChunk(); c !== null; c = server.readChunk()) received += c.length;
      if (w === 0 && server.readableLength === 0) break;
    }
    n.tick();
  };
  const warm = performance.now() + 300;
  while (performance.now() < warm) step();
  void ms;
  const rate = bestOfRounds(step, () => received);
  n.a.close();
  n.b.close();
  return (rate * 8) / 1e9;
}

/** Gbit/s through Node's net over 127.0.0.1. */
export async function nodeBulk(ms = DURATION_MS): Promise<number> {
  let received = 0;
  const server = createServer((s) => {
    s.on('error', () => {});
    s.on('data', (d: Buffer) => (received += d.length));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const sock = connect(port, '127.0.0.1');
  await new Promise<void>((r) => sock.once('connect', () => r()));
  const chunk = Buffer.alloc(1 << 20, 0x5a);
  let running = true;
  const pump = (): void => {
    while (running && sock.write(chunk)) {
      /* until backpressure */
    }
    if (running) sock.once('drain', pump);
  };
  pump();
  await new Promise<void>((r) => setTimeout(r, 300));
  void ms;
  const rate = await bestOfRoundsAsync(() => received);
  running = false;
  sock.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  return (rate * 8) / 1e9;
}

/** Connections per second: connect, 64-byte request, 64-byte response, close both ends. */
export function tunstackConnRate(ms = DURATION_MS): number {
  const n = makeNet(1500, false);
  const listener = n.b.tcp();
  listener.bind(null, 80);
  listener.listen(4096);
  n.b.requireTransport<TcpProtocol>(6).timeWaitMs = 2000;
  const req = new Uint8Array(64).fill(1);
  let done = 0;
  let port = 20000;
  const one = (): void => {
    const c = n.a.tcp();
    // Sequential client ports (as Linux's allocator walks the range): a 4-tuple comes back only
    // after 40k connections, when a new ISN is far above the old one in TIME_WAIT.
    c.bind('10.0.0.1', port);
    port = port === 59999 ? 20000 : port + 1;
    c.connect('10.0.0.2', 80);
    const s = listener.accept()!;
    c.write(req);
    s.read();
    s.write(req);
    // The server closes first (as the Node reference does with end()): TIME_WAIT stays on the
    // server side, where a new SYN with a higher ISN may reuse the 4-tuple.
    s.close();
    c.read();
    c.close();
    if (c.state !== 'CLOSED') throw new Error(`client left in ${c.state}`);
    done++;
  };
  const step = (): void => {
    for (let i = 0; i < 64; i++) one();
    n.tick();
  };
  const warm = performance.now() + 300;
  while (performance.now() < warm) step();
  void ms;
  const rate = bestOfRounds(step, () => done);
  n.a.close();
  n.b.close();
  return rate;
}

export async function nodeConnRate(ms = DURATION_MS): Promise<number> {
  const server = createServer((s) => {
    s.on('error', () => {});
    s.once('data', (d: Buffer) => s.end(d));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const req = Buffer.alloc(64, 1);
  const oneConn = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const c: Socket = connect(port, '127.0.0.1', () => c.write(req));
      c.once('data', () => c.end());
      c.once('close', () => resolve());
      c.once('error', reject);
    });
  let done = 0;
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop) {
      await oneConn();
      done++;
    }
  };
  const workers = Array.from({ length: 8 }, () => worker());
  await new Promise<void>((r) => setTimeout(r, 300));
  void ms;
  const rate = await bestOfRoundsAsync(() => done);
  stop = true;
  await Promise.all(workers);
  await new Promise<void>((r) => server.close(() => r()));
  return rate;
}

/** Round trips per second on one connection: 64-byte request, 64-byte response. */
export function tunstackRpc(ms = DURATION_MS): number {
  const n = makeNet(1500, false);
  const { client, server } = establish(n, 7);
  client.setNoDelay(true);
  server.setNoDelay(true);
  const req = new Uint8Array(64).fill(2);
  let done = 0;
  const step = (): void => {
    for (let i = 0; i < 256; i++) {
      client.write(req);
      const r = server.read();
      if (r !== null) server.write(r);
      if (client.read() !== null) done++;
    }
    n.tick();
  };
  const warm = performance.now() + 300;
  while (performance.now() < warm) step();
  void ms;
  const rate = bestOfRounds(step, () => done);
  n.a.close();
  n.b.close();
  return rate;
}

export async function nodeRpc(ms = DURATION_MS): Promise<number> {
  const server = createServer((s) => {
    s.on('error', () => {});
    s.setNoDelay(true);
    s.on('data', (d: Buffer) => s.write(d));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const c = connect(port, '127.0.0.1');
  c.setNoDelay(true);
  await new Promise<void>((r) => c.once('connect', () => r()));
  const req = Buffer.alloc(64, 2);
  let done = 0;
  let running = true;
  c.on('data', () => {
    done++;
    if (running) c.write(req);
  });
  c.write(req);
  await new Promise<void>((r) => setTimeout(r, 300));
  void ms;
  const rate = await bestOfRoundsAsync(() => done);
  running = false;
  c.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  return rate;
}

/** Heap bytes per idle established connection (client and server endpoints both counted). */
export function idleConnectionMemory(count = 100_000): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  const n = makeNet(1500, false);
  // 28k ephemeral ports per local address: spread the clients over several addresses.
  const locals: string[] = [];
  for (let k = 0; k < Math.ceil(count / 25_000); k++) {
    const addr = `10.0.1.${k + 1}`;
    n.a.nic('eth0')!.addAddress(`${addr}/32`);
    locals.push(addr);
  }
  const listener = n.b.tcp();
  listener.bind(null, 80);
  listener.listen(4096);
  const keep: TcpEndpoint[] = [];
  gc?.();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < count; i++) {
    const c = n.a.tcp();
    c.bind(locals[i % locals.length]!, 0);
    c.connect('10.0.0.2', 80);
    const s = listener.accept();
    if (s === null) throw new Error(`connection ${i} not accepted`);
    keep.push(c, s);
    if ((i & 1023) === 0) n.tick();
  }
  n.clock.advance(1000); // let delayed ACKs and handshake timers settle
  gc?.();
  const after = process.memoryUsage().heapUsed;
  const per = (after - before) / keep.length;
  n.a.close();
  n.b.close();
  return per;
}

export default async function run(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const node = await nodeBulk();
  const g1500 = tunstackBulk(1500, false);
  rows.push({ name: 'bulk A->B, MTU 1500, checksums', value: g1500, unit: 'Gbit/s', reference: node, referenceName: 'Node net, kernel loopback', ratio: g1500 / node });
  // IPv6 through the same code, beside the IPv4 figure of this run.
  const g1500v6 = tunstackBulk(1500, false, DURATION_MS, 6);
  rows.push({ name: 'bulk A->B over IPv6, MTU 1500, checksums', value: g1500v6, unit: 'Gbit/s', reference: g1500, referenceName: 'tunstack IPv4, same run', ratio: g1500v6 / g1500 });
  const g64k = tunstackBulk(65535, true);
  rows.push({ name: 'bulk A->B, MTU 65535, checksum offload', value: g64k, unit: 'Gbit/s', reference: node, referenceName: 'Node net, kernel loopback', ratio: g64k / node });
  const nc = await nodeConnRate();
  const tc = tunstackConnRate();
  rows.push({ name: 'connections (connect, request, close)', value: tc, unit: 'conn/s', reference: nc, referenceName: 'Node net, kernel loopback', ratio: tc / nc });
  const nr = await nodeRpc();
  const tr = tunstackRpc();
  rows.push({ name: 'request/response round trips, 64 B', value: tr, unit: 'RTT/s', reference: nr, referenceName: 'Node net, kernel loopback', ratio: tr / nr });
  const mem = idleConnectionMemory(Number(process.env.TCP_BENCH_CONNS ?? 100_000));
  rows.push({ name: 'heap per idle established endpoint (100k connections)', value: mem, unit: 'B' });
  return rows;
}

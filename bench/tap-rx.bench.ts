/**
 * The ceiling of receiving from the kernel over a TAP in this process (root; skips with the reason
 * otherwise): no stack at all, only the native poller's batched reads and what is timed.
 *
 * - "read": the kernel in a fresh namespace sends 64 KiB UDP packets (UDP GSO super-packets of
 *   MTU-sized segments at MTU 1500, plain 64 KiB datagrams at MTU 65520) as fast as python3 can;
 *   this process reads them off the TAP (offloads on, as FdEndpoint sets them) and counts bytes,
 *   doing nothing per packet ("read only"), or copying each out of the batch buffer into its own
 *   unzeroed memory ("+ copy into fresh memory", what FdEndpoint did per packet), or that and
 *   a checksum over it ("+ checksum", what completing the kernel's partial one costs), or taking
 *   each as the poller hands it over in pooled memory of its own ("handed over", what
 *   FdEndpoint does now).
 * - "ACK only": a kernel TCP socket sends KERNEL_BENCH_MB MiB to a minimal TCP receiver written
 *   here (SYN-ACK, then one cumulative ACK per packet read, all ACKs of a read batch written
 *   with one native call, window 8 MiB, no data kept): the
 *   fastest the kernel sends when the receiver does nothing but ACK, all in one JS thread.
 *
 * TAP_RX_ONLY=1500,65520 picks MTUs; TAP_RX_RUNS (default 3) runs each, every figure printed.
 * KERNEL_BENCH_CC=cubic (or bbr, reno) sets the kernel sender's congestion control, as in kernel-tcp.bench.ts.
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { IFF_NO_PI, IFF_TAP, IFF_VNET_HDR } from '../src/index.js';
import { HostTap } from '../src/host/index.js';
import { requireNative } from '../src/host/native.js';
import { checksum, pseudoHeaderSumV4 } from '../src/headers/checksum.js';
import { interopSkipReason, Netns, uniqueName } from '../test/interop/helpers/netns.js';
import { PyProcess } from './py-process.js';
import type { BenchRow } from './run.js';

const MB = 1 << 20;
const SIZE = Number(process.env.KERNEL_BENCH_MB ?? 64) * MB;
const RUNS = Number(process.env.TAP_RX_RUNS ?? 3);
const READ_SECONDS = 2;
const KADDR = '198.18.0.1';
const SADDR = '198.18.0.2';
const SMAC = Uint8Array.of(0x02, 0, 0, 0, 0, 0x02);
const PORT = 9200;

const BLAST = `
import socket, sys, time
mtu, secs = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if mtu <= 9000:
    seg = mtu - 28
    s.setsockopt(17, 103, seg)  # UDP_SEGMENT
    n = seg * (65000 // seg)
else:
    n = 65000
buf = bytes(n)
end = time.time() + secs
while time.time() < end:
    for _ in range(64):
        try: s.sendto(buf, ('${SADDR}', ${PORT}))
        except OSError: pass
`;

/**
 * The ACK-only case's sender: one process for all its runs (a PyProcess, see there why), a
 * transfer per line on stdin, `done` after each; an untimed first transfer follows its start.
 */
const SEND = `
import os, socket, sys
n = int(sys.argv[1])
cc = os.environ.get('KERNEL_BENCH_CC', '').encode()
buf = bytearray(1 << 20); v = memoryview(buf)
for line in sys.stdin:
    c = socket.create_connection(('${SADDR}', ${PORT}))
    if cc: c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc)
    left = n
    while left > 0:
        k = c.send(v[:min(left, len(buf))]); left -= k
    c.shutdown(socket.SHUT_WR)
    while c.recv(65536): pass
    c.close()
    print('done', flush=True)
`;

function gbps(bytes: number, seconds: number): number {
  return (bytes * 8) / seconds / 1e9;
}

function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface Rig {
  ns: Netns;
  tap: HostTap;
  hs: number;
  kmac: Uint8Array;
}

function rig(mtu: number): Rig {
  const ns = new Netns('trx');
  let tap: HostTap | null = null;
  try {
    tap = HostTap.open({ name: uniqueName('trx'), flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR });
    tap.enableOffloads();
    tap.mtu = mtu;
    tap.txQueueLength = 16384;
    const name = tap.name;
    spawnSync('ip', ['link', 'set', name, 'netns', ns.name]);
    ns.ip('addr', 'add', `${KADDR}/24`, 'dev', name);
    ns.ip('link', 'set', name, 'up');
    ns.ip('neigh', 'add', SADDR, 'lladdr', '02:00:00:00:00:02', 'dev', name, 'nud', 'permanent');
    const link = ns.ip('-j', 'link', 'show', name);
    const kmac = Uint8Array.from((JSON.parse(link) as Array<{ address: string }>)[0]!.address.split(':').map((h) => parseInt(h, 16)));
    return { ns, tap, hs: tap.vnetHdrSize, kmac };
  } catch (e) {
    tap?.close();
    ns.remove();
    throw e;
  }
}

function teardown(r: Rig): void {
  try {
    r.tap.stopBatches();
  } catch {
    // closing anyway
  }
  r.tap.close();
  r.ns.remove();
}

type Work = 'none' | 'copy' | 'copy+csum' | 'handover';

/** Bytes read per second while the kernel blasts UDP for READ_SECONDS. */
async function readOnce(r: Rig, mtu: number, work: Work): Promise<number> {
  let bytes = 0;
  let counting = false;
  let sink = 0;
  const unzeroed = (n: number): Uint8Array => Buffer.allocUnsafeSlow(n);
  let kept: Uint8Array | null = null;
  r.tap.startBatches(
    (buf, meta, count, own) => {
    if (!counting) {
      own.length = 0;
      return;
    }
    for (let i = 0; i < count; i++) {
      const off = meta[2 * i]!;
      const len = meta[2 * i + 1]!;
      bytes += len;
      if (work === 'none') continue;
      if (work === 'handover') {
        kept = off < 0 ? new Uint8Array(own[i]!, 0, len) : buf.subarray(off, off + len);
        continue;
      }
      const mine = unzeroed(len);
      mine.set(buf.subarray(off, off + len));
      if (work === 'copy+csum') {
        // UDP checksum over the datagram after the IP header (what completing a partial one costs).
        const l4 = r.hs + 14 + 20;
        sink ^= checksum(mine, l4, len - l4);
      }
    }
    own.length = 0;
    },
    work === 'handover' ? { handOverAbove: 4096 } : {},
  );
  const child = r.ns.spawn('python3', ['-c', BLAST, String(mtu), String(READ_SECONDS + 1.5)]);
  await new Promise((res) => setTimeout(res, 500));
  counting = true;
  const t0 = performance.now();
  await new Promise((res) => setTimeout(res, READ_SECONDS * 1000));
  counting = false;
  const secs = (performance.now() - t0) / 1000;
  await once(child, 'close');
  r.tap.stopBatches();
  if (work === 'handover') {
    const h = requireNative().handOverStats();
    console.log(`    hand-over memory so far: chunks from arenas ${h[0]}, from malloc ${h[1]}, returned ${h[2]}, freed ${h[3]}, idle ${h[4]}; arenas mapped ${h[5]} (ever ${h[6]}, unmapped ${h[7]})`);
  }
  void sink;
  void kept;
  return gbps(bytes, secs);
}

/** The minimal ACK-only receiver: Gbit/s from the first data byte to the FIN. */
async function ackOnce(r: Rig, mtu: number, sender: PyProcess): Promise<number> {
  const hs = r.hs;
  const FRAME = hs + 14 + 20 + 20 + 8;
  const frames: Uint8Array[] = [];
  let nOut = 0;
  let rcvNxt = 0;
  const iss = 0x12345678;
  let sndNxt = 0;
  let synced = false;
  let finSeen = false;
  let t0 = -1;
  let got = 0;
  let cport = 0;
  let resolve!: (v: number) => void;
  const done = new Promise<number>((res) => (resolve = res));
  const starts = new Uint32Array(512);
  const ends = new Uint32Array(512);
  /** Build one segment into the next frame; `flush` writes them all with one native call. */
  const send = (flags: number, opts: boolean): void => {
    if (nOut === frames.length) {
      const f = new Uint8Array(FRAME);
      f.set(r.kmac, hs);
      f.set(SMAC, hs + 6);
      f[hs + 12] = 0x08;
      frames.push(f);
    }
    const out = frames[nOut]!;
    const ip = hs + 14;
    const tcp = ip + 20;
    const tl = opts ? 28 : 20;
    out.fill(0, 0, hs);
    out.fill(0, ip, out.length);
    out[ip] = 0x45;
    out[ip + 2] = (20 + tl) >>> 8;
    out[ip + 3] = (20 + tl) & 0xff;
    out[ip + 6] = 0x40;
    out[ip + 8] = 64;
    out[ip + 9] = 6;
    out.set([198, 18, 0, 2], ip + 12);
    out.set([198, 18, 0, 1], ip + 16);
    const c = checksum(out, ip, 20);
    out[ip + 10] = c >>> 8;
    out[ip + 11] = c & 0xff;
    out[tcp] = PORT >>> 8;
    out[tcp + 1] = PORT & 0xff;
    out[tcp + 2] = cport >>> 8;
    out[tcp + 3] = cport & 0xff;
    const seq = flags & 0x02 ? iss : sndNxt;
    const dv = new DataView(out.buffer);
    dv.setUint32(tcp + 4, seq >>> 0);
    dv.setUint32(tcp + 8, rcvNxt >>> 0);
    out[tcp + 12] = (tl / 4) << 4;
    out[tcp + 13] = flags;
    out[tcp + 14] = 0xff;
    out[tcp + 15] = 0xff;
    if (opts) {
      const mss = mtu - 40;
      out.set([2, 4, mss >>> 8, mss & 0xff, 1, 3, 3, 7], tcp + 20);
    }
    const ph = pseudoHeaderSumV4(out, ip + 12, out, ip + 16, 6, tl);
    const tc = checksum(out, tcp, tl, ph);
    out[tcp + 16] = tc >>> 8;
    out[tcp + 17] = tc & 0xff;
    ends[nOut] = hs + 14 + 20 + tl;
    nOut++;
  };
  const flush = (): void => {
    if (nOut > 0) r.tap.writeBatch(frames, starts, ends, nOut);
    nOut = 0;
  };
  r.tap.startBatches((buf, meta, count) => {
    let synAck = false;
    for (let i = 0; i < count; i++) {
      const off = meta[2 * i]!;
      const len = meta[2 * i + 1]!;
      const e = off + hs;
      if (len < hs + 54 || buf[e + 12] !== 0x08 || buf[e + 13] !== 0x00 || buf[e + 23] !== 6) continue;
      const ip = e + 14;
      const tcp = ip + (buf[ip]! & 15) * 4;
      const ipEnd = ip + ((buf[ip + 2]! << 8) | buf[ip + 3]!);
      const dv = new DataView(buf.buffer, buf.byteOffset);
      const seq = dv.getUint32(tcp + 4);
      const flags = buf[tcp + 13]!;
      const pl = ipEnd - tcp - (buf[tcp + 12]! >>> 4) * 4;
      if (flags & 0x02) {
        cport = (buf[tcp]! << 8) | buf[tcp + 1]!;
        rcvNxt = (seq + 1) >>> 0;
        sndNxt = (iss + 1) >>> 0;
        synced = true;
        synAck = true;
        continue;
      }
      if (!synced) continue;
      if (seq === rcvNxt) {
        if (pl > 0 && t0 < 0) t0 = performance.now();
        rcvNxt = (rcvNxt + pl + (flags & 0x01 ? 1 : 0)) >>> 0;
        got += pl;
        if (flags & 0x01) finSeen = true;
      }
      // One ACK per packet read (a super-packet is one), as Linux ACKs a GRO packet.
      if (!finSeen) send(0x10, false);
    }
    if (synAck) send(0x12, true);
    if (finSeen) {
      send(0x11, false);
      sndNxt = (sndNxt + 1) >>> 0;
      finSeen = false;
      synced = false;
      resolve(gbps(got, (performance.now() - t0) / 1000));
    }
    flush();
  });
  sender.send('go');
  const v = await done;
  await sender.expect('done');
  r.tap.stopBatches();
  if (got !== SIZE) throw new Error(`ACK-only receiver got ${got} of ${SIZE}`);
  return v;
}

export default async function bench(): Promise<BenchRow[]> {
  const why = interopSkipReason();
  if (why !== '') {
    console.log(`tap-rx bench skipped: ${why}`);
    return [];
  }
  if (spawnSync('python3', ['-c', '1']).status !== 0) {
    console.log('tap-rx bench skipped: python3 missing');
    return [];
  }
  const rows: BenchRow[] = [];
  const mtus = (process.env.TAP_RX_ONLY ?? '1500,65520').split(',').map(Number);
  for (const mtu of mtus) {
    const r = rig(mtu);
    let sender: PyProcess | undefined;
    try {
      const cases: Array<[string, () => Promise<number>]> = [
        ['read only', () => readOnce(r, mtu, 'none')],
        ['read + copy into fresh memory', () => readOnce(r, mtu, 'copy')],
        ['read, handed over (pooled memory)', () => readOnce(r, mtu, 'handover')],
        ['read + copy into fresh memory + checksum', () => readOnce(r, mtu, 'copy+csum')],
        ['kernel TCP to an ACK-only receiver', () => ackOnce(r, mtu, (sender ??= new PyProcess(r.ns, SEND, 'ACK-only sender', [String(SIZE)])))],
      ];
      for (const [name, run] of cases) {
        // The ACK-only case starts its sender first (a fork): an untimed transfer takes the faults.
        if (name.startsWith('kernel TCP')) await run();
        const xs: number[] = [];
        for (let i = 0; i < RUNS; i++) xs.push(await run());
        console.log(`  ${name}, MTU ${mtu}: ${xs.map((x) => x.toFixed(2)).join(', ')} Gbit/s`);
        rows.push({ name: `${name}, MTU ${mtu}, IPv4`, value: median(xs), unit: 'Gbit/s' });
      }
    } finally {
      sender?.close();
      teardown(r);
    }
  }
  return rows;
}

/**
 * TCP with the Linux kernel as the peer, over a real TAP with the kernel's offloads on (TSO
 * super-packets from the kernel are split by tunstack; tunstack's bursts reach the kernel as GSO
 * super-packets):
 *
 * - curl in the namespace downloads from Node's own http server running on tunstack;
 * - a tunstack http client (Node's http with tunstack's agent) downloads from python's
 *   http.server in the namespace;
 * - both plain and with tunstack's FaultEndpoint adding 2% loss and 2% reordering each way,
 *   sha256 compared end to end (INTEROP_MB / INTEROP_LOSSY_MB set the sizes, default 256 MiB);
 * - IPv6 too, and RST for closed ports both ways.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultEndpoint, type NetModule, type Socket } from '../../src/index.js';
import { haveCommand, skipInterop, waitFor } from './helpers/netns.js';
import { KERNEL4, KERNEL6, Pair, STACK4, STACK6, type PairOptions } from './helpers/pair.js';

const skip = skipInterop('test/interop/tcp.test.ts');
const noCurl = !skip && !haveCommand('curl');
const noPython = !skip && !haveCommand('python3');
if (noCurl) console.warn('test/interop/tcp.test.ts: curl tests skipped: curl missing');
if (noPython) console.warn('test/interop/tcp.test.ts: kernel-server tests skipped: python3 missing');

const MB = 1 << 20;
const PLAIN = Number(process.env.INTEROP_MB ?? 256) * MB;
const LOSSY = Number(process.env.INTEROP_LOSSY_MB ?? process.env.INTEROP_MB ?? 256) * MB;

let pair: Pair | null = null;
let fault: FaultEndpoint | null = null;
const dirs: string[] = [];
const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) {
    try {
      c();
    } catch {
      // keep cleaning
    }
  }
  pair?.cleanup();
  pair = null;
  fault = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** 2% loss and 2% reordering both ways, seeded. */
const FAULTS = { loss: 0.02, reorder: 0.02, reorderDelayMs: 3 };

/** The kernel's TCP retransmission counter in the namespace. */
async function kernelRetrans(p: Pair): Promise<number> {
  const lines = (await p.ns.run('cat', ['/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Tcp:'));
  const names = lines[0]!.split(/\s+/);
  return Number(lines[1]!.split(/\s+/)[names.indexOf('RetransSegs')]);
}

/** The fault link really dropped and reordered both ways, and the sender recovered (retransmissions). */
async function expectFaultsHappened(p: Pair, tunstackSends: boolean): Promise<void> {
  const f = fault!;
  for (const d of [f.outbound.stats, f.inbound.stats]) {
    expect(d.offered).toBeGreaterThan(1000);
    expect(d.lost / d.offered).toBeGreaterThan(0.01);
    expect(d.reordered).toBeGreaterThan(0);
  }
  if (tunstackSends) {
    const tcp = p.stack.transportProtocol(6) as unknown as { stats: { retransSegs: number } };
    expect(tcp.stats.retransSegs).toBeGreaterThan(0);
  } else {
    expect(await kernelRetrans(p)).toBeGreaterThan(0);
  }
}

function open(options: PairOptions & { faults?: boolean } = {}): Pair {
  const p = new Pair({
    ...options,
    ...(options.faults
      ? {
          wrap: (ep, stack) => (fault = new FaultEndpoint(ep, { clock: stack.clock, seed: 7, ...FAULTS, inbound: FAULTS })),
        }
      : {}),
  });
  pair = p;
  return p;
}

/** Deterministic body (random bytes repeated with a counter so no two MiB are equal). */
function body(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  const block = randomBytes(MB);
  for (let o = 0, i = 0; o < size; o += MB, i++) {
    block.writeUInt32BE(i, 0);
    block.copy(b, o, 0, Math.min(MB, size - o));
  }
  return b;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Serve `data` with Node's http server on tunstack at port 8080. */
function serve(net: NetModule, data: Buffer, host?: string): void {
  const srv = http.createServer((_req, res) => {
    res.setHeader('content-length', data.length);
    res.end(data);
  });
  const lst = net.createServer((s: Socket) => srv.emit('connection', s)).listen({ port: 8080, ...(host ? { host } : {}) });
  closers.push(() => {
    lst.close();
    srv.close();
  });
}

/** curl in the namespace; returns the sha256 of what it got. */
async function curlSha(p: Pair, url: string, timeoutMs: number): Promise<string> {
  const r = await p.ns.run('sh', ['-c', `curl -sS -g --max-time ${Math.ceil(timeoutMs / 1000)} '${url}' | sha256sum`], { timeoutMs: timeoutMs + 5000 });
  expect(r.stderr, r.stderr).toBe('');
  return r.stdout.split(' ')[0]!;
}

/** python3 -m http.server in the namespace serving `data` as /blob. */
async function kernelServer(p: Pair, data: Buffer, bind: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tunstack-interop-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'blob'), data);
  p.ns.spawn('python3', ['-m', 'http.server', '--bind', bind, '--directory', dir, '8000']);
  await waitFor(async () => (await p.ns.run('ss', ['-tln'])).stdout.includes(':8000'), 10_000, 'http.server listening');
}

/** Fetch http://host:8000/blob through tunstack (Node's http client, tunstack's agent). */
function fetchSha(p: Pair, host: string, timeoutMs: number): Promise<{ sha: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const agent = p.stack.net.httpAgent();
    const h = createHash('sha256');
    let bytes = 0;
    const t = setTimeout(() => reject(new Error(`download timed out after ${bytes} bytes`)), timeoutMs);
    const req = http.get({ host, port: 8000, path: '/blob', agent }, (res) => {
      res.on('data', (d: Buffer) => {
        bytes += d.length;
        h.update(d);
      });
      res.on('end', () => {
        clearTimeout(t);
        agent.destroy();
        resolve({ sha: h.digest('hex'), bytes });
      });
      res.on('error', reject);
    });
    req.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

describe.skipIf(skip)('kernel interop: TCP', () => {
  for (const faults of [false, true]) {
    const size = faults ? LOSSY : PLAIN;
    const label = faults ? ` with 2% loss + 2% reordering each way` : '';
    const timeout = faults ? 600_000 : 300_000;

    it.skipIf(noCurl)(`curl downloads ${size / MB} MiB from Node's http server on tunstack${label}`, async () => {
      const p = open({ faults });
      const data = body(size);
      serve(p.stack.net, data);
      const got = await curlSha(p, `http://${STACK4}:8080/`, timeout - 10_000);
      expect(got).toBe(sha(data));
      if (!faults) {
        // The kernel took tunstack's data as GSO super-packets that TCP built itself (TSO) from
        // payload lent by the send buffer (scatter-gather) rather than copied: about one write per
        // 64 KiB, where MSS-sized segments would be 45 times as many.
        expect(p.ep.stats.txPackets).toBeLessThan(size / 1448 / 8);
        expect((p.stack.transportProtocol(6) as unknown as { stats: { outSegs: number } }).stats.outSegs).toBeGreaterThan(size / 1448);
        expect(p.ep.stats.txSgPackets).toBeGreaterThan(size / 65536);
      }
      expect(p.ep.stats.txErrors).toBe(0);
      if (faults) await expectFaultsHappened(p, true);
    }, timeout);

    it.skipIf(noPython)(`a tunstack http client downloads ${size / MB} MiB from python's http.server in the namespace${label}`, async () => {
      const p = open({ faults });
      const data = body(size);
      await kernelServer(p, data, KERNEL4);
      const r = await fetchSha(p, KERNEL4, timeout - 10_000);
      expect(r.bytes).toBe(size);
      expect(r.sha).toBe(sha(data));
      expect(p.ep.stats.rxErrors).toBe(0);
      if (faults) await expectFaultsHappened(p, false);
    }, timeout);
  }

  for (const sg of [true, false]) {
    it.skipIf(noCurl)(`MTU 65520, 64 MiB to curl with ${sg ? 'segments written as scatter-gather writev (payload never copied)' : 'scatter-gather off (payload copied into each segment)'}`, async () => {
      const p = open({ mtu: 65520, endpoint: { scatterGather: sg } });
      const data = body(64 * MB);
      serve(p.stack.net, data);
      expect(await curlSha(p, `http://${STACK4}:8080/`, 60_000)).toBe(sha(data));
      const st = p.ep.stats;
      expect(st.txErrors).toBe(0);
      if (sg) expect(st.txSgPackets).toBeGreaterThan(1000);
      else expect(st.txSgPackets).toBe(0);
    }, 90_000);
  }

  it.skipIf(noCurl || noPython)('IPv6: 16 MiB each way', async (ctx) => {
    const p = open();
    if (!p.ipv6) ctx.skip('IPv6 is not registered in the stack');
    const data = body(16 * MB);
    serve(p.stack.net, data, '::');
    expect(await curlSha(p, `http://[${STACK6}]:8080/`, 60_000)).toBe(sha(data));
    await kernelServer(p, data, KERNEL6);
    const r = await fetchSha(p, KERNEL6, 60_000);
    expect(r.sha).toBe(sha(data));
  }, 120_000);

  it.skipIf(noCurl)('a closed tunstack port answers RST: curl says connection refused', async () => {
    const p = open();
    const r = await p.ns.run('curl', ['-sS', '--max-time', '5', `http://${STACK4}:8081/`]);
    expect(r.code).toBe(7); // CURLE_COULDNT_CONNECT
    expect(r.stderr).toMatch(/Connection refused|Couldn't connect/);
  });

  it('a closed kernel port answers RST: a tunstack socket gets ECONNREFUSED', async () => {
    const p = open();
    const s = p.stack.net.connect({ host: KERNEL4, port: 8082 });
    const e = await new Promise<NodeJS.ErrnoException>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no error')), 5000);
      s.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(t);
        resolve(err);
      });
    });
    expect(e.code).toBe('ECONNREFUSED');
  });
});

/**
 * The kernel's TSO super-packets at a TAP with IFF_VNET_HDR: a stack that terminates TCP (does
 * not forward) takes them whole, one segment where it would take dozens; a forwarding stack gets
 * them split to MTU-sized segments, as a router must send them on. Data intact either way.
 * The other way, tunstack's TCP hands the kernel super-packets itself (TSO: LinkCapability.GSO),
 * with gso_size the MSS, which the kernel takes as it takes its own GSO packets.
 * Root only (skips otherwise).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { KERNEL4, Pair } from './helpers/pair.js';
import { skipInterop, waitFor } from './helpers/netns.js';

const skip = skipInterop('test/interop/tso.test.ts');
const SIZE = 8 << 20;

let pair: Pair | null = null;
afterEach(() => {
  pair?.cleanup();
  pair = null;
});

/** A kernel server in the namespace that sends SIZE bytes of a known pattern and closes. */
async function pull(p: Pair): Promise<string> {
  const child = p.ns.spawn('python3', ['-c', [
    'import socket',
    's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
    `s.bind(('${KERNEL4}', 9200)); s.listen(1); print('ready', flush=True)`,
    'c, _ = s.accept()',
    `data = bytes(range(256)) * (${SIZE} // 256)`,
    'c.sendall(data); c.close()',
  ].join('\n')]);
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  await waitFor(() => out.includes('ready'), 10_000, 'the kernel server');
  const s = p.stack.net.connect({ host: KERNEL4, port: 9200 });
  const h = createHash('sha256');
  let got = 0;
  await new Promise<void>((resolve, reject) => {
    s.on('data', (d: Buffer) => {
      got += d.length;
      h.update(d);
    });
    s.on('end', () => resolve());
    s.on('error', reject);
  });
  expect(got).toBe(SIZE);
  return h.digest('hex');
}

/** The mappings of /proc/self/smaps sized in whole hand-over arenas (neighbours merge), with their VmFlags. */
function arenaMappings(): { range: string; flags: string[] }[] {
  const ARENA_KB = (32 * 69632) / 1024;
  const out: { range: string; flags: string[] }[] = [];
  let range = '';
  let size = 0;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^([0-9a-f]+-[0-9a-f]+) /.exec(line);
    if (head) {
      range = head[1]!;
      size = 0;
    } else if (line.startsWith('Size:')) {
      size = Number(/\d+/.exec(line)![0]);
    } else if (line.startsWith('VmFlags:') && size > 0 && size % ARENA_KB === 0) {
      out.push({ range, flags: line.slice(8).trim().split(/\s+/) });
    }
  }
  return out;
}

const expected = createHash('sha256').update(Buffer.from(new Uint8Array(SIZE).map((_, i) => i & 0xff))).digest('hex');

describe.skipIf(skip)('TSO super-packets from the kernel', () => {
  it('a terminating stack takes them whole (far fewer, larger segments), data intact', async () => {
    const p = (pair = new Pair({ ipv6: false }));
    expect(await pull(p)).toBe(expected);
    const st = p.ep.stats;
    expect(st.rxGsoPackets).toBe(0); // nothing split
    // 8 MiB in MTU-sized segments would be about 5800 packets.
    expect(st.rxPackets).toBeLessThan(SIZE / 1448 / 4);
    // Every super-packet came in memory of its own, including those met by the read right after a
    // write (most of a push's batches: the kernel's next segments are queued while tunstack ACKs).
    expect(st.rxRereads).toBeGreaterThan(0);
    expect(st.rxHandedOver).toBeGreaterThan(SIZE / 65536 / 2);
    expect(st.rxLargeCopied).toBe(0);
    // That memory is the native side's mmap'd arenas (32 chunks of 68 KiB), which a forked child
    // does not inherit (VmFlags "dc", MADV_DONTFORK): a fork leaves them writable, no copy-on-write.
    expect(arenaMappings().some((m) => m.flags.includes('dc'))).toBe(true);
  }, 60_000);

  it('a forwarding stack gets them split to MTU-sized segments, data intact', async () => {
    const p = (pair = new Pair({ ipv6: false }));
    p.stack.forwarding = true;
    expect(await pull(p)).toBe(expected);
    const st = p.ep.stats;
    expect(st.rxGsoPackets).toBeGreaterThan(0);
    expect(st.rxPackets).toBeGreaterThan(SIZE / 1448);
  }, 60_000);

  it('tunstack sends TSO super-packets (gso_size the MSS) that the kernel takes; it receives the data intact', async () => {
    const p = (pair = new Pair({ ipv6: false }));
    const child = p.ns.spawn('python3', ['-c', [
      'import socket, hashlib',
      's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
      `s.bind(('${KERNEL4}', 9201)); s.listen(1); print('ready', flush=True)`,
      'c, _ = s.accept(); h = hashlib.sha256(); n = 0',
      'while True:',
      '    d = c.recv(1 << 20)',
      '    if not d: break',
      '    h.update(d); n += len(d)',
      'print(n, h.hexdigest(), flush=True); c.close()',
    ].join('\n')]);
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    await waitFor(() => out.includes('ready'), 10_000, 'the kernel server');
    const s = p.stack.net.connect({ host: KERNEL4, port: 9201 });
    const data = Buffer.from(new Uint8Array(SIZE).map((_, i) => i & 0xff));
    s.on('connect', () => s.end(data));
    await waitFor(() => /\d+ [0-9a-f]{64}/.test(out), 30_000, 'the kernel to read everything');
    expect(out.trim().split('\n').pop()).toBe(`${SIZE} ${expected}`);
    const st = p.ep.stats;
    // Super-packets from TCP itself, not merged by the endpoint's GRO: far fewer writes than segments.
    expect(st.txPackets).toBeLessThan(SIZE / 1448 / 4);
    expect(st.txGroPackets).toBe(0);
    expect(st.txErrors).toBe(0);
  }, 60_000);
});

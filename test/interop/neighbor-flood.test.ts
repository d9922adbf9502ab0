/**
 * The Linux kernel as the flooding peer (issue 11): from the TAP's namespace, a raw packet socket
 * sends ICMP echo requests from thousands of spoofed on-link sources (each one we must resolve to
 * answer), and keeps flooding while the kernel's own address pings us and we ping it. Both must
 * succeed at once: the spoofed INCOMPLETE entries are collected instead of locking the cache.
 * Needs root and /dev/net/tun; skips with the reason otherwise.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { formatMAC } from '../../src/index.js';
import { haveCommand, skipInterop } from './helpers/netns.js';
import { KERNEL4, KERNEL6, Pair, STACK4, STACK6 } from './helpers/pair.js';

const skip = skipInterop('test/interop/neighbor-flood.test.ts');
const noTools = !skip && !(haveCommand('ping') && haveCommand('python3'));
if (noTools) console.warn('test/interop/neighbor-flood.test.ts: skipped: `ping` or `python3` missing');

/**
 * argv: dev family first count perMs dstMac dstIp. Frame i comes from MAC 02:aa:00:00:hi:lo and
 * 198.18.(32 + hi).lo (inside 198.18.32.0/19) or 2001:db8::a:<i>; a 1 ms pause every perMs frames.
 */
const FLOOD = `
import socket, struct, sys, time
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
dev, fam, first, count, per_ms = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
dmac = bytes.fromhex(sys.argv[6].replace(':', ''))
dst = socket.inet_pton(socket.AF_INET if fam == '4' else socket.AF_INET6, sys.argv[7])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
payload = bytes(56)
sent = 0
for i in range(first, first + count):
    smac = bytes([2, 0xaa, 0, (i >> 16) & 255, (i >> 8) & 255, i & 255])
    if fam == '4':
        src = bytes([198, 18, 32 + ((i >> 8) & 31), i & 255])
        icmp = struct.pack('!BBHHH', 8, 0, 0, 0x4242, i & 0xffff) + payload
        icmp = icmp[:2] + struct.pack('!H', csum(icmp)) + icmp[4:]
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(icmp), i & 0xffff, 0, 64, 1, 0, src, dst)
        ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
        frame = dmac + smac + b'\\x08\\x00' + ip + icmp
    else:
        src = socket.inet_pton(socket.AF_INET6, '2001:db8::a:%x' % i)
        icmp = struct.pack('!BBHHH', 128, 0, 0, 0x4242, i & 0xffff) + payload
        pseudo = src + dst + struct.pack('!I3xB', len(icmp), 58)
        icmp = icmp[:2] + struct.pack('!H', csum(pseudo + icmp)) + icmp[4:]
        ip = struct.pack('!IHBB16s16s', 0x60000000, len(icmp), 58, 64, src, dst)
        frame = dmac + smac + b'\\x86\\xdd' + ip + icmp
    while True:
        try:
            s.send(frame)
            break
        except OSError:
            time.sleep(0.001)
    sent += 1
    if sent % per_ms == 0: time.sleep(0.001)
print(sent)
`;

let pair: Pair | null = null;
afterEach(() => {
  pair?.cleanup();
  pair = null;
});

function received(out: string): number {
  const m = /(\d+) (?:packets )?received/.exec(out);
  return m ? Number(m[1]) : -1;
}

describe.skipIf(skip || noTools)('kernel interop: neighbour cache under a flood from spoofed on-link sources', () => {
  for (const family of [4, 6] as const) {
    it(`IPv${family}: 4000 spoofed sources; the kernel's ping to us and ours to it succeed at once`, async () => {
      const p = (pair = new Pair({ kind: 'tap', vnet: false }));
      if (family === 6 && !p.ipv6) return;
      if (family === 4) p.nic.addAddress('198.18.32.2/19'); // the spoofed sources are on-link
      const mac = formatMAC(p.ep.linkAddress);
      const target = family === 4 ? STACK4 : STACK6;
      const flood = (first: number, count: number, perMs: number): Promise<{ stdout: string; stderr: string; code: number }> =>
        p.ns.run('python3', ['-c', FLOOD, p.dev, String(family), String(first), String(count), String(perMs), mac, target], { timeoutMs: 20_000 });
      // 2500 sources as fast as the TAP takes them, then 1500 more at about 1 a millisecond
      // while the pings run (our INCOMPLETE entries live 3 s).
      const first = await flood(16, 2500, 50);
      expect(first.stdout.trim(), first.stderr).toBe('2500');
      const rest = flood(2516, 1500, 1);
      const kernelPing = await p.ns.run('ping', [family === 4 ? '-4' : '-6', '-c', '3', '-i', '0.2', '-W', '1', target], { timeoutMs: 10_000 });
      let ours: string;
      try {
        const r = await p.stack.ping(family === 4 ? KERNEL4 : KERNEL6, { timeoutMs: 1000 });
        ours = `reply from ${r.from}`;
      } catch (e) {
        ours = (e as { code?: string }).code ?? String(e);
      }
      const second = await rest;
      expect(second.stdout.trim(), second.stderr).toBe('1500');
      expect(received(kernelPing.stdout), kernelPing.stdout + kernelPing.stderr).toBe(3);
      expect(ours).toBe(`reply from ${family === 4 ? KERNEL4 : KERNEL6}`);
      const st = p.nic.neighborStats()[family === 4 ? 'ipv4' : 'ipv6']!;
      expect(st.entries).toBeLessThanOrEqual(1024);
      expect(st.forcedGcRuns).toBeGreaterThan(0);
      expect(st.entriesEvicted).toBeGreaterThan(0);
      expect(st.entriesRefused).toBe(0);
    }, 30_000);
  }
});

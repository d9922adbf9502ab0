/**
 * Forged path MTU messages with the Linux kernel as the peer (issue 11): tunstack sends 4 MiB to
 * a kernel TCP socket over a TAP; halfway the kernel-side reader pauses, scapy in the peer's
 * namespace sends ICMP "fragmentation needed" (IPv4) / "Packet Too Big" (IPv6) to tunstack, then
 * the reader goes on. The transfer must complete with the sha256 intact:
 *
 * - quoting no existing connection, and quoting the connection with a sequence number outside
 *   SND.UNA..SND.NXT (2^30 ahead): ignored, tunstack's path MTU stays 1500;
 * - quoting the connection at SND.UNA with MTU 68 (IPv4) / 500 (IPv6): the path MTU is clamped to
 *   552 / 1280 (Linux's min_pmtu and the IPv6 minimum) and the kernel receives segments that fit.
 *
 * The kernel's receive buffer is small (64 KiB) so most of the data is still to be sent when the
 * messages arrive; scapy writes Ethernet frames straight to tunstack's MAC on the TAP, and the
 * test checks that tunstack's ICMP received every one.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { formatMAC, parseIP, type IPv4Protocol, type IPv6Protocol, type TcpEndpoint } from '../../src/index.js';
import { skipInterop, waitFor } from './helpers/netns.js';
import { KERNEL4, KERNEL6, Pair, STACK4, STACK6 } from './helpers/pair.js';

const PY = '/usr/bin/python3';
const skip = skipInterop('test/interop/pmtu-forged.test.ts');
const noScapy = !skip && (!existsSync(PY) || spawnSync(PY, ['-c', 'import scapy.all'], { stdio: 'ignore' }).status !== 0);
if (noScapy) console.warn('test/interop/pmtu-forged.test.ts: skipped: /usr/bin/python3 with scapy missing (python3-scapy)');

const TOTAL = 4 << 20;
const PAUSE_AT = 1 << 20;
const PORT = 5201;

/** The kernel's side: read PAUSE_AT bytes, say PAUSED, wait for a line on stdin, read to EOF. */
const RECV = `
import hashlib, socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
l = socket.socket(fam, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
# A small receive buffer: while the reader pauses, most of the data is still on tunstack's side.
l.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
l.bind((sys.argv[1], int(sys.argv[2])))
l.listen(1)
print('READY', flush=True)
c, _ = l.accept()
c.settimeout(20)
h = hashlib.sha256()
n = 0
pause = int(sys.argv[3])
while n < pause:
    d = c.recv(min(65536, pause - n))
    if not d:
        break
    h.update(d)
    n += len(d)
print('PAUSED', flush=True)
sys.stdin.readline()
while True:
    d = c.recv(65536)
    if not d:
        break
    h.update(d)
    n += len(d)
print('DONE', n, h.hexdigest(), flush=True)
`;

/**
 * scapy, started ahead (its import takes a while): for each line of "sport:seq:mtu" words, one
 * ICMP error per word about stack:sport -> kernel:dport, then SENT.
 */
const FORGE = `
import sys
from scapy.all import Ether, IP, ICMP, IPv6, ICMPv6PacketTooBig, TCP, get_if_hwaddr, sendp, conf
conf.verb = 0
kernel, stack, dport, dev, mac = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
eth = Ether(src=get_if_hwaddr(dev), dst=mac)
print('READY', flush=True)
for spec in sys.stdin.readline().split():
    sport, seq, mtu = (int(x) for x in spec.split(':'))
    inner_tcp = TCP(sport=sport, dport=dport, seq=seq, flags='A')
    if ':' in kernel:
        pkt = IPv6(src=kernel, dst=stack) / ICMPv6PacketTooBig(mtu=mtu) / IPv6(src=stack, dst=kernel, plen=1440) / inner_tcp
    else:
        pkt = IP(src=kernel, dst=stack) / ICMP(type=3, code=4, nexthopmtu=mtu) / IP(src=stack, dst=kernel, flags='DF', len=1500) / inner_tcp
    sendp(eth / pkt, iface=dev)
print('SENT', flush=True)
`;

let pair: Pair | null = null;
afterEach(() => {
  pair?.cleanup();
  pair = null;
});

interface Run {
  sha: string;
  got: string;
  pathMtu: number;
  mss: number;
}

/**
 * The transfer with the attack in the middle. `forged(sport, sndUna)` gives the messages to send
 * ("sport:seq:mtu").
 */
async function run(family: 4 | 6, forged: (sport: number, sndUna: number) => string[]): Promise<Run> {
  const p = (pair = new Pair());
  const kernel = family === 4 ? KERNEL4 : KERNEL6;
  const stackAddr = family === 4 ? STACK4 : STACK6;
  const ip4 = p.stack.requireNetwork<IPv4Protocol>(0x0800);
  const ip6 = p.stack.requireNetwork<IPv6Protocol>(0x86dd);
  const py = p.ns.spawn(PY, ['-c', RECV, kernel, String(PORT), String(PAUSE_AT)]);
  let out = '';
  py.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  py.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const forger = p.ns.spawn(PY, ['-c', FORGE, kernel, stackAddr, String(PORT), p.dev, formatMAC(p.nic.linkAddress)]);
  let fout = '';
  forger.stdout!.on('data', (d: Buffer) => (fout += d.toString()));
  forger.stderr!.on('data', (d: Buffer) => (fout += d.toString()));
  await waitFor(() => out.includes('READY'), 10_000, 'the kernel listener');
  await waitFor(() => fout.includes('READY'), 20_000, 'scapy');

  const data = randomBytes(TOTAL);
  const sha = createHash('sha256').update(data).digest('hex');
  const c: TcpEndpoint = p.stack.tcp({ family });
  let off = 0;
  const pump = (): void => {
    while (off < TOTAL) {
      const n = c.write(data.subarray(off));
      if (n === 0) return;
      off += n;
    }
    c.shutdown();
  };
  c.on('connect', pump);
  c.on('writable', pump);
  c.connect(kernel, PORT);
  await waitFor(() => out.includes('PAUSED'), 10_000, 'the first MiB');
  // Let the kernel's receive window fill: tunstack then has data queued and maybe in flight.
  await new Promise((r) => setTimeout(r, 200));
  const specs = forged(c.localPort, c.sndUna);
  const icmp = (): number => (family === 4 ? ip4.stats.icmp.errorsReceived : ip6.stats.icmp.packetTooBigReceived);
  const before = icmp();
  forger.stdin!.write(`${specs.join(' ')}\n`);
  await waitFor(() => fout.includes('SENT') || forger.exitCode !== null, 10_000, 'scapy to send');
  expect(fout.trim()).toBe('READY\nSENT');
  // Every forged message reached tunstack's ICMP.
  await waitFor(() => icmp() - before === specs.length, 5000, 'the ICMP messages').catch(() => undefined);
  expect(icmp() - before).toBe(specs.length);
  py.stdin!.write('GO\n');
  // The whole line: under load a print's pieces can arrive in separate reads.
  await waitFor(() => /DONE \d+ [0-9a-f]{64}\n/.test(out) || py.exitCode !== null, 15_000, 'the transfer to complete').catch(() => undefined);
  const m = /DONE (\d+) ([0-9a-f]{64})/.exec(out);
  const ip = family === 4 ? ip4 : ip6;
  return { sha, got: m ? `${m[1]} ${m[2]}` : `incomplete: ${out.trim().split('\n').pop()}`, pathMtu: ip.pathMtu(parseIP(kernel), 1500), mss: c.info().mss };
}

describe.skipIf(skip || noScapy)('kernel interop: forged frag-needed / Packet Too Big during a transfer', () => {
  for (const family of [4, 6] as const) {
    const mtu = family === 4 ? 576 : 1280;

    it(`IPv${family}: ignores one for no connection and one out of window; the transfer completes intact`, async () => {
      const r = await run(family, (sport, una) => [`${(sport + 1) & 0xffff}:${una}:${mtu}`, `${sport}:${(una + 0x40000000) >>> 0}:${mtu}`]);
      expect(r.got).toBe(`${TOTAL} ${r.sha}`);
      expect(r.pathMtu).toBe(1500);
    });

    it(`IPv${family}: clamps a tiny MTU for the real flow to ${family === 4 ? 552 : 1280}; the transfer completes intact`, async () => {
      // At SND.UNA, and one byte on in case a zero-window probe's byte is acknowledged meanwhile.
      const tiny = family === 4 ? 68 : 500;
      const r = await run(family, (sport, una) => [`${sport}:${una}:${tiny}`, `${sport}:${(una + 1) >>> 0}:${tiny}`]);
      expect(r.got).toBe(`${TOTAL} ${r.sha}`);
      expect(r.pathMtu).toBe(family === 4 ? 552 : 1280);
      // MTU - IP - TCP - timestamps.
      expect(r.mss).toBe(family === 4 ? 552 - 52 : 1280 - 72);
    });
  }
});

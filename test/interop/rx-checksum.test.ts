/**
 * Checksums of packets from the local kernel over a TAP with IFF_VNET_HDR, as Linux treats a
 * virtio/TAP device's: a packet whose checksum the kernel left partial (NEEDS_CSUM, its
 * CHECKSUM_PARTIAL) or marked valid (DATA_VALID) is trusted for local delivery without being
 * summed; one that comes without those flags is verified, and a corrupted one is dropped and
 * counted; a partial one that tunstack forwards leaves with its checksum completed (the kernel on
 * the far side, which verifies what a TAP hands it without flags, and tshark on that side's
 * interface, where tunstack writes without offloads, are the judges).
 * Root only (skips otherwise).
 */
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { Stack, TUN_F_CSUM } from '../../src/index.js';
import type { IPv4Protocol } from '../../src/network/ipv4.js';
import type { TcpProtocol } from '../../src/transport/tcp/protocol.js';
import { haveCommand, skipInterop, uniqueName, waitFor } from './helpers/netns.js';
import { closeSides, routedSide, type RoutedSide } from './helpers/routed.js';
import { KERNEL4, Pair, STACK4 } from './helpers/pair.js';

const skip = skipInterop('test/interop/rx-checksum.test.ts');
const noTshark = !haveCommand('tshark');
if (noTshark) console.warn('test/interop/rx-checksum.test.ts: forwarding test skipped: tshark missing (apt-get install tshark)');

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length > 0) {
    try {
      cleanups.pop()!();
    } catch {
      // keep cleaning
    }
  }
});

/** python3: send one TCP SYN to dst:9 as an Ethernet frame through a packet socket (no offload flags), checksum good or not. */
const SYN = `
import socket, struct, sys
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
dev, dmac, smac, src, dst, sport, good = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]), sys.argv[7] == '1'
dmac = bytes.fromhex(dmac.replace(':', '')); smac = bytes.fromhex(smac.replace(':', ''))
s4, d4 = socket.inet_aton(src), socket.inet_aton(dst)
tcp = struct.pack('!HHIIBBHHH', sport, 9, 1000, 0, 5 << 4, 0x02, 65535, 0, 0)
c = csum(s4 + d4 + struct.pack('!BBH', 0, 6, len(tcp)) + tcp)
if not good: c ^= 0x0101
tcp = tcp[:16] + struct.pack('!H', c) + tcp[18:]
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, s4, d4)
ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind((dev, 0))
s.send(dmac + smac + b'\\x08\\x00' + ip + tcp)
`;

function mac(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}

describe.skipIf(skip)('checksums of packets from the kernel over a TAP', () => {
  it('a corrupted segment without NEEDS_CSUM/DATA_VALID is dropped and counted; a good one is answered; the kernel\'s own (partial) are trusted', async () => {
    const p = new Pair({ ipv6: false });
    cleanups.push(() => p.cleanup());
    const tcp = p.stack.requireTransport<TcpProtocol>(6);
    const kmac = (JSON.parse(p.ns.ip('-j', 'link', 'show', p.dev)) as Array<{ address: string }>)[0]!.address;
    // Resolve the neighbor first (a ping), so that tunstack's RST goes out at once.
    const ping = await p.ns.run('ping', ['-c', '1', '-W', '3', STACK4]);
    expect(ping.stdout).toMatch(/1 received/);
    const errs0 = tcp.stats.inCsumErrors;
    const rsts0 = tcp.stats.outRsts;
    const send = async (sport: number, good: boolean): Promise<void> => {
      const r = await p.ns.run('python3', ['-c', SYN, p.dev, mac(p.ep.linkAddress), kmac, KERNEL4, STACK4, String(sport), good ? '1' : '0']);
      expect(r.code, r.stderr).toBe(0);
    };
    await send(40001, false);
    await waitFor(() => tcp.stats.inCsumErrors > errs0, 5000, 'the corrupted SYN to be counted');
    expect(tcp.stats.inCsumErrors - errs0).toBe(1);
    expect(tcp.stats.outRsts).toBe(rsts0); // dropped: not answered
    await send(40002, true);
    await waitFor(() => tcp.stats.outRsts > rsts0, 5000, 'the RST for the good SYN (port 9 is closed)');
    expect(tcp.stats.inCsumErrors - errs0).toBe(1);

    // The kernel's own segments come with NEEDS_CSUM (partial checksums, never summed here):
    // a transfer from a kernel socket arrives intact and nothing is counted as corrupted.
    const server = p.stack.net.createServer();
    let got = 0;
    const done = new Promise<void>((resolve, reject) => {
      server.once('connection', (s) => {
        s.on('data', (d: Buffer) => {
          for (let i = 0; i < d.length; i++) if (d[i] !== ((got + i) & 0xff)) reject(new Error(`byte ${got + i} differs`));
          got += d.length;
        });
        s.on('end', () => {
          s.end();
          resolve();
        });
        s.on('error', reject);
      });
    });
    server.listen(9301, STACK4);
    const size = 4 << 20;
    const child = p.ns.spawn('python3', ['-c', `import socket\nc = socket.create_connection(('${STACK4}', 9301))\nc.sendall(bytes(range(256)) * ${size / 256})\nc.shutdown(socket.SHUT_WR)\nc.recv(1)\nc.close()`]);
    await done;
    await new Promise((r) => child.once('close', r));
    server.close();
    expect(got).toBe(size);
    expect(tcp.stats.inCsumErrors - errs0).toBe(1);
  }, 30_000);

  it.skipIf(noTshark)('a partial checksum is completed when tunstack forwards the packet (the far kernel and tshark agree)', async () => {
    const stack = new Stack({ forwarding: true });
    cleanups.push(() => stack.close());
    const made: RoutedSide[] = [];
    cleanups.push(() => closeSides(made));
    // B's side offloads nothing: what tunstack writes there must carry complete checksums. A's
    // kernel may leave checksums partial but must cut its own segments (no TSO): every data
    // segment then comes partial (NEEDS_CSUM) and is forwarded as it came.
    const a = routedSide(stack, 0, { ns: 'tca', tap: 'tcr', endpoint: { mtu: 1500, offload: true }, tune: (tap) => tap.setOffload(TUN_F_CSUM) }, made);
    const b = routedSide(stack, 1, { ns: 'tcb', tap: 'tcr', endpoint: { mtu: 1500, offload: false } }, made);
    const bDev = b.tap.name;
    // B's kernel verifies every segment (a TAP write without flags is CHECKSUM_NONE); tshark on
    // B's interface checks them too.
    const pcap = `/tmp/${uniqueName('tcp')}.pcap`;
    const cap = b.ns.spawn('tshark', ['-q', '-i', bDev, '-w', pcap, '-f', 'tcp port 9302']);
    cleanups.push(() => {
      cap.kill();
      try {
        execFileSync('rm', ['-f', pcap]);
      } catch {
        // gone
      }
    });
    await new Promise((r) => setTimeout(r, 1500));
    const srv = b.ns.spawn('python3', ['-c', [
      'import socket, hashlib',
      's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
      "s.bind(('198.19.0.2', 9302)); s.listen(1); print('ready', flush=True)",
      'c, _ = s.accept(); h = hashlib.sha256(); n = 0',
      'while True:',
      '    d = c.recv(65536)',
      '    if not d: break',
      '    h.update(d); n += len(d)',
      "print(n, h.hexdigest(), flush=True)",
    ].join('\n')]);
    let out = '';
    srv.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => out.includes('ready'), 5000, 'the server in B');
    const csumErrors = (): number => {
      const t = b.ns.runSync('nstat', ['-asz', 'TcpInCsumErrors']);
      const m = /TcpInCsumErrors\s+(\d+)/.exec(t);
      return m ? Number(m[1]) : 0;
    };
    const before = csumErrors();
    const size = 1 << 20;
    const sent = await a.ns.run('python3', ['-c', [
      'import socket, hashlib',
      `data = bytes(range(256)) * ${size / 256}`,
      "c = socket.create_connection(('198.19.0.2', 9302)); c.sendall(data); c.close()",
      'print(hashlib.sha256(data).hexdigest())',
    ].join('\n')], { timeoutMs: 20_000 });
    expect(sent.code, sent.stderr).toBe(0);
    await waitFor(() => out.split('\n').length > 2, 10_000, 'B to receive it all');
    expect(out.split('\n')[1]).toBe(`${size} ${sent.stdout.trim()}`);
    expect(csumErrors() - before).toBe(0);
    // The forwarded packets had come in partial (NEEDS_CSUM) from A's kernel, MSS-sized.
    expect(stack.requireNetwork<IPv4Protocol>(0x0800).stats.forwarded).toBeGreaterThan(size / 1448);
    expect(a.ep.stats.rxPartialChecksums).toBeGreaterThan(size / 1448);
    expect(a.ep.stats.rxGsoPackets).toBe(0);
    await new Promise((r) => setTimeout(r, 500));
    cap.kill('SIGINT');
    await new Promise((r) => cap.once('close', r));
    const bad = execFileSync('tshark', ['-r', pcap, '-o', 'tcp.check_checksum:TRUE', '-Y', 'ip.dst == 198.19.0.2 && tcp.checksum.status != 1', '-T', 'fields', '-e', 'frame.number'], { encoding: 'utf8' });
    const all = execFileSync('tshark', ['-r', pcap, '-Y', 'ip.dst == 198.19.0.2', '-T', 'fields', '-e', 'frame.number'], { encoding: 'utf8' });
    expect(all.trim().split('\n').length).toBeGreaterThan(10);
    expect(bad.trim()).toBe('');
  }, 60_000);
});

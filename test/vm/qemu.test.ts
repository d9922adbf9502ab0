/**
 * A real Linux guest in QEMU (TCG, no KVM, no root) on `tunstack vm`, over QEMU's stream
 * transport (`--socket`) and its datagram transport (`--listen-udp`, `--dgram`): Debian's kernel,
 * the e1000 module and busybox (test/vm/helpers/guest.ts). The guest's /init gets a lease with
 * udhcpc, pings the gateway, resolves through the DNS relay, downloads a blob from a server on the
 * host's loopback through the gateway with wget and prints its sha256, uploads 2 MiB of its own
 * random text to the same server with wget --post-file (the server hashes what arrived, the guest
 * what it sent), then serves HTTP that the test fetches through a port published with -p (the
 * page powers the guest off); QEMU is the COMMAND, so tunstack exits with its status.
 * Skips with the reason when QEMU or the Debian packages cannot be had.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { useHeavyGuest } from '../helpers/heavy.js';
import { unixgramUnavailableReason } from '../../src/vm/unixgram.js';
import { S_IFCHR, S_IFDIR, S_IFREG, cpio, guestFiles } from './helpers/guest.js';
import { freeTcpPort, httpGet } from './helpers/http.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const files = process.platform === 'linux' ? guestFiles() : 'not Linux';
if (typeof files === 'string') console.log(`skipping the QEMU guest test: ${files}`);
const dir = mkdtempSync(join(tmpdir(), 'tunstack-vm-qemu-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Bytes the guest uploads: random bytes made in the guest, base64 encoded (busybox wget reads a
 * --post-file as a C string, so it would stop at the first NUL byte); both ends hash them.
 */
const UPLOAD = 2 << 20;
/** What the guest downloads (issue 15: 64 MiB, hashed by the guest as it arrives). */
const DOWNLOAD = 64 << 20;

function init(port: number): string {
  return `#!/bin/busybox sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
insmod /e1000.ko
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -n -q -t 20 -T 1 -s /udhcpc.sh
ping -c 1 -W 5 10.0.2.2 | grep 'packets received' | sed 's/^/PING /'
nslookup localhost 10.0.2.3 | grep -q '127.0.0.1' && echo "DNS localhost is 127.0.0.1"
echo "SHA $(wget -q -O - http://10.0.2.2:${port}/blob | sha256sum)"
dd if=/dev/urandom bs=65536 count=${(UPLOAD * 3) >> 18} 2>/dev/null | base64 | head -c ${UPLOAD} > /tmp/up
echo "UPSHA $(sha256sum /tmp/up | cut -d' ' -f1)"
wget -q -O - --post-file /tmp/up http://10.0.2.2:${port}/upload | sed 's/^/UPLOAD /'
(sleep 60; poweroff -f) &
httpd -p 80 -h /www
echo SERVING
while true; do sleep 1; done
`;
}

/** Served by the guest's httpd through the published port; powers the guest off once asked. */
const BYE = `#!/bin/sh
echo "Content-Type: text/plain"
echo
echo "hello from the guest"
(sleep 2; poweroff -f) </dev/null >/dev/null 2>&1 &
`;

const UDHCPC = `#!/bin/sh
case "$1" in bound|renew)
  ip addr add "$ip/$mask" dev "$interface"
  ip route add default via "$router"
  echo "LEASE $ip/$mask router $router dns $dns"
esac
`;

/** A UDP port free on the loopback now. */
async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4').bind(0, '127.0.0.1');
  await once(s, 'listening');
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** tunstack's transport option and QEMU's -netdev for each transport. */
async function transport(kind: 'stream' | 'dgram' | 'dgram-unix'): Promise<{ tunstack: string[]; netdev: string }> {
  if (kind === 'dgram-unix') {
    const [ours, qemus] = [join(dir, 'tunstack.dgram'), join(dir, 'qemu.dgram')];
    return { tunstack: ['--dgram', ours], netdev: `dgram,id=n0,local.type=unix,local.path=${qemus},remote.type=unix,remote.path=${ours}` };
  }
  if (kind === 'stream') {
    const sock = join(dir, 'vm.sock');
    return { tunstack: ['--socket', sock], netdev: `stream,id=n0,server=off,addr.type=unix,addr.path=${sock}` };
  }
  const [ours, qemus] = [await freeUdpPort(), await freeUdpPort()];
  return {
    tunstack: ['--listen-udp', `127.0.0.1:${ours}`],
    netdev: `dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=${qemus},remote.type=inet,remote.host=127.0.0.1,remote.port=${ours}`,
  };
}

const kinds = unixgramUnavailableReason() === '' ? (['stream', 'dgram', 'dgram-unix'] as const) : (['stream', 'dgram'] as const);


useHeavyGuest();

describe.skipIf(typeof files === 'string').each(kinds)('a QEMU guest on tunstack vm (-netdev %s)', (kind) => {
  it('gets its lease by DHCP, pings the gateway, resolves through the DNS relay, downloads 64 MiB from the host loopback and uploads 2 MiB to it with the sha256 intact, serves a published port', async () => {
    const g = files as Exclude<typeof files, string>;
    const blob = randomBytes(DOWNLOAD);
    const uploads: { bytes: number; sha: string }[] = [];
    const http = createServer((req, res) => {
      if (req.method !== 'POST') {
        res.end(blob);
        return;
      }
      const h = createHash('sha256');
      let bytes = 0;
      req.on('data', (b: Buffer) => (h.update(b), (bytes += b.length)));
      req.on('end', () => {
        const up = { bytes, sha: h.digest('hex') };
        uploads.push(up);
        res.end(`${up.bytes} ${up.sha}\n`);
      });
    });
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    try {
      const port = (http.address() as AddressInfo).port;
      const initrd = join(dir, 'initrd.cpio');
      writeFileSync(
        initrd,
        cpio([
          { name: 'bin', mode: S_IFDIR | 0o755 },
          { name: 'dev', mode: S_IFDIR | 0o755 },
          { name: 'dev/console', mode: S_IFCHR | 0o600, rdev: [5, 1] },
          { name: 'bin/busybox', mode: S_IFREG | 0o755, data: g.busybox },
          { name: 'e1000.ko', mode: S_IFREG | 0o644, data: g.e1000 },
          { name: 'udhcpc.sh', mode: S_IFREG | 0o755, data: Buffer.from(UDHCPC) },
          { name: 'init', mode: S_IFREG | 0o755, data: Buffer.from(init(port)) },
          { name: 'www', mode: S_IFDIR | 0o755 },
          { name: 'www/cgi-bin', mode: S_IFDIR | 0o755 },
          { name: 'www/cgi-bin/bye', mode: S_IFREG | 0o755, data: Buffer.from(BYE) },
        ]),
      );
      const t = await transport(kind);
      const published = await freeTcpPort();
      const qemu = ['qemu-system-x86_64', '-accel', 'tcg', '-m', '256', '-nodefaults', '-display', 'none', '-serial', 'stdio', '-no-reboot',
        '-kernel', g.kernel, '-initrd', initrd, '-append', 'console=ttyS0 panic=-1 quiet',
        '-netdev', t.netdev, '-device', 'e1000,netdev=n0'];
      const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'vm', ...t.tunstack, '--icmp=gateway', '-v', '-p', `${published}:80`, '--', ...qemu], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      let fetched: Promise<string> | null = null;
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        // The guest serves: fetch from it through the published port (which powers it off).
        if (fetched === null && out.includes('SERVING')) fetched = httpGet(published, '/cgi-bin/bye');
      });
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      const kill = setTimeout(() => child.kill('SIGTERM'), 150_000);
      const [code] = (await once(child, 'close')) as [number | null];
      clearTimeout(kill);
      const guest = out.replace(/\r/g, '');
      expect(guest, err).toMatch(/LEASE 10\.0\.2\.100\/24 router 10\.0\.2\.2 dns 10\.0\.2\.3/);
      expect(guest).toMatch(/PING 1 packets transmitted, 1 packets received/);
      expect(guest).toContain('DNS localhost is 127.0.0.1');
      expect(guest).toContain(`SHA ${createHash('sha256').update(blob).digest('hex')}`);
      // The upload: the server's hash of what arrived is the guest's hash of what it sent.
      expect(uploads.length).toBe(1);
      expect(uploads[0]!.bytes).toBe(UPLOAD);
      expect(guest).toContain(`UPSHA ${uploads[0]!.sha}`);
      expect(guest).toContain(`UPLOAD ${UPLOAD} ${uploads[0]!.sha}`);
      expect(await (fetched as Promise<string> | null)).toMatch(/^HTTP\/1\.[01] 200 [^]*\r?\n\r?\nhello from the guest\n$/);
      expect(code, err).toBe(0);
      console.log(guest.split('\n').filter((l) => /^(LEASE|PING|DNS|SHA|UPSHA|UPLOAD)/.test(l)).join('\n'));
    } finally {
      http.close();
    }
  }, 180_000);
});

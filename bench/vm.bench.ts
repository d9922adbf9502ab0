/**
 * A QEMU guest's download through tunstack beside QEMU's own user networking (libslirp), in the
 * same run: the guest of test/vm/qemu.test.ts (Debian's kernel, e1000, busybox; TCG, no KVM),
 * booted once per network, gets its lease by DHCP and downloads VM_BENCH_MIB MiB (default 64)
 * VM_BENCH_REPS times (default 3) with busybox wget from an HTTP server on the host's loopback
 * through the gateway 10.0.2.2, to /dev/null. The networks: `tunstack vm --socket` (QEMU's stream
 * framing over a unix socket), `tunstack vm --listen-udp` (QEMU's dgram netdev over UDP on the
 * loopback), and `-netdev user` (libslirp in the QEMU process). Each download is timed from the
 * guest's "GO" line on its serial console to its "DONE" line (wget exits 0 only with the whole
 * Content-Length); rows give the median with the spread, the reference is libslirp's median.
 * Skipped (no rows) without QEMU or the Debian packages. Run under `flock /tmp/heavy.lock`.
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { S_IFCHR, S_IFDIR, S_IFREG, cpio, guestFiles, type GuestFiles } from '../test/vm/helpers/guest.js';
import type { BenchRow } from './run.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MIB = Number(process.env.VM_BENCH_MIB ?? 64);
const REPS = Number(process.env.VM_BENCH_REPS ?? 3);

const UDHCPC = `#!/bin/sh
case "$1" in bound|renew)
  ip addr add "$ip/$mask" dev "$interface"
  ip route add default via "$router"
  echo "LEASE $ip/$mask router $router"
esac
`;

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
for i in $(seq ${REPS}); do
  echo "GO $i"
  wget -q -O /dev/null http://10.0.2.2:${port}/blob && echo "DONE $i"
done
poweroff -f
`;
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4').bind(0, '127.0.0.1');
  await once(s, 'listening');
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Network {
  name: string;
  /** The command to run (QEMU itself, or tunstack vm with QEMU as its COMMAND) given QEMU's argv. */
  command(qemu: string[]): Promise<string[]>;
}

function networks(dir: string): Network[] {
  const tunstack = (opts: string[], qemu: string[]): string[] => [process.execPath, '--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'vm', ...opts, '--', ...qemu];
  return [
    {
      name: 'tunstack vm --socket (QEMU stream, unix socket)',
      command: (q) => {
        const sock = join(dir, 'vm.sock');
        return Promise.resolve(tunstack(['--socket', sock], [...q, '-netdev', `stream,id=n0,server=off,addr.type=unix,addr.path=${sock}`]));
      },
    },
    {
      name: 'tunstack vm --listen-udp (QEMU dgram, UDP on loopback)',
      command: async (q) => {
        const [ours, qemus] = [await freeUdpPort(), await freeUdpPort()];
        const netdev = `dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=${qemus},remote.type=inet,remote.host=127.0.0.1,remote.port=${ours}`;
        return tunstack(['--listen-udp', `127.0.0.1:${ours}`], [...q, '-netdev', netdev]);
      },
    },
    { name: 'libslirp (QEMU -netdev user)', command: (q) => Promise.resolve([...q, '-netdev', 'user,id=n0']) },
  ];
}

/** Boots the guest on one network; returns the download times in seconds. */
async function run(g: GuestFiles, dir: string, net: Network, port: number): Promise<number[]> {
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
    ]),
  );
  const qemu = ['qemu-system-x86_64', '-accel', 'tcg', '-m', '256', '-nodefaults', '-display', 'none', '-serial', 'stdio', '-no-reboot',
    '-kernel', g.kernel, '-initrd', initrd, '-append', 'console=ttyS0 panic=-1 quiet', '-device', 'e1000,netdev=n0'];
  const [cmd, ...args] = await net.command(qemu);
  const child = spawn(cmd!, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const go = new Map<number, number>();
  const times: number[] = [];
  let out = '';
  let err = '';
  let pending = '';
  child.stdout.on('data', (b: Buffer) => {
    const now = performance.now();
    pending += b.toString().replace(/\r/g, '');
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      out += line + '\n';
      const m = /^(GO|DONE) (\d+)$/.exec(line);
      if (m?.[1] === 'GO') go.set(Number(m[2]), now);
      else if (m?.[1] === 'DONE') times.push((now - go.get(Number(m[2]))!) / 1000);
    }
  });
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const kill = setTimeout(() => child.kill('SIGTERM'), 600_000);
  await once(child, 'close');
  clearTimeout(kill);
  if (times.length !== REPS) throw new Error(`${net.name}: ${times.length} of ${REPS} downloads completed\n${out.slice(-2000)}\n${err.slice(-2000)}`);
  return times;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export default async function vmBench(): Promise<BenchRow[]> {
  const g = process.platform === 'linux' ? guestFiles() : 'not Linux';
  if (typeof g === 'string') {
    console.log(`vm bench skipped: ${g}`);
    return [];
  }
  const blob = Buffer.alloc(MIB << 20, 0x5a);
  for (let i = 0; i < blob.length; i += 4096) blob[i] = i >>> 12;
  const http = createServer((_req, res) => {
    res.writeHead(200, { 'content-length': blob.length, 'content-type': 'application/octet-stream' });
    res.end(blob);
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  const port = (http.address() as AddressInfo).port;
  const dir = mkdtempSync(join(tmpdir(), 'tunstack-vm-bench-'));
  try {
    const results: { name: string; times: number[] }[] = [];
    for (const net of networks(dir)) {
      const times = await run(g, dir, net, port);
      console.log(`${net.name}: ${MIB} MiB in ${times.map((t) => t.toFixed(2)).join(', ')} s`);
      results.push({ name: net.name, times });
    }
    const slirp = results[results.length - 1]!;
    const rate = (t: number): number => (MIB * 1048576 * 8) / t / 1e6;
    const slirpRate = rate(median(slirp.times));
    const spread = (ts: number[]): string => `${rate(Math.max(...ts)).toFixed(0)}-${rate(Math.min(...ts)).toFixed(0)}`;
    return results.slice(0, -1).map((r) => ({
      name: `QEMU guest (TCG) downloads ${MIB} MiB from the host loopback, ${r.name} (median of ${REPS}, spread ${spread(r.times)})`,
      value: rate(median(r.times)),
      unit: 'Mbit/s',
      reference: slirpRate,
      referenceName: `libslirp, QEMU -netdev user, spread ${spread(slirp.times)}`,
      ratio: rate(median(r.times)) / slirpRate,
    }));
  } finally {
    http.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

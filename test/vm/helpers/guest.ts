/**
 * A small Linux guest for QEMU tests, made from Debian packages at test time (never committed):
 * the kernel of `linux-image-amd64` (resolved to its versioned package), the `e1000` module from
 * the same .deb (Debian builds it as a module), and `busybox-static`, packed into a newc cpio
 * initramfs written here (no cpio(1) needed). Downloads are kept in a cache under the temp dir.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface GuestFiles {
  kernel: string;
  busybox: Buffer;
  e1000: Buffer;
}

function run(cmd: string, args: string[], cwd: string): string | null {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 120_000 });
  return r.status === 0 ? r.stdout : null;
}

function findFile(dir: string, name: string): string | null {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      const f = findFile(p, name);
      if (f) return f;
    } else if (e.name === name) return p;
  }
  return null;
}

/** The guest's files, or a string saying why they cannot be had here. */
export function guestFiles(): GuestFiles | string {
  if (spawnSync('qemu-system-x86_64', ['--version']).status !== 0) return 'qemu-system-x86_64 not installed (Debian package qemu-system-x86)';
  const cache = join(tmpdir(), 'tunstack-vm-guest');
  mkdirSync(cache, { recursive: true });
  const deps = run('apt-cache', ['depends', 'linux-image-amd64'], cache);
  const kpkg = /Depends: (linux-image-[0-9][^\s]*-amd64)/.exec(deps ?? '')?.[1];
  if (!kpkg) return 'apt-cache does not know linux-image-amd64';
  for (const [pkg, dir] of [
    [kpkg, 'kernel'],
    ['busybox-static', 'busybox'],
  ] as const) {
    const out = join(cache, dir);
    if (existsSync(join(out, '.done-' + pkg))) continue;
    const dl = join(cache, 'dl-' + dir);
    mkdirSync(dl, { recursive: true });
    if (run('apt-get', ['download', pkg], dl) === null) return `apt-get download ${pkg} failed (no network or no Debian sources?)`;
    const deb = readdirSync(dl).find((f) => f.endsWith('.deb'));
    if (!deb || run('dpkg', ['-x', deb, out], dl) === null) return `dpkg -x of ${pkg} failed`;
    spawnSync('touch', [join(out, '.done-' + pkg)]);
  }
  const kernel = findFile(join(cache, 'kernel', 'boot'), readdirSync(join(cache, 'kernel', 'boot')).find((f) => f.startsWith('vmlinuz-')) ?? 'vmlinuz');
  const e1000 = findFile(join(cache, 'kernel', 'lib', 'modules'), 'e1000.ko');
  const busybox = join(cache, 'busybox', 'bin', 'busybox');
  if (!kernel || !e1000 || !existsSync(busybox)) return 'the packages did not hold vmlinuz, e1000.ko and busybox';
  return { kernel, busybox: readFileSync(busybox), e1000: readFileSync(e1000) };
}

export interface CpioEntry {
  name: string;
  /** Full st_mode (type and permissions). */
  mode: number;
  data?: Buffer;
  /** Character/block devices. */
  rdev?: [number, number];
}

/** A newc ("070701") cpio archive of the entries, as the kernel unpacks an initramfs. */
export function cpio(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const pad = (n: number): Buffer => Buffer.alloc((4 - (n % 4)) % 4);
  const all = [...entries, { name: 'TRAILER!!!', mode: 0 }];
  all.forEach((e, i) => {
    const data = e.data ?? Buffer.alloc(0);
    const fields = [i + 1, e.mode, 0, 0, 1, 0, data.length, 0, 0, e.rdev?.[0] ?? 0, e.rdev?.[1] ?? 0, e.name.length + 1, 0];
    const header = Buffer.from('070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join(''), 'latin1');
    const name = Buffer.from(e.name + '\0', 'latin1');
    parts.push(header, name, pad(header.length + name.length), data, pad(data.length));
  });
  return Buffer.concat(parts);
}

export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFCHR = 0o020000;

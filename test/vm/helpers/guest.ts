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

/** Download and unpack Debian packages into CACHE/DIR (once); a reason string on failure. */
function unpackDebs(cache: string, pkgs: ReadonlyArray<readonly [string, string]>): string {
  for (const [pkg, dir] of pkgs) {
    const out = join(cache, dir);
    if (existsSync(join(out, '.done-' + pkg))) continue;
    const dl = join(cache, 'dl-' + dir);
    mkdirSync(dl, { recursive: true });
    if (run('apt-get', ['download', pkg], dl) === null) return `apt-get download ${pkg} failed (no network or no Debian sources?)`;
    const deb = readdirSync(dl).find((f) => f.endsWith('.deb'));
    if (!deb || run('dpkg', ['-x', deb, out], dl) === null) return `dpkg -x of ${pkg} failed`;
    spawnSync('touch', [join(out, '.done-' + pkg)]);
  }
  return '';
}

/** The kernel's versioned package behind a Debian meta package (e.g. linux-image-686:i386). */
function kernelPackage(cache: string, meta: string, flavour: string): string | null {
  const deps = run('apt-cache', ['depends', meta], cache);
  return new RegExp(`Depends: (linux-image-[0-9][^\\s]*-${flavour}(?::[a-z0-9]+)?)`).exec(deps ?? '')?.[1] ?? null;
}

function vmlinuz(cache: string): string | null {
  const boot = join(cache, 'kernel', 'boot');
  return findFile(boot, readdirSync(boot).find((f) => f.startsWith('vmlinuz-')) ?? 'vmlinuz');
}

/** The guest's files, or a string saying why they cannot be had here. */
export function guestFiles(): GuestFiles | string {
  if (spawnSync('qemu-system-x86_64', ['--version']).status !== 0) return 'qemu-system-x86_64 not installed (Debian package qemu-system-x86)';
  const cache = join(tmpdir(), 'tunstack-vm-guest');
  mkdirSync(cache, { recursive: true });
  const kpkg = kernelPackage(cache, 'linux-image-amd64', 'amd64');
  if (!kpkg) return 'apt-cache does not know linux-image-amd64';
  const why = unpackDebs(cache, [
    [kpkg, 'kernel'],
    ['busybox-static', 'busybox'],
  ]);
  if (why !== '') return why;
  const kernel = vmlinuz(cache);
  const e1000 = findFile(join(cache, 'kernel', 'lib', 'modules'), 'e1000.ko');
  const busybox = join(cache, 'busybox', 'bin', 'busybox');
  if (!kernel || !e1000 || !existsSync(busybox)) return 'the packages did not hold vmlinuz, e1000.ko and busybox';
  return { kernel, busybox: readFileSync(busybox), e1000: readFileSync(e1000) };
}

export interface V86GuestFiles {
  kernel: Buffer;
  busybox: Buffer;
  /** The NE2000 modules in load order: 8390.ko, then ne2k-pci.ko (the .deb has no modules.dep). */
  modules: Array<{ name: string; data: Buffer }>;
  bios: Buffer;
}

/**
 * A 32-bit guest for v86: Debian's i386 non-PAE kernel (linux-image-686:i386, resolved to its
 * versioned package), busybox-static:i386, and SeaBIOS's bios.bin from the installed `seabios`
 * package (v86's npm package ships no BIOS). Needs the i386 architecture in dpkg
 * (`dpkg --add-architecture i386 && apt-get update`, which .ci/run does).
 */
export function v86GuestFiles(): V86GuestFiles | string {
  const biosPath = '/usr/share/seabios/bios.bin';
  if (!existsSync(biosPath)) return 'no SeaBIOS at /usr/share/seabios/bios.bin (Debian package seabios)';
  const cache = join(tmpdir(), 'tunstack-v86-guest');
  mkdirSync(cache, { recursive: true });
  const kpkg = kernelPackage(cache, 'linux-image-686:i386', '686');
  if (!kpkg) return 'apt-cache does not know linux-image-686:i386 (dpkg --add-architecture i386 && apt-get update)';
  const why = unpackDebs(cache, [
    [kpkg.includes(':') ? kpkg : `${kpkg}:i386`, 'kernel'],
    ['busybox-static:i386', 'busybox'],
  ]);
  if (why !== '') return why;
  const kernel = vmlinuz(cache);
  const mods = join(cache, 'kernel', 'lib', 'modules');
  const modules = ['8390.ko', 'ne2k-pci.ko'].map((name) => ({ name, path: findFile(mods, name) }));
  const busybox = join(cache, 'busybox', 'bin', 'busybox');
  if (!kernel || modules.some((m) => m.path === null) || !existsSync(busybox)) return 'the packages did not hold vmlinuz, 8390.ko, ne2k-pci.ko and busybox';
  return { kernel: readFileSync(kernel), busybox: readFileSync(busybox), modules: modules.map((m) => ({ name: m.name, data: readFileSync(m.path!) })), bios: readFileSync(biosPath) };
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

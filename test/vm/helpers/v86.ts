/**
 * A Linux guest in v86 (npm `v86`) in this Node process, for the v86 tests: Debian's i386 kernel,
 * busybox and the NE2000 modules (helpers/guest.ts), an /init written by the test, SeaBIOS as
 * BIOS. Serial output is collected; `waitFor` resolves once a line matches.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { V86 } from 'v86';
import { S_IFCHR, S_IFDIR, S_IFREG, cpio, type V86GuestFiles } from './guest.js';

const require = createRequire(import.meta.url);
export const V86_WASM = join(dirname(require.resolve('v86')), 'v86.wasm');

/** Sets the guest's address, route and resolver from udhcpc's lease and prints the lease. */
export const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in bound|renew)
  ip addr add "$ip/$mask" dev "$interface"
  ip route add default via "$router"
  for d in $dns; do echo "nameserver $d"; done > /etc/resolv.conf
  echo "LEASE $ip/$mask router $router dns $dns"
esac
`;

/**
 * The start of an /init: mounts, the ELCR workaround below, the NE2000 driver, a DHCP lease on eth0.
 *
 * v86's 8259 PIC (npm v86 0.5.x; the same code in its repository as of 2025-08) answers the
 * CPU's acknowledge of the cascade (IRQ 2) with no vector when the slave's request went away in
 * between, yet marks IRQ 2 in service on the master. Nothing ever ends that (the guest saw no
 * interrupt, so it sends no EOI), and from then on every slave IRQ (the ne2k's 10) and IRQs 3-7
 * (the serial port's 4) are blocked: "NETDEV WATCHDOG: transmit queue 0 timed out", then no
 * network. A real 8259 answers with its spurious vector (IRQ 15), which Linux ends with an EOI to
 * the master. It takes the ne2k's line going up and down again while the guest has interrupts
 * off (an edge-triggered IRQ 2 keeps the stale request); frames handed to the NIC between the
 * emulator's runs make that likely: in Node, 5 of 10 guests stalled within 25 uploads of 1 MiB.
 * Marked level-triggered in the master's ELCR (port 0x4d0, bit 2), IRQ 2's request follows the
 * slave's line and is never stale: 0 of 6 guests stalled, 150 uploads. The bit reads back set
 * after boot and DHCP (SeaBIOS writes the ELCR before, Linux only ORs bits into it).
 * `V86_ELCR=0` on the kernel command line leaves it out (to see the stall).
 */
export function initPrologue(files: V86GuestFiles): string {
  return `#!/bin/busybox sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
/bin/busybox mkdir -p /proc /sys /dev /tmp /etc /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
[ "$V86_ELCR" = 0 ] || printf '\\004' | dd of=/dev/port bs=1 seek=$((0x4d0)) count=1 conv=notrunc 2>/dev/null
${files.modules.map((m) => `insmod /${m.name}`).join('\n')}
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -n -q -t 20 -T 1 -s /udhcpc.sh
`;
}

export interface V86Guest {
  emulator: V86;
  /** Everything the guest wrote on its serial console (CR removed). */
  output(): string;
  /** Resolves with the first serial line matching, or rejects after `ms` of wall time. */
  waitFor(re: RegExp, ms: number): Promise<RegExpExecArray>;
  stop(): Promise<void>;
}

/** The kernel command line of the v86 guests (serial console, no PIT calibration wait). */
export const V86_CMDLINE = 'console=ttyS0 quiet panic=-1 tsc=reliable mitigations=off';

/**
 * The guest's initramfs: busybox, the NE2000 modules, the udhcpc script, the test's /init, and
 * /www/index.html for busybox httpd. Used by v86 in Node (bootV86) and in a page (test/browser).
 */
export function v86Initrd(files: V86GuestFiles, init: string): Buffer {
  return cpio([
    { name: 'bin', mode: S_IFDIR | 0o755 },
    { name: 'dev', mode: S_IFDIR | 0o755 },
    { name: 'dev/console', mode: S_IFCHR | 0o600, rdev: [5, 1] },
    { name: 'bin/busybox', mode: S_IFREG | 0o755, data: files.busybox },
    ...files.modules.map((m) => ({ name: m.name, mode: S_IFREG | 0o644, data: m.data })),
    { name: 'udhcpc.sh', mode: S_IFREG | 0o755, data: Buffer.from(UDHCPC_SCRIPT) },
    { name: 'init', mode: S_IFREG | 0o755, data: Buffer.from(init) },
    { name: 'www', mode: S_IFDIR | 0o755 },
    { name: 'www/index.html', mode: S_IFREG | 0o644, data: Buffer.from('hello from the v86 guest\n') },
  ]);
}

export function bootV86(files: V86GuestFiles, init: string, netDevice: { type: 'ne2k'; relay_url?: string }): V86Guest {
  const initrd = v86Initrd(files, init);
  const buf = (b: Buffer): { buffer: ArrayBuffer } => ({ buffer: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer });
  const emulator = new V86({
    wasm_path: V86_WASM,
    bios: buf(files.bios),
    bzimage: buf(files.kernel),
    initrd: buf(initrd),
    cmdline: V86_CMDLINE,
    memory_size: 128 * 1024 * 1024,
    vga_memory_size: 2 * 1024 * 1024,
    autostart: true,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
    net_device: netDevice,
  });
  let out = '';
  const waiters: Array<{ re: RegExp; resolve: (m: RegExpExecArray) => void }> = [];
  emulator.add_listener('serial0-output-byte', (byte: number) => {
    if (byte === 13) return;
    out += String.fromCharCode(byte);
    if (byte !== 10) return;
    for (let i = waiters.length - 1; i >= 0; i--) {
      const m = waiters[i]!.re.exec(out);
      if (m) {
        waiters[i]!.resolve(m);
        waiters.splice(i, 1);
      }
    }
  });
  return {
    emulator,
    output: () => out,
    waitFor(re, ms) {
      const m = re.exec(out);
      if (m) return Promise.resolve(m);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`the guest did not print ${re} within ${ms} ms; it printed:\n${out.slice(-3000)}`)), ms);
        waiters.push({ re, resolve: (x) => (clearTimeout(t), resolve(x)) });
      });
    },
    stop: () => emulator.destroy(),
  };
}

/**
 * One suite, written once against the TunFile interface, run twice: against the virtual device
 * (`stack.openTun()`) and, as root, against the Linux kernel through HostTap (each interface that
 * carries traffic moved into a fresh network namespace, its kernel side at 198.18.0.1/24; the test
 * plays the peer 198.18.0.2 by writing packets). Every row of issue 12's differential is a case;
 * where the two must differ the case says why.
 *
 * The filter ioctls (structures the native shim does not pass) are checked against tcpdump in
 * ioctl.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ChannelEndpoint,
  EventMask,
  IFF_DETACH_QUEUE,
  IFF_MULTI_QUEUE,
  IFF_NAPI,
  IFF_NAPI_FRAGS,
  IFF_NO_CARRIER,
  IFF_NO_PI,
  IFF_PERSIST,
  IFF_TAP,
  IFF_TUN,
  IFF_TUN_EXCL,
  IFF_VNET_HDR,
  IFF_ATTACH_QUEUE,
  TUNGETFEATURES,
  TUNGETIFF,
  TUNGETVNETLE,
  TUNSETCARRIER,
  TUNSETIFINDEX,
  TUNSETLINK,
  TUNSETQUEUE,
  TUNSETSTEERINGEBPF,
  TUNSETVNETBE,
  TUNSETVNETLE,
  parseIPv4,
  parseMAC,
  type IfReq,
  type TunFile,
} from '../../src/index.js';
import { buildArp, buildEthernet } from '../../src/headers/index.js';
import { HostTap } from '../../src/host/index.js';
import { Netns, skipInterop, uniqueName } from '../interop/helpers/netns.js';
import { echoRequest, errno, newStack } from './helpers.js';

const KERNEL = '198.18.0.1';
const PEER = '198.18.0.2';

interface Env {
  readonly kind: 'virtual' | 'kernel';
  open(): TunFile;
  name(prefix: string): string;
  /** The name of an interface that is not a tun/tap one. */
  readonly nonTun: string;
  /** Give the interface 198.18.0.1/24 (IPv6 off) and bring it up; traffic-bearing rows only. */
  configure(f: TunFile): void;
  /** Same, but where the files' namespace can still find it by name (persistence rows). */
  configureHere(f: TunFile): void;
  /** Have the stack / kernel send a 10-byte UDP datagram from 198.18.0.1 to 198.18.0.2:9. */
  sendUdp(): void;
  cleanup(): void;
}

function virtualEnv(): Env {
  const { stack } = newStack();
  stack.createNIC({ name: 'lo', endpoint: new ChannelEndpoint() });
  let n = 0;
  const configure = (f: TunFile): void => {
    f.addAddress(`${KERNEL}/24`);
    f.up();
  };
  return {
    kind: 'virtual',
    open: () => stack.openTun(),
    name: (p) => `${p}${n++}`,
    nonTun: 'lo',
    configure,
    configureHere: (f) => {
      f.addAddress('198.18.250.1/30');
      f.up();
    },
    sendUdp: () => {
      const u = stack.udp();
      u.send(new Uint8Array(10), 9, PEER);
      u.close();
    },
    cleanup: () => stack.close(),
  };
}

function kernelEnv(): Env {
  const files: TunFile[] = [];
  const spaces: Netns[] = [];
  const noIPv6 = (dev: string, ns?: Netns): void => {
    const args = ['-qw', `net.ipv6.conf.${dev}.disable_ipv6=1`];
    if (ns) ns.runSync('sysctl', args);
    else execFileSync('sysctl', args);
  };
  return {
    kind: 'kernel',
    open: () => {
      const f = new HostTap();
      files.push(f);
      return f;
    },
    name: (p) => uniqueName(p),
    nonTun: 'lo',
    sendUdp: () => {
      const ns = spaces[spaces.length - 1]!;
      ns.runSync('python3', ['-c', `import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(bytes(10), ('${PEER}', 9))`]);
    },
    configure: (f) => {
      const ns = new Netns('tsf');
      spaces.push(ns);
      execFileSync('ip', ['link', 'set', f.name, 'netns', ns.name]);
      noIPv6(f.name, ns);
      ns.ip('addr', 'add', `${KERNEL}/24`, 'dev', f.name);
      ns.ip('link', 'set', f.name, 'up');
    },
    configureHere: (f) => {
      // The kernel finds a name only in the opener's namespace: this interface stays here, with
      // IPv6 off and a /30 of the test range, carrying only what the test writes into it.
      noIPv6(f.name);
      f.addAddress('198.18.250.1/30');
      f.up();
    },
    cleanup: () => {
      for (const f of files) f.close();
      for (const ns of spaces) ns.remove();
    },
  };
}

const PI4 = Uint8Array.of(0, 0, 0x08, 0x00);
const withPi = (pkt: Uint8Array, pi = PI4): Uint8Array => {
  const out = new Uint8Array(4 + pkt.length);
  out.set(pi);
  out.set(pkt, 4);
  return out;
};

/** Read packets until `pred` holds for one (bounded: 5 s, then the signal aborts the wait). */
async function readUntil(f: TunFile, pred: (p: Uint8Array) => boolean, limit = 50): Promise<Uint8Array> {
  const signal = AbortSignal.timeout(5000);
  for (let i = 0; i < limit; i++) {
    const p = await f.readAsync({ signal });
    if (pred(p)) return p;
  }
  throw new Error('no matching packet');
}

const kernelSkip = skipInterop('test/tundev/tunfile.test.ts');

for (const make of [virtualEnv, kernelEnv]) {
  const kind = make === virtualEnv ? 'virtual' : 'kernel';
  describe.skipIf(kind === 'kernel' && kernelSkip)(`TunFile rows (${kind})`, () => {
    let env: Env;
    const setup = (): Env => (env = make());
    afterEach(() => env?.cleanup());
    const attach = (req: IfReq): TunFile => {
      const f = env.open();
      f.setIff(req);
      return f;
    };

    it('TUNGETFEATURES is 0x7173', () => {
      setup();
      expect(env.open().ioctl(TUNGETFEATURES)).toBe(0x7173);
    });

    it('a second TUNSETIFF on an attached file: EEXIST', () => {
      setup();
      const f = attach({ name: env.name('tfa'), flags: IFF_TUN | IFF_NO_PI });
      expect(errno(() => f.setIff({ name: env.name('tfb'), flags: IFF_TUN }))).toBe('EEXIST');
    });

    it('IFF_TUN_EXCL on an existing name: EBUSY; a non-tun name: EINVAL; a second open of a single-queue interface: EBUSY', () => {
      setup();
      const name = env.name('tfc');
      attach({ name, flags: IFF_TUN | IFF_NO_PI });
      expect(errno(() => env.open().setIff({ name, flags: IFF_TUN | IFF_NO_PI | IFF_TUN_EXCL }))).toBe('EBUSY');
      expect(errno(() => env.open().setIff({ name: env.nonTun, flags: IFF_TUN }))).toBe('EINVAL');
      expect(errno(() => env.open().setIff({ name, flags: IFF_TUN | IFF_NO_PI }))).toBe('EBUSY');
      expect(errno(() => env.open().setIff({ name, flags: IFF_TAP | IFF_NO_PI }))).toBe('EINVAL');
    });

    it('TUNSETIFF flags: unknown bits ignored, TUN|TAP is a TUN, NAPI/NAPI_FRAGS on a TAP; TUNGETIFF shows 0x1000 always, no TUN_EXCL', () => {
      setup();
      const odd = IFF_TUN | IFF_NO_PI | 0x4 | 0x8 | IFF_PERSIST | IFF_ATTACH_QUEUE | IFF_DETACH_QUEUE | IFF_NO_CARRIER;
      const a = env.open();
      expect(a.setIff({ name: env.name('tfd'), flags: odd }).flags).toBe(odd);
      expect((a.ioctl(TUNGETIFF) as IfReq).flags).toBe(IFF_TUN | IFF_NO_PI);
      const b = attach({ name: env.name('tfe'), flags: IFF_TUN | IFF_TAP });
      expect((b.ioctl(TUNGETIFF) as IfReq).flags).toBe(IFF_TUN | 0x1000);
      const c = attach({ name: env.name('tff'), flags: IFF_TAP | IFF_NO_PI | IFF_NAPI | IFF_NAPI_FRAGS | IFF_TUN_EXCL });
      expect((c.ioctl(TUNGETIFF) as IfReq).flags).toBe(IFF_TAP | IFF_NO_PI | IFF_NAPI | IFF_NAPI_FRAGS);
      expect(errno(() => env.open().setIff({ name: env.name('tfg'), flags: IFF_TUN | IFF_NAPI | IFF_NAPI_FRAGS }))).toBe('EINVAL');
    });

    it('an unknown request: EBADFD before TUNSETIFF, EINVAL after', () => {
      setup();
      const f = env.open();
      const unknown = 0x400454ff; // _IOW('T', 255, int)
      if (env.kind === 'kernel' && errno(() => f.ioctl(unknown, 0)) === 'ENOTTY') {
        console.log('unknown-request row skipped on the kernel: the native addon predates its pass-through (node native/build.mjs)');
        return;
      }
      expect(errno(() => f.ioctl(unknown, 0))).toBe('EBADFD');
      f.setIff({ name: env.name('tfu'), flags: IFF_TUN | IFF_NO_PI });
      expect(errno(() => f.ioctl(unknown, 0))).toBe('EINVAL');
    });

    it('TUNSETIFINDEX only before TUNSETIFF; VNETLE kept, VNETBE EINVAL; TUNSETLINK EBUSY while up; TUNSETCARRIER', () => {
      setup();
      const f = env.open();
      if (env.kind === 'kernel' && errno(() => f.ioctl(TUNGETVNETLE)) === 'ENOTTY') {
        console.log('ioctl row skipped on the kernel: the native addon predates these requests (node native/build.mjs)');
        return;
      }
      expect(errno(() => f.ioctl(TUNSETCARRIER, 1))).toBe('EBADFD');
      f.setIff({ name: env.name('tfv'), flags: IFF_TUN | IFF_NO_PI });
      expect(errno(() => f.ioctl(TUNSETIFINDEX, 4000))).toBe('EPERM');
      expect(f.ioctl(TUNGETVNETLE)).toBe(0);
      expect(f.ioctl(TUNSETVNETLE, 1)).toBe(0);
      expect(f.ioctl(TUNGETVNETLE)).toBe(1);
      expect(errno(() => f.ioctl(TUNSETVNETBE, 1))).toBe('EINVAL');
      expect(f.ioctl(TUNSETLINK, 0xfffe)).toBe(0); // down: allowed
      env.configure(f);
      expect(errno(() => f.ioctl(TUNSETLINK, 0xfffe))).toBe('EBUSY');
      expect(f.ioctl(TUNSETCARRIER, 0)).toBe(0);
      expect(f.readiness(EventMask.Writable)).toBe(EventMask.Writable); // writes still go in
      expect(f.ioctl(TUNSETCARRIER, 1)).toBe(0);
    });

    it('TUNSETSTEERINGEBPF -1: the kernel detaches (0); the virtual device has no eBPF and answers EINVAL as a kernel without it (README deviation)', () => {
      setup();
      const f = attach({ name: env.name('tfw'), flags: IFF_TUN | IFF_NO_PI });
      if (env.kind === 'kernel' && errno(() => f.ioctl(TUNGETVNETLE)) === 'ENOTTY') return;
      if (env.kind === 'kernel') expect(f.ioctl(TUNSETSTEERINGEBPF, -1)).toBe(0);
      else expect(errno(() => f.ioctl(TUNSETSTEERINGEBPF, -1))).toBe('EINVAL');
    });

    it('vnet header on a UDP datagram the stack / kernel built: flags 0, GSO_NONE', async () => {
      setup();
      const f = attach({ name: env.name('tfx'), flags: IFF_TUN | IFF_NO_PI | IFF_VNET_HDR });
      env.configure(f);
      env.sendUdp();
      const p = await readUntil(f, (q) => q[10 + 9] === 17);
      expect([...p.subarray(0, 10)]).toEqual(new Array(10).fill(0));
      expect(p.length).toBe(10 + 20 + 8 + 10);
    });

    it('a name of 16 or more bytes is cut to 15', () => {
      setup();
      const base = env.name('tfh');
      const f = attach({ name: `${base}${'z'.repeat(16)}`, flags: IFF_TUN | IFF_NO_PI });
      expect(f.name).toBe(`${base}${'z'.repeat(16)}`.slice(0, 15));
    });

    it('starts down: not writable, a write is EIO but a malformed one EINVAL; up: writable, a PI-only write returns 4', () => {
      setup();
      const f = attach({ name: env.name('tfi'), flags: IFF_TUN });
      const nopi = attach({ name: env.name('tfj'), flags: IFF_TUN | IFF_NO_PI });
      expect(f.readiness(EventMask.Writable)).toBe(0);
      expect(errno(() => f.write(withPi(echoRequest({ src: PEER, dst: KERNEL }))))).toBe('EIO');
      expect(errno(() => f.write(Uint8Array.of(0, 0, 8)))).toBe('EINVAL');
      expect(errno(() => nopi.write(Uint8Array.of(0x75, 0, 0, 20)))).toBe('EINVAL');
      env.configure(f);
      expect(f.readiness(EventMask.Writable)).toBe(EventMask.Writable);
      expect(f.write(PI4)).toBe(4);
    });

    it('PI protocol 0 with an IPv4 packet is dropped; writes above the MTU are answered in fragments', async () => {
      setup();
      const f = attach({ name: env.name('tfk'), flags: IFF_TUN });
      env.configure(f);
      expect(f.write(withPi(echoRequest({ src: PEER, dst: KERNEL, seq: 1 }), Uint8Array.of(0, 0, 0, 0)))).toBe(56);
      expect(f.write(withPi(echoRequest({ src: PEER, dst: KERNEL, seq: 2 })))).toBe(56);
      const reply = await readUntil(f, (p) => p[4 + 9] === 1 && p[4 + 20] === 0);
      expect((reply[4 + 26]! << 8) | reply[4 + 27]!).toBe(2); // the answer is to seq 2 only
      // 3000 bytes over an MTU of 1500: accepted, and the reply comes in 1500-byte fragments.
      const big = withPi(echoRequest({ src: PEER, dst: KERNEL, seq: 3, data: new Uint8Array(3000 - 28) }));
      expect(f.write(big)).toBe(3004);
      const sizes: number[] = [];
      for (;;) {
        const p = await readUntil(f, (q) => q[4 + 9] === 1);
        sizes.push(p.length - 4);
        if ((p[4 + 6]! & 0x20) === 0) break; // last fragment
      }
      expect(sizes).toEqual([1500, 1500, 40]);
    });

    it('a detached queue: TUNGETIFF shows IFF_DETACH_QUEUE, reads EAGAIN, writes go in, poll writable', () => {
      setup();
      const name = env.name('tfl');
      const a = attach({ name, flags: IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE });
      const b = attach({ name, flags: IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE });
      env.configure(a);
      expect(b.ioctl(TUNSETQUEUE, { flags: IFF_DETACH_QUEUE })).toBe(0);
      expect((b.ioctl(TUNGETIFF) as IfReq).flags & IFF_DETACH_QUEUE).toBe(IFF_DETACH_QUEUE);
      expect(errno(() => b.read())).toBe('EAGAIN');
      expect(b.write(echoRequest({ src: PEER, dst: KERNEL }))).toBe(52);
      expect(b.readiness(EventMask.Readable | EventMask.Writable)).toBe(EventMask.Writable);
      expect(errno(() => b.ioctl(TUNSETQUEUE, { flags: IFF_DETACH_QUEUE }))).toBe('EINVAL');
    });

    it('TAP MTU: 65521 at most', () => {
      setup();
      const f = attach({ name: env.name('tfm'), flags: IFF_TAP | IFF_NO_PI });
      f.mtu = 65521;
      expect(f.mtu).toBe(65521);
      expect(errno(() => (f.mtu = 65522))).toBe('EINVAL');
    });

    it('TAP: an ARP request to another unicast MAC is ignored; a peer whose MAC has the multicast bit is answered', async () => {
      setup();
      const f = attach({ name: env.name('tfn'), flags: IFF_TAP | IFF_NO_PI });
      env.configure(f);
      const odd = parseMAC('bb:bb:bb:bb:bb:bb');
      const arp = (dst: Uint8Array, sender: string) =>
        buildEthernet({ destination: dst, source: odd, etherType: 0x0806 },
          buildArp({ op: 1, senderHardwareAddress: odd, senderProtocolAddress: parseIPv4(sender), targetProtocolAddress: parseIPv4(KERNEL) }));
      f.write(arp(parseMAC('02:00:00:00:00:99'), '198.18.0.3'));
      f.write(arp(parseMAC('ff:ff:ff:ff:ff:ff'), PEER));
      const reply = await readUntil(f, (p) => p[12] === 0x08 && p[13] === 0x06 && p[21] === 2);
      expect([...reply.subarray(0, 6)]).toEqual([...odd]);
      expect([...reply.subarray(38, 42)]).toEqual([198, 18, 0, 2]); // to .2: the .3 request was dropped
    });

    it('persistent single-queue interface: the last close empties the queue; reattached, nothing stale is read', async () => {
      setup();
      const name = env.name('tfo');
      const a = attach({ name, flags: IFF_TUN | IFF_NO_PI });
      env.configureHere(a);
      a.setPersist(true);
      for (let seq = 1; seq <= 3; seq++) a.write(echoRequest({ src: '198.18.250.2', dst: '198.18.250.1', seq }));
      await readUntil(a, (p) => p[9] === 1); // the replies are being queued
      a.close();
      const b = attach({ name, flags: IFF_TUN | IFF_NO_PI });
      expect(errno(() => b.read())).toBe('EAGAIN');
      b.setPersist(false);
    });

    it('readAsync waits for a packet; for await ends at close; a pending read is cancelled by close (EBADF)', async () => {
      setup();
      const f = attach({ name: env.name('tfp'), flags: IFF_TUN | IFF_NO_PI });
      env.configure(f);
      const pending = f.readAsync();
      f.write(echoRequest({ src: PEER, dst: KERNEL, seq: 9 }));
      expect((await pending)[20]).toBe(0);
      f.write(echoRequest({ src: PEER, dst: KERNEL, seq: 10 }));
      const seen: number[] = [];
      for await (const p of f) {
        seen.push((p[26]! << 8) | p[27]!);
        f.close();
      }
      expect(seen).toEqual([10]);
      const g = attach({ name: env.name('tfq'), flags: IFF_TUN | IFF_NO_PI });
      const waiting = g.readAsync();
      g.close();
      await expect(waiting).rejects.toMatchObject({ code: 'EBADF' });
    });
  });
}

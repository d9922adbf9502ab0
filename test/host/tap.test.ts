/**
 * HostTap: the kernel's /dev/net/tun through the native shim.
 *
 * - Without the shim (simulated), the host API throws ENOSYS with the reason and nothing else in
 *   tunstack is affected.
 * - With it (root, /dev/net/tun), the tun ioctls and interface settings are checked against what
 *   the kernel reports through `ip -j` (an outside judge).
 * - One scenario, written once against the TunDevice surface, runs against `stack.openTun()` and
 *   against a real kernel TUN/TAP: the same echo request goes in, and both read back an echo reply
 *   (and, on TAP, an ARP request first) that satisfy the same checks.
 */
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import {
  EventMask,
  formatIP,
  formatIPv4,
  formatMAC,
  IFF_MULTI_QUEUE,
  IFF_NO_PI,
  IFF_TAP,
  IFF_TUN,
  IFF_VNET_HDR,
  ManualClock,
  parseIPv4,
  parseMAC,
  Stack,
  TUNGETFEATURES,
  TUNGETIFF,
  TUNGETVNETHDRSZ,
  TUNSETIFF,
  TUNSETPERSIST,
  TUNSETVNETHDRSZ,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  TunstackError,
  type TunDevice,
} from '../../src/index.js';
import { ARP_OP_REPLY, ARP_OP_REQUEST, ArpHeader, buildArp, buildEthernet, checksum } from '../../src/headers/index.js';
import { FD_TX_QUEUE_LENGTH, FdEndpoint, HostTap, nativeUnavailableReason } from '../../src/host/index.js';
import { setNativeBinding } from '../../src/host/native.js';
import { errnoName, errnoToError } from '../../src/host/native.js';
import { echoRequest } from '../tundev/helpers.js';
import { interopSkipReason, uniqueName } from '../interop/helpers/netns.js';

function errno(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (e instanceof TunstackError) return e.code;
    throw e;
  }
}

describe('host API without the native shim', () => {
  afterEach(() => setNativeBinding(undefined));

  it('HostTap throws ENOSYS naming the reason; the rest of tunstack works', async () => {
    setNativeBinding(null, 'the native host bridge is not built (simulated)');
    const e = (() => {
      try {
        new HostTap();
      } catch (err) {
        return err;
      }
      return null;
    })();
    expect(e).toBeInstanceOf(TunstackError);
    expect((e as TunstackError).code).toBe('ENOSYS');
    expect((e as TunstackError).message).toMatch(/not built \(simulated\)/);
    expect(errno(() => HostTap.open({ name: 'x', flags: IFF_TUN }))).toBe('ENOSYS');
    expect(nativeUnavailableReason()).toMatch(/simulated/);
    // The virtual device and the stack are untouched.
    const stack = new Stack({ clock: new ManualClock(), seed: 1 });
    const tun = stack.openTun();
    tun.setIff({ name: 'tun0', flags: IFF_TUN | IFF_NO_PI });
    tun.addAddress('198.18.0.1/24');
    tun.up();
    tun.write(echoRequest({ src: '198.18.0.2', dst: '198.18.0.1' }));
    expect(tun.read().length).toBe(echoRequest().length);
    stack.close();
  });

  it('errno numbers map to TunstackError codes (unknown ones as EIO with the real name)', () => {
    expect(errnoName(-22)).toBe('EINVAL');
    expect(errnoName(11)).toBe('EAGAIN');
    expect(errnoName(-77)).toBe('EBADFD');
    const e = errnoToError(-1, 'TUNSETIFF', 'ioctl');
    expect([e.code, e.errno, e.syscall]).toEqual(['EPERM', -1, 'ioctl']);
    const u = errnoToError(-6, 'open');
    expect(u.code).toBe('EIO');
    expect(u.message).toMatch(/ENXIO, errno 6/);
  });
});

const skipReason = interopSkipReason();
if (skipReason !== '') console.warn(`test/host/tap.test.ts: kernel device tests skipped: ${skipReason}`);
const noKernel = skipReason !== '';

const opened: Array<{ close(): void }> = [];
function track<T extends { close(): void }>(t: T): T {
  opened.push(t);
  return t;
}
afterEach(() => {
  for (const t of opened.splice(0).reverse()) {
    try {
      t.close();
    } catch {
      // keep closing
    }
  }
});

interface IpLink {
  ifname: string;
  mtu: number;
  address?: string;
  flags: string[];
  txqlen?: number;
  operstate: string;
}

function ipLink(name: string): IpLink {
  return (JSON.parse(execFileSync('ip', ['-j', 'link', 'show', 'dev', name], { encoding: 'utf8' })) as IpLink[])[0]!;
}

function ipAddrs(name: string): string[] {
  const j = JSON.parse(execFileSync('ip', ['-j', 'addr', 'show', 'dev', name], { encoding: 'utf8' })) as Array<{
    addr_info: Array<{ local: string; prefixlen: number }>;
  }>;
  return j[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`);
}

function linkExists(name: string): boolean {
  try {
    execFileSync('ip', ['link', 'show', 'dev', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(noKernel)('HostTap against the kernel', () => {
  it('TUNSETIFF: given and kernel-chosen names, flags back from TUNGETIFF, errors as the kernel says', () => {
    const name = uniqueName('tsh');
    const t = track(new HostTap());
    expect(errno(() => t.read())).toBe('EBADFD'); // before TUNSETIFF
    // A name of 16+ bytes is cut to 15, as the kernel does.
    const long = track(HostTap.open({ name: `${uniqueName('tsl')}${'x'.repeat(16)}`, flags: IFF_TAP }));
    expect(long.name.length).toBe(15);
    expect(linkExists(long.name)).toBe(true);
    long.close();
    expect(errno(() => t.setIff({ name, flags: IFF_NO_PI }))).toBe('EINVAL'); // neither TUN nor TAP
    const r = t.ioctl(TUNSETIFF, { name, flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR });
    expect(r.name).toBe(name);
    expect(t.ioctl(TUNGETIFF)).toEqual({ name, flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR });
    expect(ipLink(name).ifname).toBe(name);
    expect(errno(() => t.setIff({ name, flags: IFF_TAP }))).toBe('EEXIST');
    const features = t.ioctl(TUNGETFEATURES);
    for (const f of [IFF_TUN, IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, IFF_MULTI_QUEUE]) expect(features & f).toBe(f);
    expect(t.ioctl(TUNGETVNETHDRSZ)).toBe(10);
    t.ioctl(TUNSETVNETHDRSZ, 12);
    expect(t.getVnetHdrSize()).toBe(12);
    expect(t.headerLength).toBe(12);
    expect(errno(() => t.setVnetHdrSize(4))).toBe('EINVAL');
    expect(errno(() => t.ioctl(0x12345678))).toBe('ENOTTY');
    expect(errno(() => t.read())).toBe('EAGAIN');
    // A TUN of the same name is refused; an auto name is given.
    expect(errno(() => HostTap.open({ name, flags: IFF_TUN | IFF_NO_PI }))).toBe('EINVAL');
    const auto = track(HostTap.open({ name: 'tshx%d', flags: IFF_TUN }));
    expect(auto.name).toMatch(/^tshx\d+$/);
    t.close();
    expect(errno(() => t.read())).toBe('EBADF');
    expect(linkExists(name)).toBe(false); // last close removed it
  });

  it('FdEndpoint raises the transmit queue of a TAP it was given fresh (Linux: 1000) to FD_TX_QUEUE_LENGTH, never lowers one', () => {
    const t = HostTap.open({ name: uniqueName('tsq'), flags: IFF_TAP | IFF_NO_PI });
    try {
      expect(t.created).toBe(true);
      expect(t.txQueueLength).toBe(1000);
      const ep = new FdEndpoint(t, { closeTap: false });
      expect(FD_TX_QUEUE_LENGTH).toBeGreaterThanOrEqual(4 * 2000);
      expect(t.txQueueLength).toBe(FD_TX_QUEUE_LENGTH);
      // What ip(8) reads from the kernel.
      expect(execFileSync('ip', ['link', 'show', 'dev', t.name], { encoding: 'utf8' })).toContain(`qlen ${FD_TX_QUEUE_LENGTH}`);
      ep.close();
      t.txQueueLength = 50_000;
      new FdEndpoint(t, { closeTap: false }).close();
      expect(t.txQueueLength).toBe(50_000);
      new FdEndpoint(t, { closeTap: false, txQueueLength: null }).close();
      expect(() => new FdEndpoint(t, { closeTap: false, txQueueLength: 0 })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    } finally {
      t.close();
    }
  });

  it('TUNSETPERSIST keeps the interface after close; reopening by name attaches to it', () => {
    const name = uniqueName('tsp');
    const t = HostTap.open({ name, flags: IFF_TUN | IFF_NO_PI });
    try {
      t.ioctl(TUNSETPERSIST, 1);
      expect(t.persistent).toBe(true);
      t.close();
      expect(linkExists(name)).toBe(true);
      expect(t.created).toBe(true);
      const again = HostTap.open({ name, flags: IFF_TUN | IFF_NO_PI });
      expect(again.persistent).toBe(true);
      // It attached to the interface that was there: FdEndpoint leaves its queue alone.
      expect(again.created).toBe(false);
      again.txQueueLength = 1000;
      const ep = new FdEndpoint(again, { closeTap: false });
      expect(again.txQueueLength).toBe(1000);
      ep.close();
      new FdEndpoint(again, { closeTap: false, txQueueLength: { length: 3000, always: true } }).close();
      expect(again.txQueueLength).toBe(3000);
      again.setPersist(false);
      again.close();
      expect(linkExists(name)).toBe(false);
    } finally {
      t.close();
      if (linkExists(name)) execFileSync('ip', ['link', 'del', name]);
    }
  });

  it('interface settings: MTU, MAC, up/down, tx queue length, IPv4/IPv6 addresses, rename (checked with ip -j)', () => {
    const name = uniqueName('tsc');
    const t = track(HostTap.open({ name, flags: IFF_TAP | IFF_NO_PI }));
    t.mtu = 1400;
    expect(ipLink(name).mtu).toBe(1400);
    expect(t.mtu).toBe(1400);
    expect(errno(() => (t.mtu = 40))).toBe('EINVAL');
    const mac = parseMAC('02:aa:bb:cc:dd:ee');
    t.mac = mac;
    expect(ipLink(name).address).toBe('02:aa:bb:cc:dd:ee');
    expect(formatMAC(t.mac)).toBe('02:aa:bb:cc:dd:ee');
    expect(errno(() => (t.mac = parseMAC('01:00:5e:00:00:01')))).toBe('EADDRNOTAVAIL');
    t.txQueueLength = 321;
    expect(ipLink(name).txqlen).toBe(321);
    expect(t.txQueueLength).toBe(321);
    expect(t.isUp).toBe(false);
    t.up();
    expect(ipLink(name).flags).toContain('UP');
    expect(t.isUp).toBe(true);
    expect(t.isRunning).toBe(true); // carrier: our open is attached
    t.addAddress('198.18.7.1/24');
    t.addAddress('2001:db8:7::1/64', { nodad: true });
    t.addAddress('198.18.17.1/24', { route: false });
    const routes = execFileSync('ip', ['-j', 'route', 'show', 'dev', name], { encoding: 'utf8' });
    expect(routes).toContain('198.18.7.0/24');
    expect(routes).not.toContain('198.18.17.0/24');
    expect(errno(() => t.addAddress('198.18.7.1/24'))).toBe('EEXIST');
    expect(ipAddrs(name)).toEqual(expect.arrayContaining(['198.18.7.1/24', '2001:db8:7::1/64']));
    const mine = t.addresses.map((a) => `${formatIP(a.address)}/${a.prefixLength}`);
    expect(mine).toEqual(expect.arrayContaining(['198.18.7.1/24', '2001:db8:7::1/64']));
    t.removeAddress('198.18.7.1');
    expect(ipAddrs(name)).not.toContain('198.18.7.1/24');
    expect(errno(() => t.removeAddress('198.18.7.1'))).toBe('EADDRNOTAVAIL');
    t.down();
    expect(ipLink(name).flags).not.toContain('UP');
    const renamed = uniqueName('tsn');
    t.rename(renamed);
    expect(t.name).toBe(renamed);
    expect(ipLink(renamed).mtu).toBe(1400);
    expect(linkExists(name)).toBe(false);
  });

  it('offloads: the best set the kernel takes is enabled; without IFF_VNET_HDR none', () => {
    const t = track(HostTap.open({ name: uniqueName('tso'), flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR }));
    const f = t.enableOffloads();
    expect(f & (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)).toBe(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
    expect(t.offload).toBe(f);
    // Unknown bits: the kernel refuses, and the fallback list is walked.
    expect(errno(() => t.setOffload(0x4000))).toBe('EINVAL');
    expect(t.enableOffloads([0x4000, TUN_F_CSUM])).toBe(TUN_F_CSUM);
    const plain = track(HostTap.open({ name: uniqueName('tso'), flags: IFF_TAP | IFF_NO_PI }));
    expect(plain.enableOffloads()).toBe(0);
  });

  it('multi-queue: extra queues attach to the same interface; TUNSETQUEUE detaches one', () => {
    const name = uniqueName('tsm');
    const q0 = track(HostTap.open({ name, flags: IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE }));
    const q1 = track(q0.openQueue());
    const q2 = track(q0.openQueue());
    expect([q1.name, q2.name]).toEqual([name, name]);
    q1.setQueue(0x0400); // IFF_DETACH_QUEUE
    expect(errno(() => q1.setQueue(0x0400))).toBe('EINVAL');
    q1.setQueue(0x0200); // IFF_ATTACH_QUEUE
    const single = track(HostTap.open({ name: uniqueName('tsm'), flags: IFF_TAP | IFF_NO_PI }));
    expect(errno(() => single.openQueue())).toBe('EBUSY');
  });

  it('readiness and readable events follow the kernel queue', async () => {
    const t = track(HostTap.open({ name: uniqueName('tsr'), flags: IFF_TUN | IFF_NO_PI }));
    // Nothing but our echo: no IPv6 chatter from the kernel on this interface.
    execFileSync('sysctl', ['-qw', `net.ipv6.conf.${t.name}.disable_ipv6=1`]);
    t.addAddress('198.18.8.1/24');
    t.up();
    expect(t.readiness(EventMask.Readable | EventMask.Writable)).toBe(EventMask.Writable);
    const readable = new Promise<void>((r) => t.once('readable', () => r()));
    t.write(echoRequest({ src: '198.18.8.2', dst: '198.18.8.1' }));
    await readable;
    expect(t.readiness(EventMask.Readable) & EventMask.Readable).toBe(EventMask.Readable);
    const reply = t.read();
    expect(reply[20]).toBe(0); // echo reply
    expect(t.readiness(EventMask.Readable)).toBe(0);
    t.close();
    expect(t.readiness(EventMask.Readable)).toBe(EventMask.Error);
  });

  it('FdEndpoint: pause leaves packets in the kernel queue, resume delivers them in one batch', async () => {
    const t = track(HostTap.open({ name: uniqueName('tsf'), flags: IFF_TUN | IFF_NO_PI | IFF_VNET_HDR }));
    execFileSync('sysctl', ['-qw', `net.ipv6.conf.${t.name}.disable_ipv6=1`]);
    t.addAddress('198.18.10.1/24');
    t.up();
    const stack = track(new Stack({ seed: 5 }));
    const ep = new FdEndpoint(t, { closeTap: false });
    const nic = stack.createNIC({ name: 'host0', endpoint: ep });
    nic.addAddress('198.18.10.2/24');
    ep.pause();
    expect(ep.isPaused).toBe(true);
    // The kernel answers three echo requests written behind the endpoint's back.
    // (IFF_VNET_HDR: a zeroed 10-byte virtio_net_hdr in front.)
    for (let i = 0; i < 3; i++) t.write(Buffer.concat([new Uint8Array(10), echoRequest({ src: '198.18.10.2', dst: '198.18.10.1', seq: i })]));
    await new Promise((r) => setTimeout(r, 100));
    expect(ep.stats.rxPackets).toBe(0);
    expect(t.readiness(EventMask.Readable)).toBe(EventMask.Readable);
    ep.resume();
    await new Promise((r) => setTimeout(r, 100));
    expect(ep.stats.rxPackets).toBe(3);
    expect(ep.stats.rxBatches).toBe(1);
    expect(nic.stats.rxPackets).toBe(3);
    expect(t.readiness(EventMask.Readable)).toBe(0);
  });

  it('FdEndpoint needs an attached HostTap', () => {
    const t = track(new HostTap());
    expect(errno(() => new FdEndpoint(t))).toBe('EBADFD');
  });
});

// ------------------------------------------------------------------ one scenario, two devices

/** What both devices offer (TunDevice's surface, which HostTap repeats). */
type TunLike = Pick<TunDevice, 'setIff' | 'read' | 'write' | 'readiness' | 'addAddress' | 'up' | 'close'> & {
  once(event: 'readable', fn: () => void): unknown;
  readonly name: string;
};

/** The next packet: read at once, or after the next 'readable' (the kernel answers asynchronously). */
async function nextPacket(dev: TunLike, timeoutMs = 3000): Promise<Uint8Array> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((dev.readiness(EventMask.Readable) & EventMask.Readable) !== 0) return dev.read();
    if (Date.now() > deadline) throw new Error('no packet');
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 50);
      dev.once('readable', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

/** Skip what the kernel sends on its own (IPv6 router solicitations, MLD reports) and ARP/IPv4 we did not ask for. */
async function nextOf(dev: TunLike, pred: (p: Uint8Array) => boolean): Promise<Uint8Array> {
  for (;;) {
    const p = await nextPacket(dev);
    if (pred(p)) return p;
  }
}

const LOCAL = '198.18.9.1';
const PEER = '198.18.9.2';
const PEER_MAC = parseMAC('02:00:00:00:09:02');

/** Check an IPv4 echo reply at `o` answering `req`: addresses swapped, same ident/seq/data, checksums valid. */
function checkEchoReply(b: Uint8Array, o: number, req: Uint8Array): void {
  expect(b.length - o).toBe(req.length);
  expect(b[o]).toBe(0x45);
  expect(b[o + 9]).toBe(1);
  expect(b[o + 8]).toBe(64);
  expect(formatIPv4(b, o + 12)).toBe(LOCAL);
  expect(formatIPv4(b, o + 16)).toBe(PEER);
  expect(checksum(b, o, 20)).toBe(0);
  expect(b[o + 20]).toBe(0);
  expect(checksum(b, o + 20, req.length - 20)).toBe(0);
  expect([...b.subarray(o + 24)]).toEqual([...req.subarray(24)]);
}

/** TUN: write an echo request, read the reply. Same code for both devices. */
async function tunScenario(dev: TunLike, name: string): Promise<Uint8Array> {
  dev.setIff({ name, flags: IFF_TUN | IFF_NO_PI });
  dev.addAddress(`${LOCAL}/24`);
  dev.up();
  const req = echoRequest({ src: PEER, dst: LOCAL, ident: 0x4242, seq: 3 });
  expect(dev.write(req)).toBe(req.length);
  const reply = await nextOf(dev, (p) => p[0] === 0x45 && p[9] === 1);
  checkEchoReply(reply, 0, req);
  return reply;
}

/** TAP: write the request in a frame, answer the ARP request, read the reply frame. */
async function tapScenario(dev: TunLike, name: string): Promise<{ arp: Uint8Array; reply: Uint8Array }> {
  dev.setIff({ name, flags: IFF_TAP | IFF_NO_PI });
  dev.addAddress(`${LOCAL}/24`);
  dev.up();
  const mac = (dev as unknown as { mac: Uint8Array }).mac;
  const req = echoRequest({ src: PEER, dst: LOCAL, ident: 0x4343, seq: 4 });
  dev.write(buildEthernet({ destination: mac, source: PEER_MAC, etherType: 0x0800 }, req));
  const isArpRequestForPeer = (p: Uint8Array): boolean =>
    p.length >= 42 && p[12] === 0x08 && p[13] === 0x06 && p[21] === ARP_OP_REQUEST && formatIPv4(p, 38) === PEER;
  const arp = await nextOf(dev, isArpRequestForPeer);
  const a = new ArpHeader(arp, 14);
  expect(a.isValid()).toBe(true);
  expect(formatMAC(arp, 0)).toBe('ff:ff:ff:ff:ff:ff');
  expect(formatMAC(arp, 6)).toBe(formatMAC(mac));
  expect(formatIPv4(arp, 28)).toBe(LOCAL);
  const answer = buildArp({
    op: ARP_OP_REPLY,
    senderHardwareAddress: PEER_MAC,
    senderProtocolAddress: parseIPv4(PEER),
    targetHardwareAddress: mac,
    targetProtocolAddress: parseIPv4(LOCAL),
  });
  dev.write(buildEthernet({ destination: mac, source: PEER_MAC, etherType: 0x0806 }, answer));
  const reply = await nextOf(dev, (p) => p.length > 34 && p[12] === 0x08 && p[13] === 0x00 && p[23] === 1);
  expect(formatMAC(reply, 0)).toBe(formatMAC(PEER_MAC));
  expect(formatMAC(reply, 6)).toBe(formatMAC(mac));
  checkEchoReply(reply, 14, req);
  return { arp: arp.subarray(0, 42), reply };
}

describe('one scenario against stack.openTun() and the kernel', () => {
  it('virtual TUN: echo request in, echo reply out', async () => {
    const stack = track(new Stack({ seed: 3 }));
    await tunScenario(track(stack.openTun()), 'tun0');
  });

  it.skipIf(noKernel)('kernel TUN: the same code, the kernel answers', async () => {
    await tunScenario(track(new HostTap()), uniqueName('tsv'));
  });

  it('virtual TAP: ARP request for the sender, then the echo reply', async () => {
    const stack = track(new Stack({ seed: 3 }));
    await tapScenario(track(stack.openTun()), 'tap0');
  });

  it.skipIf(noKernel)('kernel TAP: the same code, the kernel ARPs and answers', async () => {
    const k = await tapScenario(track(new HostTap()), uniqueName('tsv'));
    const stack = track(new Stack({ seed: 3 }));
    const v = await tapScenario(track(stack.openTun()), 'tap0');
    // Both ARP requests are the same 28-byte request (Ethernet/IPv4, who-has PEER tell LOCAL).
    expect([...k.arp.subarray(14, 22)]).toEqual([...v.arp.subarray(14, 22)]);
    expect(formatIPv4(k.arp, 38)).toBe(formatIPv4(v.arp, 38));
    expect(k.reply.length).toBe(v.reply.length);
  });
});

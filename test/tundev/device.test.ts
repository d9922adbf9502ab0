import { describe, expect, it } from 'vitest';
import {
  EventMask,
  IFF_ATTACH_QUEUE,
  IFF_DETACH_QUEUE,
  IFF_MULTI_QUEUE,
  IFF_NAPI,
  IFF_NAPI_FRAGS,
  IFF_NOFILTER,
  IFF_NO_CARRIER,
  IFF_NO_PI,
  IFF_ONE_QUEUE,
  IFF_PERSIST,
  IFF_TAP,
  IFF_TUN,
  IFF_TUN_EXCL,
  IFF_VNET_HDR,
  TUNGETFEATURES,
  TUNGETIFF,
  TUNGETVNETHDRSZ,
  TUNSETGROUP,
  TUNSETIFF,
  TUNSETOFFLOAD,
  TUNSETOWNER,
  TUNSETPERSIST,
  TUNSETQUEUE,
  TUNSETVNETHDRSZ,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  TUN_F_TSO_ECN,
  TUN_F_UFO,
  TUN_F_USO4,
  TUN_F_USO6,
  TunEndpoint,
  parseMAC,
} from '../../src/index.js';
import { buildEthernet } from '../../src/headers/index.js';
import { ChannelEndpoint } from '../../src/link/channel.js';
import { drain, echoRequest, errno, newStack, udpPacket } from './helpers.js';

/** The request numbers from <linux/if_tun.h>, recomputed from _IOW/_IOR('T', nr, 4 bytes). */
const IOC_WRITE = 1;
const IOC_READ = 2;
const ioc = (dir: number, nr: number): number => ((dir << 30) | (4 << 16) | (0x54 << 8) | nr) >>> 0;

describe('tun device: ioctl numbers and flags', () => {
  it('match the _IOW/_IOR encodings of linux/if_tun.h', () => {
    expect(TUNSETIFF).toBe(ioc(IOC_WRITE, 202));
    expect(TUNSETPERSIST).toBe(ioc(IOC_WRITE, 203));
    expect(TUNSETOWNER).toBe(ioc(IOC_WRITE, 204));
    expect(TUNSETGROUP).toBe(ioc(IOC_WRITE, 206));
    expect(TUNGETFEATURES).toBe(ioc(IOC_READ, 207));
    expect(TUNSETOFFLOAD).toBe(ioc(IOC_WRITE, 208));
    expect(TUNGETIFF).toBe(ioc(IOC_READ, 210));
    expect(TUNGETVNETHDRSZ).toBe(ioc(IOC_READ, 215));
    expect(TUNSETVNETHDRSZ).toBe(ioc(IOC_WRITE, 216));
    expect(TUNSETQUEUE).toBe(ioc(IOC_WRITE, 217));
    expect(TUNSETIFF).toBe(0x400454ca);
  });

  it('TUNGETFEATURES works before TUNSETIFF and reports Linux 6.x set (0x7173)', () => {
    const { stack } = newStack();
    const t = stack.openTun();
    expect(t.ioctl(TUNGETFEATURES)).toBe(0x7173);
  });

  it('handles TUNSETIFF flags as Linux: unknown bits ignored, TUN wins over TAP, NAPI_FRAGS needs NAPI on a TAP', () => {
    const { stack } = newStack();
    const bad = [0, IFF_NO_PI, 0x10000, 1.5, IFF_TUN | IFF_NAPI | IFF_NAPI_FRAGS, IFF_TAP | IFF_NAPI_FRAGS];
    for (const flags of bad) expect(errno(() => stack.openTun().setIff({ flags })), `flags ${flags}`).toBe('EINVAL');
    expect(stack.nics.length).toBe(0);
    // Linux hands the flags back as given, and keeps only what it knows (TUNGETIFF).
    const odd = IFF_TUN | IFF_NO_PI | 0x4 | 0x8 | IFF_PERSIST | IFF_ATTACH_QUEUE | IFF_DETACH_QUEUE | IFF_NO_CARRIER;
    const o = stack.openTun();
    expect(o.setIff({ name: 'odd0', flags: odd })).toEqual({ name: 'odd0', flags: odd });
    expect(o.ioctl(TUNGETIFF)).toEqual({ name: 'odd0', flags: IFF_TUN | IFF_NO_PI });
    const both = stack.openTun();
    both.setIff({ name: 'both0', flags: IFF_TUN | IFF_TAP | IFF_NO_PI });
    expect(both.isTap).toBe(false);
    expect(both.ioctl(TUNGETIFF).flags).toBe(IFF_TUN | IFF_NO_PI);
    const napi = stack.openTun();
    napi.setIff({ name: 'napi0', flags: IFF_TAP | IFF_NO_PI | IFF_NAPI | IFF_NAPI_FRAGS });
    expect(napi.ioctl(TUNGETIFF).flags).toBe(IFF_TAP | IFF_NO_PI | IFF_NAPI | IFF_NAPI_FRAGS);
    // Every kept flag together is fine; IFF_TUN_EXCL is not kept; as a negative C short too.
    const t = stack.openTun();
    const all = IFF_TAP | IFF_NO_PI | IFF_ONE_QUEUE | IFF_VNET_HDR | IFF_MULTI_QUEUE | IFF_TUN_EXCL;
    const r = t.setIff({ flags: all });
    expect(r).toEqual({ name: 'tap0', flags: all });
    expect(t.ioctl(TUNGETIFF).flags).toBe(IFF_TAP | IFF_NO_PI | IFF_ONE_QUEUE | IFF_VNET_HDR | IFF_MULTI_QUEUE);
    expect(stack.openTun().setIff({ name: 'x0', flags: (IFF_TUN | IFF_TUN_EXCL) - 0x10000 }).name).toBe('x0');
    // With packet information TUNGETIFF still shows 0x1000: IFF_NOFILTER, which Linux always sets.
    const pi = stack.openTun();
    pi.setIff({ name: 'pi0', flags: IFF_TUN });
    expect(pi.ioctl(TUNGETIFF).flags).toBe(IFF_TUN | IFF_NOFILTER);
    expect(pi.headerLength).toBe(4);
  });

  it('allows one TUNSETIFF per open (EEXIST), EBADF after close, EBADFD before attach', () => {
    const { stack } = newStack();
    const t = stack.openTun();
    expect(errno(() => t.read())).toBe('EBADFD');
    expect(errno(() => t.write(new Uint8Array(20)))).toBe('EBADFD');
    expect(errno(() => t.ioctl(TUNGETIFF))).toBe('EBADFD');
    expect(errno(() => t.ioctl(TUNSETPERSIST, 1))).toBe('EBADFD');
    expect(errno(() => t.ioctl(TUNSETVNETHDRSZ, 12))).toBe('EBADFD');
    expect(errno(() => t.ioctl(TUNGETVNETHDRSZ))).toBe('EBADFD');
    expect(errno(() => t.ioctl(TUNSETOFFLOAD, 0))).toBe('EBADFD');
    expect(errno(() => t.ioctl(TUNSETQUEUE, { flags: IFF_DETACH_QUEUE }))).toBe('EINVAL');
    expect(errno(() => t.mtu)).toBe('EBADFD');
    expect(t.readiness(EventMask.Readable | EventMask.Writable)).toBe(EventMask.Error);
    t.setIff({ flags: IFF_TUN });
    t.up();
    expect(errno(() => t.setIff({ flags: IFF_TUN }))).toBe('EEXIST');
    expect(errno(() => t.ioctl(TUNSETIFF, { name: 'other', flags: IFF_TUN }))).toBe('EEXIST');
    t.close();
    t.close(); // no-op
    expect(errno(() => t.read())).toBe('EBADF');
    expect(errno(() => t.write(new Uint8Array(20)))).toBe('EBADF');
    expect(errno(() => t.ioctl(TUNGETFEATURES))).toBe('EBADF');
    expect(errno(() => t.setIff({ flags: IFF_TUN }))).toBe('EBADF');
    expect(t.readiness(EventMask.Writable)).toBe(EventMask.Error);
  });

  it('answers unknown requests EBADFD before TUNSETIFF, EINVAL after (Linux), EFAULT to a wrong argument type', () => {
    const { stack } = newStack();
    const t = stack.openTun();
    expect(errno(() => t.ioctl(0x400454ff, 1))).toBe('EBADFD');
    expect(errno(() => t.ioctl(0x8914 /* SIOCGIFFLAGS */))).toBe('EBADFD');
    t.setIff({ flags: IFF_TUN });
    t.up();
    expect(errno(() => t.ioctl(0x400454ff, 1))).toBe('EINVAL');
    expect(errno(() => t.ioctl(0x8914 /* SIOCGIFFLAGS */))).toBe('EINVAL');
    expect(errno(() => t.ioctl(TUNSETPERSIST))).toBe('EFAULT');
    expect(errno(() => t.ioctl(TUNSETPERSIST, { flags: 1 }))).toBe('EFAULT');
  });
});

describe('tun device: names, attach, references', () => {
  it('names tun<N>/tap<N> with the first free index and expands %d', () => {
    const { stack } = newStack();
    stack.createNIC({ name: 'tun1', endpoint: new ChannelEndpoint() });
    const names = [IFF_TUN, IFF_TUN, IFF_TAP, IFF_TUN].map((f) => stack.openTun().setIff({ flags: f }).name);
    expect(names).toEqual(['tun0', 'tun2', 'tap0', 'tun3']);
    expect(stack.openTun().setIff({ name: 'vpn%d', flags: IFF_TUN }).name).toBe('vpn0');
    expect(stack.openTun().setIff({ name: 'vpn%d', flags: IFF_TUN }).name).toBe('vpn1');
    expect(stack.openTun().setIff({ name: 'a%db', flags: IFF_TAP }).name).toBe('a0b');
    for (const bad of ['x%s', 'x%d%d', 'x%', '%%d', 'a/b', 'with space']) {
      expect(errno(() => stack.openTun().setIff({ name: bad, flags: IFF_TUN })), bad).toBe('EINVAL');
    }
    // 15 bytes is the limit (IFNAMSIZ - 1); longer names are cut, as Linux does, with a warning.
    expect(stack.openTun().setIff({ name: 'abcdefghijklmno', flags: IFF_TUN }).name).toBe('abcdefghijklmno');
    const long = stack.openTun();
    const warnings: string[] = [];
    long.on('warning', (m) => warnings.push(m));
    expect(long.setIff({ name: 'qrstuvwxyzabcdefghij', flags: IFF_TUN }).name).toBe('qrstuvwxyzabcde');
    expect(warnings.length).toBe(1);
    expect(stack.nic('qrstuvwxyzabcde')).toBeDefined();
    // The cut falls between characters: 14 ASCII bytes and a 2-byte character would make 16.
    expect(stack.openTun().setIff({ name: 'abcdefghijklmné', flags: IFF_TUN }).name).toBe('abcdefghijklmn');
    expect(stack.nic('tun0')!.kind).toBe('tun');
  });

  it('attaches by name with a reference per open; the last close removes the NIC', () => {
    const { stack } = newStack();
    const removed: string[] = [];
    stack.on('nic-removed', (n) => removed.push(n.name));
    const a = stack.openTun();
    a.setIff({ name: 'tun7', flags: IFF_TUN | IFF_NO_PI });
    a.up();
    // A single-queue interface takes one file (EBUSY, as Linux), unless the open asks to share.
    expect(errno(() => stack.openTun().setIff({ name: 'tun7', flags: IFF_TUN }))).toBe('EBUSY');
    const b = stack.openTun({ shareQueue: true });
    expect(b.setIff({ name: 'tun7', flags: IFF_TUN }).name).toBe('tun7');
    const ep = a.endpoint!;
    expect(b.endpoint).toBe(ep);
    expect(ep.refCount).toBe(2);
    expect(TunEndpoint.forNIC(stack.getNIC('tun7'))).toBe(ep);
    a.close();
    expect(stack.nic('tun7')).toBeDefined();
    expect(ep.refCount).toBe(1);
    b.close();
    expect(stack.nic('tun7')).toBeUndefined();
    expect(removed).toEqual(['tun7']);
    expect(ep.isDead).toBe(true);
  });

  it('TUNSETPERSIST keeps the interface past the last close, and TUNSETPERSIST(0) lets it go', () => {
    const { stack } = newStack();
    const a = stack.openTun();
    a.setIff({ name: 'p0', flags: IFF_TAP });
    a.up();
    expect(a.ioctl(TUNSETPERSIST, 1)).toBe(0);
    a.ioctl(TUNSETPERSIST, 1); // idempotent: still one reference
    expect(a.endpoint!.refCount).toBe(2);
    expect(a.ioctl(TUNGETIFF)).toEqual({ name: 'p0', flags: IFF_TAP | IFF_PERSIST | IFF_NOFILTER });
    const mac = a.mac;
    a.close();
    expect(stack.nic('p0')).toBeDefined();
    const b = stack.openTun();
    b.setIff({ name: 'p0', flags: IFF_TAP });
    b.up();
    expect(b.persistent).toBe(true);
    expect(b.mac).toEqual(mac);
    b.setPersist(false);
    expect(b.ioctl(TUNGETIFF).flags).toBe(IFF_TAP | IFF_NOFILTER);
    expect(stack.nic('p0')).toBeDefined();
    b.close();
    expect(stack.nic('p0')).toBeUndefined();
  });

  it('EXCL on an existing name: EBUSY; a non-tun NIC: EINVAL; TUN/TAP or multi-queue mismatch: EINVAL (Linux)', () => {
    const { stack } = newStack();
    stack.createNIC({ name: 'eth0', endpoint: new ChannelEndpoint() });
    const a = stack.openTun();
    a.setIff({ name: 'tun0', flags: IFF_TUN });
    a.up();
    expect(errno(() => stack.openTun().setIff({ name: 'tun0', flags: IFF_TUN | IFF_TUN_EXCL }))).toBe('EBUSY');
    expect(errno(() => stack.openTun().setIff({ name: 'eth0', flags: IFF_TUN | IFF_TUN_EXCL }))).toBe('EBUSY');
    expect(errno(() => stack.openTun().setIff({ name: 'eth0', flags: IFF_TUN }))).toBe('EINVAL');
    expect(errno(() => stack.openTun().setIff({ name: 'eth0', flags: IFF_TAP }))).toBe('EINVAL');
    expect(errno(() => stack.openTun().setIff({ name: 'tun0', flags: IFF_TAP }))).toBe('EINVAL');
    expect(errno(() => stack.openTun().setIff({ name: 'tun0', flags: IFF_TUN | IFF_MULTI_QUEUE }))).toBe('EINVAL');
    // A NIC tagged 'tun' that the tun device did not make is still not ours.
    stack.createNIC({ name: 'fake', endpoint: new ChannelEndpoint(), kind: 'tun' });
    expect(errno(() => stack.openTun().setIff({ name: 'fake', flags: IFF_TUN }))).toBe('EINVAL');
    // EXCL with a new name creates it.
    expect(stack.openTun().setIff({ name: 'new0', flags: IFF_TUN | IFF_TUN_EXCL }).name).toBe('new0');
    // Failed attaches took no references.
    expect(a.endpoint!.refCount).toBe(1);
  });

  it('limits a multi-queue interface to 256 queues (E2BIG)', () => {
    const { stack } = newStack();
    const devs = [];
    for (let i = 0; i < 256; i++) {
      const d = stack.openTun();
      d.setIff({ name: 'mq0', flags: IFF_TUN | IFF_MULTI_QUEUE | IFF_NO_PI });
      d.up();
      devs.push(d);
    }
    expect(devs[0]!.endpoint!.queueCount).toBe(256);
    expect(errno(() => stack.openTun().setIff({ name: 'mq0', flags: IFF_TUN | IFF_MULTI_QUEUE }))).toBe('E2BIG');
    devs.pop()!.close();
    expect(stack.openTun().setIff({ name: 'mq0', flags: IFF_TUN | IFF_MULTI_QUEUE }).name).toBe('mq0');
  });

  it('detaches every open when the NIC is removed behind its back (EBADFD, detached event)', () => {
    const { stack } = newStack();
    const a = stack.openTun();
    a.setIff({ flags: IFF_TUN | IFF_NO_PI });
    a.up();
    let detached = 0;
    a.on('detached', () => detached++);
    stack.removeNIC('tun0');
    expect(detached).toBe(1);
    expect(errno(() => a.read())).toBe('EBADFD');
    expect(errno(() => a.write(echoRequest()))).toBe('EBADFD');
    expect(a.readiness(EventMask.Readable)).toBe(EventMask.Error);
    // As on Linux, the open may attach again once its interface is gone.
    expect(a.setIff({ flags: IFF_TUN }).name).toBe('tun0');
    a.close();
    expect(stack.nics.length).toBe(0);
    // stack.close() detaches too.
    const b = stack.openTun();
    b.setIff({ flags: IFF_TAP });
    b.up();
    stack.close();
    expect(errno(() => b.read())).toBe('EBADFD');
    b.close();
    expect(errno(() => stack.openTun())).toBe('EBADF');
  });
});

describe('tun device: ioctls that store state', () => {
  it('TUNSETOWNER / TUNSETGROUP are stored and read back', () => {
    const { stack } = newStack();
    const t = stack.openTun();
    t.setIff({ flags: IFF_TUN });
    t.up();
    expect(t.owner).toBe(-1);
    t.ioctl(TUNSETOWNER, 1000);
    t.ioctl(TUNSETGROUP, 100);
    const u = stack.openTun({ shareQueue: true });
    u.setIff({ name: 'tun0', flags: IFF_TUN });
    u.up();
    expect([u.owner, u.group]).toEqual([1000, 100]);
    expect(errno(() => t.ioctl(TUNSETOWNER, -1))).toBe('EINVAL');
    expect(errno(() => t.ioctl(TUNSETGROUP, 1.5))).toBe('EINVAL');
  });

  it('TUNSETOFFLOAD follows Linux rules', () => {
    const { stack } = newStack();
    const t = stack.openTun();
    t.setIff({ flags: IFF_TAP | IFF_VNET_HDR });
    t.up();
    const ok = [0, TUN_F_CSUM, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN, TUN_F_CSUM | TUN_F_UFO, TUN_F_CSUM | TUN_F_USO4 | TUN_F_USO6];
    for (const f of ok) {
      expect(t.ioctl(TUNSETOFFLOAD, f), `0x${f.toString(16)}`).toBe(0);
      expect(t.offload).toBe(f);
    }
    const bad = [TUN_F_TSO4, TUN_F_UFO, TUN_F_CSUM | TUN_F_TSO_ECN, TUN_F_CSUM | TUN_F_USO4, 0x80, -1];
    for (const f of bad) expect(errno(() => t.ioctl(TUNSETOFFLOAD, f)), `0x${f.toString(16)}`).toBe('EINVAL');
  });

  it('TUNSETVNETHDRSZ accepts >= 10 and TUNGETVNETHDRSZ reads it back', () => {
    const { stack } = newStack();
    const t = stack.openTun();
    t.setIff({ flags: IFF_TUN | IFF_VNET_HDR });
    t.up();
    expect(t.ioctl(TUNGETVNETHDRSZ)).toBe(10);
    t.ioctl(TUNSETVNETHDRSZ, 12);
    expect(t.ioctl(TUNGETVNETHDRSZ)).toBe(12);
    expect(errno(() => t.ioctl(TUNSETVNETHDRSZ, 9))).toBe('EINVAL');
    expect(errno(() => t.ioctl(TUNSETVNETHDRSZ, 0))).toBe('EINVAL');
    expect(t.vnetHdrSize).toBe(12);
    expect(t.headerLength).toBe(4 + 12);
  });

  it('gives MTU, MAC, up/down and addresses through the NIC', () => {
    const { stack } = newStack(99);
    const tap = stack.openTun();
    tap.setIff({ flags: IFF_TAP });
    tap.up();
    const mac = tap.mac;
    expect(mac.length).toBe(6);
    expect(mac[0]! & 0x03).toBe(0x02); // locally administered unicast
    // Same seed, same MAC.
    const again = newStack(99).stack.openTun();
    again.setIff({ flags: IFF_TAP });
    again.up();
    expect(again.mac).toEqual(mac);
    expect(tap.mtu).toBe(1500);
    tap.mtu = 9000;
    expect(tap.nic.mtu).toBe(9000);
    expect(errno(() => (tap.mtu = 67))).toBe('EINVAL');
    expect(errno(() => (tap.mtu = 65536))).toBe('EINVAL');
    const m2 = parseMAC('02:11:22:33:44:55');
    tap.mac = m2;
    expect(tap.nic.linkAddress).toEqual(m2);
    expect(errno(() => (tap.mac = parseMAC('01:00:5e:00:00:01')))).toBe('EADDRNOTAVAIL');
    expect(errno(() => (tap.mac = new Uint8Array(5)))).toBe('EINVAL');
    const v4 = (): number => tap.addresses.filter((a) => a.address.length === 4).length;
    // As on Linux, a TAP has an IPv6 link-local address of its own (fe80::/64, from the MAC).
    expect(tap.addresses.filter((a) => a.address[0] === 0xfe && a.address[1] === 0x80)).toHaveLength(1);
    tap.addAddress('10.0.0.1/24');
    expect(v4()).toBe(1);
    tap.removeAddress('10.0.0.1');
    expect(v4()).toBe(0);
    expect(tap.isUp).toBe(true);
    tap.down();
    expect(tap.nic.enabled).toBe(false);
    tap.up();
    expect(tap.isUp).toBe(true);
    const tun = stack.openTun();
    tun.setIff({ flags: IFF_TUN });
    tun.up();
    expect(tun.mac.length).toBe(0);
    expect(errno(() => (tun.mac = m2))).toBe('EINVAL');
  });
});

describe('tun device: write errors', () => {
  it('maps each bad write to its errno, counting truncated frames', () => {
    const { stack } = newStack();
    const tun = stack.openTun();
    tun.setIff({ flags: IFF_TUN }); // with packet information
    tun.up();
    tun.addAddress('10.0.0.1/24');
    const st = tun.endpoint!.stats;
    expect(errno(() => tun.write(new Uint8Array(0)))).toBe('EINVAL');
    expect(errno(() => tun.write(new Uint8Array(3)))).toBe('EINVAL');
    expect(st.rxFrameErrors).toBe(1);
    // PI alone (nothing after it): Linux takes the 4 bytes (and the stack drops the empty packet).
    expect(tun.write(Uint8Array.of(0, 0, 8, 0))).toBe(4);
    const big = (n: number, proto = 0x0800) => {
      const b = new Uint8Array(4 + n);
      b[2] = proto >>> 8;
      b[3] = proto & 0xff;
      b.set(echoRequest({ data: new Uint8Array(n - 28) }), 4);
      return b;
    };
    // Longer than the MTU: accepted (Linux), and the stack answers, fragmenting its reply.
    drain(tun);
    expect(tun.write(big(1500))).toBe(1504);
    expect(tun.write(big(3000))).toBe(3004);
    expect(drain(tun).map((p) => p.length)).toEqual([1504, 1504, 1504, 44]);
    tun.mtu = 576;
    expect(tun.write(big(1000))).toBe(1004);
    expect(drain(tun).length).toBe(2);
    // Packet information naming protocol 0: accepted and dropped, no answer (Linux).
    expect(tun.write(big(100, 0))).toBe(104);
    expect(drain(tun)).toEqual([]);
    // Down: a well-formed write is EIO, a malformed one still EINVAL (checked first, as Linux).
    tun.down();
    expect(errno(() => tun.write(big(100)))).toBe('EIO');
    expect(errno(() => tun.write(Uint8Array.of(0, 0, 8, 0)))).toBe('EIO');
    expect(errno(() => tun.write(new Uint8Array(3)))).toBe('EINVAL');
    tun.up();

    const nopi = stack.openTun();
    nopi.setIff({ flags: IFF_TUN | IFF_NO_PI });
    nopi.up();
    const before = nopi.endpoint!.stats.rxFrameErrors;
    // IP version neither 4 nor 6 without PI: EINVAL, counted.
    expect(errno(() => nopi.write(Uint8Array.of(0x50, 0, 0, 20)))).toBe('EINVAL');
    expect(nopi.endpoint!.stats.rxFrameErrors).toBe(before + 1);
    expect(nopi.write(echoRequest())).toBe(52);
    nopi.down();
    expect(errno(() => nopi.write(Uint8Array.of(0x70, 0, 0, 20)))).toBe('EINVAL');
    expect(errno(() => nopi.write(echoRequest()))).toBe('EIO');

    const tap = stack.openTun();
    tap.setIff({ flags: IFF_TAP | IFF_NO_PI });
    tap.up();
    expect(errno(() => tap.write(new Uint8Array(13)))).toBe('EINVAL');
    expect(tap.endpoint!.stats.rxFrameErrors).toBe(1);
    // Frames above the MTU are accepted, as Linux does.
    const frame = (n: number) => buildEthernet({ destination: tap.mac, source: parseMAC('02:00:00:00:00:02'), etherType: 0x0800 }, new Uint8Array(n));
    expect(tap.write(frame(1500))).toBe(1514);
    expect(tap.write(frame(1501))).toBe(1515);
    expect(tap.write(frame(70000))).toBe(70014);
    // TAP MTU: at most 65521 (65535 less the Ethernet header), as Linux.
    tap.mtu = 65521;
    expect(errno(() => (tap.mtu = 65522))).toBe('EINVAL');

    const vnet = stack.openTun();
    vnet.setIff({ flags: IFF_TAP | IFF_VNET_HDR });
    vnet.up();
    // PI + 10-byte vnet header + Ethernet: 27 bytes is one short.
    expect(errno(() => vnet.write(new Uint8Array(4 + 10 + 13)))).toBe('EINVAL');
    expect(errno(() => vnet.write(new Uint8Array(4 + 9)))).toBe('EINVAL');
    const ok = new Uint8Array(4 + 10 + 14 + 1500);
    ok.set(frame(1500), 14);
    expect(vnet.write(ok)).toBe(ok.length);
    const over = new Uint8Array(4 + 10 + 14 + 1501);
    over.set(frame(1501), 14);
    expect(vnet.write(over)).toBe(over.length);
  });
});

describe('tun device: framing', () => {
  it('TUN with packet information: reads carry flags 0 and EtherType 0x0800; writes take the protocol from PI', () => {
    const { stack } = newStack();
    const tun = stack.openTun();
    tun.setIff({ flags: IFF_TUN });
    tun.up();
    tun.addAddress('10.0.0.1/24');
    const req = echoRequest();
    const pi = new Uint8Array(4 + req.length);
    pi.set([0, 0, 0x08, 0x00]);
    pi.set(req, 4);
    expect(tun.write(pi)).toBe(pi.length);
    const out = tun.read();
    expect([...out.subarray(0, 4)]).toEqual([0, 0, 0x08, 0x00]);
    expect(out.length).toBe(4 + req.length);
    expect(out[4]).toBe(0x45);
    expect(out[4 + 20]).toBe(0); // echo reply
    // A PI naming another protocol wins over the version nibble: the stack has no handler for it.
    const nic = tun.nic;
    const unknownBefore = nic.stats.rxDroppedUnknownProtocol;
    pi[2] = 0x88;
    pi[3] = 0xb5;
    tun.write(pi);
    expect(nic.stats.rxDroppedUnknownProtocol).toBe(unknownBefore + 1);
    expect(errno(() => tun.read())).toBe('EAGAIN');
  });

  it('TUN without packet information: bare IP both ways', () => {
    const { stack } = newStack();
    const tun = stack.openTun();
    tun.setIff({ flags: IFF_TUN | IFF_NO_PI });
    tun.up();
    tun.addAddress('10.0.0.1/24');
    tun.write(echoRequest());
    const out = tun.read();
    expect(out.length).toBe(52);
    expect(out[0]).toBe(0x45);
  });

  it('a short read truncates (TUN_PKT_STRIP in PI), max 0 keeps the packet, a buffer below the header size: EINVAL and the packet is gone', () => {
    const { stack } = newStack();
    const tun = stack.openTun();
    tun.setIff({ flags: IFF_TUN });
    tun.up();
    tun.addAddress('10.0.0.1/24');
    const pi = (b: Uint8Array) => {
      const o = new Uint8Array(4 + b.length);
      o[2] = 8;
      o.set(b, 4);
      return o;
    };
    tun.write(pi(echoRequest({ seq: 1 })));
    tun.write(pi(echoRequest({ seq: 2 })));
    tun.write(pi(echoRequest({ seq: 3 })));
    expect(tun.read(0).length).toBe(0);
    expect(tun.queue!.length).toBe(3);
    const cut = tun.read(24);
    expect(cut.length).toBe(24);
    expect([...cut.subarray(0, 4)]).toEqual([0x01, 0x00, 0x08, 0x00]); // TUN_PKT_STRIP in host (x86 little-endian) order, as the kernel
    expect(cut[4]).toBe(0x45);
    expect(errno(() => tun.read(3))).toBe('EINVAL');
    expect(tun.queue!.length).toBe(0 + 1);
    expect(tun.queue!.stats.discarded).toBe(1);
    const buf = new Uint8Array(100).fill(0xee);
    const n = tun.readInto(buf, 10);
    expect(n).toBe(56);
    expect(buf[9]).toBe(0xee);
    expect([...buf.subarray(10, 14)]).toEqual([0, 0, 8, 0]);
    // the third reply: sequence 3
    expect((buf[14 + 26]! << 8) | buf[14 + 27]!).toBe(3);
    expect(errno(() => tun.readInto(buf, 101))).toBe('EFAULT');
  });

  it('TAP reads are Ethernet frames (PI carries the EtherType); the PI protocol does not override the frame', () => {
    const { stack } = newStack();
    const tap = stack.openTun();
    tap.setIff({ flags: IFF_TAP });
    tap.up();
    tap.addAddress('10.0.0.1/24');
    const peerMac = parseMAC('02:00:00:00:00:02');
    // A UDP datagram to a closed port: the stack must ARP for the sender before answering.
    const frame = buildEthernet({ destination: tap.mac, source: peerMac, etherType: 0x0800 }, udpPacket('10.0.0.2', 5000, '10.0.0.1', 9, new Uint8Array(4)));
    const w = new Uint8Array(4 + frame.length);
    w.set([0, 0, 0x86, 0xdd]); // wrong PI protocol: TAP goes by the EtherType
    w.set(frame, 4);
    tap.write(w);
    const [arp] = drain(tap);
    expect([...arp!.subarray(0, 4)]).toEqual([0, 0, 0x08, 0x06]);
    expect([...arp!.subarray(4, 10)]).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expect([...arp!.subarray(10, 16)]).toEqual([...tap.mac]);
    expect((arp![16]! << 8) | arp![17]!).toBe(0x0806);
  });
});

describe('tun device: queue, readiness, events', () => {
  it('bounds the outbound queue at 1024 and counts the overflow', () => {
    const { stack } = newStack();
    const tun = stack.openTun();
    tun.setIff({ flags: IFF_TUN | IFF_NO_PI });
    tun.up();
    tun.addAddress('10.0.0.1/24');
    let events = 0;
    tun.on('readable', () => events++);
    const rx = stack.udp();
    rx.bind(null, 1);
    const s = stack.udp();
    for (let i = 0; i < 1030; i++) s.send(new Uint8Array(8), 53, '10.0.0.2');
    expect(tun.queue!.length).toBe(1024);
    expect(tun.queue!.stats.overflows).toBe(6);
    expect(tun.endpoint!.stats.txQueueFull).toBe(6);
    expect(tun.nic.stats.txDropped).toBe(6);
    expect(events).toBe(1024);
    expect(drain(tun).length).toBe(1024);
    expect(tun.queue!.stats.read).toBe(1024);
  });

  it('starts down (as Linux: not writable, writes EIO); up() makes it writable; readable exactly while packets wait', () => {
    const { stack } = newStack();
    const tun = stack.openTun();
    const both = EventMask.Readable | EventMask.Writable;
    tun.setIff({ flags: IFF_TUN | IFF_NO_PI });
    expect(tun.isUp).toBe(false);
    expect(tun.readiness(both)).toBe(0);
    expect(errno(() => tun.write(echoRequest()))).toBe('EIO');
    tun.up();
    tun.addAddress('10.0.0.1/24');
    expect(tun.readiness(both)).toBe(EventMask.Writable);
    expect(tun.readiness(EventMask.Readable)).toBe(0);
    const seen: number[] = [];
    tun.on('readable', () => seen.push(tun.readiness(both)));
    tun.write(echoRequest({ seq: 1 }));
    tun.write(echoRequest({ seq: 2 }));
    expect(seen).toEqual([both, both]);
    expect(tun.readiness(EventMask.Readable)).toBe(EventMask.Readable);
    tun.read();
    expect(tun.readiness(both)).toBe(both);
    tun.read();
    expect(tun.readiness(both)).toBe(EventMask.Writable);
    expect(errno(() => tun.read())).toBe('EAGAIN');
    let closed = 0;
    tun.on('close', () => closed++);
    tun.close();
    expect(closed).toBe(1);
  });

  it('shares the one queue between opens of a single-queue interface (only with shareQueue)', () => {
    const { stack } = newStack();
    const a = stack.openTun();
    a.setIff({ name: 'tun0', flags: IFF_TUN | IFF_NO_PI });
    a.up();
    a.addAddress('10.0.0.1/24');
    const b = stack.openTun({ shareQueue: true });
    b.setIff({ name: 'tun0', flags: IFF_TUN }); // framing is per open
    b.up();
    let ea = 0;
    let eb = 0;
    a.on('readable', () => ea++);
    b.on('readable', () => eb++);
    a.write(echoRequest());
    expect([ea, eb]).toEqual([1, 1]);
    const viaB = b.read();
    expect(viaB.length).toBe(4 + 52);
    expect(errno(() => a.read())).toBe('EAGAIN');
  });

  it('a readable listener that writes back does not recurse (trampolined delivery)', () => {
    const { stack } = newStack();
    const tun = stack.openTun();
    tun.setIff({ flags: IFF_TUN | IFF_NO_PI });
    tun.up();
    tun.addAddress('10.0.0.1/24');
    let depth = 0;
    let maxDepth = 0;
    let replies = 0;
    tun.on('readable', () => {
      depth++;
      maxDepth = Math.max(maxDepth, depth);
      tun.read();
      replies++;
      if (replies < 5000) tun.write(echoRequest({ seq: replies & 0xffff }));
      depth--;
    });
    tun.write(echoRequest({ seq: 0 }));
    expect(replies).toBe(5000);
    expect(maxDepth).toBe(1);
  });

  it('a throwing readable listener is reported, not thrown into the stack', () => {
    const { stack } = newStack();
    const tun = stack.openTun();
    tun.setIff({ flags: IFF_TUN | IFF_NO_PI });
    tun.up();
    tun.addAddress('10.0.0.1/24');
    tun.on('readable', () => {
      throw new Error('listener bug');
    });
    const errs: unknown[] = [];
    stack.on('internal-error', (e) => errs.push(e));
    tun.write(echoRequest());
    expect(errs.length).toBe(1);
    expect(tun.queue!.length).toBe(1);
  });
});

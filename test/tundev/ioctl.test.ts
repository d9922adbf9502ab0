/**
 * The tun ioctls that need more than a stored number: the classic BPF socket filter
 * (TUNATTACHFILTER, judged against tcpdump: programs compiled by `tcpdump -dd` run by our
 * interpreter must select exactly the packets `tcpdump -r` selects from the same capture), the TAP
 * MAC filter (TUNSETTXFILTER, its hash checked against zlib's CRC-32), and the rest of Linux's list
 * with the answers Linux 6.x gives (checked by hand with python's fcntl.ioctl in a namespace).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ARPHRD_ETHER,
  ARPHRD_NONE,
  EventMask,
  IFF_NO_CARRIER,
  IFF_NO_PI,
  IFF_TAP,
  IFF_TUN,
  SIOCGIFHWADDR,
  SIOCSIFHWADDR,
  TUNATTACHFILTER,
  TUNDETACHFILTER,
  TUNGETDEVNETNS,
  TUNGETFILTER,
  TUNGETSNDBUF,
  TUNGETVNETBE,
  TUNGETVNETLE,
  TUNSETCARRIER,
  TUNSETFILTEREBPF,
  TUNSETIFINDEX,
  TUNSETLINK,
  TUNSETSNDBUF,
  TUNSETSTEERINGEBPF,
  TUNSETTXFILTER,
  TUNSETVNETBE,
  TUNSETVNETLE,
  TUN_FLT_ALLMULTI,
  parseIPv4,
  parseIPv6,
  parseMAC,
  type BpfInstruction,
  type Stack,
  type TunDevice,
} from '../../src/index.js';
import { IP_PROTO_UDP, buildArp, buildEthernet, buildIPv4, buildIPv6, buildTcp, buildUdp } from '../../src/headers/index.js';
import { PcapWriter } from '../../src/pcap/index.js';
import { checkBpfProgram, runBpf } from '../../src/tundev/bpf.js';
import { TapTxFilter, etherCrc } from '../../src/tundev/endpoint.js';
import { drain, echoRequest, errno, LOCAL, newStack, PEER } from './helpers.js';

const haveTcpdump = spawnSync('sh', ['-c', 'command -v tcpdump']).status === 0;
if (!haveTcpdump) console.log('skipping the tcpdump comparisons: tcpdump is not installed (apt-get install tcpdump)');

const A = parseMAC('02:00:00:00:00:0a');
const Bm = parseMAC('02:00:00:00:00:0b');

/** A small capture of varied Ethernet frames. */
function frames(): Uint8Array[] {
  const s4 = parseIPv4('198.18.0.1');
  const d4 = parseIPv4('198.18.0.2');
  const s6 = parseIPv6('2001:db8::1');
  const d6 = parseIPv6('2001:db8::2');
  const eth = (type: number, p: Uint8Array, dst = Bm) => buildEthernet({ destination: dst, source: A, etherType: type }, p);
  const udp4 = (sp: number, dp: number, data: Uint8Array, ttl = 64) =>
    eth(0x0800, buildIPv4({ src: s4, dst: d4, protocol: IP_PROTO_UDP, ttl, id: 1 }, buildUdp({ srcPort: sp, dstPort: dp, pseudoHeader: { src: s4, dst: d4 } }, data)));
  const tcp4 = (flags: number, dp: number) =>
    eth(0x0800, buildIPv4({ src: s4, dst: d4, protocol: 6, id: 2 }, buildTcp({ srcPort: 40000, dstPort: dp, seq: 1, ack: 0, flags, window: 1000, pseudoHeader: { src: s4, dst: d4 } })));
  return [
    udp4(5353, 53, Uint8Array.of(0x41, 0x42, 1, 2)),
    udp4(53, 40001, new Uint8Array(200), 3),
    udp4(1000, 2000, Uint8Array.of(0x41, 0x42, 9)),
    tcp4(0x02, 80),
    tcp4(0x10, 80),
    tcp4(0x12, 22),
    eth(0x0800, echoRequest({ src: '198.18.0.1', dst: '198.18.0.2' })),
    eth(0x0806, buildArp({ op: 1, senderHardwareAddress: A, senderProtocolAddress: s4, targetProtocolAddress: d4 })),
    eth(0x86dd, buildIPv6({ source: s6, destination: d6, nextHeader: 17, hopLimit: 64 }, buildUdp({ srcPort: 53, dstPort: 9, pseudoHeader: { src: s6, dst: d6 } }, new Uint8Array(8)))),
    eth(0x86dd, buildIPv6({ source: s6, destination: d6, nextHeader: 58, hopLimit: 255 }, Uint8Array.of(128, 0, 0, 0, 0, 1, 0, 1))),
    udp4(7, 7, new Uint8Array(1), 64).map((b, i) => (i < 6 ? [1, 0, 0x5e, 0, 0, 1][i]! : b)),
  ];
}

/** `tcpdump -dd` output as instructions. */
function compile(filter: string): BpfInstruction[] {
  const out = execFileSync('tcpdump', ['-dd', '-y', 'EN10MB', filter], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return [...out.matchAll(/\{\s*(0x[0-9a-f]+),\s*(\d+),\s*(\d+),\s*(0x[0-9a-f]+)\s*\}/g)].map((m) => ({
    code: Number(m[1]),
    jt: Number(m[2]),
    jf: Number(m[3]),
    k: Number(m[4]),
  }));
}

const dir = mkdtempSync(join(tmpdir(), 'tunbpf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** 1-based numbers of the packets `tcpdump -r` selects (packet i was written at i ms). */
function tcpdumpSelects(pcap: string, filter: string): number[] {
  const out = execFileSync('tcpdump', ['-r', pcap, '-n', '-tt', filter], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return out
    .split('\n')
    .filter((l) => /^\d/.test(l))
    .map((l) => Math.round(Number(l.split(/\s+/)[0]) * 1000) + 1);
}

const info = { protocol: 0, pktType: 4, ifindex: 1, hatype: ARPHRD_ETHER, networkOffset: 14 };

describe.skipIf(!haveTcpdump)('classic BPF interpreter against tcpdump', () => {
  const pkts = frames();
  const pcap = join(dir, 'frames.pcap');
  const w = PcapWriter.inMemory({ linkType: 1 });
  pkts.forEach((p, i) => w.write(p, i));
  w.close();
  writeFileSync(pcap, w.bytes());
  const filters = [
    'udp port 53',
    'tcp[tcpflags] & tcp-syn != 0',
    'tcp[tcpflags] == tcp-syn',
    'icmp',
    'arp',
    'ip6',
    'icmp6',
    'ip6 and udp',
    'len > 100',
    'ether multicast',
    'ether src 02:00:00:00:00:0a and not ip6',
    'ip[8] < 10',
    'udp[8:2] = 0x4142',
    'ip host 198.18.0.1 and not udp',
    'tcp dst port 22 or udp src port 53',
    'portrange 50-60',
    'greater 300',
  ];
  for (const f of filters) {
    it(`selects what tcpdump selects: ${f}`, () => {
      const prog = checkBpfProgram(compile(f));
      const ours: number[] = [];
      pkts.forEach((p, i) => {
        info.protocol = (p[12]! << 8) | p[13]!;
        if (runBpf(prog, p, 0, p.length, info, () => 0) !== 0) ours.push(i + 1);
      });
      const theirs = tcpdumpSelects(pcap, f);
      expect(ours).toEqual(theirs);
    });
  }
});

describe('classic BPF checker (Linux bpf_check_classic)', () => {
  const ret = (k: number): BpfInstruction => ({ code: 0x06, jt: 0, jf: 0, k });
  it('refuses what Linux refuses with EINVAL', () => {
    const bad: BpfInstruction[][] = [
      [],
      [{ code: 0x28, jt: 0, jf: 0, k: 12 }], // no return at the end
      [{ code: 0x15, jt: 5, jf: 0, k: 1 }, ret(1)], // jump beyond the end
      [{ code: 0x05, jt: 0, jf: 0, k: 1 }, ret(1)], // ja beyond the end
      [{ code: 0x34, jt: 0, jf: 0, k: 0 }, ret(1)], // div by constant 0
      [{ code: 0x64, jt: 0, jf: 0, k: 32 }, ret(1)], // shift by 32
      [{ code: 0x60, jt: 0, jf: 0, k: 0 }, ret(1)], // M[0] read before written
      [{ code: 0x02, jt: 0, jf: 0, k: 16 }, ret(1)], // M[16]
      [{ code: 0xff, jt: 0, jf: 0, k: 0 }, ret(1)], // unknown opcode
      [{ code: 0x20, jt: 0, jf: 0, k: 0xfffff000 + 100 }, ret(1)], // unknown ancillary load
      Array.from({ length: 4097 }, () => ret(1)),
    ];
    for (const p of bad) expect(errno(() => checkBpfProgram(p))).toBe('EINVAL');
    expect(errno(() => checkBpfProgram('nope'))).toBe('EFAULT');
    // Written on one path only: still refused; on both: fine.
    const oneSide = [
      { code: 0x15, jt: 0, jf: 1, k: 1 }, // jeq #1, +0, +1
      { code: 0x02, jt: 0, jf: 0, k: 3 }, // st M[3]
      { code: 0x60, jt: 0, jf: 0, k: 3 }, // ld M[3]
      ret(1),
    ];
    expect(errno(() => checkBpfProgram(oneSide))).toBe('EINVAL');
    expect(checkBpfProgram([{ code: 0x02, jt: 0, jf: 0, k: 3 }, ...oneSide.slice(0)]).length).toBe(5);
  });

  it('fast-check: any instructions are checked or refused with an errno, and a checked program runs to a uint32 on any bytes', () => {
    const codes = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x0c, 0x14, 0x15, 0x16, 0x1d, 0x20, 0x24, 0x25, 0x28, 0x2d, 0x30, 0x34, 0x35, 0x3c, 0x40, 0x44, 0x45, 0x48, 0x4d, 0x50, 0x54, 0x5c, 0x60, 0x61, 0x64, 0x6c, 0x74, 0x7c, 0x80, 0x81, 0x84, 0x87, 0x94, 0x9c, 0xa4, 0xac, 0xb1];
    const insn = fc.record({
      code: fc.oneof(fc.constantFrom(...codes), fc.integer({ min: 0, max: 0xffff })),
      jt: fc.integer({ min: 0, max: 4 }),
      jf: fc.integer({ min: 0, max: 4 }),
      k: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0xfffff000, 0xfffff004, 0xfff00000, 0xffe00000)),
    });
    let ran = 0;
    fc.assert(
      fc.property(fc.array(insn, { minLength: 0, maxLength: 12 }), fc.uint8Array({ maxLength: 80 }), (prog, bytes) => {
        let checked: BpfInstruction[];
        try {
          checked = checkBpfProgram([...prog, { code: 0x16, jt: 0, jf: 0, k: 0 }]);
        } catch (e) {
          expect(['EINVAL', 'EFAULT']).toContain((e as { code?: string }).code);
          return;
        }
        const r = runBpf(checked, bytes, 0, bytes.length, info, () => 1);
        expect(Number.isInteger(r) && r >= 0 && r <= 0xffffffff).toBe(true);
        ran++;
      }),
      { numRuns: 3000, seed: 12 },
    );
    expect(ran).toBeGreaterThan(100);
  });

  it('runs loads out of the packet, division by a zero X and ancillary loads as Linux', () => {
    const p = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0x45);
    const run = (prog: BpfInstruction[]) => runBpf(checkBpfProgram(prog), p, 0, p.length, { ...info, protocol: 0x0800 }, () => 7);
    expect(run([{ code: 0x20, jt: 0, jf: 0, k: 11 }, { code: 0x16, jt: 0, jf: 0, k: 0 }])).toBe(0x0c080045);
    expect(run([{ code: 0x20, jt: 0, jf: 0, k: 13 }, ret(9)])).toBe(0); // 4 bytes at 13: outside, drop
    expect(run([{ code: 0x01, jt: 0, jf: 0, k: 0 }, { code: 0x3c, jt: 0, jf: 0, k: 0 }, ret(9)])).toBe(0); // A /= X(0)
    expect(run([{ code: 0x28, jt: 0, jf: 0, k: 0xfffff000 }, { code: 0x16, jt: 0, jf: 0, k: 0 }])).toBe(0x0800); // SKF_AD_PROTOCOL
    expect(run([{ code: 0x30, jt: 0, jf: 0, k: 0xfff00000 }, { code: 0x16, jt: 0, jf: 0, k: 0 }])).toBe(0x45); // SKF_NET_OFF
    expect(run([{ code: 0xb1, jt: 0, jf: 0, k: 14 }, { code: 0x87, jt: 0, jf: 0, k: 0 }, { code: 0x16, jt: 0, jf: 0, k: 0 }])).toBe(20); // ldxb 4*([14]&0xf); txa
    expect(run([{ code: 0x80, jt: 0, jf: 0, k: 0 }, { code: 0x16, jt: 0, jf: 0, k: 0 }])).toBe(15); // ld len
  });
});

function tapWithPeer(): { stack: Stack; tap: TunDevice } {
  const { stack } = newStack();
  const tap = stack.openTun();
  tap.setIff({ name: 'tap0', flags: IFF_TAP | IFF_NO_PI });
  tap.up();
  tap.addAddress(`${LOCAL}/24`);
  const peer = parseMAC('02:00:00:00:00:02');
  tap.write(buildEthernet({ destination: parseMAC('ff:ff:ff:ff:ff:ff'), source: peer, etherType: 0x0806 },
    buildArp({ op: 1, senderHardwareAddress: peer, senderProtocolAddress: parseIPv4(PEER), targetProtocolAddress: parseIPv4(LOCAL) })));
  drain(tap);
  return { stack, tap };
}

function sendUdp(stack: Stack, port: number, size = 10): void {
  const s = stack.udp();
  s.send(new Uint8Array(size), port, PEER);
  s.close();
}

describe('TUNATTACHFILTER / TUNDETACHFILTER / TUNGETFILTER on a TAP', () => {
  it.skipIf(!haveTcpdump)('hands the reader only what the program accepts; a smaller result cuts the packet', () => {
    const { stack, tap } = tapWithPeer();
    const prog = compile('udp dst port 53');
    expect(tap.ioctl(TUNATTACHFILTER, prog)).toBe(0);
    expect(tap.ioctl(TUNGETFILTER)).toEqual(prog);
    sendUdp(stack, 53);
    sendUdp(stack, 54);
    const got = drain(tap);
    expect(got.length).toBe(1);
    expect((got[0]![14 + 22]! << 8) | got[0]![14 + 23]!).toBe(53);
    expect(tap.endpoint!.stats.txFiltered).toBe(1);
    // ret #20: 20 bytes of every packet.
    tap.ioctl(TUNATTACHFILTER, [{ code: 0x06, jt: 0, jf: 0, k: 20 }]);
    sendUdp(stack, 54);
    expect(drain(tap).map((p) => p.length)).toEqual([20]);
    expect(tap.ioctl(TUNDETACHFILTER)).toBe(0);
    expect(tap.ioctl(TUNGETFILTER)).toEqual([]);
    sendUdp(stack, 54);
    expect(drain(tap).map((p) => p.length)).toEqual([14 + 20 + 8 + 10]);
  });

  it('is TAP-only (EINVAL on TUN), EBADFD before TUNSETIFF, EINVAL for a bad program', () => {
    const { stack } = newStack();
    const t = stack.openTun();
    expect(errno(() => t.ioctl(TUNATTACHFILTER, [{ code: 6, jt: 0, jf: 0, k: 1 }]))).toBe('EBADFD');
    t.setIff({ flags: IFF_TUN });
    for (const r of [TUNATTACHFILTER, TUNDETACHFILTER, TUNGETFILTER, TUNSETTXFILTER]) {
      expect(errno(() => t.ioctl(r, r === TUNSETTXFILTER ? { flags: 0, addresses: [] } : [{ code: 6, jt: 0, jf: 0, k: 1 }]))).toBe('EINVAL');
    }
    const { tap } = tapWithPeer();
    expect(errno(() => tap.ioctl(TUNATTACHFILTER, [{ code: 0x28, jt: 0, jf: 0, k: 12 }]))).toBe('EINVAL');
  });
});

describe('TUNSETTXFILTER', () => {
  it('hashes multicast MACs with the Ethernet CRC (bitrev32 of crc32_le without the final xor)', () => {
    const bitrev = (v: number) => {
      let r = 0;
      for (let b = 0; b < 32; b++) r = (r << 1) | ((v >>> b) & 1);
      return r >>> 0;
    };
    for (const m of ['01:00:5e:00:00:01', '33:33:00:00:00:01', '33:33:ff:00:00:02', '02:00:00:00:00:02']) {
      const mac = parseMAC(m);
      expect(etherCrc(mac), m).toBe(bitrev(~crc32(mac) >>> 0));
    }
  });

  it('passes exact MACs, hashed multicast past eight, everything multicast with ALLMULTI; a ninth unicast disables it', () => {
    const macs = Array.from({ length: 8 }, (_, i) => parseMAC(`02:00:00:00:01:0${i}`));
    const m1 = parseMAC('01:00:5e:00:00:fb');
    const m2 = parseMAC('33:33:00:00:00:fb');
    const f = TapTxFilter.fromIoctl(0, [...macs, m1])!;
    expect(f.exactCount).toBe(8);
    expect(f.accepts(macs[3]!, 0)).toBe(true);
    expect(f.accepts(parseMAC('02:00:00:00:09:09'), 0)).toBe(false);
    expect(f.accepts(m1, 0)).toBe(true);
    expect(f.accepts(m2, 0)).toBe(((etherCrc(m2) >>> 26) === (etherCrc(m1) >>> 26)));
    expect(TapTxFilter.fromIoctl(TUN_FLT_ALLMULTI, [macs[0]!])!.accepts(m2, 0)).toBe(true);
    expect(TapTxFilter.fromIoctl(0, [...macs, parseMAC('02:00:00:00:09:09')])).toBeNull();
    expect(TapTxFilter.fromIoctl(0, [])).toBeNull();
  });

  it('drops what the stack sends to a MAC outside the filter', () => {
    const { stack, tap } = tapWithPeer();
    expect(tap.ioctl(TUNSETTXFILTER, { flags: 0, addresses: [parseMAC('02:00:00:00:00:77')] })).toBe(1);
    sendUdp(stack, 9);
    expect(drain(tap)).toEqual([]);
    expect(tap.ioctl(TUNSETTXFILTER, { flags: 0, addresses: [parseMAC('02:00:00:00:00:02')] })).toBe(1);
    sendUdp(stack, 9);
    expect(drain(tap).length).toBe(1);
    expect(tap.ioctl(TUNSETTXFILTER, { flags: 0, addresses: [] })).toBe(0);
    sendUdp(stack, 9);
    expect(drain(tap).length).toBe(1);
  });
});

describe('the other Linux tun ioctls', () => {
  it('answer as Linux 6.x does', () => {
    const { stack } = newStack();
    const t = stack.openTun();
    for (const r of [TUNGETSNDBUF, TUNSETCARRIER, TUNSETSTEERINGEBPF, TUNGETDEVNETNS, SIOCGIFHWADDR]) expect(errno(() => t.ioctl(r, 1))).toBe('EBADFD');
    expect(t.ioctl(TUNSETIFINDEX, 77)).toBe(0); // before TUNSETIFF only
    t.setIff({ name: 'tun0', flags: IFF_TUN | IFF_NO_PI });
    expect(t.requestedIfIndex).toBe(77);
    expect(errno(() => t.ioctl(TUNSETIFINDEX, 78))).toBe('EPERM');
    expect(t.ioctl(TUNGETSNDBUF)).toBe(0x7fffffff);
    expect(errno(() => t.ioctl(TUNSETSNDBUF, 0))).toBe('EINVAL');
    expect(errno(() => t.ioctl(TUNSETSNDBUF, -1))).toBe('EINVAL');
    t.ioctl(TUNSETSNDBUF, 4096);
    expect(t.ioctl(TUNGETSNDBUF)).toBe(4096);
    expect(t.ioctl(TUNGETVNETLE)).toBe(0);
    t.ioctl(TUNSETVNETLE, 5);
    expect(t.ioctl(TUNGETVNETLE)).toBe(1);
    expect(errno(() => t.ioctl(TUNGETVNETBE))).toBe('EINVAL');
    expect(errno(() => t.ioctl(TUNSETVNETBE, 1))).toBe('EINVAL');
    for (const r of [TUNSETSTEERINGEBPF, TUNSETFILTEREBPF, TUNGETDEVNETNS]) expect(errno(() => t.ioctl(r, -1))).toBe('EINVAL');
    expect(t.ioctl(SIOCGIFHWADDR)).toEqual({ family: ARPHRD_NONE, address: new Uint8Array(6) });
    expect(errno(() => t.ioctl(SIOCSIFHWADDR, { family: ARPHRD_NONE, address: new Uint8Array(6) }))).toBe('EOPNOTSUPP');
    t.up();
    expect(errno(() => t.ioctl(TUNSETLINK, 65534))).toBe('EBUSY');
    t.down();
    t.ioctl(TUNSETLINK, 778);
    expect(t.ioctl(SIOCGIFHWADDR).family).toBe(778);

    const tap = stack.openTun();
    tap.setIff({ name: 'tap0', flags: IFF_TAP | IFF_NO_PI });
    expect(tap.ioctl(SIOCGIFHWADDR)).toEqual({ family: ARPHRD_ETHER, address: tap.mac });
    const mac = parseMAC('02:01:02:03:04:05');
    tap.ioctl(SIOCSIFHWADDR, { family: ARPHRD_ETHER, address: mac });
    expect(tap.mac).toEqual(mac);
    expect(errno(() => tap.ioctl(SIOCSIFHWADDR, { family: ARPHRD_ETHER, address: parseMAC('03:01:02:03:04:05') }))).toBe('EADDRNOTAVAIL');
    expect(errno(() => tap.ioctl(SIOCSIFHWADDR, { family: 772, address: mac }))).toBe('EINVAL');
  });

  it('TUNSETCARRIER 0 and IFF_NO_CARRIER stop what the stack sends; writes still go in', () => {
    const { stack } = newStack();
    const t = stack.openTun();
    t.setIff({ name: 'tun0', flags: IFF_TUN | IFF_NO_PI | IFF_NO_CARRIER });
    t.up();
    t.addAddress(`${LOCAL}/24`);
    expect(t.readiness(EventMask.Writable)).toBe(EventMask.Writable);
    expect(t.write(echoRequest())).toBe(52);
    expect(drain(t)).toEqual([]);
    expect(t.endpoint!.stats.txNoCarrier).toBe(1);
    t.ioctl(TUNSETCARRIER, 1);
    t.write(echoRequest());
    expect(drain(t).length).toBe(1);
    t.ioctl(TUNSETCARRIER, 0);
    t.write(echoRequest());
    expect(drain(t)).toEqual([]);
  });
});

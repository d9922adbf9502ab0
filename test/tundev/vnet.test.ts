import { describe, expect, it } from 'vitest';
import {
  IFF_NO_PI,
  IFF_TAP,
  IFF_TUN,
  IFF_VNET_HDR,
  TUNSETVNETHDRSZ,
  PacketBuffer,
  parseIPv4,
  parseIPv6,
  parseMAC,
  type NetworkDispatcher,
  type TunDevice,
} from '../../src/index.js';
import { IP_PROTO_TCP, IP_PROTO_UDP, TCP_ACK, TCP_CWR, TCP_FIN, TCP_PSH, buildEthernet, buildIPv4, buildTcp, buildUdp, checksum, pseudoHeaderSum, tcpChecksum } from '../../src/headers/index.js';
import { LinkType } from '../../src/pcap/index.js';
import { segmentGso } from '../../src/tundev/gso.js';
import { buildIPv6 } from '../../src/headers/ipv6-extensions.js';
import {
  VIRTIO_NET_HDR_F_DATA_VALID,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_UDP_L4,
  buildVirtioNetHeader,
  type VirtioNetHeaderFields,
} from '../../src/headers/virtio.js';
import { dissect, field, haveTshark } from '../helpers/tshark.js';
import { drain, echoRequest, errno, LOCAL, newStack, PEER, udpPacket } from './helpers.js';

const src = parseIPv4(PEER);
const dst = parseIPv4(LOCAL);

function payload(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + (i >> 8)) & 0xff);
}

/** An IPv4/TCP super-packet; the TCP checksum field holds the pseudo-header sum (as a virtio driver leaves it). */
function tcpSuper(data: Uint8Array, flags = TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR): Uint8Array {
  const tcp = buildTcp({ srcPort: 40000, dstPort: 80, seq: 0xfffff000, ack: 5, flags, window: 65535, options: { timestamp: true, tsVal: 1, tsEcr: 2 } }, data);
  const ph = pseudoHeaderSum({ src, dst }, IP_PROTO_TCP, tcp.length);
  tcp[16] = ph >>> 8;
  tcp[17] = ph & 0xff;
  return buildIPv4({ src, dst, protocol: IP_PROTO_TCP, id: 0xfffe, dontFragment: true }, tcp);
}

function withVnet(f: VirtioNetHeaderFields, pkt: Uint8Array, size = 10): Uint8Array {
  return buildVirtioNetHeader(f, pkt, size);
}

/** Record what the tun endpoint hands to the NIC (the NIC still gets it). */
function tapInbound(dev: TunDevice): Uint8Array[] {
  const seen: Uint8Array[] = [];
  const nic = dev.nic;
  const ep = dev.endpoint!;
  const upper: NetworkDispatcher = dev.isTap ? (nic.endpoint as unknown as NetworkDispatcher) : nic;
  ep.attach({
    deliverNetworkPacket(protocol: number, pkt: PacketBuffer) {
      seen.push(pkt.toBytes());
      upper.deliverNetworkPacket(protocol, pkt);
    },
  });
  return seen;
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

describe('tun device: virtio_net_hdr on write', () => {
  it('splits a TCPv4 super-packet into MSS-sized segments the stack receives', () => {
    const { stack } = newStack();
    const tun = stack.openTun();
    tun.setIff({ flags: IFF_TUN | IFF_NO_PI | IFF_VNET_HDR });
    tun.up();
    tun.addAddress(`${LOCAL}/24`);
    const seen = tapInbound(tun);
    const data = payload(5000);
    const sp = tcpSuper(data);
    const rxBefore = tun.nic.stats.rxPackets;
    const w = withVnet({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_TCPV4, hdrLen: 52, gsoSize: 1400, csumStart: 20, csumOffset: 16 }, sp);
    expect(w.length).toBeGreaterThan(1500); // a GSO write may exceed the MTU
    expect(tun.write(w)).toBe(w.length);
    expect(tun.nic.stats.rxPackets - rxBefore).toBe(4);
    expect(tun.endpoint!.stats.rxGsoSegments).toBe(4);
    expect(seen.map((s) => s.length)).toEqual([1452, 1452, 1452, 52 + 800]);
    const joined: number[] = [];
    seen.forEach((s, i) => {
      expect(checksum(s, 0, 20)).toBe(0);
      expect((s[2]! << 8) | s[3]!).toBe(s.length);
      expect((s[4]! << 8) | s[5]!).toBe((0xfffe + i) & 0xffff); // IP ID advances (wraps)
      expect(s[6]! & 0x40).toBe(0x40); // DF kept
      expect(u32(s, 24)).toBe((0xfffff000 + i * 1400) >>> 0); // seq advances and wraps
      const fl = s[33]!;
      expect(fl & TCP_ACK).toBe(TCP_ACK);
      expect((fl & (TCP_FIN | TCP_PSH)) !== 0).toBe(i === 3);
      expect((fl & TCP_CWR) !== 0).toBe(i === 0);
      const stored = (s[36]! << 8) | s[37]!;
      expect(tcpChecksum(s, 20, s.length - 20, pseudoHeaderSum({ src, dst }, IP_PROTO_TCP, s.length - 20))).toBe(stored);
      joined.push(...s.subarray(52));
    });
    expect(joined).toEqual([...data]);
  });

  it.skipIf(!haveTshark())('produces TCPv4 and TCPv6 segments tshark finds valid', () => {
    const segs: PacketBuffer[] = [];
    const sp4 = tcpSuper(payload(3000), TCP_ACK | TCP_PSH);
    expect(segmentGso(sp4, 0, sp4.length, 0, 0, VIRTIO_NET_HDR_GSO_TCPV4, 1000, segs)).toBe(3);
    const s6 = parseIPv6('fd00::2');
    const d6 = parseIPv6('fd00::1');
    const tcp6 = buildTcp({ srcPort: 1234, dstPort: 443, seq: 1000, ack: 1, flags: TCP_ACK | TCP_PSH | TCP_FIN, window: 1000 }, payload(2500));
    const sp6 = buildIPv6({ nextHeader: IP_PROTO_TCP, hopLimit: 64, source: s6, destination: d6 }, tcp6);
    // Over an Ethernet header too.
    const frame6 = buildEthernet({ destination: parseMAC('02:00:00:00:00:01'), source: parseMAC('02:00:00:00:00:02'), etherType: 0x86dd }, sp6);
    expect(segmentGso(frame6, 0, frame6.length, 14, 0x86dd, VIRTIO_NET_HDR_GSO_TCPV6, 1200, segs)).toBe(3);
    const v4 = segs.slice(0, 3).map((p) => p.toBytes());
    const v6 = segs.slice(3).map((p) => p.toBytes());
    const d4 = dissect(v4, ['tcp.seq_raw', 'tcp.len', 'tcp.checksum.status', 'ip.checksum.status', 'ip.len', 'tcp.flags.push'], { linkType: LinkType.RAW });
    expect(d4.expert).toEqual([]);
    expect([0, 1, 2].map((i) => field(d4, i, 'tcp.seq_raw'))).toEqual([String(0xfffff000), String(0xfffff000 + 1000), String((0xfffff000 + 2000) >>> 0)]);
    expect([0, 1, 2].map((i) => field(d4, i, 'tcp.len'))).toEqual(['1000', '1000', '1000']);
    expect([0, 1, 2].map((i) => field(d4, i, 'tcp.checksum.status'))).toEqual(['1', '1', '1']);
    expect([0, 1, 2].map((i) => field(d4, i, 'tcp.flags.push'))).toEqual(['0', '0', '1']);
    const d6r = dissect(v6, ['tcp.seq_raw', 'tcp.len', 'tcp.checksum.status', 'ipv6.plen', 'tcp.flags.fin']);
    expect(d6r.expert).toEqual([]);
    expect([0, 1, 2].map((i) => field(d6r, i, 'tcp.len'))).toEqual(['1200', '1200', '100']);
    expect([0, 1, 2].map((i) => field(d6r, i, 'ipv6.plen'))).toEqual(['1220', '1220', '120']);
    expect([0, 1, 2].map((i) => field(d6r, i, 'tcp.checksum.status'))).toEqual(['1', '1', '1']);
    expect([0, 1, 2].map((i) => field(d6r, i, 'tcp.flags.fin'))).toEqual(['0', '0', '1']);
  });

  it('splits a UDP_L4 super-packet (TAP) into datagrams a UDP socket receives intact', () => {
    const { stack } = newStack();
    const tap = stack.openTun();
    tap.setIff({ flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR });
    tap.up();
    tap.ioctl(TUNSETVNETHDRSZ, 12);
    tap.addAddress(`${LOCAL}/24`);
    const sock = stack.udp();
    sock.bind(null, 4789);
    const data = payload(4000);
    const udp = buildUdp({ srcPort: 9999, dstPort: 4789 }, data);
    const ph = pseudoHeaderSum({ src, dst }, IP_PROTO_UDP, udp.length);
    udp[6] = ph >>> 8;
    udp[7] = ph & 0xff;
    const frame = buildEthernet({ destination: tap.mac, source: parseMAC('02:00:00:00:00:02'), etherType: 0x0800 }, buildIPv4({ src, dst, protocol: IP_PROTO_UDP, id: 9 }, udp));
    tap.write(withVnet({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_UDP_L4, hdrLen: 42, gsoSize: 1472, csumStart: 34, csumOffset: 6 }, frame, 12));
    const got: number[][] = [];
    for (let m = sock.recv(); m; m = sock.recv()) got.push([...m.data]);
    expect(got.map((g) => g.length)).toEqual([1472, 1472, 1056]);
    expect(got.flat()).toEqual([...data]);
  });

  it('NEEDS_CSUM fills a UDP checksum; without it the same bytes fail the stack check; DATA_VALID is trusted', () => {
    const { stack } = newStack();
    const tun = stack.openTun();
    tun.setIff({ flags: IFF_TUN | IFF_NO_PI | IFF_VNET_HDR });
    tun.up();
    tun.addAddress(`${LOCAL}/24`);
    const sock = stack.udp();
    sock.bind(null, 7);
    const seen = tapInbound(tun);
    const udp = buildUdp({ srcPort: 1000, dstPort: 7 }, payload(33));
    const ph = pseudoHeaderSum({ src, dst }, IP_PROTO_UDP, udp.length);
    udp[6] = ph >>> 8;
    udp[7] = ph & 0xff;
    const ip = buildIPv4({ src, dst, protocol: IP_PROTO_UDP, id: 3 }, udp);
    tun.write(withVnet({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 20, csumOffset: 6 }, ip));
    expect(sock.recv()?.data.length).toBe(33);
    const filled = seen[0]!;
    const good = udpPacket(PEER, 1000, LOCAL, 7, payload(33), 3);
    expect([...filled]).toEqual([...good]); // the checksum a sender computing it fully would write

    tun.write(withVnet({}, ip)); // partial checksum left in place, no NEEDS_CSUM: bad checksum
    expect(sock.recv()).toBeNull();
    tun.write(withVnet({ flags: VIRTIO_NET_HDR_F_DATA_VALID }, ip)); // the writer vouches for it
    expect(sock.recv()?.data.length).toBe(33);
  });

  it('refuses vnet headers that do not fit the packet (EINVAL, counted)', () => {
    const { stack } = newStack();
    const tun = stack.openTun();
    tun.setIff({ flags: IFF_TUN | IFF_NO_PI | IFF_VNET_HDR });
    tun.up();
    tun.addAddress(`${LOCAL}/24`);
    const st = tun.endpoint!.stats;
    const sp = tcpSuper(payload(3000));
    const gso = { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, hdrLen: 52, csumStart: 20, csumOffset: 16 };
    const cases: [string, VirtioNetHeaderFields, Uint8Array][] = [
      ['TCPV6 on IPv4', { ...gso, gsoType: VIRTIO_NET_HDR_GSO_TCPV6, gsoSize: 1000 }, sp],
      ['UDP_L4 on TCP', { ...gso, gsoType: VIRTIO_NET_HDR_GSO_UDP_L4, gsoSize: 1000 }, sp],
      ['gso_size 0', { ...gso, gsoType: VIRTIO_NET_HDR_GSO_TCPV4, gsoSize: 0 }, sp],
      ['unknown gso type', { ...gso, gsoType: 2, gsoSize: 1000 }, sp],
      ['too many segments', { ...gso, gsoType: VIRTIO_NET_HDR_GSO_TCPV4, gsoSize: 2 }, sp],
      ['csum beyond the packet', { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 60, csumOffset: 16 }, echoRequest()],
      ['hdr_len beyond the packet', { hdrLen: 100 }, echoRequest()],
      ['truncated TCP header', { ...gso, gsoType: VIRTIO_NET_HDR_GSO_TCPV4, gsoSize: 1000 }, sp.subarray(0, 30)],
    ];
    let n = 0;
    for (const [what, f, pkt] of cases) {
      expect(errno(() => tun.write(withVnet(f, pkt))), what).toBe('EINVAL');
      expect(st.rxFrameErrors, what).toBe(++n);
    }
    // With the ECN bit the type is still TCPV4.
    expect(tun.write(withVnet({ ...gso, gsoType: VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, gsoSize: 1000 }, sp))).toBeGreaterThan(0);
    expect(st.rxGsoSegments).toBe(3);
    // Not GSO, over the MTU: accepted as Linux does (the stack takes the whole packet).
    expect(tun.write(withVnet({}, sp))).toBe(withVnet({}, sp).length);
  });
});

describe('tun device: virtio_net_hdr on read', () => {
  it('prepends the header with flags 0 (as Linux, even for UDP the stack built); PI first, then the header', () => {
    const { stack } = newStack();
    const tun = stack.openTun();
    tun.setIff({ flags: IFF_TUN | IFF_VNET_HDR });
    tun.up();
    tun.ioctl(TUNSETVNETHDRSZ, 12);
    tun.addAddress(`${LOCAL}/24`);
    const sock = stack.udp();
    sock.send(payload(10), 53, PEER);
    const [udpOut] = drain(tun);
    expect(udpOut!.length).toBe(4 + 12 + 20 + 8 + 10);
    expect([...udpOut!.subarray(0, 4)]).toEqual([0, 0, 0x08, 0x00]);
    expect([...udpOut!.subarray(4, 16)]).toEqual(new Array(12).fill(0));
    expect(udpOut![16]).toBe(0x45);

    const pi = new Uint8Array(4 + 12 + 52);
    pi[2] = 0x08;
    pi.set(echoRequest(), 16);
    tun.write(pi);
    const [icmpOut] = drain(tun);
    expect([...icmpOut!.subarray(4, 16)]).toEqual(new Array(12).fill(0));
    expect(icmpOut![16 + 20]).toBe(0); // echo reply

    // Without PI, a 10-byte header first.
    const t2 = stack.openTun();
    t2.setIff({ flags: IFF_TUN | IFF_NO_PI | IFF_VNET_HDR });
    t2.up();
    t2.addAddress('10.9.0.1/24');
    stack.udp().send(payload(1), 9, '10.9.0.2');
    const [o2] = drain(t2);
    expect(o2!.length).toBe(10 + 29);
    expect(o2![0]).toBe(0);
    expect(o2![10]).toBe(0x45);
    // A read buffer smaller than the header: EINVAL.
    stack.udp().send(payload(1), 9, '10.9.0.2');
    expect(errno(() => t2.read(9))).toBe('EINVAL');
    // Exactly the header: the header and nothing else.
    stack.udp().send(payload(1), 9, '10.9.0.2');
    expect(t2.read(10).length).toBe(10);
  });
});

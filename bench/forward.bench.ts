/**
 * Forwarding rate of a router stack between two NICs, single thread: 64-byte UDP datagrams
 * (IP header included) injected on one NIC's link, forwarded (TTL / hop limit, route lookup,
 * neighbour cache) and drained from the other NIC's link. Packets per second, for IPv4 and IPv6,
 * on IP links (as TUN) and on Ethernet links (static neighbours, as after ARP/NDP).
 * Reference in the same run: the same loop delivering the datagram to a local UDP socket of the
 * router (receive + demultiplex + queue) instead of forwarding it.
 */
import {
  ChannelEndpoint,
  EthernetEndpoint,
  ManualClock,
  PacketBuffer,
  Stack,
  parseIP,
  parseMAC,
  type ArpProtocol,
  type IPv4Protocol,
  type IPv6Protocol,
  type NIC,
} from '../src/index.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, buildEthernet, buildIPv4, buildIPv6, buildUdp } from '../src/headers/index.js';
import { timeInterleaved, type BenchRow } from './run.js';

interface Router {
  inject: () => void;
  forwarded: () => number;
}

function router(family: 4 | 6, ethernet: boolean, local: boolean): Router {
  const stack = new Stack({ clock: new ManualClock(), seed: 1, forwarding: true });
  const mk = (name: string, mac: string): { nic: NIC; ch: ChannelEndpoint } => {
    const ch = new ChannelEndpoint({ wireFormat: ethernet ? 'ethernet' : 'ip', mtu: 1500, queueLength: 4096 });
    const endpoint = ethernet ? new EthernetEndpoint(ch, { linkAddress: parseMAC(mac) }) : ch;
    return { nic: stack.createNIC({ name, endpoint }), ch };
  };
  const a = mk('eth0', '02:00:00:00:00:01');
  const b = mk('eth1', '02:00:00:00:00:02');
  a.nic.addAddress('10.1.0.1/24');
  b.nic.addAddress('10.2.0.1/24');
  a.nic.addAddress('fd01::1/64', { nodad: true });
  b.nic.addAddress('fd02::1/64', { nodad: true });
  const ip4 = stack.requireNetwork<IPv4Protocol>(ETHERTYPE_IPV4);
  const ip6 = stack.requireNetwork<IPv6Protocol>(ETHERTYPE_IPV6);
  if (ethernet) {
    // Static neighbours for the next hop (what ARP / NDP would have learned).
    stack.requireNetwork<ArpProtocol>(0x0806).cache(b.nic).addStatic(parseIP('10.2.0.2'), parseMAC('02:00:00:00:00:22'));
    ip6.cache(b.nic).addStatic(parseIP('fd02::2'), parseMAC('02:00:00:00:00:22'));
  }
  const src = family === 4 ? '10.1.0.2' : 'fd01::2';
  const dst = local ? (family === 4 ? '10.2.0.1' : 'fd02::1') : family === 4 ? '10.2.0.2' : 'fd02::2';
  const sock = local ? stack.udp({ family }) : null;
  sock?.bind(null, 9);
  const payload = new Uint8Array(family === 4 ? 36 : 16);
  const udp = buildUdp({ srcPort: 1000, dstPort: 9, pseudoHeader: { src: parseIP(src), dst: parseIP(dst) } }, payload);
  const ip =
    family === 4
      ? buildIPv4({ src: parseIP(src), dst: parseIP(dst), protocol: 17, ttl: 64, id: 1 }, udp)
      : buildIPv6({ source: parseIP(src), destination: parseIP(dst), nextHeader: 17, hopLimit: 64 }, udp);
  if (ip.length !== 64) throw new Error(`forward bench: datagram of ${ip.length} bytes`);
  const frame = ethernet
    ? buildEthernet({ destination: parseMAC('02:00:00:00:00:01'), source: parseMAC('02:00:00:00:00:11'), etherType: family === 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6 }, ip)
    : ip;
  let n = 0;
  const out: PacketBuffer[] = [];
  const inject = (): void => {
    // A fresh buffer per packet, as a NIC's receive ring would hand over.
    const data = new Uint8Array(frame.length);
    data.set(frame);
    a.ch.inject(0, new PacketBuffer(data, 0, data.length));
    if (++n === 512) {
      n = 0;
      b.ch.readBatch(4096, out);
      out.length = 0;
      if (sock !== null) while (sock.recv() !== null);
    }
  };
  b.ch.drain(); // gratuitous ARP
  // Sanity: one datagram goes through.
  inject();
  const fwd = (): number => (family === 4 ? ip4.stats.forwarded : ip6.stats.forwarded);
  if (local ? sock!.queuedMessages !== 1 : fwd() !== 1 || b.ch.queued !== 1) throw new Error(`forward bench: IPv${family} ${ethernet ? 'ethernet' : 'ip'} did not forward`);
  return { inject, forwarded: fwd };
}

export default function run(): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const ethernet of [false, true]) {
    for (const family of [4, 6] as const) {
      const r = router(family, ethernet, false);
      const l = router(family, ethernet, true);
      // Interleaved rounds, best of each: load from other processes hits both alike.
      const [f, d] = timeInterleaved([r.inject, l.inject], 7, 250);
      const pps = f!.opsPerSec;
      const local = d!.opsPerSec;
      rows.push({
        name: `forward IPv${family}, 64 B UDP, ${ethernet ? 'Ethernet' : 'IP'} links`,
        value: pps,
        unit: 'pkt/s',
        reference: local,
        referenceName: 'local UDP delivery',
        ratio: pps / local,
      });
    }
  }
  return rows;
}

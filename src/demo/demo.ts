import '../defaults.js';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { formatIPv4, formatMAC, parseIPv4, parseMAC } from '../headers/address.js';
import { EthernetEndpoint } from '../link/ethernet.js';
import { SnifferEndpoint } from '../link/sniffer.js';
import { Wire } from '../link/wire.js';
import type { ArpProtocol } from '../network/arp.js';
import type { IPv4Protocol, PingResult } from '../network/ipv4.js';
import { LinkType, PcapWriter } from '../pcap/writer.js';
import { ManualClock } from '../stack/clock.js';
import { PacketBuffer } from '../stack/packet.js';
import { Stack } from '../stack/stack.js';
import type { UdpProtocol } from '../transport/udp.js';
import { IFF_NO_PI, IFF_TAP } from '../tundev/constants.js';
import type { TunDevice } from '../tundev/device.js';
import { DNS_TYPE_A, decodeFirstAddress, decodeQuestion, encodeAnswer, encodeQuery } from '../headers/dns.js';

/**
 * The demo scenario: two virtual hosts on a Wire. "alpha" is a plain stack NIC; "beta" is reached
 * through a TAP device of the virtual /dev/net/tun that this code drives the way a VM monitor
 * would (frames read from the device go onto the wire, frames from the wire are written into it).
 * ARP, ping both ways, a DNS query over UDP, all sniffed to one pcap. Deterministic: a ManualClock
 * and fixed seeds, so two runs write byte-identical captures.
 */

export interface DemoOptions {
  /** pcap of the wire (Ethernet); null for none. */
  out?: string | null;
  /** Seed of the first host (the second uses seed + 1). */
  seed?: number;
  /** One-way latency of the wire in ms. */
  latencyMs?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

export interface DemoHostSummary {
  host: string;
  nic: string;
  mac: string;
  address: string;
  rxPackets: number;
  txPackets: number;
  arpRequestsSent: number;
  arpRepliesSent: number;
  icmpEchoRequests: number;
  icmpEchoReplies: number;
  udpIn: number;
  udpOut: number;
}

export interface DemoResult {
  pings: { from: string; to: string; rttMs: number; ttl: number }[];
  udp: { request: string; reply: string; rttMs: number };
  hosts: DemoHostSummary[];
  tun: { name: string; framesRead: number; framesWritten: number };
  wire: { aToB: number; bToA: number };
  pcap: string | null;
  packetsCaptured: number;
  virtualTimeMs: number;
}

/** Let promise callbacks and microtasks run, then advance virtual time by `stepMs`, until `done`. */
async function runUntil<T>(clock: ManualClock, p: Promise<T>, stepMs = 1, limitMs = 10_000): Promise<T> {
  let settled = false;
  const tracked = p.finally(() => {
    settled = true;
  });
  const until = clock.now() + limitMs;
  while (!settled && clock.now() < until) {
    await new Promise<void>((r) => setImmediate(r));
    if (!settled) clock.advance(stepMs);
  }
  return tracked;
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const log = options.log ?? ((): void => {});
  const seed = options.seed ?? 1;
  const clock = new ManualClock();
  const wire = new Wire({ clock, latencyMs: options.latencyMs ?? 1 });
  let writer: PcapWriter | null = null;
  if (options.out) {
    mkdirSync(dirname(options.out), { recursive: true });
    writer = PcapWriter.toFile(options.out, { linkType: LinkType.ETHERNET });
  }

  // alpha: an ordinary NIC on one end of the wire, sniffed.
  const alpha = new Stack({ clock, seed });
  const lower = writer ? new SnifferEndpoint(wire.a, { clock, writer }) : wire.a;
  const alphaNic = alpha.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(lower, { linkAddress: parseMAC('02:00:00:00:00:01') }) });
  alphaNic.addAddress('10.0.0.1/24');

  // beta: its NIC is a TAP device; this code shuttles frames between the device and the wire.
  const beta = new Stack({ clock, seed: seed + 1 });
  const tap: TunDevice = beta.openTun();
  tap.setIff({ name: 'tap0', flags: IFF_TAP | IFF_NO_PI });
  tap.addAddress('10.0.0.2/24');
  tap.up();
  let framesRead = 0;
  let framesWritten = 0;
  const frame = new Uint8Array(65536);
  const pump = (): void => {
    for (;;) {
      let n: number;
      try {
        n = tap.readInto(frame, 0);
      } catch {
        return; // EAGAIN: the device's queue is empty
      }
      framesRead++;
      wire.b.writePackets([PacketBuffer.fromPayload(frame.subarray(0, n))]);
    }
  };
  tap.on('readable', pump);
  wire.b.attach({
    deliverNetworkPacket: (_protocol, pkt) => {
      framesWritten++;
      tap.write(pkt.data.subarray(pkt.linkHeaderStart >= 0 ? pkt.linkHeaderStart : pkt.start, pkt.end));
    },
  });
  pump();

  log(`alpha  eth0 ${formatMAC(alphaNic.linkAddress)} 10.0.0.1/24  (stack NIC on the wire)`);
  log(`beta   ${tap.name} ${formatMAC(tap.mac)} 10.0.0.2/24  (virtual TAP device driven by the demo)`);

  const pings: DemoResult['pings'] = [];
  const record = (from: string, to: string, r: PingResult): void => {
    pings.push({ from, to, rttMs: r.rttMs, ttl: r.ttl });
    log(`ping ${from} -> ${to}: reply from ${r.from} ttl=${r.ttl} time=${r.rttMs} ms`);
  };
  for (let i = 0; i < 3; i++) record('alpha', '10.0.0.2', await runUntil(clock, alpha.ping('10.0.0.2', { timeoutMs: 2000 })));
  for (let i = 0; i < 3; i++) record('beta', '10.0.0.1', await runUntil(clock, beta.ping('10.0.0.1', { timeoutMs: 2000 })));

  // A DNS query and answer over UDP, with Node's dgram API on both stacks.
  const server = beta.dgram.createSocket('udp4');
  server.on('message', (msg, rinfo) => {
    const q = decodeQuestion(msg);
    const addr = q.name === 'beta.demo.' && q.type === DNS_TYPE_A ? parseIPv4('10.0.0.2') : null;
    server.send(encodeAnswer(msg, addr), rinfo.port, rinfo.address);
  });
  server.bind(53);
  const client = alpha.dgram.createSocket('udp4');
  const sentAt = clock.now();
  const reply = runUntil(
    clock,
    new Promise<Uint8Array>((resolve) => {
      client.once('message', (m) => resolve(m));
      client.send(encodeQuery({ id: 0x1234, name: 'beta.demo.', type: DNS_TYPE_A }), 53, '10.0.0.2');
    }),
  );
  const answer = decodeFirstAddress(await reply);
  const udp = { request: 'beta.demo. A', reply: answer ? formatIPv4(answer) : 'NXDOMAIN', rttMs: clock.now() - sentAt };
  log(`dns  alpha -> beta:53 ${udp.request} -> ${udp.reply} (${udp.rttMs} ms)`);
  client.close();
  server.close();
  await runUntil(clock, new Promise<void>((r) => setImmediate(r)));

  const summary = (host: string, stack: Stack, nicName: string, address: string): DemoHostSummary => {
    const nic = stack.getNIC(nicName);
    const ip = stack.requireNetwork<IPv4Protocol>(0x0800);
    const arp = stack.requireNetwork<ArpProtocol>(0x0806);
    const u = stack.requireTransport<UdpProtocol>(17);
    return {
      host,
      nic: nicName,
      mac: formatMAC(nic.linkAddress),
      address,
      rxPackets: nic.stats.rxPackets,
      txPackets: nic.stats.txPackets,
      arpRequestsSent: arp.stats.requestsSent + arp.stats.gratuitousSent,
      arpRepliesSent: arp.stats.repliesSent,
      icmpEchoRequests: ip.stats.icmp.echoRequestsReceived,
      icmpEchoReplies: ip.stats.icmp.echoRepliesSent,
      udpIn: u.stats.inDatagrams,
      udpOut: u.stats.outDatagrams,
    };
  };
  const result: DemoResult = {
    pings,
    udp,
    hosts: [summary('alpha', alpha, 'eth0', '10.0.0.1'), summary('beta', beta, 'tap0', '10.0.0.2')],
    tun: { name: tap.name, framesRead, framesWritten },
    wire: { aToB: wire.stats.aToB.delivered, bToA: wire.stats.bToA.delivered },
    pcap: options.out ?? null,
    packetsCaptured: writer?.packets ?? 0,
    virtualTimeMs: clock.now(),
  };
  tap.close();
  alpha.close();
  beta.close();
  writer?.close();
  return result;
}

/** The summary as a text table. */
export function formatSummary(r: DemoResult): string {
  const cols: Array<[string, (h: DemoHostSummary) => string | number]> = [
    ['host', (h) => h.host],
    ['nic', (h) => h.nic],
    ['address', (h) => h.address],
    ['rx pkts', (h) => h.rxPackets],
    ['tx pkts', (h) => h.txPackets],
    ['arp req', (h) => h.arpRequestsSent],
    ['arp rep', (h) => h.arpRepliesSent],
    ['echo in', (h) => h.icmpEchoRequests],
    ['echo out', (h) => h.icmpEchoReplies],
    ['udp in', (h) => h.udpIn],
    ['udp out', (h) => h.udpOut],
  ];
  const rows = [cols.map(([n]) => n), ...r.hosts.map((h) => cols.map(([, f]) => String(f(h))))];
  const widths = cols.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const line = (row: string[]): string => row.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [line(rows[0]!), line(widths.map((w) => '-'.repeat(w))), ...rows.slice(1).map(line)].join('\n');
}

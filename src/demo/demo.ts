import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import { dirname } from 'node:path';
import { formatIP, formatMAC, parseIP } from '../core/address.js';
import { DNS_TYPE_A, DNS_TYPE_AAAA, decodeFirstAddress, decodeQuestion, encodeAnswer, encodeQuery } from '../headers/dns.js';
import type { ArpProtocol } from '../network/arp.js';
import type { IPv4Protocol } from '../network/ipv4.js';
import type { IPv6Protocol } from '../network/ipv6.js';
import { LinkType } from '../pcap/writer.js';
import { PcapWriter } from '../pcap/file.js';
import { Network, type SimHost } from '../sim/index.js';
import { PacketBuffer } from '../core/packet.js';
import { Random } from '../core/random.js';
import { Stack } from '../adapters/stack.js';
import type { TcpProtocol } from '../transport/tcp/protocol.js';
import type { UdpProtocol } from '../transport/udp.js';
import { IFF_NO_PI, IFF_TAP } from '../tundev/constants.js';
import type { TunDevice } from '../tundev/device.js';

/**
 * The tour: a small network with a router, on virtual time.
 *
 *   alpha (10.0.1.1, fd00:0:0:1::1) --- r (router) ---[lossy link]--- beta (10.0.2.2, fd00:0:0:2::2)
 *
 * alpha and the router are stacks built by the Network helper; beta is a stack whose NIC is a
 * TAP device of the virtual /dev/net/tun, driven the way a VM monitor drives one (frames read from
 * the device go onto the cable, frames from the cable are written into it). The link between the
 * router and beta loses packets (2% each way by default). The tour runs ping over IPv4 and IPv6
 * both ways, DNS-like lookups over UDP with retries, and Node's own http client and server over
 * tunstack TCP; it prints a per-host counter table and writes what the router sees on both of its
 * interfaces to pcaps/demo.pcap. Deterministic: the same seed writes a byte-identical capture.
 */

export interface DemoOptions {
  /** pcap of the router's two interfaces (Ethernet); null for none. */
  out?: string | null;
  /** Seed of the whole network. */
  seed?: number;
  /** One-way latency of each link in ms (default 1). */
  latencyMs?: number;
  /** Loss probability on the router-beta link, each way (default 0.02). */
  loss?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

export interface DemoHostSummary {
  host: string;
  nic: string;
  mac: string;
  address: string;
  address6: string;
  rxPackets: number;
  txPackets: number;
  arpRequestsSent: number;
  arpRepliesSent: number;
  ndpSolicitsSent: number;
  ndpAdvertsSent: number;
  icmpEchoRequests: number;
  icmpEchoReplies: number;
  forwarded: number;
  udpIn: number;
  udpOut: number;
  tcpSegsIn: number;
  tcpSegsOut: number;
  tcpRetransmits: number;
}

export interface DemoResult {
  pings: { from: string; to: string; family: 4 | 6; rttMs: number; ttl: number; tries: number }[];
  dns: { name: string; type: 'A' | 'AAAA'; answer: string; tries: number; rttMs: number }[];
  http: { path: string; status: number; bytes: number; intact: boolean; ms: number }[];
  hosts: DemoHostSummary[];
  tun: { name: string; framesRead: number; framesWritten: number };
  /** The router-beta link: frames offered and lost towards beta and towards the router. */
  lossyLink: { loss: number; toBeta: { offered: number; lost: number }; toRouter: { offered: number; lost: number } };
  pcap: string | null;
  packetsCaptured: number;
  virtualTimeMs: number;
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const log = options.log ?? ((): void => {});
  const seed = options.seed ?? 1;
  const latencyMs = options.latencyMs ?? 1;
  const loss = options.loss ?? 0.02;
  const net = new Network({ seed });
  const clock = net.clock;

  const alpha = net.host('alpha');
  const r = net.router('r');
  net.link(alpha, r, { latencyMs });
  const port = net.port(r, { latencyMs, loss, name: 'r-beta' });

  let writer: PcapWriter | null = null;
  if (options.out) {
    mkdirSync(dirname(options.out), { recursive: true });
    writer = PcapWriter.toFile(options.out, { linkType: LinkType.ETHERNET });
    net.capture(r, writer);
  }

  // beta: its NIC is a TAP device; this code shuttles frames between the device and the cable.
  const beta = new Stack({ clock, seed: new Random(seed).u32() ^ 0x5eed });
  const tap: TunDevice = beta.openTun();
  tap.setIff({ name: 'tap0', flags: IFF_TAP | IFF_NO_PI });
  tap.addAddress(port.cidr);
  tap.nic.addAddress(port.cidr6, { nodad: true });
  tap.up();
  beta.addRoute({ destination: '0.0.0.0/0', gateway: port.gateway, nic: 'tap0' });
  beta.addRoute({ destination: '::/0', gateway: port.gateway6, nic: 'tap0' });
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
      port.end.writePackets([PacketBuffer.fromPayload(frame.subarray(0, n))]);
    }
  };
  tap.on('readable', pump);
  port.end.attach({
    deliverNetworkPacket: (_protocol, pkt) => {
      framesWritten++;
      try {
        tap.write(pkt.data.subarray(pkt.linkHeaderStart >= 0 ? pkt.linkHeaderStart : pkt.start, pkt.end));
      } catch {
        // a frame the device refuses (too big): dropped, as a kernel tap would
      }
    },
  });
  pump();

  log(`alpha  eth0 ${alpha.interfaces[0]!.mac}  ${alpha.interfaces[0]!.cidr}  ${alpha.interfaces[0]!.cidr6}`);
  log(`r      eth0 ${r.interfaces[0]!.mac}  ${r.interfaces[0]!.cidr}  ${r.interfaces[0]!.cidr6}  (router)`);
  log(`r      eth1 ${r.interfaces[1]!.mac}  ${r.interfaces[1]!.cidr}  ${r.interfaces[1]!.cidr6}`);
  log(`beta   ${tap.name} ${formatMAC(tap.mac)}  ${port.cidr}  ${port.cidr6}  (TAP, lossy link)`);

  // ---- ping over IPv4 and IPv6, both ways (retried when the lossy link eats one) ----
  const pings: DemoResult['pings'] = [];
  const ping = async (fromName: string, from: Stack, toName: string, to: string, family: 4 | 6): Promise<void> => {
    for (let tries = 1; ; tries++) {
      try {
        const res = await net.runUntil(from.ping(to, { timeoutMs: 1000 }));
        pings.push({ from: fromName, to: toName, family, rttMs: round(res.rttMs), ttl: res.ttl, tries });
        log(`ping${family === 6 ? '6' : ' '} ${fromName} -> ${toName} ${to}: ttl=${res.ttl} time=${round(res.rttMs)} ms${tries > 1 ? ` (${tries} tries)` : ''}`);
        return;
      } catch (e) {
        if (tries >= 10) throw e;
      }
    }
  };
  for (let i = 0; i < 3; i++) await ping('alpha', alpha.stack, 'beta', port.address, 4);
  await ping('beta', beta, 'alpha', alpha.address, 4);
  for (let i = 0; i < 2; i++) await ping('alpha', alpha.stack, 'beta', port.address6, 6);
  await ping('beta', beta, 'alpha', alpha.address6, 6);

  // ---- DNS-like lookups over UDP: beta answers, alpha asks and retries after 500 ms ----
  const zone: Record<string, string> = { 'beta.demo.': port.address, 'alpha.demo.': alpha.address };
  const zone6: Record<string, string> = { 'beta.demo.': port.address6, 'alpha.demo.': alpha.address6 };
  const server = beta.dgram.createSocket('udp4');
  server.on('message', (msg, rinfo) => {
    const q = decodeQuestion(msg);
    const a = q.type === DNS_TYPE_A ? zone[q.name] : q.type === DNS_TYPE_AAAA ? zone6[q.name] : undefined;
    server.send(encodeAnswer(msg, a === undefined ? null : parseIP(a)), rinfo.port, rinfo.address);
  });
  server.bind(53);
  const client = alpha.dgram.createSocket('udp4');
  const dns: DemoResult['dns'] = [];
  let nextId = 0x1234;
  const lookup = (name: string, type: 'A' | 'AAAA'): Promise<void> => {
    const id = nextId++;
    const sentAt = clock.now();
    return new Promise((resolve, reject) => {
      let tries = 0;
      const timer = alpha.stack.clock.timer(() => send());
      const onMessage = (msg: Uint8Array): void => {
        if (decodeQuestion(msg).id !== id) return;
        timer.cancel();
        client.off('message', onMessage);
        const addr = decodeFirstAddress(msg);
        const answer = addr ? formatIP(addr) : 'NXDOMAIN';
        dns.push({ name, type, answer, tries, rttMs: round(clock.now() - sentAt) });
        log(`dns   alpha -> beta:53 ${name} ${type} -> ${answer}${tries > 1 ? ` (${tries} tries)` : ''}`);
        resolve();
      };
      const send = (): void => {
        if (++tries > 10) {
          client.off('message', onMessage);
          reject(new Error(`no answer for ${name}`));
          return;
        }
        client.send(encodeQuery({ id, name, type: type === 'A' ? DNS_TYPE_A : DNS_TYPE_AAAA }), 53, port.address);
        timer.schedule(500);
      };
      client.on('message', onMessage);
      send();
    });
  };
  for (const [name, type] of [
    ['beta.demo.', 'A'],
    ['beta.demo.', 'AAAA'],
    ['gamma.demo.', 'A'],
  ] as const) {
    await net.runUntil(lookup(name, type));
  }
  client.close();
  server.close();

  // ---- HTTP over TCP: Node's http server on beta, Node's http client on alpha ----
  const data = new Random(seed).fill(new Uint8Array(200_000));
  const dataHash = createHash('sha256').update(data).digest('hex');
  const site = http.createServer((req, res) => {
    // No Date header: it is the wall clock, and the same seed must give the same bytes.
    res.sendDate = false;
    if (req.url === '/data') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length });
      res.end(data);
    } else {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`hello from beta, ${req.socket.remoteAddress}\n`);
    }
  });
  const listener = beta.net.listen(site, 80, '0.0.0.0');
  const agent = alpha.net.httpAgent({ keepAlive: true });
  const httpResults: DemoResult['http'] = [];
  const get = (path: string): Promise<void> => {
    const t0 = clock.now();
    return new Promise((resolve, reject) => {
      const req = http.request({ host: port.address, port: 80, path, agent }, (res) => {
        const hash = createHash('sha256');
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          hash.update(c);
          bytes += c.length;
        });
        res.on('end', () => {
          const intact = path === '/data' ? hash.digest('hex') === dataHash : bytes > 0;
          httpResults.push({ path, status: res.statusCode ?? 0, bytes, intact, ms: round(clock.now() - t0) });
          log(`http  alpha GET http://${port.address}${path} -> ${res.statusCode}, ${bytes} bytes${path === '/data' ? (intact ? ', sha256 ok' : ', sha256 WRONG') : ''} (${round(clock.now() - t0)} ms)`);
          resolve();
        });
      });
      req.on('error', reject);
      req.end();
    });
  };
  await net.runUntil(get('/'));
  await net.runUntil(get('/data'));
  agent.destroy();
  listener.close();
  await net.runUntilIdle(5_000);

  const summary = (host: string, stack: Stack, nicNames: string[], address: string, address6: string): DemoHostSummary => {
    const nic = stack.getNIC(nicNames[0]!);
    const ip = stack.requireNetwork<IPv4Protocol>(0x0800);
    const ip6 = stack.requireNetwork<IPv6Protocol>(0x86dd).stats;
    const arp = stack.requireNetwork<ArpProtocol>(0x0806);
    const u = stack.requireTransport<UdpProtocol>(17);
    const t = stack.requireTransport<TcpProtocol>(6);
    let rx = 0;
    let tx = 0;
    for (const n of stack.nics) {
      rx += n.stats.rxPackets;
      tx += n.stats.txPackets;
    }
    return {
      host,
      nic: nicNames.join(','),
      mac: formatMAC(nic.linkAddress),
      address,
      address6,
      rxPackets: rx,
      txPackets: tx,
      arpRequestsSent: arp.stats.requestsSent + arp.stats.gratuitousSent,
      arpRepliesSent: arp.stats.repliesSent,
      ndpSolicitsSent: ip6.ndp.nsSent,
      ndpAdvertsSent: ip6.ndp.naSent,
      icmpEchoRequests: ip.stats.icmp.echoRequestsReceived + ip6.icmp.echoRequestsReceived,
      icmpEchoReplies: ip.stats.icmp.echoRepliesSent + ip6.icmp.echoRepliesSent,
      forwarded: ip.stats.forwarded + ip6.forwarded,
      udpIn: u.stats.inDatagrams,
      udpOut: u.stats.outDatagrams,
      tcpSegsIn: t.stats.inSegs,
      tcpSegsOut: t.stats.outSegs,
      tcpRetransmits: t.stats.retransSegs,
    };
  };
  const hostSummary = (h: SimHost<Stack>): DemoHostSummary => summary(h.name, h.stack, h.interfaces.map((i) => i.name), h.address, h.address6);
  const lossy = port.link.stats;
  const result: DemoResult = {
    pings,
    dns,
    http: httpResults,
    hosts: [hostSummary(alpha), hostSummary(r), summary('beta', beta, ['tap0'], port.address, port.address6)],
    tun: { name: tap.name, framesRead, framesWritten },
    lossyLink: {
      loss,
      toBeta: { offered: lossy.aToB.offered, lost: lossy.aToB.lost },
      toRouter: { offered: lossy.bToA.offered, lost: lossy.bToA.lost },
    },
    pcap: options.out ?? null,
    packetsCaptured: writer?.packets ?? 0,
    virtualTimeMs: round(clock.now()),
  };
  tap.close();
  beta.close();
  net.close();
  writer?.close();
  return result;
}

/** The summary as a text table. */
/**
 * The per-host counters as a table with one column per host and one row per counter, so that it
 * fits 80 columns however many counters there are.
 */
export function formatSummary(r: DemoResult): string {
  const rows: Array<[string, (h: DemoHostSummary) => string | number]> = [
    ['nic', (h) => h.nic],
    ['address', (h) => h.address],
    ['rx packets', (h) => h.rxPackets],
    ['tx packets', (h) => h.txPackets],
    ['ARP requests sent', (h) => h.arpRequestsSent],
    ['ARP replies sent', (h) => h.arpRepliesSent],
    ['ND solicits sent', (h) => h.ndpSolicitsSent],
    ['ND adverts sent', (h) => h.ndpAdvertsSent],
    ['echo requests in', (h) => h.icmpEchoRequests],
    ['echo replies out', (h) => h.icmpEchoReplies],
    ['forwarded', (h) => h.forwarded],
    ['UDP in', (h) => h.udpIn],
    ['UDP out', (h) => h.udpOut],
    ['TCP segments in', (h) => h.tcpSegsIn],
    ['TCP segments out', (h) => h.tcpSegsOut],
    ['TCP retransmits', (h) => h.tcpRetransmits],
  ];
  const table = [['', ...r.hosts.map((h) => h.host)], ...rows.map(([name, f]) => [name, ...r.hosts.map((h) => String(f(h)))])];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  const line = (row: string[]): string => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(table[0]!), line(widths.map((w) => '-'.repeat(w))), ...table.slice(1).map(line)].join('\n');
}

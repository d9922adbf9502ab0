/**
 * A DNS exchange over UDP through a lossy link: a client asks a resolver for a few names with
 * Node's dgram API (tunstack's `host.dgram`), retrying after 300 ms of silence, as stub
 * resolvers do. The link loses 25% of the packets in each direction, so some questions need
 * retries; the run is the same every time for a given seed.
 *
 *   npx tsx examples/dns-over-udp.ts [capture.pcap]
 */
import { pathToFileURL } from 'node:url';
import { formatIPv4, parseIPv4 } from '../src/index.js';
import { Network } from '../src/sim/index.js';
import { DNS_TYPE_A, decodeFirstAddress, decodeQuestion, encodeAnswer, encodeQuery } from '../src/headers/dns.js';

export interface DnsExampleResult {
  answers: Record<string, string>;
  /** Queries sent, retries included. */
  queries: number;
  /** Packets (of any kind) the link lost, per direction. */
  lost: { toResolver: number; toClient: number };
  virtualMs: number;
}

const ZONE: Record<string, string> = {
  'www.example.': '192.0.2.10',
  'mail.example.': '192.0.2.25',
  'db.example.': '192.0.2.53',
};

export async function dnsOverUdp(options: { seed?: number; capture?: string } = {}): Promise<DnsExampleResult> {
  const net = new Network({ seed: options.seed ?? 1 });
  const client = net.host('client');
  const resolver = net.host('resolver');
  const link = net.link(client, resolver, { latencyMs: 15, loss: 0.25 });
  if (options.capture) net.capture(client, options.capture);

  // The resolver: answers from its zone, NXDOMAIN otherwise.
  const server = resolver.dgram.createSocket('udp4');
  server.on('message', (msg, rinfo) => {
    const q = decodeQuestion(msg);
    const addr = q.type === DNS_TYPE_A && ZONE[q.name] !== undefined ? parseIPv4(ZONE[q.name]!) : null;
    server.send(encodeAnswer(msg, addr), rinfo.port, rinfo.address);
  });
  server.bind(53);

  // The client: one question at a time, retried every 300 ms (at most 8 tries).
  const sock = client.dgram.createSocket('udp4');
  let queries = 0;
  const ask = (name: string, id: number): Promise<string> =>
    new Promise((resolve, reject) => {
      let tries = 0;
      const send = (): void => {
        if (++tries > 8) {
          sock.off('message', onMessage);
          reject(new Error(`no answer for ${name}`));
          return;
        }
        queries++;
        sock.send(encodeQuery({ id, name, type: DNS_TYPE_A }), 53, resolver.address);
        timer.schedule(300);
      };
      const timer = client.stack.clock.timer(send);
      const onMessage = (msg: Uint8Array): void => {
        if (decodeQuestion(msg).id !== id) return; // a late answer to an earlier question
        timer.cancel();
        sock.off('message', onMessage);
        const a = decodeFirstAddress(msg);
        resolve(a ? formatIPv4(a) : 'NXDOMAIN');
      };
      sock.on('message', onMessage);
      send();
    });

  const answers: Record<string, string> = {};
  const names = [...Object.keys(ZONE), 'nope.example.'];
  for (let i = 0; i < names.length; i++) answers[names[i]!] = await net.runUntil(ask(names[i]!, 0x100 + i));
  sock.close();
  server.close();
  await net.runUntilIdle(5_000);
  const result: DnsExampleResult = {
    answers,
    queries,
    lost: { toResolver: link.stats.aToB.lost, toClient: link.stats.bToA.lost },
    virtualMs: net.now,
  };
  net.close();
  return result;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await dnsOverUdp({ capture: process.argv[2] });
  for (const [name, addr] of Object.entries(r.answers)) console.log(`${name.padEnd(16)} ${addr}`);
  console.log(`${r.queries} queries sent; the link lost ${r.lost.toResolver} packets towards the resolver, ${r.lost.toClient} towards the client; ${r.virtualMs} ms of virtual time`);
}

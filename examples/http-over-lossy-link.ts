/**
 * Node's own `http` server and client, unchanged, talking over tunstack TCP across a lossy link:
 * the server is `http.createServer` fed the connections of a tunstack listener, the client is
 * `http.request` with an agent whose sockets are tunstack sockets. The link has 30 ms of latency
 * each way, 3% loss and 20 Mbit/s; TCP recovers every loss. A few seconds of virtual time run in
 * a fraction of a second.
 *
 *   npx tsx examples/http-over-lossy-link.ts [capture.pcap]
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { pathToFileURL } from 'node:url';
import { Random } from '../src/index.js';
import { Network, type SimHost } from '../src/sim/index.js';

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  sha256: string;
  bytes: number;
  /** The body as text when it is short (under 64 KiB). */
  text: string;
  atMs: number;
}

export interface HttpScenario {
  net: Network;
  client: SimHost;
  server: SimHost;
  /** The body served at /big (1 MB), and its hash. */
  big: Uint8Array;
  bigSha256: string;
  get(path: string): Promise<HttpResult>;
  close(): void;
}

/** Build the network and start the server; `get` fetches a path with Node's http client. */
export function httpOverLossyLink(options: { seed?: number; capture?: string; loss?: number } = {}): HttpScenario {
  const net = new Network({ seed: options.seed ?? 1 });
  const client = net.host('client');
  const server = net.host('server');
  net.link(client, server, { latencyMs: 30, loss: options.loss ?? 0.03, rateBps: 20_000_000 });
  if (options.capture) net.capture(client, options.capture);

  const big = new Random(7).fill(new Uint8Array(1_000_000));
  const app = http.createServer((req, res) => {
    if (req.url === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': big.length });
      res.end(big);
    } else if (req.url === '/hello') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ hello: 'from tunstack', via: req.socket.remoteAddress }));
    } else {
      res.writeHead(404).end();
    }
  });
  // A tunstack listener hands its sockets (stream.Duplex, net.Socket's API) to Node's http server
  // (IPv4 only here: listen(80) alone is dual stack, and would show the client as ::ffff:10.0.1.1).
  const listener = server.net.listen(app, 80, '0.0.0.0');
  const agent = client.net.httpAgent({ keepAlive: true });

  const get = (path: string): Promise<HttpResult> =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: server.address, port: 80, path, agent }, (res) => {
        const hash = createHash('sha256');
        let bytes = 0;
        let text = '';
        res.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          bytes += chunk.length;
          if (bytes < 65536) text += chunk.toString('utf8');
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, sha256: hash.digest('hex'), bytes, text: bytes < 65536 ? text : '', atMs: net.now }));
      });
      req.on('error', reject);
      req.end();
    });

  return {
    net,
    client,
    server,
    big,
    bigSha256: createHash('sha256').update(big).digest('hex'),
    get,
    close: () => {
      agent.destroy();
      listener.close();
      net.close();
    },
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const s = httpOverLossyLink({ capture: process.argv[2] });
  const t0 = Date.now();
  const hello = await s.net.runUntil(s.get('/hello'));
  console.log(`GET /hello -> ${hello.status} ${hello.headers['content-type']} at ${hello.atMs.toFixed(1)} ms`);
  const big = await s.net.runUntil(s.get('/big'));
  console.log(`GET /big   -> ${big.status}, ${big.bytes} bytes, sha256 ${big.sha256 === s.bigSha256 ? 'matches' : 'DIFFERS'}, at ${big.atMs.toFixed(1)} ms`);
  console.log(`${s.net.now.toFixed(0)} ms of virtual time in ${Date.now() - t0} ms`);
  s.close();
}

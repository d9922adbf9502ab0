/**
 * Many keep-alive HTTP connections from the Linux kernel to Node's `http` server on tunstack over a
 * TAP (the host bridge), beside the same load against Node's `http` server on the kernel over a
 * veth pair, measured in the same run (root and wrk; skips with the reason otherwise).
 *
 * wrk runs in the kernel's namespace: KERNEL_HTTP_CONNS connections (default 2000), 2 threads,
 * KERNEL_HTTP_SECONDS seconds (default 10). Rows: requests/s of each, wrk's errors (connect,
 * read, write, timeout, non-2xx) and the packets the kernel dropped at the TAP (its transmit
 * queue towards tunstack, `ip -s link`), with FdEndpoint's defaults. KERNEL_HTTP_TXQ=keep leaves
 * the TAP's queue at Linux's 1000 (what it was before FdEndpoint raised it).
 */
import { once } from 'node:events';
import http from 'node:http';
import { spawnSync } from 'node:child_process';
import type { Socket } from '../src/index.js';
import { haveCommand, interopSkipReason, Netns, uniqueName } from '../test/interop/helpers/netns.js';
import { Pair, STACK4 } from '../test/interop/helpers/pair.js';
import type { BenchRow } from './run.js';

const CONNS = Number(process.env.KERNEL_HTTP_CONNS ?? 2000);
const SECONDS = Number(process.env.KERNEL_HTTP_SECONDS ?? 10);
const PORT = 8080;
const BODY = 'hello from the server\n';

/** Node's http server for the reference, run by node in a namespace. */
const NODE_SERVER = `
const http = require('node:http');
const body = ${JSON.stringify(BODY)};
http.createServer((req, res) => { res.setHeader('content-length', body.length); res.end(body); })
  .listen(${PORT}, process.argv[1], () => console.log('ready'));
`;

export interface WrkResult {
  requestsPerSec: number;
  requests: number;
  errors: number;
  detail: string;
}

/** Parse wrk's summary. */
export function parseWrk(out: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const total = /(\d+) requests in/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const errors = (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0);
  return {
    requestsPerSec: rps ? Number(rps[1]) : NaN,
    requests: total ? Number(total[1]) : 0,
    errors,
    detail: [sock?.[0], non2xx?.[0]].filter((x) => x !== undefined).join('; ') || 'no errors',
  };
}

async function wrk(ns: Netns, url: string): Promise<WrkResult> {
  const cmd = `ulimit -n 65536; wrk -t2 -c${CONNS} -d${SECONDS}s --timeout 10s ${url}`;
  const r = await ns.run('sh', ['-c', cmd], { timeoutMs: (SECONDS + 60) * 1000 });
  if (!/Requests\/sec/.test(r.stdout)) throw new Error(`wrk failed: ${r.stdout} ${r.stderr}`);
  return parseWrk(r.stdout);
}

/** TX drops of the kernel interface `dev` in `ns` (packets the kernel could not queue for the reader). */
export function txDropped(ns: Netns, dev: string): number {
  const out = ns.ip('-s', 'link', 'show', 'dev', dev);
  const lines = out.split('\n');
  const i = lines.findIndex((l) => /^\s*TX:/.test(l));
  if (i < 0) return NaN;
  return Number(lines[i + 1]!.trim().split(/\s+/)[3]);
}

async function reference(): Promise<WrkResult> {
  const a = new Netns('khb');
  const b = new Netns('khb');
  const va = uniqueName('khv');
  const vb = uniqueName('khv');
  try {
    spawnSync('ip', ['link', 'add', va, 'netns', a.name, 'type', 'veth', 'peer', 'name', vb, 'netns', b.name]);
    a.ip('addr', 'add', '198.19.1.1/24', 'dev', va);
    b.ip('addr', 'add', '198.19.1.2/24', 'dev', vb);
    a.ip('link', 'set', va, 'up');
    b.ip('link', 'set', vb, 'up');
    const srv = b.spawn(process.execPath, ['-e', NODE_SERVER, '198.19.1.2']);
    let out = '';
    srv.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const end = Date.now() + 10_000;
    while (!out.includes('ready')) {
      if (Date.now() > end) throw new Error('reference server did not start');
      await new Promise((r) => setTimeout(r, 20));
    }
    try {
      return await wrk(a, `http://198.19.1.2:${PORT}/`);
    } finally {
      srv.kill();
      await once(srv, 'close');
    }
  } finally {
    a.remove();
    b.remove();
  }
}

export default async function bench(): Promise<BenchRow[]> {
  const why = interopSkipReason();
  if (why !== '') {
    console.log(`kernel-http bench skipped: ${why}`);
    return [];
  }
  if (!haveCommand('wrk')) {
    console.log('kernel-http bench skipped: wrk missing (apt-get install wrk)');
    return [];
  }
  const ref = await reference();
  console.log(`  reference (Node http on the kernel over veth): ${ref.requestsPerSec} req/s, ${ref.detail}`);
  const keep = process.env.KERNEL_HTTP_TXQ === 'keep';
  const p = new Pair({ ipv6: false, ...(keep ? { endpoint: { txQueueLength: null } } : {}) });
  try {
    const srv = http.createServer((_req, res) => {
      res.setHeader('content-length', BODY.length);
      res.end(BODY);
    });
    srv.keepAliveTimeout = 60_000;
    const lst = p.stack.net.createServer((s: Socket) => srv.emit('connection', s));
    lst.listen({ port: PORT, host: STACK4, backlog: 4096 });
    await once(lst, 'listening');
    const before = txDropped(p.ns, p.dev);
    const mine = await wrk(p.ns, `http://${STACK4}:${PORT}/`);
    const drops = txDropped(p.ns, p.dev) - before;
    console.log(`  tunstack: ${mine.requestsPerSec} req/s, ${mine.detail}, TAP drops ${drops}, queue ${p.ns.ip('link', 'show', 'dev', p.dev).match(/qlen (\d+)/)?.[1]}, endpoint ${JSON.stringify({ txDropped: p.ep.stats.txDropped, rxBatches: p.ep.stats.rxBatches, rxPackets: p.ep.stats.rxPackets })}`);
    lst.close();
    srv.close();
    return [
      {
        name: `${CONNS} keep-alive connections (wrk), Node http`,
        value: mine.requestsPerSec,
        unit: 'req/s',
        reference: ref.requestsPerSec,
        referenceName: 'Node http on the kernel over veth',
        ratio: mine.requestsPerSec / ref.requestsPerSec,
      },
      { name: `${CONNS} connections: wrk errors`, value: mine.errors, unit: 'errors', reference: ref.errors, referenceName: 'over veth' },
      { name: `${CONNS} connections: packets dropped at the TAP`, value: drops, unit: 'packets' },
    ];
  } finally {
    p.cleanup();
  }
}

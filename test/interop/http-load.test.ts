/**
 * 2000 concurrent keep-alive HTTP connections from the kernel (wrk in the namespace) to Node's
 * `http` server on tunstack over a TAP with FdEndpoint's defaults: no wrk errors, and the kernel
 * drops nothing at the TAP (its transmit queue towards tunstack; Linux's default of 1000
 * overflowed under this load). Root and wrk (skips otherwise). Throughput: bench/kernel-http.
 */
import http from 'node:http';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import type { Socket } from '../../src/index.js';
import { FD_TX_QUEUE_LENGTH } from '../../src/host/index.js';
import { haveCommand, skipInterop } from './helpers/netns.js';
import { Pair, STACK4 } from './helpers/pair.js';

const noWrk = !haveCommand('wrk');
if (noWrk) console.warn('test/interop/http-load.test.ts skipped: wrk missing (apt-get install wrk)');
const skip = skipInterop('test/interop/http-load.test.ts') || noWrk;
const CONNS = 2000;

let pair: Pair | null = null;
afterEach(() => {
  pair?.cleanup();
  pair = null;
});

function txDropped(p: Pair): number {
  const lines = p.ns.ip('-s', 'link', 'show', 'dev', p.dev).split('\n');
  const i = lines.findIndex((l) => /^\s*TX:/.test(l));
  return Number(lines[i + 1]!.trim().split(/\s+/)[3]);
}

describe.skipIf(skip)('kernel interop: many HTTP connections', () => {
  it(`${CONNS} keep-alive connections with wrk: no errors, no packets dropped at the TAP`, async () => {
    const p = (pair = new Pair({ ipv6: false }));
    expect(p.ns.ip('link', 'show', 'dev', p.dev)).toContain(`qlen ${FD_TX_QUEUE_LENGTH}`);
    const body = 'hello\n';
    const srv = http.createServer((_req, res) => {
      res.setHeader('content-length', body.length);
      res.end(body);
    });
    const lst = p.stack.net.createServer((s: Socket) => srv.emit('connection', s));
    lst.listen({ port: 8080, host: STACK4, backlog: 4096 });
    await once(lst, 'listening');
    try {
      const r = await p.ns.run('sh', ['-c', `ulimit -n 65536; wrk -t2 -c${CONNS} -d4s --timeout 10s http://${STACK4}:8080/`], { timeoutMs: 40_000 });
      const out = r.stdout;
      expect(out, r.stderr).toMatch(/Requests\/sec/);
      expect(out).not.toMatch(/Socket errors/);
      expect(out).not.toMatch(/Non-2xx/);
      const n = Number(/(\d+) requests in/.exec(out)?.[1]);
      // Every connection got answers (wrk counts completed responses).
      expect(n).toBeGreaterThan(CONNS);
      expect(txDropped(p)).toBe(0);
      expect(p.ep.stats.txDropped).toBe(0);
    } finally {
      lst.close();
      srv.close();
    }
  }, 60_000);
});

/**
 * The slirp4netns JSON API (`--api-socket`) without root: a SandboxNetwork over an in-memory wire
 * to a guest tunstack stack, the API served on a real Unix socket in a temporary directory, host
 * clients through Node's net module. The request framing (one request per connection, answered
 * when the JSON is complete or at the client's EOF), its size bound, and what may be at the path.
 * The same API against real namespaces and programs: attach.test.ts (root).
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EthernetEndpoint, RealClock, Stack, Wire, parseMAC } from '../../src/index.js';
import { API_REQUEST_MAX, HostFwdApi, listenApiSocket } from '../../src/sandbox/api-socket.js';
import { SandboxNetwork } from '../../src/sandbox/network.js';

const closers: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

/** A sandbox network, a guest at 10.0.2.100 whose TCP port 80 answers "guest", and the API on a socket. */
async function setup(): Promise<{ path: string; dir: string }> {
  const clock = new RealClock();
  const wire = new Wire({ mtu: 1500, linkAddressA: parseMAC('52:55:0a:00:02:02') });
  const net = new SandboxNetwork({ link: wire.a, icmp: 'gateway', dnsUpstream: [], clock, ipv6: false });
  const guest = new Stack({ seed: 9, clock });
  const gnic = guest.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.b, { linkAddress: parseMAC('52:54:00:12:34:56') }) });
  gnic.addAddress('10.0.2.100/24');
  guest.addRoute({ destination: '0.0.0.0/0', gateway: '10.0.2.2', nic: 'eth0' });
  guest.net.createServer((c) => c.end('guest')).listen(80, '0.0.0.0');
  const api = new HostFwdApi(net);
  const dir = mkdtempSync(join(tmpdir(), 'tunstack-api-'));
  const path = join(dir, 'api.sock');
  const served = await listenApiSocket(path, api);
  closers.push(() => {
    served.close();
    api.close();
    net.close();
    guest.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, dir };
}

/** Write `parts` (pausing between them), optionally shut down the writing side; the raw answer. */
async function raw(path: string, parts: string[], shutdown = true): Promise<string> {
  const s = connect(path);
  let got = '';
  s.setEncoding('utf8');
  s.on('data', (d: string) => (got += d));
  s.on('error', () => {});
  const closed = once(s, 'close');
  await once(s, 'connect');
  for (const p of parts) {
    s.write(p);
    await new Promise((r) => setTimeout(r, 20));
  }
  if (shutdown) s.end();
  await closed;
  return got;
}

const request = async (path: string, req: object): Promise<unknown> => JSON.parse(await raw(path, [JSON.stringify(req)])) as unknown;

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const p = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/** What a host client of 127.0.0.1:port reads to the end, or its error code. */
function fetchText(port: number): Promise<string> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1');
    let s = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => (s += d));
    c.on('end', () => resolve(s));
    c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

describe('slirp4netns API socket', () => {
  it('add_hostfwd, list_hostfwd, remove_hostfwd carry host connections into the guest and stop', async () => {
    const { path } = await setup();
    const port = await freePort();
    expect(await request(path, { execute: 'add_hostfwd', arguments: { proto: 'tcp', host_addr: '127.0.0.1', host_port: port, guest_port: 80 } })).toEqual({ return: { id: 1 } });
    expect(await fetchText(port)).toBe('guest');
    expect(await request(path, { execute: 'list_hostfwd' })).toEqual({
      return: { entries: [{ id: 1, proto: 'tcp', host_addr: '127.0.0.1', host_port: port, guest_addr: '10.0.2.100', guest_port: 80 }] },
    });
    expect(await request(path, { execute: 'remove_hostfwd', arguments: { id: 1 } })).toEqual({ return: {} });
    expect(await fetchText(port)).toBe('ECONNREFUSED');
    expect(await request(path, { execute: 'list_hostfwd' })).toEqual({ return: { entries: [] } });
    expect(await request(path, { execute: 'add_hostfwd', arguments: { proto: 'tcp', host_addr: '::1', host_port: port, guest_port: 80 } })).toEqual({
      error: { desc: 'bad request: add_hostfwd: bad arguments.host_addr' },
    });
    expect(await request(path, { execute: 'add_hostfwd', arguments: { proto: 'tcp', host_port: 65536, guest_port: 80 } })).toEqual({
      error: { desc: 'bad request: add_hostfwd: bad arguments.host_port' },
    });
    expect(await request(path, { execute: 'remove_hostfwd', arguments: { id: '1' } })).toEqual({ error: { desc: 'bad request: remove_hostfwd: bad arguments.id' } });
  });

  it('answers a request split over writes, one whose client keeps its side open, and refuses an oversized one', async () => {
    const { path } = await setup();
    expect(JSON.parse(await raw(path, ['{"execute":', '"list_hostfwd"}']))).toEqual({ return: { entries: [] } });
    // No shutdown: answered once the JSON is complete, then the server closes.
    expect(JSON.parse(await raw(path, ['{"execute":"list_hostfwd"}'], false))).toEqual({ return: { entries: [] } });
    const big = `{"execute":"list_hostfwd","pad":"${'x'.repeat(API_REQUEST_MAX)}"}`;
    expect(JSON.parse(await raw(path, [big]))).toEqual({ error: { desc: `bad request: request too large (${API_REQUEST_MAX} bytes or more)` } });
    expect(JSON.parse(await raw(path, ['[1,2]']))).toEqual({ error: { desc: 'bad request: cannot parse JSON' } });
    expect(JSON.parse(await raw(path, ['{"execute":7}']))).toEqual({ error: { desc: 'bad request: no execute found' } });
  });

  it('replaces a socket left by a killed process, refuses any other file, removes its socket when closed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tunstack-api-'));
    closers.push(() => rmSync(dir, { recursive: true, force: true }));
    const stale = join(dir, 'stale.sock');
    expect(spawnSync('/usr/bin/python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(stale)})`]).status).toBe(0);
    const wire = new Wire({ mtu: 1500, linkAddressA: parseMAC('52:55:0a:00:02:02') });
    const net = new SandboxNetwork({ link: wire.a, icmp: 'gateway', dnsUpstream: [], ipv6: false });
    closers.push(() => net.close());
    const api = new HostFwdApi(net);
    const served = await listenApiSocket(stale, api);
    expect(await request(stale, { execute: 'list_hostfwd' })).toEqual({ return: { entries: [] } });
    // A live socket is not taken over.
    await expect(listenApiSocket(stale, api)).rejects.toMatchObject({ code: 'EEXIST' });
    served.close();
    expect(existsSync(stale)).toBe(false);
    const file = join(dir, 'file');
    writeFileSync(file, 'not a socket');
    await expect(listenApiSocket(file, api)).rejects.toMatchObject({ code: 'EEXIST' });
    expect(existsSync(file)).toBe(true);
  });
});

import dgramNode from 'node:dgram';
import { EventEmitter, once } from 'node:events';
import netNode from 'node:net';
import { Duplex } from 'node:stream';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { EthernetEndpoint, Stack, Wire, parseMAC } from '../../src/index.js';

/**
 * The same behaviours run against Node's own node:net / node:dgram over loopback (the reference)
 * and against tunstack's stack.net / stack.dgram (a client stack and a server stack on a Wire,
 * real clock). Each behaviour returns an observation; addresses and ports are normalised (every
 * IPv4 address of the run becomes A4, IPv6 A6, ports PORT) and the two must be equal, except the
 * behaviours in EXCEPTIONS, which README ("Node surfaces", "Where tunstack differs") lists too.
 */

type Net = typeof netNode;
type Dgram = typeof dgramNode;
type Obs = unknown;

interface Env {
  /** The module the server side uses, and the client side's. */
  srv: Net;
  cli: Net;
  srvUdp: Dgram;
  cliUdp: Dgram;
  /** The server's addresses (Node: loopback). */
  S4: string;
  S6: string;
  /** Everything to close after the behaviour. */
  track<T extends { destroy?: () => void; close?: () => void }>(x: T): T;
}

interface Behaviour {
  name: string;
  run(e: Env): Promise<Obs>;
}

/** Behaviours where tunstack knowingly differs from Node (README lists the same, with reasons). */
const EXCEPTIONS: Record<string, string> = {
  'socket instanceof net.Socket': 'a stack socket is a stream.Duplex with net.Socket\'s API, not a libuv handle (README: Node surfaces)',
};

// ---- small helpers ----

function listen(s: netNode.Server, ...args: unknown[]): Promise<number> {
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    (s.listen as (...a: unknown[]) => void)(...args, () => {
      s.off('error', reject);
      resolve((s.address() as netNode.AddressInfo).port);
    });
  });
}

function fields(e: unknown): Obs {
  const o = e as Record<string, unknown> & Error;
  return { keys: Object.keys(o), ...o, message: o.message, name: o.name, class: o.constructor.name };
}

function events(em: EventEmitter, names: string[]): Array<[string, ...unknown[]]> {
  const got: Array<[string, ...unknown[]]> = [];
  for (const n of names) em.on(n, (...a: unknown[]) => got.push([n, ...a.map((x) => (x instanceof Error ? (x as NodeJS.ErrnoException).code : x))]));
  return got;
}

async function closedPort(e: Env): Promise<number> {
  // A port nothing listens on: Node's loopback gives one by listening and closing; a stack has none open.
  const s = e.srv.createServer();
  const p = await listen(s, 0, e.S4);
  await new Promise((r) => s.close(r));
  return p;
}

async function pairOf(e: Env, host: string, opts: netNode.ServerOpts = {}, listenHost?: string): Promise<{ server: netNode.Server; client: netNode.Socket; accepted: netNode.Socket; port: number }> {
  const server = e.track(e.srv.createServer(opts));
  const port = await listen(server, 0, ...(listenHost === undefined ? [] : [listenHost]));
  const acc = once(server, 'connection');
  const client = e.track(e.cli.connect(port, host));
  await once(client, 'connect');
  const [accepted] = (await acc) as [netNode.Socket];
  e.track(accepted);
  return { server, client, accepted, port };
}

function ends(s: netNode.Socket): { addr: Obs; remote: Obs } {
  return {
    addr: s.address(),
    remote: { address: s.remoteAddress, port: s.remotePort, family: s.remoteFamily, localAddress: s.localAddress, localFamily: s.localFamily },
  };
}

/** A udp4 socket on the server bound to S4, collecting `n` messages. */
async function udpReceiver(e: Env, n: number, enc: BufferEncoding): Promise<{ port: number; got: string[]; all: Promise<void> }> {
  const r = e.track(e.srvUdp.createSocket('udp4'));
  r.bind(0, e.S4);
  await once(r, 'listening');
  const got: string[] = [];
  const all = new Promise<void>((res) =>
    r.on('message', (m: Buffer) => {
      got.push(m.toString(enc));
      if (got.length === n) res();
    }),
  );
  return { port: r.address().port, got, all };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

const BEHAVIOURS: Behaviour[] = [
  // ---- module functions and classes
  { name: 'isIP / isIPv4 / isIPv6', run: async (e) => ['198.18.0.1', '2001:db8::1', '::ffff:198.18.0.1', 'name', ''].map((a) => [e.cli.isIP(a), e.cli.isIPv4(a), e.cli.isIPv6(a)]) },
  { name: 'new Socket(): initial state', run: async (e) => { const s = new e.cli.Socket(); return { pending: s.pending, connecting: s.connecting, readyState: s.readyState, remoteAddress: s.remoteAddress, address: s.address(), bytesRead: s.bytesRead, bytesWritten: s.bytesWritten, timeout: s.timeout }; } },
  { name: 'socket instanceof stream.Duplex / EventEmitter', run: async (e) => { const s = new e.cli.Socket(); return [s instanceof Duplex, s instanceof EventEmitter, s instanceof e.cli.Socket]; } },
  { name: 'socket instanceof net.Socket', run: async (e) => new e.cli.Socket() instanceof netNode.Socket },
  { name: 'new Server(): listening false, address() null', run: async (e) => { const s = new e.srv.Server(); return [s.listening, s.address(), s instanceof EventEmitter, s instanceof e.srv.Server]; } },
  { name: 'ref()/unref() return this', run: async (e) => { const s = new e.cli.Socket(); const v = e.srv.createServer(); return [s.ref() === s, s.unref() === s, v.ref() === v, v.unref() === v]; } },

  // ---- listen and address()
  { name: 'listen(0) with no host: dual-stack ::', run: async (e) => { const s = e.track(e.srv.createServer()); await listen(s, 0); return [s.listening, s.address()]; } },
  { name: "listen(0, '0.0.0.0'): IPv4", run: async (e) => { const s = e.track(e.srv.createServer()); await listen(s, 0, '0.0.0.0'); return s.address(); } },
  { name: 'listen(0, host): address() of that host', run: async (e) => { const s = e.track(e.srv.createServer()); await listen(s, 0, e.S6); return s.address(); } },
  { name: "'listening' before the listen callback, on a later tick", run: async (e) => { const s = e.track(e.srv.createServer()); const seen: string[] = []; s.on('listening', () => seen.push('event')); s.listen(0, e.S4, () => seen.push('cb')); seen.push('sync'); await once(s, 'listening'); await tick(); return seen; } },
  { name: 'listen twice: ERR_SERVER_ALREADY_LISTEN thrown', run: async (e) => { const s = e.track(e.srv.createServer()); await listen(s, 0, e.S4); try { s.listen(0); return 'no throw'; } catch (x) { return [(x as NodeJS.ErrnoException).code, (x as Error).message]; } } },
  { name: 'close(cb) when not listening: ERR_SERVER_NOT_RUNNING and close', run: async (e) => { const s = e.srv.createServer(); const ev = events(s, ['close']); const err = await new Promise<Error | undefined>((r) => s.close(r)); return [fields(err), ev]; } },
  { name: 'close(cb) when listening: cb(undefined), address() null', run: async (e) => { const s = e.srv.createServer(); await listen(s, 0, e.S4); const err = await new Promise<Error | undefined>((r) => s.close(r)); return [err, s.listening, s.address()]; } },
  { name: 'EADDRINUSE: fields and message', run: async (e) => { const a = e.track(e.srv.createServer()); const p = await listen(a, 0); const b = e.track(e.srv.createServer()); const [err] = await Promise.all([once(b, 'error'), b.listen(p)]); return [fields(err[0]), b.listening]; } },
  { name: "'0.0.0.0' then '::' on one port: EADDRINUSE", run: async (e) => { const a = e.track(e.srv.createServer()); const p = await listen(a, 0, '0.0.0.0'); const b = e.track(e.srv.createServer()); b.listen(p, '::'); const [err] = await once(b, 'error'); return fields(err); } },
  { name: "'::' ipv6Only then '0.0.0.0' on one port: both listen", run: async (e) => { const a = e.track(e.srv.createServer()); const p = await listen(a, { port: 0, host: '::', ipv6Only: true }); const b = e.track(e.srv.createServer()); await listen(b, p, '0.0.0.0'); return [a.address(), b.address()]; } },

  // ---- connect
  { name: 'connect: state while connecting', run: async (e) => { const s = e.track(e.srv.createServer()); const p = await listen(s, 0, e.S4); const c = e.track(e.cli.connect(p, e.S4)); const st = { connecting: c.connecting, pending: c.pending, readyState: c.readyState }; await once(c, 'connect'); return [st, { connecting: c.connecting, pending: c.pending, readyState: c.readyState }]; } },
  { name: "connect: 'connect' then 'ready', callback, addresses", run: async (e) => { const s = e.track(e.srv.createServer()); const p = await listen(s, 0, e.S4); const seen: string[] = []; const c = e.track(e.cli.connect(p, e.S4, () => seen.push('cb'))); c.on('connect', () => seen.push('connect')); c.on('ready', () => seen.push('ready')); await once(c, 'ready'); return [seen, ends(c)]; } },
  { name: 'dual-stack listener sees an IPv4 peer as ::ffff:', run: async (e) => { const { accepted } = await pairOf(e, e.S4); return ends(accepted); } },
  { name: "listen(0, '::') accepts IPv6", run: async (e) => { const { accepted, client } = await pairOf(e, e.S6, {}, '::'); return [ends(accepted), ends(client)]; } },
  { name: "listen(0, '::') accepts IPv4", run: async (e) => { const { accepted } = await pairOf(e, e.S4, {}, '::'); return ends(accepted).remote; } },
  { name: 'connect to an IPv4-mapped address', run: async (e) => { const s = e.track(e.srv.createServer()); const p = await listen(s, 0); const c = e.track(e.cli.connect(p, `::ffff:${e.S4}`)); await once(c, 'connect'); return ends(c).remote; } },
  { name: 'ECONNREFUSED: fields, message, events, close(hadError)', run: async (e) => { const p = await closedPort(e); const c = e.cli.connect(p, e.S4); const ev = events(c, ['connect', 'error', 'close']); const [err] = await once(c, 'error'); await once(c, 'close'); return [fields(err), ev, c.destroyed, c.readyState]; } },
  { name: 'bad port: ERR_SOCKET_BAD_PORT thrown', run: async (e) => { try { e.cli.connect(70000, e.S4); return 'no throw'; } catch (x) { return [(x as Error).name, (x as NodeJS.ErrnoException).code]; } } },

  // ---- data, end, close
  { name: 'echo: bytes counters, end then close(false) on both sides', run: async (e) => { const { client, accepted } = await pairOf(e, e.S4); accepted.pipe(accepted); const cev = events(client, ['end', 'close']); const aev = events(accepted, ['end', 'close']); const got: Buffer[] = []; client.on('data', (d: Buffer) => got.push(d)); client.end('hello world'); await once(client, 'close'); await tick(); return [Buffer.concat(got).toString(), client.bytesRead, client.bytesWritten, cev, aev]; } },
  { name: 'half-close: readyState writeOnly / readOnly', run: async (e) => { const { client, accepted } = await pairOf(e, e.S4, { allowHalfOpen: true }); client.end(); await once(accepted, 'end'); await tick(); const a = accepted.readyState; accepted.end('bye'); await once(client, 'end'); return [a, client.readyState]; } },
  { name: 'allowHalfOpen server writes after the peer ended', run: async (e) => { const { client, accepted } = await pairOf(e, e.S4, { allowHalfOpen: true }); const got: Buffer[] = []; client.on('data', (d: Buffer) => got.push(d)); client.end(); await once(accepted, 'end'); accepted.end('late'); await once(client, 'close'); return Buffer.concat(got).toString(); } },
  { name: 'ECONNRESET: fields, message, close(true)', run: async (e) => { const { client, accepted } = await pairOf(e, e.S4); const ev = events(client, ['end', 'error', 'close']); accepted.resetAndDestroy(); const [err] = await once(client, 'error'); await once(client, 'close'); return [fields(err), ev]; } },
  { name: 'destroy() before connect: close(false), no error', run: async (e) => { const c = new e.cli.Socket(); const ev = events(c, ['error', 'close']); c.destroy(); await once(c, 'close'); return [ev, c.destroyed]; } },
  { name: 'destroy(err): error then close(true)', run: async (e) => { const { client } = await pairOf(e, e.S4); const ev = events(client, ['error', 'close']); client.destroy(Object.assign(new Error('boom'), { code: 'EBOOM' })); await once(client, 'close'); return ev; } },
  { name: 'write after end: ERR_STREAM_WRITE_AFTER_END', run: async (e) => { const { client } = await pairOf(e, e.S4); client.end(); const err = await new Promise<Error | null | undefined>((r) => { client.on('error', () => {}); client.write('x', r); }); return (err as NodeJS.ErrnoException).code; } },
  { name: 'setNoDelay/setKeepAlive/setTimeout return this', run: async (e) => { const { client } = await pairOf(e, e.S4); return [client.setNoDelay(true) === client, client.setKeepAlive(true, 1000) === client, client.setTimeout(0) === client]; } },
  { name: "setTimeout on a server socket: 'timeout', socket stays open", run: async (e) => { const { accepted } = await pairOf(e, e.S4); accepted.setTimeout(30); await once(accepted, 'timeout'); const r = [accepted.timeout, accepted.destroyed, accepted.readyState]; accepted.setTimeout(0); return [...r, accepted.timeout]; } },

  // ---- server bookkeeping
  { name: 'getConnections(cb)', run: async (e) => { const { server } = await pairOf(e, e.S4); return new Promise((r) => server.getConnections((err, n) => r([err, n]))); } },
  { name: 'close(cb) waits for open connections', run: async (e) => { const { server, client } = await pairOf(e, e.S4); const seen: string[] = []; server.close(() => seen.push('closed')); await tick(); seen.push(`listening=${server.listening}`); client.end(); client.on('close', () => seen.push('client closed')); await once(server, 'close'); return seen.filter((x) => x !== 'client closed').concat(seen.includes('closed') ? [] : ['no cb']); } },
  { name: "'connection' arrives after 'connect' is possible; accepted socket state", run: async (e) => { const { accepted } = await pairOf(e, e.S4); return [accepted.connecting, accepted.pending, accepted.readyState, typeof accepted.remotePort]; } },

  // ---- lookup
  { name: 'lookup: Node\'s options (all addresses) and connect', run: async (e) => { const s = e.track(e.srv.createServer()); const p = await listen(s, 0, e.S4); const seen: unknown[] = []; const c = e.track(e.cli.connect({ port: p, host: 'svc.test', lookup: (h: string, o: object, cb: (e: null, r: Array<{ address: string; family: number }>) => void) => { seen.push(h, o); cb(null, [{ address: e.S4, family: 4 }]); } } as netNode.NetConnectOpts)); await once(c, 'connect'); return [seen, c.remoteAddress]; } },
  { name: 'lookup with family 4: options', run: async (e) => { const s = e.track(e.srv.createServer()); const p = await listen(s, 0, e.S4); const seen: unknown[] = []; const c = e.track(e.cli.connect({ port: p, host: 'svc.test', family: 4, lookup: (h: string, o: object, cb: (e: null, a: string, f: number) => void) => { seen.push(h, o); cb(null, e.S4, 4); } } as netNode.NetConnectOpts)); await once(c, 'connect'); return seen; } },
  { name: 'lookup error: passed through, close(true)', run: async (e) => { const c = e.cli.connect({ port: 80, host: 'svc.test', lookup: (_h: string, _o: object, cb: (e: Error) => void) => cb(Object.assign(new Error('no such name'), { code: 'ENOTFOUND' })) } as netNode.NetConnectOpts); const ev = events(c, ['error', 'close']); await once(c, 'close'); return ev; } },

  // ---- dgram
  { name: 'dgram bind(0): listening, address()', run: async (e) => { const s = e.track(e.srvUdp.createSocket('udp4')); s.bind(0, e.S4); await once(s, 'listening'); const a = s.address(); return { ...a, port: typeof a.port }; } },
  { name: 'dgram buffer sizes before bind: ERR_SOCKET_BUFFER_SIZE', run: async (e) => { const s = e.track(e.cliUdp.createSocket('udp4')); const out: Obs[] = []; for (const f of [() => s.getRecvBufferSize(), () => s.getSendBufferSize(), () => s.setRecvBufferSize(1000), () => s.setSendBufferSize(1000)]) { try { f(); out.push('no throw'); } catch (x) { out.push(fields(x)); } } return out; } },
  { name: 'dgram bad buffer size: ERR_SOCKET_BAD_BUFFER_SIZE', run: async (e) => { const s = e.track(e.cliUdp.createSocket('udp4')); const out: Obs[] = []; for (const v of [-1, 0, 1.5]) { try { s.setRecvBufferSize(v); out.push('no throw'); } catch (x) { out.push([(x as Error).name, (x as NodeJS.ErrnoException).code, (x as Error).message]); } } return out; } },
  { name: 'dgram set/get buffer sizes (Linux doubles, clamps at the minimum)', run: async (e) => { const s = e.track(e.srvUdp.createSocket('udp4')); s.bind(0, e.S4); await once(s, 'listening'); const out: number[] = [s.getRecvBufferSize(), s.getSendBufferSize()]; for (const v of [10000, 1]) { s.setRecvBufferSize(v); s.setSendBufferSize(v); out.push(s.getRecvBufferSize(), s.getSendBufferSize()); } return out; } },
  { name: 'dgram createSocket({ recvBufferSize, sendBufferSize })', run: async (e) => { const s = e.track(e.srvUdp.createSocket({ type: 'udp4', recvBufferSize: 50000, sendBufferSize: 60000 })); s.bind(0, e.S4); await once(s, 'listening'); return [s.getRecvBufferSize(), s.getSendBufferSize()]; } },
  { name: 'dgram getSendQueueSize/Count, ref/unref', run: async (e) => { const s = e.track(e.cliUdp.createSocket('udp4')); return [s.getSendQueueSize(), s.getSendQueueCount(), s.ref() === s, s.unref() === s]; } },
  {
    name: 'dgram send argument forms',
    run: async (e) => {
      const { port, got, all } = await udpReceiver(e, 6, 'hex');
      const s = e.track(e.cliUdp.createSocket('udp4'));
      const cbs: unknown[] = [];
      const send = s.send.bind(s) as (...a: unknown[]) => void;
      send(new DataView(new Uint8Array([1, 2, 3]).buffer), port, e.S4);
      send([Buffer.from('a'), 'b', new Uint8Array([99])], port, e.S4);
      send(Buffer.from('hello'), 1, 3, port, e.S4, (err: unknown, n: number) => cbs.push(['offset', err, n]));
      send('str', port, e.S4, (err: unknown, n: number) => cbs.push(['string', err, n]));
      send(new Uint16Array([0x4142]), port, e.S4);
      send('xyz', 0, 1, port, e.S4);
      await all;
      await tick();
      return [got.sort(), cbs];
    },
  },
  {
    name: 'dgram connected send forms; address on a connected socket throws',
    run: async (e) => {
      // Node sends the third too: (msg, port, address) on a connected socket reads as (msg, cb).
      const { port, got, all } = await udpReceiver(e, 3, 'utf8');
      const s = e.track(e.cliUdp.createSocket('udp4'));
      s.connect(port, e.S4);
      await once(s, 'connect');
      const cbs: unknown[] = [];
      const send = s.send.bind(s) as (...a: unknown[]) => void;
      send('one', (err: unknown, n: number) => cbs.push([err, n]));
      send(Buffer.from('xtwox'), 1, 3, (err: unknown, n: number) => cbs.push([err, n]));
      let thrown: unknown = 'no throw';
      try { send('three', port, e.S4); } catch (x) { thrown = [(x as NodeJS.ErrnoException).code, (x as Error).message]; }
      await all;
      await tick();
      return [got.sort(), cbs, thrown];
    },
  },
  {
    name: 'dgram udp6 (dual stack) receives IPv4 as ::ffff:',
    run: async (e) => {
      const r = e.track(e.srvUdp.createSocket('udp6'));
      r.bind(0);
      await once(r, 'listening');
      const s = e.track(e.cliUdp.createSocket('udp4'));
      const got = once(r, 'message');
      s.send('hi', r.address().port, e.S4);
      const [m, rinfo] = (await got) as [Buffer, dgramNode.RemoteInfo];
      return [m.toString(), rinfo.address, rinfo.family, r.address().address];
    },
  },
];

// ---- the two environments

function nodeEnv(track: Env['track']): Env {
  return { srv: netNode, cli: netNode, srvUdp: dgramNode, cliUdp: dgramNode, S4: '127.0.0.1', S6: '::1', track };
}

const stacks: Stack[] = [];
function stackEnv(track: Env['track']): Env {
  const wire = new Wire();
  const c = new Stack({ seed: 41 });
  const s = new Stack({ seed: 42 });
  const cn = c.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.a, { linkAddress: parseMAC('02:00:00:00:04:01') }) });
  const sn = s.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(wire.b, { linkAddress: parseMAC('02:00:00:00:04:02') }) });
  cn.addAddress('198.18.0.1/24');
  cn.addAddress('2001:db8::1/64', { nodad: true });
  sn.addAddress('198.18.0.2/24');
  sn.addAddress('2001:db8::2/64', { nodad: true });
  stacks.push(c, s);
  return {
    srv: s.net as unknown as Net,
    cli: c.net as unknown as Net,
    srvUdp: s.dgram as unknown as Dgram,
    cliUdp: c.dgram as unknown as Dgram,
    S4: '198.18.0.2',
    S6: '2001:db8::2',
    track,
  };
}

const ADDRESSES: Array<[RegExp, string]> = [
  [/2001:db8::[12](?![0-9a-f])/g, 'A6'],
  [/(?<![0-9a-f:])::1(?![0-9a-f.:])/g, 'A6'],
  [/\b(?:198\.18\.0\.[12]|127\.0\.0\.1)\b/g, 'A4'],
];

/** Addresses to A4/A6 and ports to PORT, so both runs compare. */
function normalise(v: unknown, key = ''): unknown {
  if (typeof v === 'number' && /port/i.test(key) && v >= 1024) return 'PORT';
  if (typeof v === 'string') {
    let s = v;
    for (const [re, tok] of ADDRESSES) s = s.replace(re, tok);
    return s.replace(/:(\d{4,5})\b/g, ':PORT');
  }
  if (Array.isArray(v)) return v.map((x) => normalise(x, key));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalise(x, k)]));
  return v;
}

async function observe(make: (t: Env['track']) => Env, b: Behaviour): Promise<Obs> {
  const open: Array<{ destroy?: () => void; close?: () => void }> = [];
  const env = make((x) => {
    open.push(x);
    // Accepted sockets are closed too, and their errors after the behaviour are expected.
    if (x instanceof EventEmitter) {
      x.on('error', () => {});
      x.on('connection', (c: EventEmitter & { destroy(): void }) => {
        c.on('error', () => {});
        open.push(c);
      });
    }
    return x;
  });
  try {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<Obs>((r) => (timer = setTimeout(() => r({ timedOut: true }), 3000)));
    try {
      return normalise(await Promise.race([b.run(env), timeout]));
    } finally {
      clearTimeout(timer);
    }
  } catch (e) {
    return { threw: normalise(fields(e)) };
  } finally {
    for (const x of open.reverse()) {
      try {
        if (x instanceof EventEmitter) x.on('error', () => {});
        if (typeof x.destroy === 'function') x.destroy();
        else x.close?.();
      } catch {
        // already closed
      }
    }
  }
}

afterEach(() => {
  while (stacks.length) stacks.pop()!.close();
});

const differences: string[] = [];
afterAll(() => {
  // A table of what differs, for the log (each also fails its own test unless listed).
  if (differences.length) console.log(`node vs tunstack differences:\n${differences.join('\n')}`);
});

describe('stack.net / stack.dgram against node:net / node:dgram over loopback', () => {
  it('has ~40 behaviours, and every exception names a behaviour', () => {
    expect(BEHAVIOURS.length).toBeGreaterThanOrEqual(40);
    for (const k of Object.keys(EXCEPTIONS)) expect(BEHAVIOURS.some((b) => b.name === k)).toBe(true);
  });

  for (const b of BEHAVIOURS) {
    it(b.name, async () => {
      const ref = await observe(nodeEnv, b);
      const got = await observe(stackEnv, b);
      const same = JSON.stringify(ref) === JSON.stringify(got);
      if (!same) console.log(`DIFF ${b.name}\n  node:     ${JSON.stringify(ref)}\n  tunstack: ${JSON.stringify(got)}`);
      if (!same) differences.push(`- ${b.name}${EXCEPTIONS[b.name] ? ' (listed)' : ''}\n  node:     ${JSON.stringify(ref)}\n  tunstack: ${JSON.stringify(got)}`);
      if (EXCEPTIONS[b.name]) expect(same).toBe(false);
      else expect(got).toEqual(ref);
    });
  }
});

import dgram from 'node:dgram';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ChannelEndpoint,
  EthernetEndpoint,
  FaultEndpoint,
  IFF_NO_PI,
  IFF_TUN,
  ManualClock,
  Stack,
  TunstackError,
  Wire,
  type NIC,
} from '../../src/index.js';
import { PcapReader, PcapWriter } from '../../src/pcap/index.js';
import { Network } from '../../src/sim/index.js';

/**
 * Issue 11, "API arguments": every public entry point checks its arguments. A wrong type or an
 * out-of-range value gives a TunstackError (EINVAL naming the argument, EBUSY for a held
 * endpoint) or, on the node:dgram / node:net surfaces, the error Node's own module gives (an
 * ERR_* code); never a TypeError/RangeError from inside, never silent acceptance.
 */

const toClose: Array<{ close(): void }> = [];
afterEach(() => {
  for (const c of toClose.splice(0)) c.close();
});

function world(): { stack: Stack; nic: NIC; clock: ManualClock } {
  const clock = new ManualClock();
  const stack = new Stack({ clock, seed: 7 });
  toClose.push(stack);
  const nic = stack.createNIC({ name: 'eth0', endpoint: new ChannelEndpoint({ mtu: 1500 }) });
  nic.addAddress('198.18.0.1/24');
  return { stack, nic, clock };
}

// ---- pools of wrong values, by what the argument is ----

const sym = Symbol('bad');
const NOT_OBJECT = [null, 42, NaN, 'options', sym, [], true, -1];
const NOT_NUMBER = [null, NaN, Infinity, -Infinity, {}, [], sym, '7', true, 2 ** 64];
const NOT_INTEGER = [...NOT_NUMBER, 1.5, -0.5, 2 ** 53 + 2];
const NOT_ADDRESS = [null, 42, NaN, {}, [], sym, true, '', 'not-an-address', '1.2.3', '1.2.3.256', '::g', new Uint8Array(3), -1];
const NOT_BYTES = [null, 42, NaN, {}, [1, 2], sym, 'bytes', true, new ArrayBuffer(4)];
const NOT_STRING = [null, 42, NaN, {}, [], sym, true];
const NOT_NIC_REF = [null, 0, -1, 1.5, NaN, {}, [], sym, true];

/** Node's ports may also be numeric strings. */
const NODE_PORT_OK = ['7'];

/** The fixed values behind each arbitrary: every one of them is also tried in turn. */
const fixed = new WeakMap<fc.Arbitrary<unknown>, readonly unknown[]>();
function pool(values: readonly unknown[]): fc.Arbitrary<unknown> {
  const a = fc.constantFrom(...values);
  fixed.set(a, values);
  return a;
}

/** Integers just outside min..max, plus a few far away, plus every non-integer. */
function outside(min: number, max: number, except: readonly unknown[] = []): fc.Arbitrary<unknown> {
  const values = [min - 1, max + 1, ...NOT_INTEGER].filter((v) => !except.includes(v));
  const a = fc.oneof(fc.constantFrom<unknown>(...values), fc.integer({ min: -(2 ** 40), max: min - 1 }), fc.integer({ min: max + 1, max: 2 ** 40 }));
  fixed.set(a, values);
  return a;
}

interface Case {
  name: string;
  /** Substring the message must contain (the argument's name). */
  arg: string;
  bad: fc.Arbitrary<unknown>;
  call(v: unknown): unknown;
  /** A node:dgram / node:net surface: Node's ERR_* errors are right too. */
  node?: boolean;
}

/** Each public entry point with a wrong value for one argument (`as never`: deliberately ill-typed). */
function cases(): Case[] {
  const { stack, nic } = world();
  const tun = stack.openTun();
  tun.setIff({ name: 'tun7', flags: IFF_TUN | IFF_NO_PI });
  toClose.push(tun);
  const udp = stack.udp();
  const tcp = stack.tcp();
  const raw = stack.raw({ family: 4, protocol: 253 });
  toClose.push(raw);
  const writer = PcapWriter.inMemory();
  const sock = stack.dgram.createSocket('udp4');
  // Errors of a bind or connect that got through come as 'error' events, as Node's do.
  const dsock = (): ReturnType<Stack['dgram']['createSocket']> => stack.dgram.createSocket('udp4').on('error', () => {});
  const net = new Network({ ipv6: false });
  toClose.push(net);
  const h1 = net.host('h1');
  const ep = (): ChannelEndpoint => new ChannelEndpoint();
  return [
    { name: 'new Stack(options)', arg: 'options', bad: pool(NOT_OBJECT), call: (v) => new Stack(v as never) },
    { name: 'new Stack({defaultTtl})', arg: 'options.defaultTtl', bad: outside(1, 255), call: (v) => new Stack({ defaultTtl: v as never }) },
    { name: 'new Stack({seed})', arg: 'options.seed', bad: pool(NOT_INTEGER), call: (v) => new Stack({ seed: v as never }) },
    { name: 'createNIC(options)', arg: 'options', bad: pool([undefined, ...NOT_OBJECT]), call: (v) => stack.createNIC(v as never) },
    { name: 'createNIC({endpoint})', arg: 'options.endpoint', bad: pool([undefined, ...NOT_OBJECT, {}]), call: (v) => stack.createNIC({ endpoint: v as never }) },
    { name: 'createNIC({mtu})', arg: 'options.mtu', bad: outside(68, 0x7fffffff), call: (v) => stack.createNIC({ endpoint: ep(), mtu: v as never }) },
    { name: 'createNIC({name})', arg: 'options.name', bad: pool(NOT_STRING), call: (v) => stack.createNIC({ endpoint: ep(), name: v as never }) },
    { name: 'removeNIC(idOrName)', arg: 'idOrName', bad: pool([undefined, ...NOT_NIC_REF]), call: (v) => stack.removeNIC(v as never) },
    { name: 'nic(idOrName)', arg: 'idOrName', bad: pool([undefined, ...NOT_NIC_REF]), call: (v) => stack.nic(v as never) },
    { name: 'addRoute(spec)', arg: 'spec', bad: pool([undefined, ...NOT_OBJECT]), call: (v) => stack.addRoute(v as never) },
    {
      name: 'addRoute({destination})',
      arg: 'spec.destination',
      bad: pool([undefined, ...NOT_ADDRESS.filter((x) => x !== '' || true), '198.18.9.0/33']),
      call: (v) => stack.addRoute({ destination: v as never, nic: 'eth0' }),
    },
    { name: 'addRoute({gateway})', arg: 'spec.gateway', bad: pool(NOT_ADDRESS), call: (v) => stack.addRoute({ destination: '198.19.0.0/16', gateway: v as never, nic: 'eth0' }) },
    { name: 'addRoute({nic})', arg: 'spec.nic', bad: pool([undefined, ...NOT_NIC_REF]), call: (v) => stack.addRoute({ destination: '198.19.0.0/16', nic: v as never }) },
    { name: 'addRoute({metric})', arg: 'spec.metric', bad: outside(0, 0xffffffff), call: (v) => stack.addRoute({ destination: '198.19.0.0/16', nic: 'eth0', metric: v as never }) },
    { name: 'removeRoute(spec)', arg: 'spec', bad: pool([undefined, ...NOT_OBJECT]), call: (v) => stack.removeRoute(v as never) },
    { name: 'ping(host)', arg: 'host', bad: pool([undefined, ...NOT_ADDRESS]), call: (v) => stack.ping(v as never) },
    { name: 'ping(host, options)', arg: 'options', bad: pool(NOT_OBJECT), call: (v) => stack.ping('198.18.0.2', v as never) },
    { name: 'ping({ttl})', arg: 'options.ttl', bad: outside(1, 255), call: (v) => stack.ping('198.18.0.2', { ttl: v as never }) },
    { name: 'ping({timeoutMs})', arg: 'options.timeoutMs', bad: pool([0, -5, ...NOT_NUMBER, 2 ** 31]), call: (v) => stack.ping('198.18.0.2', { timeoutMs: v as never }) },
    { name: 'ping({size})', arg: 'options.size', bad: outside(0, 65507), call: (v) => stack.ping('198.18.0.2', { size: v as never }) },
    { name: 'ping({id})', arg: 'options.id', bad: outside(0, 0xffff), call: (v) => stack.ping('198.18.0.2', { id: v as never }) },
    { name: 'ping v6({ttl})', arg: 'options.ttl', bad: outside(1, 255), call: (v) => stack.ping('2001:db8::2', { ttl: v as never }) },
    { name: 'udp(options)', arg: 'options', bad: pool(NOT_OBJECT), call: (v) => stack.udp(v as never) },
    { name: 'udp({family})', arg: 'options.family', bad: pool([0, 5, '4', null, NaN, sym]), call: (v) => stack.udp({ family: v as never }) },
    { name: 'tcp(options)', arg: 'options', bad: pool(NOT_OBJECT), call: (v) => stack.tcp(v as never) },
    { name: 'tcp({receiveBufferSize})', arg: 'options.receiveBufferSize', bad: outside(1, 0x7fffffff), call: (v) => stack.tcp({ receiveBufferSize: v as never }) },
    { name: 'raw(options)', arg: 'options', bad: pool([undefined, ...NOT_OBJECT]), call: (v) => stack.raw(v as never) },
    { name: 'pingSocket(options)', arg: 'options', bad: pool(NOT_OBJECT), call: (v) => stack.pingSocket(v as never) },
    { name: 'packetTap(options)', arg: 'options', bad: pool(NOT_OBJECT), call: (v) => stack.packetTap(v as never) },
    { name: 'packetTap({direction})', arg: 'options.direction', bad: pool([null, 'sideways', 1, sym, {}]), call: (v) => stack.packetTap({ direction: v as never }) },
    { name: 'raw({queueLength})', arg: 'options.queueLength', bad: outside(1, 0x7fffffff), call: (v) => stack.raw({ family: 4, protocol: 17, queueLength: v as never }) },
    { name: 'raw.send(datagram)', arg: 'datagram', bad: pool([undefined, ...NOT_BYTES]), call: (v) => raw.send(v as never) },
    { name: 'pingSocket.bind(address, id)', arg: 'id', bad: outside(0, 0xffff), call: (v) => stack.pingSocket().bind(null, v as never) },
    { name: 'pingSocket.send(message)', arg: 'message', bad: pool([undefined, ...NOT_BYTES]), call: (v) => stack.pingSocket().send(v as never, '198.18.0.2') },
    { name: 'pingSocket.connect(address)', arg: 'address', bad: pool([undefined, ...NOT_ADDRESS]), call: (v) => stack.pingSocket().connect(v as never) },
    { name: 'nic.addAddress(addr)', arg: 'addr', bad: pool([undefined, ...NOT_ADDRESS, '198.18.0.9/33', { address: '198.18.0.9', prefixLength: 24 }, { address: new Uint8Array(4), prefixLength: 33 }]), call: (v) => nic.addAddress(v as never) },
    { name: 'nic.addAddress(addr, options)', arg: 'options', bad: pool(NOT_OBJECT), call: (v) => nic.addAddress('198.18.0.9/24', v as never) },
    { name: 'nic.removeAddress(addr)', arg: 'addr', bad: pool([undefined, ...NOT_ADDRESS]), call: (v) => nic.removeAddress(v as never) },
    { name: 'nic.mtu =', arg: 'mtu', bad: pool(NOT_INTEGER), call: (v) => (nic.mtu = v as never) },
    { name: 'udp.bind(address)', arg: 'address', bad: pool(NOT_ADDRESS.filter((x) => x !== '' && x !== null)), call: (v) => stack.udp().bind(v as never, 0) },
    { name: 'udp.bind(address, port)', arg: 'port', bad: outside(0, 65535), call: (v) => stack.udp().bind(null, v as never) },
    { name: 'udp.connect(address)', arg: 'address', bad: pool([undefined, ...NOT_ADDRESS]), call: (v) => udp.connect(v as never, 53) },
    { name: 'udp.connect(address, port)', arg: 'port', bad: outside(0, 65535), call: (v) => udp.connect('198.18.0.2', v as never) },
    { name: 'udp.send(data)', arg: 'data', bad: pool([undefined, ...NOT_BYTES]), call: (v) => udp.send(v as never, 53, '198.18.0.2') },
    { name: 'udp.send(data, port, address)', arg: 'address', bad: pool(NOT_ADDRESS), call: (v) => udp.send(new Uint8Array(1), 53, v as never) },
    { name: 'tcp.bind(address)', arg: 'address', bad: pool([undefined, ...NOT_ADDRESS.filter((x) => x !== '' && x !== null)]), call: (v) => stack.tcp().bind(v as never, 0) },
    { name: 'tcp.connect(address)', arg: 'address', bad: pool([undefined, ...NOT_ADDRESS, new Uint8Array(4)]), call: (v) => tcp.connect(v as never, 80) },
    { name: 'tcp.connect(address, port)', arg: 'port', bad: outside(0, 65535), call: (v) => tcp.connect('198.18.0.2', v as never) },
    { name: 'tcp.write(data)', arg: 'data', bad: pool([undefined, ...NOT_BYTES]), call: (v) => tcp.write(v as never) },
    { name: 'tun.write(bytes)', arg: 'bytes', bad: pool([undefined, ...NOT_BYTES]), call: (v) => tun.write(v as never) },
    { name: 'tun.readInto(buf)', arg: 'buf', bad: pool([undefined, ...NOT_BYTES]), call: (v) => tun.readInto(v as never) },
    { name: 'tun.readInto(buf, off)', arg: 'off', bad: pool([null, NaN, {}, sym, '1', Infinity]), call: (v) => tun.readInto(new Uint8Array(64), v as never) },
    { name: 'tun.read(max)', arg: 'max', bad: pool([null, NaN, {}, sym, '1', -1]), call: (v) => tun.read(v as never) },
    { name: 'tun.ioctl(request)', arg: 'request', bad: pool([undefined, ...NOT_INTEGER]), call: (v) => tun.ioctl(v as never) },
    { name: 'tun.setOffload(flags)', arg: 'flags', bad: pool(NOT_INTEGER), call: (v) => tun.setOffload(v as never) },
    { name: 'tun.mtu =', arg: 'mtu', bad: outside(68, 65535), call: (v) => (tun.mtu = v as never) },
    { name: 'new PcapWriter(sink)', arg: 'sink', bad: pool([undefined, ...NOT_OBJECT, {}]), call: (v) => new PcapWriter(v as never) },
    { name: 'new PcapWriter(sink, options)', arg: 'options', bad: pool(NOT_OBJECT), call: (v) => new PcapWriter({ write: () => {} }, v as never) },
    { name: 'new PcapWriter({snapLength})', arg: 'options.snapLength', bad: outside(1, 0x7fffffff), call: (v) => new PcapWriter({ write: () => {} }, { snapLength: v as never }) },
    { name: 'PcapWriter.write(packet)', arg: 'packet', bad: pool([undefined, ...NOT_BYTES]), call: (v) => writer.write(v as never, 0) },
    { name: 'PcapWriter.write(packet, timeMs)', arg: 'timeMs', bad: pool([undefined, -1, ...NOT_NUMBER]), call: (v) => writer.write(new Uint8Array(1), v as never) },
    { name: 'PcapReader.fromBytes(bytes)', arg: 'bytes', bad: pool([undefined, ...NOT_BYTES]), call: (v) => PcapReader.fromBytes(v as never) },
    { name: 'PcapReader.open(path)', arg: 'path', bad: pool([undefined, ...NOT_STRING]), call: (v) => PcapReader.open(v as never) },
    { name: 'PcapReader options', arg: 'options', bad: pool(NOT_OBJECT), call: (v) => PcapReader.fromBytes(new Uint8Array(24), v as never) },
    { name: 'new Wire(options)', arg: 'options', bad: pool(NOT_OBJECT), call: (v) => new Wire(v as never) },
    { name: 'new Wire({mtu})', arg: 'options.mtu', bad: outside(1, 0x7fffffff), call: (v) => new Wire({ mtu: v as never }) },
    { name: 'new Wire({queueLength})', arg: 'options.queueLength', bad: outside(1, 0x7fffffff), call: (v) => new Wire({ queueLength: v as never }) },
    { name: 'new ChannelEndpoint(options)', arg: 'options', bad: pool(NOT_OBJECT), call: (v) => new ChannelEndpoint(v as never) },
    { name: 'new ChannelEndpoint({queueLength})', arg: 'options.queueLength', bad: outside(1, 0x7fffffff), call: (v) => new ChannelEndpoint({ queueLength: v as never }) },
    { name: 'new EthernetEndpoint(inner)', arg: 'inner', bad: pool([undefined, ...NOT_OBJECT, {}]), call: (v) => new EthernetEndpoint(v as never) },
    {
      name: 'new EthernetEndpoint({linkAddress})',
      arg: 'options.linkAddress',
      bad: pool([null, 42, '02:00:00:00:00:01', {}, sym]),
      call: (v) => new EthernetEndpoint(new ChannelEndpoint({ wireFormat: 'ethernet' }), { linkAddress: v as never }),
    },
    { name: 'new FaultEndpoint(inner)', arg: 'inner', bad: pool([undefined, ...NOT_OBJECT, {}]), call: (v) => new FaultEndpoint(v as never, { clock: new ManualClock() }) },
    { name: 'new FaultEndpoint(inner, options)', arg: 'options', bad: pool([undefined, ...NOT_OBJECT]), call: (v) => new FaultEndpoint(ep(), v as never) },
    { name: 'new FaultEndpoint({loss})', arg: 'loss', bad: pool([-0.1, 1.1, ...NOT_NUMBER]), call: (v) => new FaultEndpoint(ep(), { clock: new ManualClock(), loss: v as never }) },
    { name: 'new Network(options)', arg: 'options', bad: pool(NOT_OBJECT), call: (v) => new Network(v as never) },
    { name: 'network.host(name)', arg: 'name', bad: pool([undefined, ...NOT_STRING, '']), call: (v) => net.host(v as never) },
    { name: 'network.link(a, b)', arg: 'b', bad: pool([undefined, ...NOT_OBJECT, {}]), call: (v) => net.link(h1, v as never) },
    { name: 'network.runSync(untilMs)', arg: 'untilMs', bad: pool([undefined, -1, ...NOT_NUMBER]), call: (v) => net.runSync(v as never) },
    // node:dgram / node:net surfaces: Node's own errors.
    { name: 'dgram.createSocket(type)', arg: '', node: true, bad: pool([undefined, ...NOT_OBJECT, 'udp5', {}]), call: (v) => stack.dgram.createSocket(v as never) },
    { name: 'dgram send(msg)', arg: '', node: true, bad: pool([undefined, ...NOT_BYTES.filter((x) => typeof x !== 'string')]), call: (v) => sock.send(v as never, 53, '198.18.0.2') },
    { name: 'dgram send(msg, port)', arg: '', node: true, bad: outside(1, 65535, NODE_PORT_OK), call: (v) => sock.send('x', v as never, '198.18.0.2') },
    { name: 'dgram connect(port)', arg: '', node: true, bad: outside(1, 65535, NODE_PORT_OK), call: (v) => dsock().connect(v as never, '198.18.0.2') },
    // Node's bind also takes null, [] and {} (port 0) and numeric strings; the rest it coerces, tunstack refuses.
    {
      name: 'dgram bind(port)',
      arg: '',
      node: true,
      bad: pool([-1, 65536, 70000, NaN, 1.5, Infinity, sym, true, 'abc', 2 ** 53]),
      call: (v) => dsock().bind(v as never),
    },
    { name: 'dgram setTTL(ttl)', arg: '', node: true, bad: outside(1, 255), call: (v) => sock.setTTL(v as never) },
    // Node accepts 0 (Linux then stores its minimum).
    { name: 'dgram setRecvBufferSize(size)', arg: '', node: true, bad: outside(0, 0x7fffffff), call: (v) => sock.setRecvBufferSize(v as never) },
    { name: 'net.connect(port)', arg: '', node: true, bad: pool([undefined, null, -1, 70000, NaN, {}, sym, 1.5]), call: (v) => stack.net.connect(v as never) },
    { name: 'net.createServer(options)', arg: '', node: true, bad: pool([42, 'x', sym, true]), call: (v) => stack.net.createServer(v as never) },
    { name: 'net listen(port)', arg: '', node: true, bad: pool([-1, 70000, NaN, 1.5, { port: -1 }, { port: sym }, {}]), call: (v) => stack.net.createServer().listen(v as never) },
    { name: 'net setTimeout(ms)', arg: '', node: true, bad: pool([null, -1, NaN, Infinity, 'x', {}]), call: (v) => stack.net.socket().setTimeout(v as never) },
  ];
}

const ACCEPTED_CODES = new Set(['EINVAL', 'EBUSY', 'EFAULT', 'EAFNOSUPPORT']);

/** Why `err` is not an acceptable answer to `c` with `v`, or null when it is. */
function wrong(c: Case, v: unknown, err: unknown): string | null {
  const shown = typeof v === 'symbol' || typeof v === 'number' ? String(v) : (() => { try { return JSON.stringify(v) ?? String(v); } catch { return String(v); } })();
  if (err === undefined) return `${c.name} accepted ${shown}`;
  if (err instanceof TunstackError) {
    if (!ACCEPTED_CODES.has(err.code)) return `${c.name}(${shown}): code ${err.code} (${err.message})`;
    if (!err.message.includes(c.arg)) return `${c.name}(${shown}): message does not name "${c.arg}": ${err.message}`;
    return null;
  }
  const code = (err as { code?: unknown }).code;
  if (c.node === true && typeof code === 'string' && code.startsWith('ERR_')) return null;
  return `${c.name}(${shown}) threw ${(err as Error)?.constructor?.name} ${String((err as Error)?.message)}`;
}

/** What a call threw or its promise rejected with; undefined when it was accepted (or left pending). */
async function outcome(f: () => unknown): Promise<unknown> {
  try {
    const r = f();
    if (r instanceof Promise) {
      // A check rejects at once; a promise still pending after the event loop turned took the value.
      const pending = new Promise<undefined>((res) => setImmediate(() => res(undefined)));
      return await Promise.race([r.then(() => undefined, (e: unknown) => e ?? new Error('rejected nullish')), pending]);
    }
    return undefined;
  } catch (e) {
    return e ?? new Error('thrown nullish');
  }
}

describe('public API argument checks (issue 11)', () => {
  it('fast-check: every entry point answers a wrong type or range with an errno naming the argument (or Node\'s error on Node surfaces)', async () => {
    const list = cases();
    const failures = new Set<string>();
    // Every case with each of its fixed bad values, so none is left to chance...
    for (const c of list) {
      for (const v of fixed.get(c.bad) ?? []) {
        const why = wrong(c, v, await outcome(() => c.call(v)));
        if (why !== null) failures.add(why);
      }
    }
    // ...then random draws across all of them (integers far outside the ranges included).
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: list.length - 1 }).chain((i) => fc.tuple(fc.constant(list[i]!), list[i]!.bad)),
        async ([c, v]) => {
          const why = wrong(c, v, await outcome(() => c.call(v)));
          if (why !== null) failures.add(why);
        },
      ),
      { numRuns: 3000, seed: 11 },
    );
    expect([...failures].slice(0, 60)).toEqual([]);
  });

  it('rejects the examples of the issue', async () => {
    const { stack, nic } = world();
    const code = async (f: () => unknown): Promise<string | undefined> => ((await outcome(f)) as { code?: string } | undefined)?.code;
    for (const v of [null, 42, {}]) expect(await code(() => nic.addAddress(v as never))).toBe('EINVAL');
    expect(await code(() => stack.addRoute(null as never))).toBe('EINVAL');
    expect(await code(() => stack.createNIC(undefined as never))).toBe('EINVAL');
    expect(await code(() => stack.createNIC({ endpoint: {} as never }))).toBe('EINVAL');
    expect(await code(() => stack.ping(null as never))).toBe('EINVAL');
    expect(await code(() => stack.dgram.createSocket(undefined as never))).toBe('ERR_SOCKET_BAD_TYPE');
    const tun = stack.openTun();
    tun.setIff({ flags: IFF_TUN | IFF_NO_PI });
    expect(await code(() => tun.write(null as never))).toBe('EINVAL');
    expect(await code(() => tun.readInto(null as never))).toBe('EINVAL');
    tun.close();
    expect(await code(() => new PcapWriter(undefined as never))).toBe('EINVAL');
    for (const metric of [-1, NaN]) {
      const e = (await outcome(() => stack.addRoute({ destination: '198.19.0.0/16', nic: 'eth0', metric }))) as TunstackError;
      expect(e.code).toBe('EINVAL');
      expect(e.message).toContain('spec.metric');
    }
    expect(stack.routes.all.some((r) => r.prefixLength === 16)).toBe(false);
    for (const ttl of [0, 300, -1]) {
      const e = (await outcome(() => stack.ping('198.18.0.2', { ttl }))) as TunstackError;
      expect(e.code).toBe('EINVAL');
      expect(e.message).toContain('options.ttl');
    }
    const e = (await outcome(() => stack.ping('198.18.0.2', { timeoutMs: -5 }))) as TunstackError;
    expect([e.code, e.message.includes('options.timeoutMs')]).toEqual(['EINVAL', true]);
  });

  it('still accepts the edges of each range (ttl 255, metric 0 and 2^32-1)', async () => {
    const { stack, nic, clock } = world();
    const sent: number[] = [];
    const link = nic.endpoint as ChannelEndpoint;
    const p = stack.ping('198.18.0.2', { ttl: 255, timeoutMs: 5 });
    for (let pkt = link.read(); pkt; pkt = link.read()) sent.push(pkt.toBytes()[8]!);
    clock.advance(10);
    await expect(p).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(sent).toEqual([255]);
    stack.addRoute({ destination: '198.19.0.0/16', nic: 'eth0', metric: 0 });
    stack.addRoute({ destination: '198.19.0.0/16', nic: 'eth0', metric: 0xffffffff });
    expect(stack.routes.all.filter((r) => r.prefixLength === 16).map((r) => r.metric)).toEqual([0, 0xffffffff]);
  });

  it('refuses an endpoint that another NIC holds with EBUSY, in this stack or another, until that NIC is removed', () => {
    const { stack } = world();
    const ep = new ChannelEndpoint();
    stack.createNIC({ name: 'a', endpoint: ep });
    const other = new Stack({ clock: new ManualClock() });
    toClose.push(other);
    for (const [s, name] of [[stack, 'b'], [other, 'c']] as const) {
      let err: unknown;
      try {
        s.createNIC({ name, endpoint: ep });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TunstackError);
      expect((err as TunstackError).code).toBe('EBUSY');
      expect((err as TunstackError).message).toContain('options.endpoint');
    }
    // A disabled NIC does not attach, but it still holds the endpoint.
    const ep2 = new ChannelEndpoint();
    stack.createNIC({ name: 'd', endpoint: ep2, enabled: false });
    expect(() => other.createNIC({ endpoint: ep2 })).toThrow(/EBUSY/);
    stack.removeNIC('a');
    expect(other.createNIC({ name: 'e', endpoint: ep }).endpoint).toBe(ep);
  });

  it('gives the error codes node:dgram gives for the same misuse (checked against Node)', () => {
    const { stack } = world();
    const codeOf = (f: () => unknown): string | undefined => {
      try {
        f();
        return undefined;
      } catch (e) {
        return (e as { code?: string }).code;
      }
    };
    const real = dgram.createSocket('udp4');
    const ours = stack.dgram.createSocket('udp4');
    try {
      // Loosely typed: the misuses do not type-check on purpose, and the two send() overload sets differ.
      type AnySocket = { [K in 'send' | 'connect' | 'setTTL' | 'setRecvBufferSize']: (...args: unknown[]) => unknown };
      const misuse: Array<[string, (s: AnySocket) => unknown]> = [
        ['send null', (s) => s.send(null as never, 53, '127.0.0.1')],
        ['send 42', (s) => s.send(42 as never, 53, '127.0.0.1')],
        ['send [1,2]', (s) => s.send([1, 2] as never, 53, '127.0.0.1')],
        ['send port 0', (s) => s.send('x', 0, '127.0.0.1')],
        ['send port 70000', (s) => s.send('x', 70000, '127.0.0.1')],
        ['send port "abc"', (s) => s.send('x', 'abc' as never, '127.0.0.1')],
        ['send address 42', (s) => s.send('x', 53, 42 as never)],
        ['send offset -1', (s) => s.send(Buffer.alloc(4), -1, 2, 53, '127.0.0.1')],
        ['send length 5', (s) => s.send(Buffer.alloc(4), 2, 5, 53, '127.0.0.1')],
        ['connect port 0', (s) => s.connect(0, '127.0.0.1')],
        ['connect port NaN', (s) => s.connect(NaN, '127.0.0.1')],
        ['connect address 42', (s) => s.connect(53, 42 as never)],
        ['setTTL "x"', (s) => s.setTTL('x' as never)],
        ['setTTL null', (s) => s.setTTL(null as never)],
        ['setRecvBufferSize -1', (s) => s.setRecvBufferSize(-1)],
        ['setRecvBufferSize 1.5', (s) => s.setRecvBufferSize(1.5)],
      ];
      const got = misuse.map(([name, f]) => [name, codeOf(() => f(ours as unknown as AnySocket))]);
      const want = misuse.map(([name, f]) => [name, codeOf(() => f(real as unknown as AnySocket))]);
      expect(got).toEqual(want);
      for (const t of [undefined, null, 42, 'udp5', {}]) {
        expect(codeOf(() => stack.dgram.createSocket(t as never))).toBe(codeOf(() => dgram.createSocket(t as never)));
      }
    } finally {
      real.close();
    }
  });
});

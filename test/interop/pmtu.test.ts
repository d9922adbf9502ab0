/**
 * Path MTU with the Linux kernel: DF packets meet a smaller MTU behind a router, and the router
 * answers "fragmentation needed" (ICMP type 3 code 4) with the next-hop MTU.
 *
 * 1. The kernel is the router: tunstack -- TAP -- [ns A, forwarding] -- veth MTU 1280 -- [ns B].
 *    tunstack's DF ping of 1400 bytes fails with EMSGSIZE from the quoted ICMP error, and
 *    tunstack's IPv4 records the path MTU.
 * 2. tunstack is the router: [ns A] -- TAP -- tunstack (forwarding) -- TAP MTU 1280 -- [ns B]. The
 *    kernel's DF ping from A is answered with frag-needed (mtu 1280) by tunstack, and the kernel
 *    caches the path MTU.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseIPv4, Stack, TunstackError, type IPv4Protocol } from '../../src/index.js';
import { haveCommand, Netns, skipInterop, uniqueName, waitFor } from './helpers/netns.js';
import { closeSides, routedSide, type RoutedSide } from './helpers/routed.js';
import { Pair, STACK4 } from './helpers/pair.js';

const skip = skipInterop('test/interop/pmtu.test.ts');
const noTools = !skip && (!haveCommand('ping') || !haveCommand('python3'));
if (noTools) console.warn('test/interop/pmtu.test.ts: skipped: ping or python3 missing');

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) {
    try {
      c();
    } catch {
      // keep cleaning
    }
  }
});

async function snmp(ns: Netns, key: string): Promise<number> {
  const lines = (await ns.run('cat', ['/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Ip:'));
  const names = lines[0]!.split(/\s+/);
  return Number(lines[1]!.split(/\s+/)[names.indexOf(key)]);
}

const RECV = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print('READY', flush=True)
s.settimeout(8)
d, a = s.recvfrom(65535)
print(len(d), a[0], flush=True)
`;

describe.skipIf(skip || noTools)('kernel interop: path MTU discovery', () => {
  it('the kernel routes; tunstack gets EMSGSIZE from frag-needed and records the 1280 path MTU', async () => {
    const p = new Pair();
    cleanups.push(() => p.cleanup());
    const b = new Netns('tsb');
    cleanups.push(() => b.remove());
    // veth A <-> B with MTU 1280; A forwards.
    const va = uniqueName('tva');
    const vb = uniqueName('tvb');
    p.ns.ip('link', 'add', va, 'mtu', '1280', 'type', 'veth', 'peer', 'name', vb, 'mtu', '1280', 'netns', b.name);
    p.ns.ip('addr', 'add', '198.19.0.1/24', 'dev', va);
    p.ns.ip('link', 'set', va, 'up');
    p.ns.runSync('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    b.ip('addr', 'add', '198.19.0.2/24', 'dev', vb);
    b.ip('link', 'set', vb, 'up');
    b.ip('route', 'add', 'default', 'via', '198.19.0.1');
    p.stack.addRoute({ destination: '198.19.0.0/24', gateway: '198.18.0.1', nic: 'eth0' });

    // Reachable at all (small packets).
    const ok = await p.stack.ping('198.19.0.2', { timeoutMs: 3000 });
    expect(ok.from).toBe('198.19.0.2');

    // A 1400-byte DF echo cannot cross the 1280 link: the router says so.
    let err: unknown = null;
    try {
      await p.stack.ping('198.19.0.2', { size: 1400 - 28, dontFragment: true, timeoutMs: 3000 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TunstackError);
    expect((err as TunstackError).code).toBe('EMSGSIZE');
    expect((err as TunstackError).message).toMatch(/frag needed \(from 198\.18\.0\.1/);
    // ...and tunstack's IPv4 remembers the path MTU towards B.
    const ipv4 = p.stack.requireNetwork<IPv4Protocol>(0x0800);
    expect(ipv4.pathMtu(parseIPv4('198.19.0.2'), 1500)).toBe(1280);

    // A 1400-byte datagram (no DF) still gets through, in fragments.
    const py = b.spawn('python3', ['-c', RECV, '198.19.0.2', '5004']);
    let out = '';
    py.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => out.includes('READY'), 5000, 'receiver');
    const routerFrags = await snmp(p.ns, 'FragCreates');
    const reqds = await snmp(b, 'ReasmReqds');
    const s = p.stack.dgram.createSocket('udp4');
    cleanups.unshift(() => s.close());
    s.send(Buffer.alloc(1400 - 28, 0x5a), 5004, '198.19.0.2');
    await waitFor(() => out.split('\n').length > 2, 8000, 'B to receive');
    expect(out.split('\n')[1]).toBe(`${1400 - 28} ${STACK4}`);
    // Two fragments reached B, cut by tunstack itself at the learned path MTU (as Linux does):
    // the router forwarded them without fragmenting anything.
    expect((await snmp(b, 'ReasmReqds')) - reqds).toBe(2);
    expect(await snmp(p.ns, 'FragCreates')).toBe(routerFrags);
  });

  it('tunstack routes; the kernel gets frag-needed (mtu 1280) from tunstack for a DF ping', async () => {
    const stack = new Stack({ forwarding: true });
    cleanups.push(() => stack.close());
    const made: RoutedSide[] = [];
    cleanups.push(() => closeSides(made));
    const side = (n: number, mtu: number): RoutedSide => routedSide(stack, n, { ns: n === 0 ? 'tsa' : 'tsb', tap: 'tsr', mtu, endpoint: { mtu } }, made);
    const a = side(0, 1500);
    side(1, 1280);

    // Without DF the kernel's 1400-byte echo crosses (tunstack fragments while forwarding).
    const plain = await a.ns.run('ping', ['-c', '1', '-W', '3', '-s', '1372', '-M', 'dont', '198.19.0.2']);
    expect(plain.stdout, plain.stdout + plain.stderr).toMatch(/1 received/);

    // With DF it cannot: tunstack answers frag-needed with the next hop's MTU.
    const df = await a.ns.run('ping', ['-c', '2', '-i', '0.3', '-W', '2', '-s', '1372', '-M', 'do', '198.19.0.2']);
    expect(df.stdout + df.stderr).toMatch(/mtu ?= ?1280/i);
    // The kernel cached the path MTU tunstack told it.
    const route = a.ns.ip('route', 'get', '198.19.0.2');
    expect(route).toMatch(/mtu 1280/);
  });
});

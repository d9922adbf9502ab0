/**
 * IGMP and UDP multicast with the Linux kernel as the peer, over a real TAP (test/interop
 * helpers: the kernel's end in a fresh network namespace). Needs root; skips otherwise.
 *
 * - A kernel socket joins a group on its end of the TAP and receives what a tunstack socket sends
 *   to it; the reverse, a tunstack socket joined to a group receives the kernel's datagrams, and a
 *   source-specific one only its source's.
 * - A Linux bridge with IGMP snooping and an IGMPv3 querier learns tunstack's groups (`bridge mdb`)
 *   from its reports and answers to the querier.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { IPv4Protocol } from '../../src/index.js';
import { KERNEL4, Pair, STACK4 } from './helpers/pair.js';
import { haveCommand, skipInterop, waitFor } from './helpers/netns.js';

const skip = skipInterop('test/interop/igmp.test.ts');
const noBridge = !skip && !haveCommand('bridge');
if (noBridge) console.warn('test/interop/igmp.test.ts: snooping test skipped: `bridge` (iproute2) missing');

let pair: Pair | null = null;
afterEach(() => {
  pair?.cleanup();
  pair = null;
});

/** A python3 multicast receiver in the namespace: prints "<source> <text>" per datagram. */
function kernelReceiver(p: Pair, group: string, port: number): { lines: string[] } {
  const script = [
    'import socket, struct, sys',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    's.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
    `s.bind(('${group}', ${port}))`,
    `s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton('${group}') + socket.inet_aton('${KERNEL4}'))`,
    "print('ready', flush=True)",
    's.settimeout(20)',
    'while True:',
    '    d, a = s.recvfrom(2048)',
    "    print(a[0], d.decode(), flush=True)",
  ].join('\n');
  const child = p.ns.spawn('python3', ['-c', script]);
  const out = { lines: [] as string[] };
  let buf = '';
  child.stdout!.on('data', (b: Buffer) => {
    buf += b.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    out.lines.push(...parts);
  });
  return out;
}

function kernelSend(p: Pair, group: string, port: number, text: string, count = 3): Promise<{ code: number; stderr: string }> {
  const script = [
    'import socket, time',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    `s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton('${KERNEL4}'))`,
    `for i in range(${count}):`,
    `    s.sendto(b'${text}', ('${group}', ${port}))`,
    '    time.sleep(0.05)',
  ].join('\n');
  return p.ns.run('python3', ['-c', script]);
}

describe.skipIf(skip)('IGMP and multicast with the Linux kernel', () => {
  it('a kernel member receives a tunstack socket\'s multicast, and a tunstack member the kernel\'s', async () => {
    const p = (pair = new Pair({ kind: 'tap', vnet: false, ipv6: false }));
    const rx = kernelReceiver(p, '239.5.5.5', 5500);
    await waitFor(() => rx.lines.includes('ready'), 10_000, 'the kernel receiver');
    const tx = p.stack.dgram.createSocket('udp4');
    tx.setMulticastInterface(STACK4);
    for (let i = 0; i < 3; i++) tx.send(`hello-${i}`, 5500, '239.5.5.5');
    await waitFor(() => rx.lines.some((l) => l.startsWith(STACK4)), 5_000, 'the datagram at the kernel');
    expect(rx.lines).toContain(`${STACK4} hello-0`);
    tx.close();

    const got: string[] = [];
    const s = p.stack.dgram.createSocket('udp4');
    s.on('message', (m, r) => got.push(`${r.address} ${m.toString()}`));
    await new Promise<void>((r) => s.bind(5600, r));
    s.addMembership('239.5.5.6', STACK4);
    const r1 = await kernelSend(p, '239.5.5.6', 5600, 'to-group');
    expect(r1.code, r1.stderr).toBe(0);
    await waitFor(() => got.length > 0, 5_000, 'the kernel\'s datagram at tunstack');
    expect(got[0]).toBe(`${KERNEL4} to-group`);
    // Not joined: the interface drops it.
    const ip4 = p.stack.requireNetwork<IPv4Protocol>(0x0800);
    const before = ip4.stats.multicastNotJoined;
    await kernelSend(p, '239.5.5.7', 5600, 'elsewhere', 1);
    await waitFor(() => ip4.stats.multicastNotJoined > before, 5_000, 'the unjoined datagram counted');
    expect(got.every((g) => !g.endsWith('elsewhere'))).toBe(true);
    // Source-specific: only from the kernel's address, not from another one it owns.
    p.ns.ip('addr', 'add', '198.18.0.7/24', 'dev', p.dev);
    const ssm: string[] = [];
    const t = p.stack.dgram.createSocket('udp4');
    t.on('message', (m, r) => ssm.push(`${r.address} ${m.toString()}`));
    await new Promise<void>((r) => t.bind(5700, r));
    t.addSourceSpecificMembership('198.18.0.7', '232.5.5.5', STACK4);
    await kernelSend(p, '232.5.5.5', 5700, 'from-1', 2);
    const from7 = await p.ns.run('python3', ['-c', [
      'import socket',
      's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      "s.bind(('198.18.0.7', 0))",
      `s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton('${KERNEL4}'))`,
      "s.sendto(b'from-7', ('232.5.5.5', 5700))",
    ].join('\n')]);
    expect(from7.code, from7.stderr).toBe(0);
    await waitFor(() => ssm.length > 0, 5_000, 'the source-specific datagram');
    await new Promise((r) => setTimeout(r, 200));
    expect(ssm).toEqual(['198.18.0.7 from-7']);
    s.close();
    t.close();
  });

  it.skipIf(noBridge)('a Linux bridge with IGMPv3 snooping and a querier learns tunstack\'s groups', async () => {
    const p = (pair = new Pair({ kind: 'tap', vnet: false, ipv6: false }));
    const ip4 = p.stack.requireNetwork<IPv4Protocol>(0x0800);
    p.ns.ip('link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '1', 'mcast_querier', '1', 'mcast_igmp_version', '3',
      'mcast_query_interval', '200', 'mcast_startup_query_interval', '100', 'mcast_query_response_interval', '100');
    p.ns.ip('addr', 'add', '198.18.9.1/24', 'dev', 'br0');
    p.ns.ip('link', 'set', p.dev, 'master', 'br0');
    p.ns.ip('link', 'set', 'br0', 'up');
    const s = p.stack.dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(5800, r));
    s.addMembership('239.6.6.6');
    s.addSourceSpecificMembership('198.18.0.9', '232.6.6.6');
    const mdb = () => p.ns.runSync('bridge', ['mdb', 'show', 'dev', 'br0']);
    await waitFor(() => mdb().includes('239.6.6.6') && mdb().includes('232.6.6.6'), 15_000, 'MDB entries for tunstack\'s groups');
    expect(mdb()).toContain(`port ${p.dev} grp 239.6.6.6`);
    // IGMPv3 snooping keeps the source of the source-specific join.
    expect(mdb()).toMatch(new RegExp(`port ${p.dev} grp 232\\.6\\.6\\.6 src 198\\.18\\.0\\.9`));
    await waitFor(() => ip4.igmp.stats.queriesReceived > 0, 10_000, 'an IGMP query from the bridge');
    const before = ip4.igmp.stats.reportsSent;
    await waitFor(() => ip4.igmp.stats.reportsSent > before, 5_000, 'the report answering the query');
    expect(ip4.igmp.stats.invalid).toBe(0);
    // Leaving removes the group from the bridge's database (TO_IN {} then the querier's group query).
    s.dropMembership('239.6.6.6');
    await waitFor(() => !mdb().includes('239.6.6.6'), 15_000, 'the left group gone from the MDB');
    s.close();
  });
});

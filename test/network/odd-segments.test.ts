/**
 * Odd packets, as Linux treats them. Each packet is built by hand and sent twice: to the Linux
 * kernel (a TUN whose kernel end is 198.18.0.1 in a fresh namespace, with a TCP listener) and to
 * a tunstack stack with the same address and listener. What each answers (nothing, a TCP reply
 * with its flags, an ICMP error with its type, code and pointer) must be the same. The kernel
 * half needs root; without it only tunstack's answers are checked against the expectations
 * recorded beside each case (which the kernel half confirms whenever it runs).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ChannelEndpoint,
  IFF_NO_PI,
  IFF_TUN,
  ManualClock,
  Stack,
  parseIPv4,
  type IPv4Protocol,
  type TcpEndpoint,
} from '../../src/index.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, buildIPv4, buildIcmpV4Echo, buildTcp } from '../../src/headers/index.js';
import { HostTap } from '../../src/host/index.js';
import { Netns, interopSkipReason, uniqueName, waitFor } from '../interop/helpers/netns.js';

const LOCAL = '198.18.0.1';
const PEER = '198.18.0.2';
const PORT = 7777;
const CLOSED_PORT = 7778;

/** What a host answered to one packet, reduced to what the comparison is about. */
type Answer = 'none' | `tcp ${string}` | `icmp ${number}/${number} ptr ${number}` | `icmp ${number}/${number}` | `other ${number}`;

function describeAnswers(packets: Uint8Array[]): Answer {
  if (packets.length === 0) return 'none';
  const p = packets[0]!;
  const hl = (p[0]! & 0x0f) * 4;
  const proto = p[9]!;
  if (proto === 6) {
    const f = p[hl + 13]!;
    const names: string[] = [];
    if (f & TCP_SYN) names.push('SYN');
    if (f & TCP_FIN) names.push('FIN');
    if (f & TCP_RST) names.push('RST');
    if (f & TCP_ACK) names.push('ACK');
    return `tcp ${names.join('+')}`;
  }
  if (proto === 1) {
    const type = p[hl]!;
    const code = p[hl + 1]!;
    if (type === 12) return `icmp ${type}/${code} ptr ${p[hl + 4]!}`;
    return `icmp ${type}/${code}`;
  }
  return `other ${proto}`;
}

/** Whether `reply` answers `sent`: same TCP ports swapped, same echo sequence, or an ICMP error quoting its IP id. */
function answers(sent: Uint8Array, reply: Uint8Array): boolean {
  const shl = (sent[0]! & 0x0f) * 4;
  const rhl = (reply[0]! & 0x0f) * 4;
  if (reply[9] === 6 && sent[9] === 6) {
    return reply[rhl] === sent[shl + 2] && reply[rhl + 1] === sent[shl + 3] && reply[rhl + 2] === sent[shl] && reply[rhl + 3] === sent[shl + 1];
  }
  if (reply[9] !== 1) return false;
  const type = reply[rhl]!;
  if (type === 0) return sent[9] === 1 && reply[rhl + 6] === sent[shl + 6] && reply[rhl + 7] === sent[shl + 7];
  // An error quotes the datagram from its IP header: compare the identification.
  return reply[rhl + 8 + 4] === sent[4] && reply[rhl + 8 + 5] === sent[5];
}

const src = parseIPv4(PEER);
const dst = parseIPv4(LOCAL);
let ipId = 0x1000;

function ipv4(protocol: number, payload: Uint8Array, options?: number[]): Uint8Array {
  return buildIPv4(
    { src, dst, protocol, id: ipId++, ttl: 64, ...(options ? { options: new Uint8Array(options) } : {}) },
    payload,
  );
}

function tcp(flags: number, dport = PORT, options?: number[]): Uint8Array {
  const seg = buildTcp({ srcPort: 40000 + (ipId & 0xfff), dstPort: dport, seq: 0x1234567, flags, window: 64240, pseudoHeader: { src, dst } });
  return ipv4(6, seg, options);
}

function echo(options?: number[]): Uint8Array {
  return ipv4(1, buildIcmpV4Echo({ ident: 0x77, sequence: ipId & 0xffff, data: new Uint8Array(16) }), options);
}

interface Case {
  name: string;
  packet: () => Uint8Array;
  /** What Linux answers (confirmed against the kernel when the kernel half runs). */
  linux: Answer;
}

const cases: Case[] = [
  { name: 'SYN to a listener (control)', packet: () => tcp(TCP_SYN), linux: 'tcp SYN+ACK' },
  { name: 'SYN+FIN to a listener', packet: () => tcp(TCP_SYN | TCP_FIN), linux: 'none' },
  { name: 'SYN+FIN+ACK to a listener', packet: () => tcp(TCP_SYN | TCP_FIN | TCP_ACK), linux: 'tcp RST' },
  { name: 'SYN+FIN to a closed port', packet: () => tcp(TCP_SYN | TCP_FIN, CLOSED_PORT), linux: 'tcp RST+ACK' },
  { name: 'echo request (control)', packet: () => echo(), linux: 'icmp 0/0' },
  // Loose and strict source routes: dropped (accept_source_route = 0).
  { name: 'echo with LSRR', packet: () => echo([131, 7, 4, 198, 18, 0, 9, 1]), linux: 'none' },
  { name: 'echo with SSRR', packet: () => echo([137, 7, 4, 198, 18, 0, 9, 1]), linux: 'none' },
  { name: 'echo with an exhausted LSRR', packet: () => echo([131, 7, 8, 198, 18, 0, 9, 1]), linux: 'none' },
  { name: 'TCP SYN with LSRR', packet: () => tcp(TCP_SYN, PORT, [131, 7, 4, 198, 18, 0, 9, 1]), linux: 'none' },
  // Malformed options: Parameter Problem pointing at the bad byte.
  { name: 'option length 1', packet: () => echo([7, 1, 0, 0]), linux: 'icmp 12/0 ptr 20' },
  { name: 'option length past the header', packet: () => echo([1, 7, 12, 4, 0, 0, 0, 0]), linux: 'icmp 12/0 ptr 21' },
  { name: 'option type without a length byte', packet: () => echo([1, 1, 1, 7]), linux: 'icmp 12/0 ptr 23' },
  { name: 'record route pointer below 4', packet: () => echo([7, 7, 3, 0, 0, 0, 0, 0]), linux: 'icmp 12/0 ptr 22' },
  { name: 'record route of length 2', packet: () => echo([7, 2, 1, 1]), linux: 'icmp 12/0 ptr 21' },
  { name: 'record route pointer inside the last slot', packet: () => echo([7, 7, 6, 0, 0, 0, 0, 0]), linux: 'icmp 12/0 ptr 22' },
  { name: 'record route, room left (control)', packet: () => echo([7, 7, 4, 0, 0, 0, 0, 0]), linux: 'icmp 0/0' },
  { name: 'record route, full (control)', packet: () => echo([7, 7, 8, 1, 2, 3, 4, 0]), linux: 'icmp 0/0' },
  { name: 'timestamp pointer below 5', packet: () => echo([68, 12, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]), linux: 'icmp 12/0 ptr 22' },
  { name: 'timestamp of length 3', packet: () => echo([68, 3, 5, 0]), linux: 'icmp 12/0 ptr 21' },
  { name: 'timestamp with address, no room for the pair', packet: () => echo([68, 8, 5, 1, 0, 0, 0, 0]), linux: 'icmp 12/0 ptr 22' },
  { name: 'timestamp overflow counter at 15', packet: () => echo([68, 8, 9, 0xf0, 0, 0, 0, 0]), linux: 'icmp 12/0 ptr 23' },
  { name: 'timestamp, room left (control)', packet: () => echo([68, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0]), linux: 'icmp 0/0' },
  { name: 'router alert of length 3', packet: () => echo([148, 3, 0, 0]), linux: 'icmp 12/0 ptr 21' },
  { name: 'stream id of length 2 (unchecked by Linux)', packet: () => echo([136, 2, 1, 0]), linux: 'icmp 0/0' },
  { name: 'two source routes', packet: () => echo([131, 3, 4, 137, 3, 4, 0, 0]), linux: 'icmp 12/0 ptr 23' },
  { name: 'LSRR pointer below 4', packet: () => echo([131, 7, 3, 198, 18, 0, 9, 1]), linux: 'icmp 12/0 ptr 22' },
  { name: 'LSRR of length 2', packet: () => echo([131, 2, 1, 1]), linux: 'icmp 12/0 ptr 21' },
  { name: 'two record routes', packet: () => echo([7, 3, 4, 7, 3, 4, 0, 0]), linux: 'icmp 12/0 ptr 23' },
  { name: 'two timestamps', packet: () => echo([68, 4, 5, 0, 68, 4, 5, 0]), linux: 'icmp 12/0 ptr 24' },
  { name: 'CIPSO with an unknown DOI', packet: () => echo([134, 8, 0, 0, 0, 9, 0, 0]), linux: 'icmp 12/0 ptr 22' },
  { name: 'security option (control)', packet: () => echo([130, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), linux: 'icmp 0/0' },
  { name: 'unknown option (control)', packet: () => echo([25, 4, 0, 0]), linux: 'icmp 0/0' },
  { name: 'malformed option on a TCP SYN', packet: () => tcp(TCP_SYN, PORT, [7, 1, 0, 0]), linux: 'icmp 12/0 ptr 20' },
];

/** tunstack with the kernel side's address and a listener, on a TUN-like channel. */
function makeStack(): { clock: ManualClock; stack: Stack; link: ChannelEndpoint; listener: TcpEndpoint } {
  const clock = new ManualClock();
  const stack = new Stack({ clock, seed: 7 });
  const link = new ChannelEndpoint({ mtu: 1500 });
  stack.createNIC({ name: 'tun0', endpoint: link }).addAddress(`${LOCAL}/24`);
  const listener = stack.tcp({ family: 4 });
  listener.bind('0.0.0.0', PORT);
  listener.listen(16);
  return { clock, stack, link, listener };
}

function tunstackAnswer(t: ReturnType<typeof makeStack>, packet: Uint8Array): Answer {
  t.link.drain();
  t.link.injectBytes(packet.slice(), 0x0800);
  t.clock.advance(5);
  const out: Uint8Array[] = [];
  for (let p = t.link.read(); p !== null; p = t.link.read()) out.push(p.toBytes());
  return describeAnswers(out);
}

describe('odd packets: tunstack answers as Linux does', () => {
  const t = makeStack();
  for (const c of cases) {
    it(`${c.name}: ${c.linux}`, () => {
      expect(tunstackAnswer(t, c.packet())).toBe(c.linux);
    });
  }
});

describe('odd packets through a tunstack router', () => {
  it('drops source-routed datagrams it would forward and answers malformed options with Parameter Problem', () => {
    const clock = new ManualClock();
    const router = new Stack({ clock, seed: 3, forwarding: true });
    const inside = new ChannelEndpoint({ mtu: 1500 });
    const outside = new ChannelEndpoint({ mtu: 1500 });
    router.createNIC({ name: 'in', endpoint: inside }).addAddress(`${LOCAL}/24`);
    router.createNIC({ name: 'out', endpoint: outside }).addAddress('198.19.0.1/24');
    const toFar = (options?: number[]) =>
      buildIPv4({ src, dst: parseIPv4('198.19.0.9'), protocol: 1, id: ipId++, ttl: 64, ...(options ? { options: new Uint8Array(options) } : {}) },
        buildIcmpV4Echo({ ident: 1, sequence: 1, data: new Uint8Array(8) }));
    const send = (pkt: Uint8Array) => {
      inside.injectBytes(pkt, 0x0800);
      clock.advance(1);
      const back: Uint8Array[] = [];
      for (let q = inside.read(); q !== null; q = inside.read()) back.push(q.toBytes());
      const fwd: Uint8Array[] = [];
      for (let q = outside.read(); q !== null; q = outside.read()) fwd.push(q.toBytes());
      return { back: describeAnswers(back), forwarded: fwd.length };
    };
    expect(send(toFar())).toEqual({ back: 'none', forwarded: 1 });
    expect(send(toFar([131, 7, 4, 198, 19, 0, 9, 1]))).toEqual({ back: 'none', forwarded: 0 });
    expect(send(toFar([68, 12, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toEqual({ back: 'icmp 12/0 ptr 22', forwarded: 0 });
    const ip4 = router.requireNetwork<IPv4Protocol>(0x0800);
    expect(ip4.stats.sourceRouted).toBe(1);
    expect(ip4.stats.badOptions).toBe(1);
  });
});

const kernelSkip = interopSkipReason();
if (kernelSkip !== '') console.warn(`test/network/odd-segments.test.ts: kernel half skipped: ${kernelSkip}`);

describe.skipIf(kernelSkip !== '')('odd packets: the Linux kernel answers as recorded', () => {
  let ns: Netns | null = null;
  let tap: HostTap | null = null;
  let server: ChildProcess | null = null;

  beforeAll(async () => {
    ns = new Netns('tso');
    tap = HostTap.open({ name: uniqueName('tso'), flags: IFF_TUN | IFF_NO_PI });
    execFileSync('ip', ['link', 'set', tap.name, 'netns', ns.name]);
    ns.runSync('sysctl', ['-q', '-w', 'net.ipv4.icmp_ratelimit=0', 'net.ipv6.conf.all.disable_ipv6=1']);
    ns.ip('addr', 'add', `${LOCAL}/24`, 'dev', tap.name);
    ns.ip('link', 'set', tap.name, 'up');
    server = spawn('ip', ['netns', 'exec', ns.name, 'python3', '-c',
      `import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('${LOCAL}',${PORT}))\ns.listen(16)\nprint('ready',flush=True)\ntime.sleep(120)`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let ready = false;
    server.stdout!.on('data', () => (ready = true));
    await waitFor(() => ready, 10_000, 'the kernel-side listener');
  });

  afterAll(() => {
    server?.kill('SIGKILL');
    tap?.close();
    ns?.remove();
  });

  async function kernelAnswer(packet: Uint8Array): Promise<Answer> {
    const t = tap!;
    for (;;) {
      try {
        t.read();
      } catch {
        break;
      }
    }
    t.write(packet);
    const out: Uint8Array[] = [];
    // Only answers to this packet count (a late answer to an earlier one must not), and the wait
    // ends at the first: 300 ms is the time an answer that does not come is given.
    const deadline = Date.now() + 300;
    while (Date.now() < deadline && out.length === 0) {
      try {
        const p = t.read();
        if ((p[0]! >> 4) === 4 && answers(packet, p)) out.push(p);
      } catch {
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    return describeAnswers(out);
  }

  for (const c of cases) {
    it(`${c.name}: ${c.linux}`, async () => {
      expect(await kernelAnswer(c.packet())).toBe(c.linux);
    });
  }
});

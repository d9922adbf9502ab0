/**
 * The Linux kernel as a peer for UDP: datagrams both ways (netcat in the namespace), ICMP port
 * unreachable both ways (a connected kernel socket gets ECONNREFUSED from tunstack's ICMP, a
 * connected tunstack socket from the kernel's), and IPv4 fragmentation both ways with the kernel's
 * reassembly counters (/proc/net/snmp) as the judge, also with a smaller MTU on one side.
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { DgramSocket, RemoteInfo } from '../../src/index.js';
import { haveCommand, skipInterop, waitFor, type Netns } from './helpers/netns.js';
import { KERNEL4, KERNEL6, Pair, STACK4, STACK6, type PairOptions } from './helpers/pair.js';

const skip = skipInterop('test/interop/udp.test.ts');
const noNc = !skip && !haveCommand('nc');
const noPython = !skip && !haveCommand('python3');
if (noNc) console.warn('test/interop/udp.test.ts: netcat tests skipped: `nc` (netcat-openbsd) missing');
if (noPython) console.warn('test/interop/udp.test.ts: probe tests skipped: python3 missing');

let pair: Pair | null = null;
const sockets: DgramSocket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) {
    try {
      s.close();
    } catch {
      // already closed
    }
  }
  pair?.cleanup();
  pair = null;
});

function open(options: PairOptions = {}): Pair {
  pair = new Pair(options);
  return pair;
}

function udp(p: Pair, type: 'udp4' | 'udp6'): DgramSocket {
  const s = p.stack.dgram.createSocket(type);
  sockets.push(s);
  return s;
}

function nextMessage(s: DgramSocket, timeoutMs = 5000): Promise<[Buffer, RemoteInfo]> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no datagram')), timeoutMs);
    s.once('message', (msg: Buffer, rinfo: RemoteInfo) => {
      clearTimeout(t);
      resolve([msg, rinfo]);
    });
  });
}

/** Kernel IPv4 reassembly counters in the namespace. */
async function reasm(ns: Netns): Promise<{ reqds: number; oks: number; fragCreates: number }> {
  const out = (await ns.run('cat', ['/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Ip:'));
  const names = out[0]!.split(/\s+/);
  const vals = out[1]!.split(/\s+/);
  const get = (k: string): number => Number(vals[names.indexOf(k)]);
  return { reqds: get('ReasmReqds'), oks: get('ReasmOKs'), fragCreates: get('FragCreates') };
}

/** Python: send from a connected UDP socket and report what recv says. */
const PROBE = `
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(b'anyone there?')
try:
    s.recv(100)
    print('DATA')
except ConnectionRefusedError:
    print('ECONNREFUSED')
except socket.timeout:
    print('TIMEOUT')
`;

/** Python: receive one datagram of up to 64 KiB and print its length and sha256. */
const RECV = `
import socket, sys, hashlib
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print('READY', flush=True)
s.settimeout(8)
d, a = s.recvfrom(65535)
print(len(d), hashlib.sha256(d).hexdigest(), a[0], flush=True)
`;

/** Python: send one datagram of N pattern bytes (IP_PMTUDISC_DONT unless argv[4] says 'do'). */
const SEND = `
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
n = int(sys.argv[3])
s.sendto(bytes((i * 7 + 3) & 0xff for i in range(n)), (sys.argv[1], int(sys.argv[2])))
`;

function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + 3) & 0xff;
  return b;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe.skipIf(skip)('kernel interop: UDP', () => {
  for (const fam of [4, 6] as const) {
    const kernel = fam === 4 ? KERNEL4 : KERNEL6;
    const local = fam === 4 ? STACK4 : STACK6;
    const type = fam === 4 ? 'udp4' : 'udp6';

    it.skipIf(noNc)(`IPv${fam}: netcat in the namespace sends a datagram to a tunstack socket`, async (ctx) => {
      const p = open();
      if (fam === 6 && !p.ipv6) ctx.skip('IPv6 is not registered in the stack');
      const s = udp(p, type);
      await new Promise<void>((r) => s.bind(5000, local, () => r()));
      const got = nextMessage(s);
      const r = await p.ns.run('nc', ['-u', '-w1', '-q0', local, '5000'], { input: 'hello from the kernel\n' });
      expect(r.stderr).toBe('');
      const [msg, rinfo] = await got;
      expect(msg.toString()).toBe('hello from the kernel\n');
      expect(rinfo.address).toBe(kernel);
    });

    it.skipIf(noNc)(`IPv${fam}: a tunstack socket sends a datagram to netcat listening in the namespace`, async (ctx) => {
      const p = open();
      if (fam === 6 && !p.ipv6) ctx.skip('IPv6 is not registered in the stack');
      const nc = p.ns.spawn('nc', ['-u', '-l', '-W', '1', kernel, '5001']);
      let out = '';
      nc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      await waitFor(async () => (await p.ns.run('ss', ['-uln'])).stdout.includes(':5001'), 5000, 'nc listening');
      const s = udp(p, type);
      s.send(Buffer.from('hello from tunstack\n'), 5001, kernel);
      await waitFor(() => out.includes('hello from tunstack'), 5000, 'nc to print the datagram');
      expect(out).toBe('hello from tunstack\n');
    });

    it.skipIf(noPython)(`IPv${fam}: the kernel gets ECONNREFUSED from tunstack's port unreachable`, async (ctx) => {
      const p = open();
      if (fam === 6 && !p.ipv6) ctx.skip('IPv6 is not registered in the stack');
      const r = await p.ns.run('python3', ['-c', PROBE, local, '5999']);
      expect(r.stdout.trim(), r.stderr).toBe('ECONNREFUSED');
    });

    it(`IPv${fam}: a connected tunstack socket gets ECONNREFUSED from the kernel's port unreachable`, async (ctx) => {
      const p = open();
      if (fam === 6 && !p.ipv6) ctx.skip('IPv6 is not registered in the stack');
      const s = udp(p, type);
      await new Promise<void>((r) => s.connect(5998, kernel, () => r()));
      const err = new Promise<NodeJS.ErrnoException>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no error event')), 5000);
        s.once('error', (e: NodeJS.ErrnoException) => {
          clearTimeout(t);
          resolve(e);
        });
      });
      s.send(Buffer.from('anyone there?'));
      expect((await err).code).toBe('ECONNREFUSED');
    });
  }
});

/** Python: one sendmsg of 10 x 1000 bytes with UDP_SEGMENT (UDP GSO): the kernel hands the TAP one USO super-packet. */
const USO = `
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_UDP, 103, 1000)  # UDP_SEGMENT
s.sendto(bytes((i // 1000 + i) & 0xff for i in range(10000)), (sys.argv[1], int(sys.argv[2])))
`;

describe.skipIf(skip)('kernel interop: UDP segmentation offload', () => {
  for (const fam of [4, 6] as const) {
    it.skipIf(noPython)(`IPv${fam}: a UDP_SEGMENT send arrives as ten datagrams (split by tunstack when the kernel passes USO)`, async (ctx) => {
      const p = open();
      if (fam === 6 && !p.ipv6) ctx.skip('IPv6 is not registered in the stack');
      const local = fam === 4 ? STACK4 : STACK6;
      const s = udp(p, fam === 4 ? 'udp4' : 'udp6');
      await new Promise<void>((r) => s.bind(5005, local, () => r()));
      const got: Buffer[] = [];
      s.on('message', (m: Buffer) => got.push(m));
      const r = await p.ns.run('python3', ['-c', USO, local, '5005']);
      expect(r.code, r.stderr).toBe(0);
      await waitFor(() => got.length >= 10, 5000, 'ten datagrams');
      expect(got.map((m) => m.length)).toEqual(Array(10).fill(1000));
      got.forEach((m, k) => expect(m[0]).toBe((k * 1000 + k) & 0xff));
      if ((p.ep.offloadFlags & 0x20) !== 0) {
        // USO on: the kernel sent one super-packet, tunstack split it.
        expect(p.ep.stats.rxGsoPackets).toBeGreaterThanOrEqual(1);
        expect(p.ep.stats.rxGsoSegments).toBeGreaterThanOrEqual(10);
      }
    });
  }
});

describe.skipIf(skip)('kernel interop: IPv4 fragmentation and MTU', () => {
  const cases: Array<[string, PairOptions]> = [
    ['same MTU (1500)', {}],
    ['tunstack MTU 1280, kernel 1500', { stackMtu: 1280, kernelMtu: 1500 }],
    ['kernel MTU 1280, tunstack 1500', { stackMtu: 1500, kernelMtu: 1280 }],
  ];
  for (const [label, opts] of cases) {
    it.skipIf(noPython)(`${label}: a 6000-byte datagram from the kernel is reassembled by tunstack`, async () => {
      const p = open(opts);
      const s = udp(p, 'udp4');
      await new Promise<void>((r) => s.bind(5002, STACK4, () => r()));
      const got = nextMessage(s);
      const before = await reasm(p.ns);
      const r = await p.ns.run('python3', ['-c', SEND, STACK4, '5002', '6000']);
      expect(r.code, r.stderr).toBe(0);
      const [msg, rinfo] = await got;
      expect(rinfo.address).toBe(KERNEL4);
      expect(msg.length).toBe(6000);
      expect(sha(msg)).toBe(sha(pattern(6000)));
      const after = await reasm(p.ns);
      // The kernel cut it into fragments that fit its MTU.
      const kmtu = opts.kernelMtu ?? 1500;
      expect(after.fragCreates - before.fragCreates).toBe(Math.ceil(6008 / (Math.floor((kmtu - 20) / 8) * 8)));
    });

    it.skipIf(noPython)(`${label}: a 6000-byte datagram from tunstack is reassembled by the kernel`, async () => {
      const p = open(opts);
      const py = p.ns.spawn('python3', ['-c', RECV, KERNEL4, '5003']);
      let out = '';
      py.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      await waitFor(() => out.includes('READY'), 5000, 'receiver ready');
      const before = await reasm(p.ns);
      const s = udp(p, 'udp4');
      s.send(pattern(6000), 5003, KERNEL4);
      await waitFor(() => out.split('\n').length > 2, 8000, 'the kernel to receive the datagram');
      const [len, digest, from] = out.split('\n')[1]!.split(' ');
      expect(Number(len)).toBe(6000);
      expect(digest).toBe(sha(pattern(6000)));
      expect(from).toBe(STACK4);
      const after = await reasm(p.ns);
      // The kernel reassembled one datagram from the fragments tunstack cut at its own MTU.
      const smtu = opts.stackMtu ?? 1500;
      expect(after.oks - before.oks).toBe(1);
      expect(after.reqds - before.reqds).toBe(Math.ceil(6008 / (Math.floor((smtu - 20) / 8) * 8)));
    });
  }
});

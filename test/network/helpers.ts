/**
 * Topologies for the network-layer tests: stacks joined by Wires, optionally sniffed to an
 * in-memory pcap, on one ManualClock with fixed seeds.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  EthernetEndpoint,
  ManualClock,
  SnifferEndpoint,
  Stack,
  Wire,
  parseMAC,
  type NIC,
  type StackOptions,
} from '../../src/index.js';
import { LinkType, PcapWriter } from '../../src/pcap/index.js';
import { CHECKSUM_PREFS } from '../helpers/tshark.js';

export interface Host {
  stack: Stack;
  nic: NIC;
}

/** A NIC on one end of a wire, with an Ethernet endpoint and an optional sniffer below it. */
export function attach(
  stack: Stack,
  end: Wire['a'],
  mac: string,
  opts: { name?: string; sniff?: PcapWriter; clock: ManualClock; mtu?: number; enabled?: boolean },
): NIC {
  const lower = opts.sniff ? new SnifferEndpoint(end, { clock: opts.clock, writer: opts.sniff }) : end;
  const nic = stack.createNIC({
    name: opts.name ?? 'eth0',
    endpoint: new EthernetEndpoint(lower, { linkAddress: parseMAC(mac) }),
    ...(opts.enabled === false ? { enabled: false } : {}),
  });
  if (opts.mtu !== undefined) nic.mtu = opts.mtu;
  return nic;
}

export function newStack(clock: ManualClock, seed: number, extra: Partial<StackOptions> = {}): Stack {
  return new Stack({ clock, seed, ...extra });
}

/**
 * host A (eth0) -- wire1 -- (eth0) router R (eth1) -- wire2 -- (eth0) host B.
 * IPv4 10.0.1.0/24 and 10.0.2.0/24; IPv6 fd00:1::/64 and fd00:2::/64 (no DAD, static routes).
 */
export function threeNodes(
  opts: { mtuA?: number; mtuB?: number; /** Only the router's side of wire 2. */ mtuRouterB?: number; sniff1?: PcapWriter; sniff2?: PcapWriter; latencyMs?: number } = {},
) {
  const clock = new ManualClock();
  const wire1 = new Wire({ clock, latencyMs: opts.latencyMs ?? 0, mtu: 9000 });
  const wire2 = new Wire({ clock, latencyMs: opts.latencyMs ?? 0, mtu: 9000 });
  const a = newStack(clock, 11);
  const r = newStack(clock, 12, { forwarding: true });
  const b = newStack(clock, 13);
  const nicA = attach(a, wire1.a, '02:00:00:00:01:01', { clock, ...(opts.sniff1 ? { sniff: opts.sniff1 } : {}) });
  const r0 = attach(r, wire1.b, '02:00:00:00:01:fe', { clock, name: 'eth0' });
  const r1 = attach(r, wire2.a, '02:00:00:00:02:fe', { clock, name: 'eth1', ...(opts.sniff2 ? { sniff: opts.sniff2 } : {}) });
  const nicB = attach(b, wire2.b, '02:00:00:00:02:02', { clock });
  nicA.mtu = opts.mtuA ?? 1500;
  r0.mtu = opts.mtuA ?? 1500;
  r1.mtu = opts.mtuRouterB ?? opts.mtuB ?? 1500;
  nicB.mtu = opts.mtuB ?? 1500;
  nicA.addAddress('10.0.1.2/24');
  r0.addAddress('10.0.1.1/24');
  r1.addAddress('10.0.2.1/24');
  nicB.addAddress('10.0.2.2/24');
  nicA.addAddress('fd00:1::2/64', { nodad: true });
  r0.addAddress('fd00:1::1/64', { nodad: true });
  r1.addAddress('fd00:2::1/64', { nodad: true });
  nicB.addAddress('fd00:2::2/64', { nodad: true });
  a.addRoute({ destination: '0.0.0.0/0', gateway: '10.0.1.1', nic: 'eth0' });
  b.addRoute({ destination: '0.0.0.0/0', gateway: '10.0.2.1', nic: 'eth0' });
  a.addRoute({ destination: '::/0', gateway: 'fd00:1::1', nic: 'eth0' });
  b.addRoute({ destination: '::/0', gateway: 'fd00:2::1', nic: 'eth0' });
  return { clock, wire1, wire2, a, r, b, nicA, r0, r1, nicB };
}

/** Run tshark over a pcap (bytes) and return per-packet rows of the fields, plus expert errors. */
export function tsharkFields(pcap: Uint8Array, fields: string[], extraArgs: string[] = []): { rows: string[][]; expert: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'tunstack-net-'));
  const path = join(dir, 'c.pcap');
  try {
    writeFileSync(path, pcap);
    const args = ['-n', '-r', path, ...CHECKSUM_PREFS, ...extraArgs, '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=,'];
    for (const f of ['_ws.expert.severity', '_ws.expert.message', '_ws.malformed', ...fields]) args.push('-e', f);
    const out = execFileSync('tshark', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const rows: string[][] = [];
    const expert: string[] = [];
    out
      .split('\n')
      .filter((l) => l.length > 0)
      .forEach((line, i) => {
        const cols = line.split('\t');
        const sev = (cols[0] ?? '').split(',').filter(Boolean);
        const msg = (cols[1] ?? '').split(',');
        sev.forEach((sv, k) => {
          if (Number(sv) >= 0x00600000) expert.push(`packet ${i + 1}: ${msg[k] ?? sv}`);
        });
        if ((cols[2] ?? '') !== '') expert.push(`packet ${i + 1}: malformed`);
        rows.push(cols.slice(3));
      });
    return { rows, expert };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function pcapWriter(): PcapWriter & { bytes(): Uint8Array } {
  return PcapWriter.inMemory({ linkType: LinkType.ETHERNET });
}

/**
 * A hand-driven remote TCP for packet-level tests: stack "us" (10.0.0.2) sits on a
 * ChannelEndpoint; the test injects crafted IPv4/TCP segments from 10.0.0.1 and reads back, parsed
 * and checksum-checked, exactly what the stack sent. Every packet in both directions is kept for
 * tshark.
 */
import { execFileSync } from 'node:child_process';
import { ChannelEndpoint, ManualClock, Stack, type TcpProtocol } from '../../../src/index.js';
import { TcpOptions, buildTcp, parseTcpOptions } from '../../../src/headers/index.js';
import { buildIPv4 } from '../../../src/headers/ipv4.js';
import { pseudoHeaderSumV4, sum } from '../../../src/headers/checksum.js';
import { LinkType } from '../../../src/pcap/writer.js';
import { CHECKSUM_PREFS, writePcapFile } from '../../helpers/tshark.js';

export const F = 0x01;
export const S = 0x02;
export const R = 0x04;
export const P = 0x08;
export const A = 0x10;

export const PEER = Uint8Array.of(10, 0, 0, 1);
export const US = Uint8Array.of(10, 0, 0, 2);

export interface OutSeg {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  hl: number;
  mss: number;
  wscale: number;
  sackOk: boolean;
  ts: boolean;
  tsVal: number;
  tsEcr: number;
  sack: [number, number][];
  payload: Uint8Array;
  /** Clock time the packet was read. */
  at: number;
}

export interface InSeg {
  sport?: number;
  dport?: number;
  seq: number;
  ack?: number;
  flags: number;
  window?: number;
  mss?: number;
  wscale?: number;
  sackOk?: boolean;
  ts?: [number, number];
  sack?: number[];
  payload?: Uint8Array;
  src?: Uint8Array;
}

export function flagNames(f: number): string {
  const n: string[] = [];
  if (f & S) n.push('S');
  if (f & F) n.push('F');
  if (f & R) n.push('R');
  if (f & P) n.push('P');
  if (f & A) n.push('A');
  return n.join('');
}

export class RawPeer {
  readonly clock = new ManualClock();
  readonly ch = new ChannelEndpoint({ mtu: 1500, queueLength: 1 << 17 });
  readonly stack: Stack;
  readonly tcp: TcpProtocol;
  /** Raw IPv4 packets in both directions, in order. */
  readonly packets: Uint8Array[] = [];
  keep = true;
  sport = 40000;
  dport = 80;

  constructor(seed = 7, mtu = 1500) {
    this.ch.setMTU(mtu);
    this.stack = new Stack({ clock: this.clock, seed });
    this.stack.createNIC({ name: 'eth0', endpoint: this.ch }).addAddress('10.0.0.2/24');
    this.tcp = this.stack.requireTransport<TcpProtocol>(6);
  }

  /** Inject a segment from the peer. */
  send(s: InSeg): void {
    const src = s.src ?? PEER;
    const opts: Record<string, unknown> = {};
    if (s.mss !== undefined) opts.mss = s.mss;
    if (s.wscale !== undefined) opts.windowScale = s.wscale;
    if (s.sackOk) opts.sackPermitted = true;
    if (s.ts) {
      opts.timestamp = true;
      opts.tsVal = s.ts[0];
      opts.tsEcr = s.ts[1];
    }
    if (s.sack) opts.sackBlocks = s.sack;
    const payload = s.payload ?? new Uint8Array(0);
    const seg = buildTcp(
      {
        srcPort: s.sport ?? this.sport,
        dstPort: s.dport ?? this.dport,
        seq: s.seq >>> 0,
        ack: (s.ack ?? 0) >>> 0,
        flags: s.flags,
        window: s.window ?? 65535,
        options: opts,
        pseudoHeader: { src, dst: US },
      },
      payload,
    );
    const ip = buildIPv4({ src, dst: US, protocol: 6, dontFragment: true }, seg);
    if (this.keep) this.packets.push(ip.slice());
    this.ch.injectBytes(ip, 0x0800);
  }

  /** Inject raw IPv4 bytes (ICMP errors and such). */
  inject(ip: Uint8Array): void {
    if (this.keep) this.packets.push(ip.slice());
    this.ch.injectBytes(ip, 0x0800);
  }

  /** The next segment the stack sent, or null. Throws on a bad checksum. */
  recv(): OutSeg | null {
    const pkt = this.ch.read();
    if (pkt === null) return null;
    const b = pkt.toBytes();
    if (this.keep) this.packets.push(b);
    return parseOut(b, this.clock.now());
  }

  recvAll(): OutSeg[] {
    const out: OutSeg[] = [];
    for (let s = this.recv(); s !== null; s = this.recv()) out.push(s);
    return out;
  }

  /** Advance time in steps of `step` ms until a segment comes out (or `max` ms pass). */
  waitSeg(max: number, step = 1): OutSeg | null {
    for (let t = 0; t <= max; t += step) {
      const s = this.recv();
      if (s !== null) return s;
      this.clock.advance(step);
    }
    return this.recv();
  }

  /**
   * A connection accepted by a listener on us:dport from peer:sport with the given options;
   * returns the server endpoint, our ISN and the peer's next sequence number.
   */
  handshakeIn(opts: { isn?: number; ts?: boolean; sack?: boolean; wscale?: number; mss?: number; window?: number } = {}) {
    const isn = opts.isn ?? 1000;
    const ts = opts.ts ?? true;
    this.send({
      seq: isn,
      flags: S,
      mss: opts.mss ?? 1460,
      ...(opts.wscale !== undefined ? { wscale: opts.wscale } : { wscale: 7 }),
      sackOk: opts.sack ?? true,
      ...(ts ? { ts: [100, 0] as [number, number] } : {}),
      window: 65535,
    });
    const synack = this.recv();
    if (synack === null || synack.flags !== (S | A)) throw new Error(`no SYN-ACK: ${synack ? flagNames(synack.flags) : 'nothing'}`);
    this.send({
      seq: isn + 1,
      ack: synack.seq + 1,
      flags: A,
      window: opts.window ?? 1024,
      ...(ts ? { ts: [101, synack.tsVal] as [number, number] } : {}),
    });
    return { synack, ourIsn: synack.seq, peerNxt: isn + 1 };
  }
}

export function parseOut(b: Uint8Array, at = 0): OutSeg {
  if (b[0] !== 0x45) throw new Error('not a plain IPv4 packet');
  const tl = (b[2]! << 8) | b[3]!;
  if (b[9] !== 6) throw new Error(`protocol ${b[9]}`);
  const t = b.subarray(20, tl);
  if (sum(t, 0, t.length, pseudoHeaderSumV4(b, 12, b, 16, 6, t.length)) !== 0xffff) throw new Error('bad TCP checksum');
  const hl = (t[12]! >>> 4) * 4;
  const o = new TcpOptions();
  if (!parseTcpOptions(t, 20, hl - 20, o)) throw new Error('malformed options');
  const sack: [number, number][] = [];
  for (let i = 0; i < o.sackCount; i++) sack.push([o.sackLeft(i), o.sackRight(i)]);
  const u32 = (k: number): number => ((t[k]! << 24) | (t[k + 1]! << 16) | (t[k + 2]! << 8) | t[k + 3]!) >>> 0;
  return {
    src: `${b[12]}.${b[13]}.${b[14]}.${b[15]}`,
    dst: `${b[16]}.${b[17]}.${b[18]}.${b[19]}`,
    sport: (t[0]! << 8) | t[1]!,
    dport: (t[2]! << 8) | t[3]!,
    seq: u32(4),
    ack: u32(8),
    flags: t[13]!,
    window: (t[14]! << 8) | t[15]!,
    hl,
    mss: o.mss,
    wscale: o.windowScale,
    sackOk: o.sackPermitted,
    ts: o.timestamp,
    tsVal: o.tsVal,
    tsEcr: o.tsEcr,
    sack,
    payload: t.slice(hl),
    at,
  };
}

/**
 * Dissect raw IPv4 packets with tshark (absolute sequence numbers, checksum validation on).
 * Returns per-packet field values and expert messages of severity error.
 */
export function tsharkFields(packets: Uint8Array[], fields: string[]): { rows: Record<string, string[]>[]; errors: string[] } {
  const { path, cleanup } = writePcapFile(packets, LinkType.RAW);
  try {
    const names = ['_ws.malformed', '_ws.expert.severity', '_ws.expert.message', 'tcp.checksum.status', ...fields];
    const args = ['-n', '-r', path, ...CHECKSUM_PREFS, '-o', 'tcp.relative_sequence_numbers:FALSE', '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=,'];
    for (const f of names) args.push('-e', f);
    const out = execFileSync('tshark', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const rows: Record<string, string[]>[] = [];
    const errors: string[] = [];
    out.split('\n').filter((l) => l.length > 0).forEach((line, i) => {
      const cols = line.split('\t');
      const rec: Record<string, string[]> = {};
      names.forEach((n, j) => {
        const v = cols[j] ?? '';
        rec[n] = v === '' ? [] : v.split(',');
      });
      if ((rec['_ws.malformed'] ?? []).length > 0) errors.push(`packet ${i + 1}: malformed`);
      const sev = rec['_ws.expert.severity'] ?? [];
      const msg = rec['_ws.expert.message'] ?? [];
      sev.forEach((s, k) => {
        if (Number(s) >= 0x00800000) errors.push(`packet ${i + 1}: ${msg[k] ?? s}`);
      });
      if ((rec['tcp.checksum.status'] ?? [])[0] === '0') errors.push(`packet ${i + 1}: bad TCP checksum`);
      rows.push(rec);
    });
    if (rows.length !== packets.length) errors.push(`tshark printed ${rows.length} packets for ${packets.length}`);
    return { rows, errors };
  } finally {
    cleanup();
  }
}

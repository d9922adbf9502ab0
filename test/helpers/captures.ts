/**
 * Third-party captures (gopacket's test files) that `.ci/fetch-captures` puts in .cache/captures,
 * and the outside judges (tshark, capinfos) run over a capture file. The files are not committed;
 * test/global-setup.ts fetches them when missing, and tests skip with a printed reason when the
 * fetch failed (no network or no apt).
 */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

export const CAPTURES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../.cache/captures');

/** Path of a capture by its name relative to .cache/captures ("test_dns.pcap", "pcapng/le/test001.pcapng"). */
export function capture(name: string): string {
  return join(CAPTURES_DIR, name);
}

let present: boolean | undefined;
/** True when the captures were fetched; prints why tests skip otherwise. */
export function haveCaptures(): boolean {
  if (present === undefined) {
    present = existsSync(join(CAPTURES_DIR, '.done')) && existsSync(capture('test_ethernet.pcap'));
    if (!present) {
      console.warn(
        `captures missing in ${CAPTURES_DIR}: run \`bash .ci/fetch-captures\` (needs apt and the Debian mirror) to run the capture tests`,
      );
    }
  }
  return present;
}

/** Every capture the reader is checked on: the three classic pcaps and all pcapng files (be and le). */
export function allCaptures(): string[] {
  if (!haveCaptures()) return [];
  const out = ['test_ethernet.pcap', 'test_dns.pcap', 'test_loopback.pcap'];
  for (const order of ['be', 'le']) {
    const dir = capture(join('pcapng', order));
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir).sort()) if (f.endsWith('.pcapng')) out.push(`pcapng/${order}/${f}`);
  }
  return out;
}

let capinfosAvailable: boolean | undefined;
/** True when capinfos (Debian package wireshark-common / tshark) runs here. */
export function haveCapinfos(): boolean {
  if (capinfosAvailable === undefined) {
    capinfosAvailable = spawnSync('capinfos', ['-h'], { stdio: 'ignore' }).status === 0;
    if (!capinfosAvailable) console.warn('capinfos not found: install tshark to run the capinfos comparisons');
  }
  return capinfosAvailable;
}

/** One packet as tshark reports it. `time` is frame.time_epoch ('' when the record has none). */
export interface TsharkFrame {
  time: string;
  len: number;
  capLen: number;
  /** frame.interface_id, '' for classic pcap. */
  interfaceId: string;
  /** Wireshark's WTAP_ENCAP_* number (not the LINKTYPE). */
  encap: number;
  md5: string;
}

export interface TsharkRead {
  frames: TsharkFrame[];
  /** tshark's exit status: non-zero when it found the file corrupt or unsupported. */
  status: number;
  stderr: string;
}

/**
 * Read a capture with tshark: the packet records (non-packet records such as pcapng custom
 * blocks, which tshark shows as frames without an encapsulation, are left out).
 */
export function tsharkRead(path: string): TsharkRead {
  const fields = ['frame.time_epoch', 'frame.len', 'frame.cap_len', 'frame.interface_id', 'frame.encap_type', 'frame.md5_hash'];
  const args = ['-n', '-r', path, '-o', 'frame.generate_md5_hash:TRUE', '-T', 'fields', '-E', 'separator=/t'];
  for (const f of fields) args.push('-e', f);
  const r = spawnSync('tshark', args, { encoding: 'utf8' });
  const frames: TsharkFrame[] = [];
  for (const line of (r.stdout ?? '').split('\n')) {
    if (line === '') continue;
    const [time = '', len = '', capLen = '', interfaceId = '', encap = '', md5 = ''] = line.split('\t');
    if (encap === '') continue;
    frames.push({ time, len: Number(len), capLen: Number(capLen), interfaceId, encap: Number(encap), md5 });
  }
  return { frames, status: r.status ?? -1, stderr: (r.stderr ?? '').replace(/^Running as user.*\n?/m, '') };
}

export interface CapinfosInterface {
  /** Wireshark's short encapsulation name ("ether", "null", "rawip"). */
  encapName: string;
  encap: number;
  snapLength: number;
  ticksPerSecond: number | undefined;
}

export interface CapinfosReport {
  packets: number | undefined;
  /** Every interface of the file, numbered across sections as capinfos does. */
  interfaces: CapinfosInterface[];
  /** "microseconds (6)", "nanoseconds (9)", ... */
  precision: string | undefined;
  status: number;
  stderr: string;
}

export function capinfos(path: string): CapinfosReport {
  const full = spawnSync('capinfos', ['-M', path], { encoding: 'utf8' });
  const out = full.stdout ?? '';
  const packets = /^Number of packets:\s+(\d+)/m.exec(out);
  const precision = /^File timestamp precision:\s+(.*)$/m.exec(out);
  const interfaces: CapinfosInterface[] = [];
  // capinfos 4.0 repeats the whole (cross-section) interface list once per section: keep the first.
  const parts = out.split(/^Interface #(\d+) info:$/m);
  for (let k = 1; k + 1 < parts.length; k += 2) {
    if (Number(parts[k]) !== interfaces.length) break;
    const b = parts[k + 1]!;
    const enc = /Encapsulation = .*\((\d+) - ([^)]+)\)/.exec(b);
    const cap = /Capture length = (\d+)/.exec(b);
    const ticks = /Time ticks per second = (\d+)/.exec(b);
    interfaces.push({
      encap: Number(enc?.[1] ?? NaN),
      encapName: enc?.[2] ?? '',
      snapLength: Number(cap?.[1] ?? NaN),
      ticksPerSecond: ticks ? Number(ticks[1]) : undefined,
    });
  }
  return {
    packets: packets ? Number(packets[1]) : undefined,
    interfaces,
    precision: precision?.[1]?.trim(),
    status: full.status ?? -1,
    stderr: full.stderr ?? '',
  };
}

/** LINKTYPE_* to Wireshark's WTAP_ENCAP_* number and short name, for the link types we meet. */
export const WTAP_ENCAP: Record<number, { encap: number; name: string }> = {
  0: { encap: 15, name: 'null' },
  1: { encap: 1, name: 'ether' },
  101: { encap: 7, name: 'rawip' },
};

// ---------------------------------------------------------------------------------------------
// Building small pcap/pcapng files byte by byte, for reader tests (independent of our writer).

function put16(b: Uint8Array, p: number, v: number, le: boolean): void {
  new DataView(b.buffer, b.byteOffset, b.byteLength).setUint16(p, v, le);
}
function put32(b: Uint8Array, p: number, v: number, le: boolean): void {
  new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(p, v >>> 0, le);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** One pcapng option (code, value), padded to 4 bytes. */
export function ngOption(code: number, value: Uint8Array, le: boolean): Uint8Array {
  const out = new Uint8Array(4 + ((value.length + 3) & ~3));
  put16(out, 0, code, le);
  put16(out, 2, value.length, le);
  out.set(value, 4);
  return out;
}

/** A pcapng block: type, total length, body (padded to 4), total length. */
export function ngBlock(type: number, body: Uint8Array, le: boolean): Uint8Array {
  const padded = (body.length + 3) & ~3;
  const total = 12 + padded;
  const out = new Uint8Array(total);
  put32(out, 0, type, le);
  put32(out, 4, total, le);
  out.set(body, 8);
  put32(out, total - 4, total, le);
  return out;
}

export function ngSectionHeader(le: boolean, options: Uint8Array[] = [], version: [number, number] = [1, 0]): Uint8Array {
  const body = new Uint8Array(16);
  put32(body, 0, 0x1a2b3c4d, le);
  put16(body, 4, version[0], le);
  put16(body, 6, version[1], le);
  put32(body, 8, 0xffffffff, le);
  put32(body, 12, 0xffffffff, le);
  return ngBlock(0x0a0d0d0a, concat(body, ...options), le);
}

export function ngInterface(le: boolean, linkType: number, snapLength: number, options: Uint8Array[] = []): Uint8Array {
  const body = new Uint8Array(8);
  put16(body, 0, linkType, le);
  put32(body, 4, snapLength, le);
  const opts = options.length > 0 ? [...options, new Uint8Array(4)] : [];
  return ngBlock(1, concat(body, ...opts), le);
}

export function ngEnhancedPacket(le: boolean, ifid: number, ticks: bigint, data: Uint8Array, originalLength = data.length): Uint8Array {
  const body = new Uint8Array(20 + ((data.length + 3) & ~3));
  put32(body, 0, ifid, le);
  put32(body, 4, Number(ticks >> 32n), le);
  put32(body, 8, Number(ticks & 0xffffffffn), le);
  put32(body, 12, data.length, le);
  put32(body, 16, originalLength, le);
  body.set(data, 20);
  return ngBlock(6, body, le);
}

export function ngSimplePacket(le: boolean, data: Uint8Array, originalLength = data.length): Uint8Array {
  const body = new Uint8Array(4 + data.length);
  put32(body, 0, originalLength, le);
  body.set(data, 4);
  return ngBlock(3, body, le);
}

/** A classic pcap file header. */
export function pcapHeader(le: boolean, nano: boolean, snapLength: number, linkType: number, version: [number, number] = [2, 4]): Uint8Array {
  const h = new Uint8Array(24);
  put32(h, 0, nano ? 0xa1b23c4d : 0xa1b2c3d4, le);
  put16(h, 4, version[0], le);
  put16(h, 6, version[1], le);
  put32(h, 16, snapLength, le);
  put32(h, 20, linkType, le);
  return h;
}

/** A classic pcap record (header and data). */
export function pcapRecord(le: boolean, sec: number, frac: number, data: Uint8Array, originalLength = data.length): Uint8Array {
  const r = new Uint8Array(16 + data.length);
  put32(r, 0, sec, le);
  put32(r, 4, frac, le);
  put32(r, 8, data.length, le);
  put32(r, 12, originalLength, le);
  r.set(data, 16);
  return r;
}

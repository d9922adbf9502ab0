/**
 * Helpers for the replay and flow tests: captures converted to other link types (written byte by
 * byte with the reader tests' pcap builders, not our writer), and tshark runs over files.
 */
import { execFileSync } from 'node:child_process';
import { PcapReader } from '../../src/pcap/index.js';
import { LinkInfo, decapsulate, encapsulate, type EncapsulateOptions } from '../../src/replay/linktype.js';
import { CHECKSUM_PREFS } from '../helpers/tshark.js';
import { concat, pcapHeader, pcapRecord } from '../helpers/captures.js';

/** An Ethernet capture re-written with `linkType` (IP/ARP frames; ARP dropped off Ethernet). */
export function convertCapture(path: string, linkType: number, opts: EncapsulateOptions & { bigEndian?: boolean } = {}): Uint8Array {
  const recs = PcapReader.open(path).readAll();
  const info = new LinkInfo();
  const parts: Uint8Array[] = [pcapHeader(!opts.bigEndian, false, 262144, linkType)];
  for (const r of recs) {
    if (!decapsulate(r.linkType, r.data, info)) continue;
    if (info.etherType !== 0x0800 && info.etherType !== 0x86dd) continue;
    const src = info.srcMacOffset >= 0 ? r.data.subarray(info.srcMacOffset, info.srcMacOffset + 6) : null;
    const frame = encapsulate(linkType, r.data.subarray(info.offset), info.etherType, { srcMac: src, ...opts });
    const sec = Math.floor(r.timestampMs / 1000);
    const usec = Math.round((r.timestampMs - sec * 1000) * 1000);
    parts.push(pcapRecord(!opts.bigEndian, sec, usec, frame));
  }
  return concat(...parts);
}

/** tshark -T fields over a file: one array of values per frame. */
export function tsharkFields(path: string, fields: string[], extra: string[] = []): string[][] {
  const args = ['-n', '-r', path, ...CHECKSUM_PREFS, ...extra, '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=,'];
  for (const f of fields) args.push('-e', f);
  const out = execFileSync('tshark', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return out
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => l.split('\t'));
}

/** Frames of a file that tshark finds malformed or with a bad checksum (empty when clean). */
export function tsharkProblems(path: string): string[] {
  const rows = tsharkFields(path, ['frame.number', 'frame.protocols', '_ws.malformed', 'ip.checksum.status', 'tcp.checksum.status', 'udp.checksum.status', 'icmp.checksum.status', 'icmpv6.checksum.status']);
  const problems: string[] = [];
  for (const [n, protos, malformed, ...sums] of rows) {
    if ((protos ?? '').includes('malformed') || (malformed ?? '') !== '') problems.push(`frame ${n}: malformed (${protos})`);
    for (const s of sums) for (const v of s.split(',').filter(Boolean)) if (v !== '1' && v !== '2') problems.push(`frame ${n}: checksum status ${v} (${protos})`);
  }
  return problems;
}

/** The bytes each side of TCP stream `stream` sent, as tshark's "follow" reassembles them. */
export function tsharkFollow(path: string, stream = 0): { client: Uint8Array; server: Uint8Array } {
  const out = execFileSync('tshark', ['-n', '-r', path, '-q', '-z', `follow,tcp,raw,${stream}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const client: Buffer[] = [];
  const server: Buffer[] = [];
  for (const line of out.split('\n')) {
    if (/^\t[0-9a-f]+$/.test(line)) server.push(Buffer.from(line.slice(1), 'hex'));
    else if (/^[0-9a-f]+$/.test(line)) client.push(Buffer.from(line, 'hex'));
  }
  return { client: Buffer.concat(client), server: Buffer.concat(server) };
}

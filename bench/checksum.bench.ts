/**
 * Internet checksum throughput over 1500-byte buffers: tunstack's word-wise `checksum` beside a
 * plain byte-wise loop (two bytes combined per step), timed interleaved in the same run. A second
 * row starts every buffer at an odd address, which takes the unaligned head and tail paths.
 */
import { checksum } from '../src/headers/checksum.js';
import { Random } from '../src/core/random.js';
import { timeInterleaved, type BenchRow } from './run.js';

const SIZE = 1500;

/** The textbook loop: one 16-bit word from two byte reads per step. */
export function byteWiseChecksum(buf: Uint8Array): number {
  let s = 0;
  const n = buf.length & ~1;
  for (let i = 0; i < n; i += 2) s += (buf[i]! << 8) | buf[i + 1]!;
  if ((buf.length & 1) !== 0) s += buf[n]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

function row(name: string, bufs: Uint8Array[]): BenchRow {
  for (const b of bufs) {
    if (checksum(b) !== byteWiseChecksum(b)) throw new Error('checksum and the byte-wise loop disagree');
  }
  const mask = bufs.length - 1;
  let sink = 0;
  let i = 0;
  let j = 0;
  const [ours, ref] = timeInterleaved(
    [
      () => {
        sink ^= checksum(bufs[i++ & mask]!);
      },
      () => {
        sink ^= byteWiseChecksum(bufs[j++ & mask]!);
      },
    ],
    5,
    300,
  );
  if (sink === -1) console.log(sink);
  const gbps = (opsPerSec: number): number => (opsPerSec * SIZE) / 1e9;
  return {
    name,
    value: gbps(ours!.opsPerSec),
    unit: 'GB/s',
    reference: gbps(ref!.opsPerSec),
    referenceName: 'byte-wise loop',
    ratio: ours!.opsPerSec / ref!.opsPerSec,
  };
}

export default function run(): BenchRow[] {
  const rnd = new Random(1);
  // Eight packets' worth of bytes, cycled through (more than one buffer, as a stack sees).
  const backing = rnd.fill(new Uint8Array(SIZE * 8 + 8));
  const aligned = Array.from({ length: 8 }, (_, k) => backing.subarray(k * (SIZE + 4), k * (SIZE + 4) + SIZE).slice());
  const odd = Array.from({ length: 8 }, (_, k) => backing.subarray(k * SIZE + 1, k * SIZE + 1 + SIZE));
  return [row('Internet checksum, 1500 B', aligned), row('Internet checksum, 1500 B at an odd address', odd)];
}

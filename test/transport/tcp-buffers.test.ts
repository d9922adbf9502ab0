/**
 * Property tests of TCP's byte stores against simple models: the send buffer's copies, adopted
 * (zero-copy) ranges, leases and lent fragments, the
 * out-of-order queue (overlaps trimmed, merged in order, against a byte map), and the SACK
 * scoreboard (against a set of sequence numbers), including sequence-number wrap-around.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PacketBuffer } from '../../src/core/packet.js';
import { OooQueue, RecvQueue, Scoreboard, SendBuffer, sendBlocksInUse, takeBlock, BLOCK_SIZE, SMALL_BLOCK_SIZE, type BufferLease } from '../../src/transport/tcp/index.js';

describe('SendBuffer', () => {
  it('copies any range like a flat buffer does', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 20000 }), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 0, max: 1000 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 3000 })), { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 0, max: 3 }),
        (writes, acked, reads, dstMis) => {
          const sb = new SendBuffer();
          const flat: number[] = [];
          let v = 1;
          for (const w of writes) {
            const d = new Uint8Array(w);
            for (let i = 0; i < w; i++) d[i] = v = (v * 1103515245 + 12345) >>> 16;
            sb.write(d, 0, w);
            for (const x of d) flat.push(x);
          }
          const ack = Math.min(acked, flat.length - 1);
          sb.ackTo(ack);
          expect(sb.length).toBe(flat.length - ack);
          const ab = new ArrayBuffer(8192);
          for (const [p, l] of reads) {
            const pos = ack + (p % (flat.length - ack));
            const len = Math.min(l, flat.length - pos);
            const want = Uint8Array.from(flat.slice(pos, pos + len));
            const d1 = new Uint8Array(ab, 0, 4000);
            d1.fill(0);
            sb.copyOut(pos, d1, 16 + dstMis, len);
            expect(d1.subarray(16 + dstMis, 16 + dstMis + len)).toEqual(want);
          }
        },
      ),
      { numRuns: 150, seed: 3 },
    );
  });
});

/** A lease that counts its releases. */
class CountingLease implements BufferLease {
  released = 0;
  release(): void {
    this.released++;
  }
}

type Op =
  | { kind: 'write'; len: number }
  | { kind: 'adopt'; len: number; lease: 'none' | 'counting' | 'block' }
  | { kind: 'ack'; frac: number }
  | { kind: 'copy'; at: number; len: number }
  | { kind: 'lend'; at: number; len: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('write' as const), len: fc.integer({ min: 1, max: 70000 }) }),
  fc.record({ kind: fc.constant('adopt' as const), len: fc.integer({ min: 1, max: 70000 }), lease: fc.constantFrom('none' as const, 'counting' as const, 'block' as const) }),
  fc.record({ kind: fc.constant('ack' as const), frac: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ kind: fc.constant('copy' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 70000 }) }),
  fc.record({ kind: fc.constant('lend' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 70000 }) }),
);

describe('SendBuffer: copies, adopted ranges, leases, lent fragments', () => {
  it('reads back like a flat buffer, and every lease and block is released exactly once', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), (ops) => {
        const baseline = sendBlocksInUse();
        const sb = new SendBuffer();
        const flat: number[] = [];
        const counting: CountingLease[] = [];
        const packets: Array<{ pkt: PacketBuffer; want: Uint8Array }> = [];
        let v = 7;
        const bytes = (n: number): Uint8Array => {
          const d = new Uint8Array(n);
          for (let i = 0; i < n; i++) d[i] = v = (v * 1103515245 + 12345) >>> 16;
          return d;
        };
        for (const op of ops) {
          if (op.kind === 'write') {
            const d = bytes(op.len);
            sb.write(d, 0, d.length);
            for (const x of d) flat.push(x);
            d.fill(0); // copied: the caller may reuse its buffer at once
          }
          if (op.kind === 'adopt') {
            let d: Uint8Array;
            let lease: BufferLease | null = null;
            if (op.lease === 'block') {
              const blk = takeBlock();
              const n = Math.min(op.len, blk.b.length);
              blk.b.set(bytes(n), 0);
              blk.fill = n;
              d = blk.b.subarray(0, n);
              lease = blk.retain();
              blk.release(); // the producer moves on; the send buffer holds the only reference
            } else {
              d = bytes(op.len);
              if (op.lease === 'counting') counting.push((lease = new CountingLease()) as CountingLease);
            }
            for (const x of d) flat.push(x);
            sb.adopt(d, lease);
          }
          if (op.kind === 'ack') {
            const to = sb.ackedStream + Math.floor(op.frac * sb.length);
            sb.ackTo(to);
          }
          if ((op.kind === 'copy' || op.kind === 'lend') && sb.length > 0) {
            const pos = sb.ackedStream + (op.at % sb.length);
            const len = Math.min(op.len, sb.endStream - pos);
            const want = Uint8Array.from(flat.slice(pos, pos + len));
            if (op.kind === 'copy') {
              const dst = new Uint8Array(len + 3);
              sb.copyOut(pos, dst, 3, len);
              expect(dst.subarray(3)).toEqual(want);
            } else if (sb.canLend(pos, len, 8)) {
              const pkt = PacketBuffer.alloc(0, 16);
              sb.lend(pos, len, pkt);
              expect(pkt.length).toBe(len);
              expect(pkt.frags!.length).toBeLessThanOrEqual(8);
              packets.push({ pkt, want });
            }
          }
        }
        expect(sb.length).toBe(sb.endStream - sb.ackedStream);
        // Everything acknowledged: the buffer lets go, but lent fragments still hold their bytes
        // (their blocks are not back in the pool yet), even after other buffers reuse blocks.
        sb.ackTo(sb.endStream);
        const other = new SendBuffer();
        other.write(new Uint8Array(300_000).fill(0xee), 0, 300_000);
        for (const { pkt, want } of packets) expect(pkt.view()).toEqual(want);
        other.clear();
        sb.clear();
        for (const c of counting) expect(c.released).toBe(1);
        expect(sendBlocksInUse()).toBe(baseline);
      }),
      { numRuns: 80, seed: 5 },
    );
  });
});

describe('OooQueue', () => {
  it('keeps each byte once, trims overlaps, and drains in order (across the 2^32 wrap)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0, 0xfffff000, 0x7ffffff0),
        fc.array(fc.tuple(fc.integer({ min: 1, max: 6000 }), fc.integer({ min: 1, max: 1500 })), { minLength: 1, maxLength: 40 }),
        (base, segs) => {
          const q = new OooQueue();
          const model = new Map<number, number>();
          const byteAt = (off: number): number => (off * 7 + 3) & 0xff;
          for (const [off, len] of segs) {
            const v = new Uint8Array(len);
            for (let i = 0; i < len; i++) v[i] = byteAt(off + i);
            q.insert((base + off) >>> 0, v, 10_000);
            for (let i = 0; i < len; i++) model.set(off + i, byteAt(off + i));
          }
          expect(q.bytes).toBe(model.size);
          // Segments sorted and disjoint.
          for (let i = 1; i < q.count; i++) {
            const prevEnd = (q.seqs[i - 1]! - base + q.data[i - 1]!.length) >>> 0;
            expect((q.seqs[i]! - base) >>> 0).toBeGreaterThanOrEqual(prevEnd);
          }
          // SACK blocks describe the held ranges.
          const out = new Uint32Array(8);
          const n = q.sackBlocks(out, 4);
          expect(n).toBeGreaterThan(0);
          for (let k = 0; k < n; k++) {
            const l = (out[2 * k]! - base) >>> 0;
            const r = (out[2 * k + 1]! - base) >>> 0;
            let inside = true;
            for (let x = l; x < r; x++) inside &&= model.has(x);
            expect(inside).toBe(true);
            expect(model.has(r)).toBe(false);
            if (l > 0) expect(model.has(l - 1)).toBe(false);
          }
          // Fill from 1 (everything before the first gap drains).
          const rq = new RecvQueue();
          const head = new Uint8Array(1);
          head[0] = byteAt(0);
          rq.push(head);
          const nxt = q.drainInto((base + 1) >>> 0, rq);
          let expectNxt = 1;
          while (model.has(expectNxt)) expectNxt++;
          expect((nxt - base) >>> 0).toBe(expectNxt);
          const got: number[] = [];
          for (let c = rq.shift(); c; c = rq.shift()) got.push(...c);
          expect(got.length).toBe(expectNxt);
          let same = true;
          for (let i = 1; i < got.length; i++) same &&= got[i] === byteAt(i);
          expect(same).toBe(true);
        },
      ),
      { numRuns: 150, seed: 5 },
    );
  });
});

describe('Scoreboard', () => {
  it('tracks SACKed bytes like a set, merges ranges and trims on ACK', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0, 0xffffff00),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 1, max: 800 })), { maxLength: 30 }),
        fc.integer({ min: 0, max: 5000 }),
        (base, blocks, ackAt) => {
          const sb = new Scoreboard();
          const set = new Set<number>();
          for (const [l, len] of blocks) {
            sb.add((base + l) >>> 0, (base + l + len) >>> 0);
            for (let i = l; i < l + len; i++) set.add(i);
          }
          expect(sb.sacked).toBe(set.size);
          for (let i = 1; i < sb.count; i++) expect((sb.starts[i]! - base) >>> 0).toBeGreaterThan((sb.ends[i - 1]! - base) >>> 0);
          sb.ackTo((base + ackAt) >>> 0);
          for (const x of [...set]) if (x < ackAt) set.delete(x);
          expect(sb.sacked).toBe(set.size);
          expect(sb.sackedIn((base + ackAt) >>> 0, (base + 6000) >>> 0)).toBe(set.size);
          // Loss boundary: holes below it have more than 2 * mss SACKed above.
          const mss = 100;
          const lb = (sb.lossBoundary((base + ackAt) >>> 0, mss, 3) - base) >>> 0;
          if (lb !== ackAt) {
            let above = 0;
            for (const x of set) if (x >= lb) above++;
            expect(above).toBeGreaterThan(2 * mss);
          }
        },
      ),
      { numRuns: 300, seed: 9 },
    );
  });
});

describe('RecvQueue.takeChunk', () => {
  it('hands large payloads up without copying and joins small ones, the bytes in order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 9000 }),
        fc.integer({ min: 1, max: 6000 }),
        (sizes, max, minChunk) => {
          const q = new RecvQueue();
          const pushed: Uint8Array[] = [];
          let n = 0;
          for (const s of sizes) {
            const v = new Uint8Array(s);
            for (let i = 0; i < s; i++) v[i] = (n + i) & 0xff;
            n += s;
            pushed.push(v);
            q.push(v);
          }
          let seen = 0;
          // What is left of each payload, front first (a shadow of the queue).
          const lens = [...sizes];
          while (q.bytes > 0) {
            const head = q.peek()!;
            const alone = q.count === 1;
            const before = q.bytes;
            // The run of small payloads in front: what a copy may join (never part of a large one).
            let run = 0;
            for (const len of lens) {
              if (len >= minChunk) break;
              run += len;
            }
            const out = q.takeChunk(max, minChunk);
            expect(out.length).toBeGreaterThan(0);
            expect(out.length).toBeLessThanOrEqual(max);
            expect(q.bytes).toBe(before - out.length);
            // A head of at least minChunk bytes (or the last one) is passed on as a view, not copied;
            // so is a small head with a large payload right behind it.
            if (head.length >= minChunk || alone || (run === head.length && head.length <= max)) expect(out.buffer).toBe(head.buffer);
            else expect(out.length).toBeLessThanOrEqual(run);
            let left = out.length;
            while (left > 0) {
              const k = Math.min(left, lens[0]!);
              left -= k;
              if (k === lens[0]) lens.shift();
              else lens[0] = lens[0]! - k;
            }
            for (let i = 0; i < out.length; i++) if (out[i] !== ((seen + i) & 0xff)) throw new Error(`byte ${seen + i}`);
            seen += out.length;
          }
          expect(seen).toBe(n);
        },
      ),
      { numRuns: 300, seed: 17 },
    );
  });
});

describe('SendBuffer blocks', () => {
  it('a short write into an empty buffer pins a small block; a stream of writes goes into 64 KiB blocks', () => {
    const before = sendBlocksInUse();
    const sb = new SendBuffer();
    sb.write(new Uint8Array(300).fill(1), 0, 300);
    expect(sb.truesize).toBe(SMALL_BLOCK_SIZE);
    // More writes fill the small block first, then continue in a big one.
    sb.write(new Uint8Array(5000).fill(2), 0, 5000);
    expect(sb.truesize).toBe(SMALL_BLOCK_SIZE + BLOCK_SIZE);
    const out = new Uint8Array(5300);
    sb.copyOut(0, out, 0, 5300);
    expect(out.subarray(0, 300).every((b) => b === 1)).toBe(true);
    expect(out.subarray(300).every((b) => b === 2)).toBe(true);
    sb.ackTo(5300);
    expect(sb.truesize).toBe(0);
    expect(sendBlocksInUse()).toBe(before);
    // A large first write takes a big block at once.
    const big = new SendBuffer();
    big.write(new Uint8Array(SMALL_BLOCK_SIZE + 1), 0, SMALL_BLOCK_SIZE + 1);
    expect(big.truesize).toBe(BLOCK_SIZE);
    big.clear();
    expect(sendBlocksInUse()).toBe(before);
  });
});

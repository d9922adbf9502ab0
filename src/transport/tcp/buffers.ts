/**
 * TCP's byte stores: the send buffer (copies in pooled blocks, adopted views kept as they are),
 * the in-order receive queue (zero-copy views of segment payloads), the out-of-order queue
 * (bounded, overlap-trimmed, merged into the receive queue as holes fill) and the SACK scoreboard
 * of the sender (RFC 6675).
 */
import type { BufferLease, PacketBuffer } from '../../core/packet.js';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from './seq.js';

/** Bytes per send-buffer block. */
export const BLOCK_SIZE = 65536;
/**
 * Bytes of a small block: a short write into an empty send buffer (a request or response of a
 * request-response protocol) takes one of these instead of 64 KiB, so that thousands of
 * connections answering at once neither zero-fill nor pin 64 KiB each.
 */
export const SMALL_BLOCK_SIZE = 4096;
/** Blocks kept for reuse, shared by every send buffer of the process. */
const POOL_MAX = 64;
/** Small blocks kept for reuse (4 MiB). */
const SMALL_POOL_MAX = 1024;
/** Adopted views shorter than this are copied instead (bounds the entries per byte held). */
const ADOPT_MIN = 2048;

export type { BufferLease };

/**
 * A pooled, reference-counted block of send memory. A producer that fills blocks itself (the
 * sandbox relay reads host sockets straight into them) takes one with `takeBlock()`, hands filled
 * ranges to a send buffer with one `retain()` each, and `release()`s its own reference when it
 * moves on; the block returns to the pool when the last reference goes.
 */
export class SendBlock implements BufferLease {
  readonly b: Uint8Array;
  /** Bytes of `b` in use (filled from 0). */
  fill = 0;
  /** References: the producer's and one per send-buffer range. */
  refs = 0;
  /** The send buffer that appends copies to this block, if any. */
  owner: SendBuffer | null = null;

  constructor(size = BLOCK_SIZE) {
    this.b = new Uint8Array(size);
  }

  retain(): this {
    this.refs++;
    return this;
  }

  release(): void {
    if (--this.refs === 0) {
      blocksInUse--;
      this.fill = 0;
      this.owner = null;
      if (this.b.length === BLOCK_SIZE) {
        if (pool.length < POOL_MAX) pool.push(this);
      } else if (smallPool.length < SMALL_POOL_MAX) {
        smallPool.push(this);
      }
    }
  }
}

const pool: SendBlock[] = [];
const smallPool: SendBlock[] = [];
let blocksInUse = 0;

/** A block of BLOCK_SIZE bytes (or SMALL_BLOCK_SIZE with `small`) from the pool (or new), with one reference for the caller. */
export function takeBlock(small = false): SendBlock {
  const b = small ? (smallPool.pop() ?? new SendBlock(SMALL_BLOCK_SIZE)) : (pool.pop() ?? new SendBlock());
  b.refs = 1;
  blocksInUse++;
  return b;
}

/** Blocks taken and not yet released by every holder (a leak check for tests and stats). */
export function sendBlocksInUse(): number {
  return blocksInUse;
}

/** Free blocks kept for reuse (64 KiB ones; `small`: the small ones). */
export function sendBlocksPooled(small = false): number {
  return small ? smallPool.length : pool.length;
}

/** One contiguous range of the send buffer. */
interface Entry {
  readonly buf: Uint8Array;
  /** Offset of the range in `buf`. */
  readonly off: number;
  len: number;
  /** Stream offset of buf[off]. */
  readonly start: number;
  readonly lease: BufferLease | null;
  /** Memory the range pins: a whole block for pooled blocks, else its bytes. */
  size: number;
}

/**
 * Bytes written by the application and not yet acknowledged, as a list of ranges: copies go into
 * pooled blocks, adopted views are kept as they are (no copy). Positions are stream offsets (bytes
 * since the first written byte), which never wrap.
 */
export class SendBuffer {
  private entries: Entry[] = [];
  /** Index in `entries` of the first live entry. */
  private head = 0;
  /** Where the last copyOut ended (segments are mostly read in order). */
  private cursor = 0;
  /** Stream offset of the first unacknowledged byte. */
  ackedStream = 0;
  /** Stream offset after the last written byte. */
  endStream = 0;
  /**
   * Memory pinned by the ranges held (Linux's truesize): a whole block for each range in a
   * pooled block, the bytes of other adopted views.
   */
  truesize = 0;

  /** Bytes held (written, not yet acknowledged). */
  get length(): number {
    return this.endStream - this.ackedStream;
  }

  /** Ranges held (for tests and accounting). */
  get rangeCount(): number {
    return this.entries.length - this.head;
  }

  /** Bytes that can still be copied into the last block without pinning new memory. */
  get tailRoom(): number {
    const es = this.entries;
    if (es.length === this.head) return 0;
    const last = es[es.length - 1]!;
    const l = last.lease;
    return l instanceof SendBlock && l.owner === this && last.off + last.len === l.fill ? l.b.length - l.fill : 0;
  }

  /** Append a copy of `len` bytes of `src` at `off`. */
  write(src: Uint8Array, off: number, len: number): void {
    const es = this.entries;
    while (len > 0) {
      const last = es.length > this.head ? es[es.length - 1]! : null;
      let blk: SendBlock;
      let e: Entry;
      if (last !== null && last.lease instanceof SendBlock && last.lease.owner === this && last.off + last.len === last.lease.fill && last.lease.fill < last.lease.b.length) {
        blk = last.lease;
        e = last;
      } else {
        // Small only for a short write into an empty buffer: a stream of writes gets big blocks.
        blk = takeBlock(last === null && len <= SMALL_BLOCK_SIZE);
        blk.owner = this;
        e = this.push(blk.b, 0, 0, blk);
      }
      const n = Math.min(len, blk.b.length - blk.fill);
      blk.b.set(n === src.length && off === 0 ? src : src.subarray(off, off + n), blk.fill);
      blk.fill += n;
      e.len += n;
      this.endStream += n;
      off += n;
      len -= n;
    }
  }

  /**
   * Append `data` without copying: it stays referenced until acknowledged and must not change.
   * `lease` (if given) is released once when the bytes are no longer referenced, at once when
   * they were copied instead (short views are) or merged into the previous range of the same lease.
   */
  adopt(data: Uint8Array, lease: BufferLease | null = null): void {
    const len = data.length;
    if (len < ADOPT_MIN) {
      this.write(data, 0, len);
      lease?.release();
      return;
    }
    const es = this.entries;
    const last = es.length > this.head ? es[es.length - 1]! : null;
    if (lease !== null && last !== null && last.lease === lease && last.buf.buffer === data.buffer && last.buf.byteOffset + last.off + last.len === data.byteOffset) {
      // The next bytes of the same block: grow the range, keep one reference for it.
      last.len += len;
      if (!(lease instanceof SendBlock)) {
        last.size += len;
        this.truesize += len;
      }
      this.endStream += len;
      lease.release();
      return;
    }
    this.push(data, 0, len, lease);
  }

  private push(buf: Uint8Array, off: number, len: number, lease: BufferLease | null): Entry {
    const size = lease instanceof SendBlock ? lease.b.length : len;
    const e: Entry = { buf, off, len, start: this.endStream, lease, size };
    this.truesize += size;
    if (this.entries.length === this.head) {
      this.entries.length = 0;
      this.head = 0;
      this.cursor = 0;
    }
    this.entries.push(e);
    this.endStream += len;
    return e;
  }

  /** Index of the entry holding stream offset `pos` (ackedStream <= pos < endStream). */
  private find(pos: number): number {
    const es = this.entries;
    let i = this.cursor;
    if (i < this.head || i >= es.length || es[i]!.start > pos) {
      let lo = this.head;
      let hi = es.length - 1;
      while (lo < hi) {
        const m = (lo + hi + 1) >>> 1;
        if (es[m]!.start <= pos) lo = m;
        else hi = m - 1;
      }
      return lo;
    }
    while (i + 1 < es.length && es[i + 1]!.start <= pos) i++;
    return i;
  }

  /** Copy `len` bytes starting at stream offset `pos` into `dst` at `dstOff`. */
  copyOut(pos: number, dst: Uint8Array, dstOff: number, len: number): void {
    const es = this.entries;
    let i = this.find(pos);
    let o = pos - es[i]!.start;
    while (len > 0) {
      const e = es[i]!;
      const n = Math.min(len, e.len - o);
      const b = e.buf;
      // (A view made directly is cheaper than subarray.)
      dst.set(new Uint8Array(b.buffer, b.byteOffset + e.off + o, n), dstOff);
      dstOff += n;
      len -= n;
      o += n;
      if (o === e.len && len > 0) {
        i++;
        o = 0;
      }
    }
    this.cursor = i;
  }

  /**
   * Whether `len` bytes from stream offset `pos` can be lent as at most `maxFrags` fragments:
   * not when they span more ranges, or memory this buffer cannot lend (an adopted view with a
   * foreign lease). Those are copied instead.
   */
  canLend(pos: number, len: number, maxFrags: number): boolean {
    const es = this.entries;
    let i = this.find(pos);
    let left = len + (pos - es[i]!.start);
    for (let n = 1; ; n++) {
      const e = es[i]!;
      if (e.lease !== null && !(e.lease instanceof SendBlock)) return false;
      left -= e.len;
      if (left <= 0) return true;
      if (n >= maxFrags) return false;
      i++;
    }
  }

  /**
   * Add `len` bytes from stream offset `pos` to `pkt` as scatter-gather fragments: views of this
   * buffer's memory, each pooled block retained until the packet releases it (check `canLend`).
   */
  lend(pos: number, len: number, pkt: PacketBuffer): void {
    const es = this.entries;
    let i = this.find(pos);
    let o = pos - es[i]!.start;
    for (;;) {
      const e = es[i]!;
      const n = Math.min(len, e.len - o);
      const b = e.buf;
      const blk = e.lease as SendBlock | null;
      pkt.addFrag(new Uint8Array(b.buffer, b.byteOffset + e.off + o, n), blk === null ? null : blk.retain());
      len -= n;
      if (len === 0) break;
      o = 0;
      i++;
    }
    this.cursor = i;
  }

  /** Drop everything before stream offset `pos` (acknowledged). */
  ackTo(pos: number): void {
    if (pos > this.endStream) pos = this.endStream;
    if (pos <= this.ackedStream) return;
    this.ackedStream = pos;
    const es = this.entries;
    while (this.head < es.length) {
      const e = es[this.head]!;
      if (e.start + e.len > pos) break;
      e.lease?.release();
      this.truesize -= e.size;
      es[this.head] = EMPTY_ENTRY;
      this.head++;
    }
    if (this.head === es.length) {
      es.length = 0;
      this.head = 0;
      this.cursor = 0;
    } else if (this.head > 64 && this.head * 2 > es.length) {
      es.splice(0, this.head);
      this.cursor = Math.max(0, this.cursor - this.head);
      this.head = 0;
    }
  }

  /** Release everything. */
  clear(): void {
    const es = this.entries;
    for (let i = this.head; i < es.length; i++) es[i]!.lease?.release();
    es.length = 0;
    this.head = 0;
    this.cursor = 0;
    this.ackedStream = this.endStream;
    this.truesize = 0;
  }
}

const EMPTY = new Uint8Array(0);
const EMPTY_ENTRY: Entry = { buf: EMPTY, off: 0, len: 0, start: 0, lease: null, size: 0 };

/** The in-order receive queue: views of payloads, read front to back. */
export class RecvQueue {
  private items: Uint8Array[] = [];
  private head = 0;
  /** Bytes queued. */
  bytes = 0;

  get count(): number {
    return this.items.length - this.head;
  }

  push(v: Uint8Array): void {
    this.items.push(v);
    this.bytes += v.length;
  }

  peek(): Uint8Array | undefined {
    return this.items[this.head];
  }

  shift(): Uint8Array | undefined {
    if (this.head >= this.items.length) return undefined;
    const v = this.items[this.head]!;
    this.items[this.head] = EMPTY;
    this.head++;
    this.bytes -= v.length;
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items.splice(0, this.head);
      this.head = 0;
    }
    return v;
  }

  /**
   * Take up to `max` bytes (max > 0, the queue not empty) from the front: the head itself or a
   * view of it when it is enough, else a copy of as many views as make up the bytes.
   */
  take(max: number): Uint8Array {
    let out: Uint8Array;
    const head = this.peek()!;
    if (head.length >= max) {
      const n = Math.floor(max);
      out = n === head.length ? this.shift()! : head.subarray(0, n);
      if (n !== head.length) this.trimHead(n);
    } else if (this.count === 1) {
      out = this.shift()!;
    } else {
      const n = Math.min(this.bytes, max);
      out = new Uint8Array(n);
      let o = 0;
      while (o < n) {
        const h = this.peek()!;
        if (h.length <= n - o) {
          out.set(h, o);
          o += h.length;
          this.shift();
        } else {
          const k = n - o;
          out.set(h.subarray(0, k), o);
          this.trimHead(k);
          o += k;
        }
      }
    }
    return out;
  }

  /**
   * Take bytes for a stream consumer without copying large payloads: the head as it is (or its
   * first `max` bytes) when it holds at least `minChunk` bytes or is alone, else a copy of the
   * small payloads in front, up to `max` bytes (so that MSS-sized segments still go up in big
   * chunks). The copy stops at the first large payload: a short segment in front of super-packets
   * (the tail of a sender's write) goes up alone rather than have 64 KiB copied after it (fresh
   * memory for the copy can fault page by page after the process forked).
   */
  takeChunk(max: number, minChunk: number): Uint8Array {
    const head = this.peek()!;
    if (head.length >= minChunk || this.count === 1) {
      if (head.length <= max) return this.shift()!;
      const out = head.subarray(0, max);
      this.trimHead(max);
      return out;
    }
    // The run of small payloads at the front, up to max bytes.
    const items = this.items;
    let n = 0;
    for (let i = this.head; i < items.length && n < max; i++) {
      const len = items[i]!.length;
      if (len >= minChunk) break;
      n += len;
    }
    if (n === head.length && n <= max) return this.shift()!;
    return this.take(Math.min(n, max));
  }

  /** Replace the head with its tail after `n` bytes were taken from it. */
  trimHead(n: number): void {
    const v = this.items[this.head]!;
    this.items[this.head] = v.subarray(n);
    this.bytes -= n;
  }

  clear(): void {
    this.items.length = 0;
    this.head = 0;
    this.bytes = 0;
  }
}

/**
 * Out-of-order segments, sorted by sequence number, never overlapping. A new segment replaces the
 * ones it covers completely and is trimmed against partial overlaps, so no byte is kept twice.
 */
export class OooQueue {
  readonly seqs: number[] = [];
  readonly data: Uint8Array[] = [];
  /** Payload bytes held. */
  bytes = 0;
  /** Sequence numbers (starts) of the most recently received segments, newest first (SACK order). */
  readonly recent: number[] = [];

  get count(): number {
    return this.seqs.length;
  }

  /** Entries evicted from the tail to make room for earlier data (reneged), since last read. */
  evicted = 0;

  /**
   * Insert `v` at `seq` (seq is after rcvNxt). Returns the bytes newly stored, 0 for a complete
   * duplicate, or -1 when the segment was dropped for the bound. `maxSegs` bounds the number of
   * entries: a segment that would exceed it is dropped unless it lies before the last entry (then
   * the last entry is dropped instead and counted in `evicted`).
   */
  insert(seq: number, v: Uint8Array, maxSegs: number): number {
    let s = seq;
    let e = seqAdd(seq, v.length);
    const seqs = this.seqs;
    const data = this.data;
    // First entry whose end is after s.
    let i = 0;
    let lo = 0;
    let hi = seqs.length;
    while (lo < hi) {
      const m = (lo + hi) >>> 1;
      if (seqLe(seqAdd(seqs[m]!, data[m]!.length), s)) lo = m + 1;
      else hi = m;
    }
    i = lo;
    // Trim against a predecessor overlapping our start.
    if (i < seqs.length && seqLe(seqs[i]!, s)) {
      const pe = seqAdd(seqs[i]!, data[i]!.length);
      if (seqGe(pe, e)) {
        this.noteRecent(seqs[i]!);
        return 0; // fully covered
      }
      const cut = seqDiff(pe, s);
      v = v.subarray(cut);
      s = pe;
      i++;
    }
    // Remove entries we cover completely.
    let j = i;
    while (j < seqs.length && seqLe(seqAdd(seqs[j]!, data[j]!.length), e)) {
      this.bytes -= data[j]!.length;
      j++;
    }
    if (j > i) {
      seqs.splice(i, j - i);
      data.splice(i, j - i);
    }
    // Trim our end against a successor.
    if (i < seqs.length && seqLt(seqs[i]!, e)) {
      v = v.subarray(0, seqDiff(seqs[i]!, s));
      e = seqs[i]!;
    }
    if (v.length === 0) return 0;
    if (seqs.length >= maxSegs) {
      if (i >= seqs.length) return -1;
      this.evicted++;
      const last = seqs.length - 1;
      this.bytes -= data[last]!.length;
      seqs.pop();
      data.pop();
    }
    seqs.splice(i, 0, s);
    data.splice(i, 0, v);
    this.bytes += v.length;
    this.noteRecent(s);
    return v.length;
  }

  /** Drop the entry with the highest sequence number; returns its bytes (0 when empty). */
  popLast(): number {
    const v = this.data.pop();
    if (v === undefined) return 0;
    const s = this.seqs.pop()!;
    this.bytes -= v.length;
    const k = this.recent.indexOf(s);
    if (k >= 0) this.recent.splice(k, 1);
    return v.length;
  }

  private noteRecent(s: number): void {
    const r = this.recent;
    const k = r.indexOf(s);
    if (k === 0) return;
    if (k > 0) r.splice(k, 1);
    r.unshift(s);
    if (r.length > 4) r.length = 4;
  }

  /**
   * Move every entry that starts at or before `rcvNxt` into `out` (trimming bytes already
   * received). Returns the new rcvNxt.
   */
  drainInto(rcvNxt: number, out: RecvQueue): number {
    const seqs = this.seqs;
    const data = this.data;
    let n = 0;
    while (n < seqs.length && seqLe(seqs[n]!, rcvNxt)) {
      const s = seqs[n]!;
      let v = data[n]!;
      this.bytes -= v.length;
      const e = seqAdd(s, v.length);
      if (seqGt(e, rcvNxt)) {
        if (s !== rcvNxt) v = v.subarray(seqDiff(rcvNxt, s));
        out.push(v);
        rcvNxt = e;
      }
      n++;
    }
    if (n > 0) {
      seqs.splice(0, n);
      data.splice(0, n);
      if (seqs.length === 0) this.recent.length = 0;
    }
    return rcvNxt;
  }

  /**
   * Write SACK blocks (RFC 2018) into `out` as [left, right, ...]: the block holding the most
   * recently received segment first, then other recent ones, then the rest in order.
   * Returns the number of blocks (at most `max`).
   */
  sackBlocks(out: Uint32Array, max: number): number {
    const seqs = this.seqs;
    const data = this.data;
    let n = 0;
    if (seqs.length === 0 || max <= 0) return 0;
    // Recent blocks first.
    for (let r = 0; r < this.recent.length && n < max; r++) {
      const idx = this.indexOf(this.recent[r]!);
      if (idx < 0) continue;
      n = this.pushBlock(idx, out, n);
    }
    for (let i = 0; i < seqs.length && n < max; ) {
      n = this.pushBlock(i, out, n);
      // Skip to the end of this contiguous run.
      let k = i;
      while (k + 1 < seqs.length && seqAdd(seqs[k]!, data[k]!.length) === seqs[k + 1]) k++;
      i = k + 1;
    }
    return n;
  }

  private indexOf(s: number): number {
    const seqs = this.seqs;
    for (let i = 0; i < seqs.length; i++) if (seqs[i] === s) return i;
    return -1;
  }

  /** Append the block containing entry `idx` unless already present. */
  private pushBlock(idx: number, out: Uint32Array, n: number): number {
    const seqs = this.seqs;
    const data = this.data;
    let a = idx;
    while (a > 0 && seqAdd(seqs[a - 1]!, data[a - 1]!.length) === seqs[a]) a--;
    let b = idx;
    while (b + 1 < seqs.length && seqAdd(seqs[b]!, data[b]!.length) === seqs[b + 1]) b++;
    const left = seqs[a]!;
    const right = seqAdd(seqs[b]!, data[b]!.length);
    for (let k = 0; k < n; k++) if (out[2 * k] === left) return n;
    out[2 * n] = left;
    out[2 * n + 1] = right;
    return n + 1;
  }

  clear(): void {
    this.seqs.length = 0;
    this.data.length = 0;
    this.recent.length = 0;
    this.bytes = 0;
  }
}

/**
 * The sender's record of SACKed ranges above SND.UNA (RFC 6675 scoreboard): sorted, merged,
 * bounded. Sequence numbers are unsigned 32-bit.
 */
export class Scoreboard {
  readonly starts: number[] = [];
  readonly ends: number[] = [];
  /** Bytes covered by the ranges. */
  sacked = 0;
  static readonly MAX_RANGES = 256;

  get count(): number {
    return this.starts.length;
  }

  /** Record [left, right) (already clipped to (una, max]). Returns true if new bytes were SACKed. */
  add(left: number, right: number): boolean {
    if (!seqLt(left, right)) return false;
    const st = this.starts;
    const en = this.ends;
    // First range whose end >= left.
    let i = 0;
    while (i < st.length && seqLt(en[i]!, left)) i++;
    let l = left;
    let r = right;
    let j = i;
    let covered = 0;
    while (j < st.length && seqLe(st[j]!, r)) {
      if (seqLt(st[j]!, l)) l = st[j]!;
      if (seqGt(en[j]!, r)) r = en[j]!;
      covered += seqDiff(en[j]!, st[j]!);
      j++;
    }
    const added = seqDiff(r, l) - covered;
    if (j === i + 1 && st[i] === l && en[i] === r) return false;
    if (j > i) {
      st.splice(i, j - i, l);
      en.splice(i, j - i, r);
    } else {
      if (st.length >= Scoreboard.MAX_RANGES) return false;
      st.splice(i, 0, l);
      en.splice(i, 0, r);
    }
    this.sacked += added;
    return added > 0;
  }

  /** Forget everything at or below `una`. */
  ackTo(una: number): void {
    const st = this.starts;
    const en = this.ends;
    let n = 0;
    while (n < st.length && seqLe(en[n]!, una)) {
      this.sacked -= seqDiff(en[n]!, st[n]!);
      n++;
    }
    if (n > 0) {
      st.splice(0, n);
      en.splice(0, n);
    }
    if (st.length > 0 && seqLt(st[0]!, una)) {
      this.sacked -= seqDiff(una, st[0]!);
      st[0] = una;
    }
  }

  /** Bytes SACKed in [a, b). */
  sackedIn(a: number, b: number): number {
    const st = this.starts;
    const en = this.ends;
    let s = 0;
    for (let i = 0; i < st.length; i++) {
      const l = seqGt(st[i]!, a) ? st[i]! : a;
      const r = seqLt(en[i]!, b) ? en[i]! : b;
      if (seqLt(l, r)) s += seqDiff(r, l);
    }
    return s;
  }

  /**
   * RFC 6675 IsLost boundary: holes below the returned sequence number have more than
   * (dupThresh - 1) * mss bytes SACKed above them. Returns `una` when nothing is lost.
   */
  lossBoundary(una: number, mss: number, dupThresh: number): number {
    const st = this.starts;
    const en = this.ends;
    let cum = 0;
    const need = (dupThresh - 1) * mss;
    for (let i = st.length - 1; i >= 0; i--) {
      cum += seqDiff(en[i]!, st[i]!);
      if (cum > need) return st[i]!;
    }
    return una;
  }

  /** If `seq` lies in a SACKed range, the end of that range; else -1. */
  sackedEnd(seq: number): number {
    const st = this.starts;
    const en = this.ends;
    for (let i = 0; i < st.length; i++) {
      if (seqLt(seq, st[i]!)) return -1;
      if (seqLt(seq, en[i]!)) return en[i]!;
    }
    return -1;
  }

  /** The start of the first SACKed range after `seq`, or -1. */
  nextSackedStart(seq: number): number {
    const st = this.starts;
    for (let i = 0; i < st.length; i++) if (seqGt(st[i]!, seq)) return st[i]!;
    return -1;
  }

  /** The highest SACKed sequence number (end of the last range), or -1. */
  get highest(): number {
    return this.ends.length > 0 ? this.ends[this.ends.length - 1]! : -1;
  }

  clear(): void {
    this.starts.length = 0;
    this.ends.length = 0;
    this.sacked = 0;
  }
}

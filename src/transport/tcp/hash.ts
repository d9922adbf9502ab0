/**
 * Keyed hashing for TCP: initial sequence numbers (RFC 6528), SYN cookies, timestamp offsets and
 * the connection table. The keyed function is a SipHash-style add-rotate-xor PRF on 32-bit words
 * (two rounds per word, four to finish, keyed by 64 bits), computed without allocation.
 * Keys come from the stack's seeded Random, so a run with a fixed seed is reproducible.
 */

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

let v0 = 0;
let v1 = 0;
let v2 = 0;
let v3 = 0;

function round(): void {
  v0 = (v0 + v1) | 0;
  v1 = rotl(v1, 5) ^ v0;
  v0 = rotl(v0, 16);
  v2 = (v2 + v3) | 0;
  v3 = rotl(v3, 8) ^ v2;
  v0 = (v0 + v3) | 0;
  v3 = rotl(v3, 7) ^ v0;
  v2 = (v2 + v1) | 0;
  v1 = rotl(v1, 13) ^ v2;
  v2 = rotl(v2, 16);
}

function begin(k0: number, k1: number): void {
  v0 = k0 | 0;
  v1 = k1 | 0;
  v2 = 0x6c796765 ^ k0;
  v3 = 0x74656462 ^ k1;
}

function absorb(m: number): void {
  v3 ^= m;
  round();
  round();
  v0 ^= m;
}

function end(n: number): number {
  absorb(n << 24);
  v2 ^= 0xff;
  round();
  round();
  round();
  round();
  return (v1 ^ v3) >>> 0;
}

/** A 32-bit word of an address at `off` (4 bytes), big-endian. */
function word(b: Uint8Array, off: number): number {
  return (b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!;
}

/**
 * Keyed hash of a connection 4-tuple (addresses of 4 or 16 bytes) plus one extra word.
 * `la`/`ra` are read at `laOff`/`raOff` with `alen` bytes.
 */
export function keyedTupleHash(
  k0: number,
  k1: number,
  la: Uint8Array,
  laOff: number,
  ra: Uint8Array,
  raOff: number,
  alen: number,
  lport: number,
  rport: number,
  extra: number,
): number {
  begin(k0, k1);
  for (let i = 0; i < alen; i += 4) absorb(word(la, laOff + i));
  for (let i = 0; i < alen; i += 4) absorb(word(ra, raOff + i));
  absorb((lport << 16) | rport);
  absorb(extra);
  return end(2 * alen + 8);
}

/**
 * Fast (non-cryptographic but seeded) hash of a 4-tuple for the connection table: the seed keeps
 * remote peers from choosing colliding tuples.
 */
export function tupleHash(
  seed: number,
  la: Uint8Array,
  laOff: number,
  ra: Uint8Array,
  raOff: number,
  alen: number,
  lport: number,
  rport: number,
): number {
  let h = seed ^ ((lport << 16) | rport);
  for (let i = 0; i < alen; i += 4) {
    h = Math.imul(h ^ word(la, laOff + i), 0x9e3779b1);
    h ^= h >>> 15;
    h = Math.imul(h ^ word(ra, raOff + i), 0x85ebca77);
    h ^= h >>> 13;
  }
  h = Math.imul(h ^ (h >>> 16), 0xc2b2ae3d);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Flip bits of one byte in place (`bytes[index] ^= mask`), for tests that corrupt packets. An
 * index outside the array is a test bug: it throws instead of writing nowhere (with
 * noUncheckedIndexedAccess, `bytes[i] ^= m` does not type-check for that reason).
 */
export function xorAt(bytes: Uint8Array, index: number, mask: number): void {
  const v = bytes[index];
  if (v === undefined) throw new RangeError(`xorAt: index ${index} outside ${bytes.length} bytes`);
  bytes[index] = v ^ mask;
}

/** Big-endian field access shared by the header views (internal; not exported from the package). */

export function u16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

export function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

export function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}

export function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

/** Text as Node's 'latin1' (and 'ascii') encoding writes it: the low byte of each UTF-16 unit. */
export function latin1Bytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

/** Bytes read as Node's 'latin1' decoding does: one character per byte. */
export function latin1Text(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 4096) s += String.fromCharCode(...bytes.subarray(i, i + 4096));
  return s;
}

/** Bytes read as Node's 'ascii' decoding does: the top bit of each byte is dropped. */
export function asciiText(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]! & 0x7f);
  return s;
}

const utf8 = new TextEncoder();

/** UTF-8 bytes of a string (Node's Buffer.from(text, 'utf8')). */
export function utf8Bytes(text: string): Uint8Array {
  return utf8.encode(text);
}

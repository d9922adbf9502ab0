/**
 * Browser stand-ins for the few Node modules and globals the core still uses.
 * Removed when the core is Node-free (issue 13: core/, headers/, link/, stack/, network/,
 * transport/, tundev/, sim/ and the pcap codec import nothing from Node).
 *
 * Only the browser build (scripts/build-browser.ts) uses this file: it aliases the modules listed
 * in BROWSER_NODE_ALIASES there to it and injects the globals below; any other `node:` import
 * fails that build. Each export does what its user in the core needs and no more:
 *
 * - node:crypto `randomInt` (stack/random.ts: unseeded stacks, ephemeral-port fallback) and
 *   `randomFillSync`, from `crypto.getRandomValues`, a CSPRNG as Node's.
 * - node:os `totalmem` (transport/tcp/protocol.ts sizes tcp_mem from it): `navigator.deviceMemory`
 *   where the browser tells it (Chromium, rounded GiB), else 4 GiB.
 * - node:fs and node:path (pcap files, sim's capture to a path): a page has no files, so these
 *   throw ENOSYS; pcap in a page goes to a `MemorySink` or any `ByteSink`.
 * - Globals: `Buffer` (the core's few text conversions and `allocUnsafeSlow`), `setImmediate`
 *   (sim's VirtualPump), and `setTimeout` / `setInterval` whose handles have Node's
 *   `unref()` / `ref()` (RealClock unrefs its timer).
 */
import { TunstackError } from '../errors.js';

// ------------------------------------------------------------------ node:crypto

const U32_RANGE = 0x1_0000_0000;

/** A uniform integer in [min, max) (or [0, min) with one argument), as Node's `crypto.randomInt`. */
export function randomInt(min: number, max?: number): number {
  const lo = max === undefined ? 0 : min;
  const hi = max === undefined ? min : max;
  const range = hi - lo;
  if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || range <= 0 || range > U32_RANGE) {
    throw new TunstackError('EINVAL', `randomInt: bad range [${lo}, ${hi})`);
  }
  // Rejection sampling: drop the top values that would bias the modulo.
  const limit = U32_RANGE - (U32_RANGE % range);
  const word = new Uint32Array(1);
  for (;;) {
    crypto.getRandomValues(word);
    if (word[0]! < limit) return lo + (word[0]! % range);
  }
}

/** Fill `buf` with CSPRNG bytes (getRandomValues takes at most 65536 bytes per call). */
export function randomFillSync<T extends Uint8Array>(buf: T): T {
  for (let off = 0; off < buf.length; off += 65536) crypto.getRandomValues(buf.subarray(off, Math.min(buf.length, off + 65536)));
  return buf;
}

// ------------------------------------------------------------------ node:os

export function totalmem(): number {
  const gib = (globalThis as { navigator?: { deviceMemory?: number } }).navigator?.deviceMemory;
  return (typeof gib === 'number' && gib > 0 ? gib : 4) * 1024 ** 3;
}

// ------------------------------------------------------------------ node:fs, node:path

function noFiles(call: string): never {
  throw new TunstackError('ENOSYS', `${call}: a browser page has no file system (write pcap to a MemorySink instead)`, call);
}

export function openSync(): number {
  return noFiles('open');
}
export function readSync(): number {
  return noFiles('read');
}
export function writeSync(): number {
  return noFiles('write');
}
export function closeSync(): void {
  noFiles('close');
}
export function mkdirSync(): void {
  noFiles('mkdir');
}

export function dirname(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '.' : i === 0 ? '/' : path.slice(0, i);
}

// ------------------------------------------------------------------ globals

type TextEncoding = 'utf8' | 'utf-8' | 'ascii' | 'latin1' | 'binary';

const utf8Encoder = new TextEncoder();

function latin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return s;
}

/** Bytes made by the Buffer stand-in: a Uint8Array whose toString takes Node's encodings. */
class ShimBytes extends Uint8Array {
  override toString(encoding: TextEncoding = 'utf8'): string {
    if (encoding === 'utf8' || encoding === 'utf-8') return new TextDecoder().decode(this);
    if (encoding === 'ascii') return latin1(this.map((c) => c & 0x7f));
    return latin1(this);
  }
}

/** The part of Node's Buffer the core uses. */
export const Buffer = {
  from(value: string | Uint8Array, encoding: TextEncoding = 'utf8'): ShimBytes {
    if (typeof value !== 'string') {
      const b = new ShimBytes(value.length);
      b.set(value);
      return b;
    }
    if (encoding === 'utf8' || encoding === 'utf-8') {
      const bytes = utf8Encoder.encode(value);
      return new ShimBytes(bytes.buffer, bytes.byteOffset, bytes.length);
    }
    const b = new ShimBytes(value.length);
    for (let i = 0; i < value.length; i++) b[i] = value.charCodeAt(i) & (encoding === 'ascii' ? 0x7f : 0xff);
    return b;
  },
  allocUnsafeSlow(size: number): ShimBytes {
    return new ShimBytes(size);
  },
  byteLength(s: string): number {
    return utf8Encoder.encode(s).length;
  },
};

/** Node-style timer handle: `unref()` / `ref()` are accepted (a page has no process to keep alive). */
class TimerHandle {
  constructor(readonly id: number) {}
  unref(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  hasRef(): boolean {
    return false;
  }
  [Symbol.toPrimitive](): number {
    return this.id;
  }
}

type TimerCallback = (...args: unknown[]) => void;

function handleId(h: TimerHandle | number | undefined | null): number | undefined {
  return h === undefined || h === null ? undefined : typeof h === 'number' ? h : h.id;
}

const g = globalThis as unknown as {
  setTimeout(fn: TimerCallback, ms?: number, ...args: unknown[]): number;
  clearTimeout(id: number | undefined): void;
  setInterval(fn: TimerCallback, ms?: number, ...args: unknown[]): number;
  clearInterval(id: number | undefined): void;
};
const nativeSetTimeout = g.setTimeout.bind(globalThis);
const nativeClearTimeout = g.clearTimeout.bind(globalThis);
const nativeSetInterval = g.setInterval.bind(globalThis);
const nativeClearInterval = g.clearInterval.bind(globalThis);

function shimSetTimeout(fn: TimerCallback, ms?: number, ...args: unknown[]): TimerHandle {
  return new TimerHandle(nativeSetTimeout(fn, ms, ...args));
}
function shimClearTimeout(h: TimerHandle | number | undefined | null): void {
  nativeClearTimeout(handleId(h));
}
function shimSetInterval(fn: TimerCallback, ms?: number, ...args: unknown[]): TimerHandle {
  return new TimerHandle(nativeSetInterval(fn, ms, ...args));
}
function shimClearInterval(h: TimerHandle | number | undefined | null): void {
  nativeClearInterval(handleId(h));
}

/** setImmediate: a macrotask after pending promise callbacks (MessageChannel, not clamped as setTimeout(0) is). */
const immediates: (() => void)[] = [];
let channel: InstanceType<typeof MessageChannel> | null = null;
function shimSetImmediate(fn: () => void): void {
  if (channel === null) {
    channel = new MessageChannel();
    channel.port1.addEventListener('message', () => {
      const fns = immediates.splice(0);
      for (const f of fns) f();
    });
    channel.port1.start();
  }
  immediates.push(fn);
  if (immediates.length === 1) channel.port2.postMessage(0);
}

export {
  shimSetTimeout as setTimeout,
  shimClearTimeout as clearTimeout,
  shimSetInterval as setInterval,
  shimClearInterval as clearInterval,
  shimSetImmediate as setImmediate,
};

/**
 * Argument checks for the public entry points. Every check throws a TunstackError EINVAL whose
 * message names the argument (`where: "name" must be ..., got ...`), so a careless caller never
 * sees a TypeError from deep inside nor has garbage silently accepted. The Node-compatible
 * adapters (src/adapters) throw Node-shaped errors instead (`nodeArgType`, `nodeBadPort`), as
 * node:dgram and node:net do for the same misuse.
 */
import { TunstackError } from './errors.js';
import { parseCIDR, tryParseIPv4, tryParseIPv6, type Prefix } from './address.js';

/** A short, never-throwing rendering of a value for messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'undefined':
      return 'undefined';
    case 'string':
      return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
    case 'number':
    case 'boolean':
    case 'bigint':
      return `${typeof v} ${String(v)}`;
    case 'symbol':
      return v.toString();
    case 'function':
      return 'a function';
    default:
      if (Array.isArray(v)) return `an array of ${v.length}`;
      if (v instanceof Uint8Array) return `${v.constructor.name}(${v.length})`;
      return `an instance of ${Object.getPrototypeOf(v)?.constructor?.name ?? 'Object'}`;
  }
}

function fail(where: string, name: string, what: string, v: unknown): never {
  throw new TunstackError('EINVAL', `${where}: "${name}" must be ${what}, got ${describe(v)}`);
}

/** A plain object (not null, not an array, not a function). */
export function expectObject<T extends object>(v: T | unknown, where: string, name: string): T {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(where, name, 'an object', v);
  return v as T;
}

/** An options bag: undefined gives `{}`, anything but an object is EINVAL. */
export function optionsObject<T extends object>(v: T | undefined | unknown, where: string, name = 'options'): T {
  if (v === undefined) return {} as T;
  return expectObject<T>(v, where, name);
}

export function expectString(v: unknown, where: string, name: string): string {
  if (typeof v !== 'string') fail(where, name, 'a string', v);
  return v;
}

export function optionalString(v: unknown, where: string, name: string): string | undefined {
  return v === undefined ? undefined : expectString(v, where, name);
}

export function expectBoolean(v: unknown, where: string, name: string): boolean {
  if (typeof v !== 'boolean') fail(where, name, 'a boolean', v);
  return v;
}

export function optionalBoolean(v: unknown, where: string, name: string): boolean | undefined {
  return v === undefined ? undefined : expectBoolean(v, where, name);
}

export function expectFunction<F extends (...args: never[]) => unknown>(v: F | unknown, where: string, name: string): F {
  if (typeof v !== 'function') fail(where, name, 'a function', v);
  return v as F;
}

/** An integer in min..max (inclusive). */
export function expectInteger(v: unknown, where: string, name: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(where, name, `an integer in ${min}..${max}`, v);
  return v;
}

export function optionalInteger(v: unknown, where: string, name: string, min: number, max: number): number | undefined {
  return v === undefined ? undefined : expectInteger(v, where, name, min, max);
}

/** A finite number in min..max (inclusive). */
export function expectNumber(v: unknown, where: string, name: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) fail(where, name, `a number in ${min}..${max}`, v);
  return v;
}

export function optionalNumber(v: unknown, where: string, name: string, min: number, max: number): number | undefined {
  return v === undefined ? undefined : expectNumber(v, where, name, min, max);
}

/** One of a fixed set of values. */
export function expectOneOf<T extends string | number>(v: unknown, where: string, name: string, values: readonly T[]): T {
  if (!values.includes(v as T)) fail(where, name, `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`, v);
  return v as T;
}

export function optionalOneOf<T extends string | number>(v: unknown, where: string, name: string, values: readonly T[]): T | undefined {
  return v === undefined ? undefined : expectOneOf(v, where, name, values);
}

/** A Uint8Array (Buffer included). */
export function expectBytes(v: unknown, where: string, name: string): Uint8Array {
  if (!(v instanceof Uint8Array)) fail(where, name, 'a Uint8Array or Buffer', v);
  return v;
}

export function optionalBytes(v: unknown, where: string, name: string): Uint8Array | undefined {
  return v === undefined ? undefined : expectBytes(v, where, name);
}

/**
 * An IP address as text or as 4/16 bytes; returns the bytes (the caller's array itself when
 * given bytes). `family` restricts the family.
 */
export function expectAddress(v: unknown, where: string, name: string, family?: 4 | 6): Uint8Array {
  const what = family === undefined ? 'an IP address' : `an IPv${family} address`;
  let out: Uint8Array | null = null;
  if (typeof v === 'string') out = v.includes(':') ? tryParseIPv6(v) : tryParseIPv4(v);
  else if (v instanceof Uint8Array && (v.length === 4 || v.length === 16)) out = v;
  if (out === null || (family !== undefined && out.length !== (family === 4 ? 4 : 16))) fail(where, name, what, v);
  return out;
}

/** An IP address, prefix given or not ("10.0.0.1/24", "2001:db8::/32"). */
export function expectCidr(v: unknown, where: string, name: string): Prefix {
  if (typeof v !== 'string') fail(where, name, 'an address with prefix ("10.0.0.1/24")', v);
  try {
    return parseCIDR(v);
  } catch {
    return fail(where, name, 'an address with prefix ("10.0.0.1/24")', v);
  }
}

/** A NIC reference: a positive integer id or a name. */
export function expectNicRef(v: unknown, where: string, name: string): number | string {
  if (typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v) && v > 0)) return v;
  return fail(where, name, 'a NIC id (integer > 0) or name', v);
}

export function optionalNicRef(v: unknown, where: string, name: string): number | string | undefined {
  return v === undefined ? undefined : expectNicRef(v, where, name);
}

/** An object that has each of the named methods (a sink, an endpoint, a clock...). */
export function expectMethods<T extends object>(v: T | unknown, where: string, name: string, methods: readonly string[]): T {
  const o = v as Record<string, unknown> | null;
  if (typeof v !== 'object' || o === null || methods.some((m) => typeof o[m] !== 'function')) {
    fail(where, name, `an object with ${methods.join('(), ')}()`, v);
  }
  return v as T;
}

/** The options a channel and a wire share: mtu, queueLength, wireFormat, capabilities. */
export function checkLinkOptions(options: unknown, where: string): void {
  const o = optionsObject<{ mtu?: unknown; queueLength?: unknown; wireFormat?: unknown; capabilities?: unknown }>(options, where);
  optionalInteger(o.mtu, where, 'options.mtu', 1, 0x7fffffff);
  optionalInteger(o.queueLength, where, 'options.queueLength', 1, 0x7fffffff);
  optionalOneOf(o.wireFormat, where, 'options.wireFormat', ['ip', 'ethernet']);
  optionalInteger(o.capabilities, where, 'options.capabilities', 0, 0x7fffffff);
}

// ---- Node-shaped errors (the node:dgram / node:net adapters) ----

type NodeErrorCtor = typeof TypeError | typeof RangeError | typeof Error;

/** An error shaped as Node's internal ones: `code` set and shown in `name [code]` form. */
export function nodeError(Ctor: NodeErrorCtor, code: string, message: string): Error & { code: string } {
  return Object.assign(new Ctor(message), { code });
}

/** How Node's messages show a received value. */
export function nodeReceived(v: unknown): string {
  if (v === null || v === undefined) return `Received ${String(v)}`;
  if (typeof v === 'function') return `Received function ${v.name === '' ? 'anonymous' : v.name}`;
  if (typeof v === 'object') {
    const ctor = (Object.getPrototypeOf(v) as { constructor?: { name?: string } } | null)?.constructor?.name;
    return ctor ? `Received an instance of ${ctor}` : 'Received [Object: null prototype]';
  }
  let shown = typeof v === 'string' ? `'${v.length > 25 ? `${v.slice(0, 25)}...` : v}'` : String(v);
  if (typeof v === 'bigint') shown += 'n';
  return `Received type ${typeof v} (${shown})`;
}

/** Node's ERR_INVALID_ARG_TYPE (a TypeError). */
export function nodeArgType(name: string, expected: string, v: unknown): Error & { code: string } {
  return nodeError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "${name}" argument must be ${expected}. ${nodeReceived(v)}`);
}

/**
 * Node's validatePort: an integer-valued number (or numeric string) in 0..65535 (1.. without
 * `allowZero`); ERR_SOCKET_BAD_PORT (a RangeError) otherwise. Returns the port as a number.
 */
export function nodePort(v: unknown, name = 'Port', allowZero = true): number {
  const ok =
    (typeof v === 'number' || (typeof v === 'string' && v.trim() !== '')) &&
    Number(v) === (Number(v) >>> 0) &&
    Number(v) <= 0xffff &&
    (allowZero || Number(v) !== 0);
  if (!ok) {
    const shown = v === null || v === undefined ? `Received ${String(v)}` : nodeReceived(v);
    throw nodeError(RangeError, 'ERR_SOCKET_BAD_PORT', `${name} should be ${allowZero ? '>=' : '>'} 0 and < 65536. ${shown}.`);
  }
  return Number(v);
}

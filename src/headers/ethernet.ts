/**
 * Ethernet II, with one 802.1Q VLAN tag parsed.
 *
 * Conventions for every header view in src/headers:
 * - `new X(buf, off = 0, len = buf.length - off)` wraps bytes without copying; `reset` rewraps
 *   (hot paths keep one view and reset it per packet).
 * - `isValid()` must return true before any accessor is trusted. It checks lengths and internal
 *   consistency only (never checksums, which have their own methods).
 * - Getters/setters read and write big-endian fields in place.
 * - A module-level `encodeX(buf, off, fields)` writes a header and returns its length; a
 *   `buildX(fields, payload?)` convenience returns new bytes.
 */

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_IPV6 = 0x86dd;

export const ETHERNET_HEADER_LENGTH = 14;
export const VLAN_TAG_LENGTH = 4;
/** Smallest frame (without FCS): shorter frames are padded on send. */
export const ETHERNET_MIN_FRAME = 60;

export class EthernetHeader {
  constructor(
    public buf: Uint8Array,
    public off = 0,
    public len = buf.length - off,
  ) {}

  reset(buf: Uint8Array, off = 0, len = buf.length - off): this {
    this.buf = buf;
    this.off = off;
    this.len = len;
    return this;
  }

  isValid(): boolean {
    if (this.off < 0 || this.len < ETHERNET_HEADER_LENGTH || this.off + this.len > this.buf.length) {
      return false;
    }
    return !this.hasVlan || this.len >= ETHERNET_HEADER_LENGTH + VLAN_TAG_LENGTH;
  }

  /** 14, or 18 with a VLAN tag. */
  get headerLength(): number {
    return this.hasVlan ? ETHERNET_HEADER_LENGTH + VLAN_TAG_LENGTH : ETHERNET_HEADER_LENGTH;
  }

  /** Offset of the destination MAC in `buf` (6 bytes). */
  get destinationOffset(): number {
    return this.off;
  }

  /** Offset of the source MAC in `buf` (6 bytes). */
  get sourceOffset(): number {
    return this.off + 6;
  }

  get destination(): Uint8Array {
    return this.buf.subarray(this.off, this.off + 6);
  }

  set destination(mac: Uint8Array) {
    this.buf.set(mac.subarray(0, 6), this.off);
  }

  get source(): Uint8Array {
    return this.buf.subarray(this.off + 6, this.off + 12);
  }

  set source(mac: Uint8Array) {
    this.buf.set(mac.subarray(0, 6), this.off + 6);
  }

  /** The EtherType of the outer header (0x8100 when tagged). */
  get outerType(): number {
    return (this.buf[this.off + 12]! << 8) | this.buf[this.off + 13]!;
  }

  get hasVlan(): boolean {
    return this.outerType === ETHERTYPE_VLAN;
  }

  /** The EtherType of the payload (after the VLAN tag, if any). */
  get etherType(): number {
    const o = this.off + (this.hasVlan ? 16 : 12);
    return (this.buf[o]! << 8) | this.buf[o + 1]!;
  }

  set etherType(v: number) {
    const o = this.off + (this.hasVlan ? 16 : 12);
    this.buf[o] = v >>> 8;
    this.buf[o + 1] = v;
  }

  /** 802.1Q VLAN id (12 bits), or -1 when untagged. */
  get vlanId(): number {
    if (!this.hasVlan) return -1;
    return ((this.buf[this.off + 14]! << 8) | this.buf[this.off + 15]!) & 0x0fff;
  }

  /** 802.1Q priority code point (3 bits), or -1 when untagged. */
  get vlanPriority(): number {
    if (!this.hasVlan) return -1;
    return this.buf[this.off + 14]! >>> 5;
  }

  /** Drop-eligible indicator, or false when untagged. */
  get vlanDei(): boolean {
    return this.hasVlan && (this.buf[this.off + 14]! & 0x10) !== 0;
  }

  get isBroadcast(): boolean {
    const b = this.buf;
    const o = this.off;
    return (b[o]! & b[o + 1]! & b[o + 2]! & b[o + 3]! & b[o + 4]! & b[o + 5]!) === 0xff;
  }

  get isMulticast(): boolean {
    return (this.buf[this.off]! & 1) !== 0;
  }

  /** The bytes after the header. */
  get payload(): Uint8Array {
    return this.buf.subarray(this.off + this.headerLength, this.off + this.len);
  }
}

export interface EthernetFields {
  destination: Uint8Array;
  source: Uint8Array;
  etherType: number;
  /** Add an 802.1Q tag. */
  vlan?: { id: number; priority?: number; dei?: boolean };
}

/** Write an Ethernet header at `off`; returns its length (14 or 18). */
export function encodeEthernet(buf: Uint8Array, off: number, f: EthernetFields): number {
  buf.set(f.destination.subarray(0, 6), off);
  buf.set(f.source.subarray(0, 6), off + 6);
  let o = off + 12;
  if (f.vlan) {
    buf[o] = ETHERTYPE_VLAN >>> 8;
    buf[o + 1] = ETHERTYPE_VLAN & 0xff;
    const tci = ((f.vlan.priority ?? 0) << 13) | (f.vlan.dei ? 0x1000 : 0) | (f.vlan.id & 0x0fff);
    buf[o + 2] = tci >>> 8;
    buf[o + 3] = tci;
    o += 4;
  }
  buf[o] = f.etherType >>> 8;
  buf[o + 1] = f.etherType;
  return o + 2 - off;
}

/** A new frame: header + payload. */
export function buildEthernet(f: EthernetFields, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const hl = f.vlan ? 18 : 14;
  const out = new Uint8Array(hl + payload.length);
  encodeEthernet(out, 0, f);
  out.set(payload, hl);
  return out;
}

/**
 * ARP for Ethernet/IPv4 (RFC 826): hardware type 1, protocol type 0x0800, hlen 6, plen 4.
 * View conventions as in ethernet.ts. Other hardware/protocol combinations are not valid here.
 */

export const ARP_HTYPE_ETHERNET = 1;
export const ARP_PTYPE_IPV4 = 0x0800;
export const ARP_OP_REQUEST = 1;
export const ARP_OP_REPLY = 2;
/** Length of an Ethernet/IPv4 ARP packet. */
export const ARP_LENGTH = 28;

export class ArpHeader {
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

  /** Length >= 28 (link padding allowed) and the fixed Ethernet/IPv4 fields. Any op code passes. */
  isValid(): boolean {
    if (this.off < 0 || this.len < ARP_LENGTH || this.off + this.len > this.buf.length) return false;
    const b = this.buf;
    const o = this.off;
    return (
      b[o] === 0 &&
      b[o + 1] === ARP_HTYPE_ETHERNET &&
      b[o + 2] === ARP_PTYPE_IPV4 >>> 8 &&
      b[o + 3] === (ARP_PTYPE_IPV4 & 0xff) &&
      b[o + 4] === 6 &&
      b[o + 5] === 4
    );
  }

  get hardwareType(): number {
    return (this.buf[this.off]! << 8) | this.buf[this.off + 1]!;
  }

  get protocolType(): number {
    return (this.buf[this.off + 2]! << 8) | this.buf[this.off + 3]!;
  }

  get hardwareLength(): number {
    return this.buf[this.off + 4]!;
  }

  get protocolLength(): number {
    return this.buf[this.off + 5]!;
  }

  get op(): number {
    return (this.buf[this.off + 6]! << 8) | this.buf[this.off + 7]!;
  }

  set op(v: number) {
    this.buf[this.off + 6] = v >>> 8;
    this.buf[this.off + 7] = v;
  }

  get isRequest(): boolean {
    return this.op === ARP_OP_REQUEST;
  }

  get isReply(): boolean {
    return this.op === ARP_OP_REPLY;
  }

  /** Offset in `buf` of the sender hardware address (6 bytes). */
  get senderHardwareOffset(): number {
    return this.off + 8;
  }

  /** Offset in `buf` of the sender protocol address (4 bytes). */
  get senderProtocolOffset(): number {
    return this.off + 14;
  }

  /** Offset in `buf` of the target hardware address (6 bytes). */
  get targetHardwareOffset(): number {
    return this.off + 18;
  }

  /** Offset in `buf` of the target protocol address (4 bytes). */
  get targetProtocolOffset(): number {
    return this.off + 24;
  }

  get senderHardwareAddress(): Uint8Array {
    return this.buf.subarray(this.off + 8, this.off + 14);
  }

  set senderHardwareAddress(mac: Uint8Array) {
    this.buf.set(mac.subarray(0, 6), this.off + 8);
  }

  get senderProtocolAddress(): Uint8Array {
    return this.buf.subarray(this.off + 14, this.off + 18);
  }

  set senderProtocolAddress(ip: Uint8Array) {
    this.buf.set(ip.subarray(0, 4), this.off + 14);
  }

  get targetHardwareAddress(): Uint8Array {
    return this.buf.subarray(this.off + 18, this.off + 24);
  }

  set targetHardwareAddress(mac: Uint8Array) {
    this.buf.set(mac.subarray(0, 6), this.off + 18);
  }

  get targetProtocolAddress(): Uint8Array {
    return this.buf.subarray(this.off + 24, this.off + 28);
  }

  set targetProtocolAddress(ip: Uint8Array) {
    this.buf.set(ip.subarray(0, 4), this.off + 24);
  }

  /** Sender IPv4 address as an unsigned 32-bit number. */
  get senderProtocolU32(): number {
    return u32At(this.buf, this.off + 14);
  }

  /** Target IPv4 address as an unsigned 32-bit number. */
  get targetProtocolU32(): number {
    return u32At(this.buf, this.off + 24);
  }

  /** Gratuitous ARP: sender and target protocol addresses are equal. */
  get isGratuitous(): boolean {
    return this.senderProtocolU32 === this.targetProtocolU32;
  }
}

function u32At(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

export interface ArpFields {
  op: number;
  senderHardwareAddress: Uint8Array;
  senderProtocolAddress: Uint8Array;
  /** Default all zeros (as in a request). */
  targetHardwareAddress?: Uint8Array;
  targetProtocolAddress: Uint8Array;
}

/** Write an Ethernet/IPv4 ARP packet at `off`; returns its length (28). */
export function encodeArp(buf: Uint8Array, off: number, f: ArpFields): number {
  buf[off] = 0;
  buf[off + 1] = ARP_HTYPE_ETHERNET;
  buf[off + 2] = ARP_PTYPE_IPV4 >>> 8;
  buf[off + 3] = ARP_PTYPE_IPV4 & 0xff;
  buf[off + 4] = 6;
  buf[off + 5] = 4;
  buf[off + 6] = f.op >>> 8;
  buf[off + 7] = f.op;
  buf.set(f.senderHardwareAddress.subarray(0, 6), off + 8);
  buf.set(f.senderProtocolAddress.subarray(0, 4), off + 14);
  if (f.targetHardwareAddress) buf.set(f.targetHardwareAddress.subarray(0, 6), off + 18);
  else buf.fill(0, off + 18, off + 24);
  buf.set(f.targetProtocolAddress.subarray(0, 4), off + 24);
  return ARP_LENGTH;
}

/** A new 28-byte ARP packet (the `payload`, if any, is appended, e.g. link padding). */
export function buildArp(f: ArpFields, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(ARP_LENGTH + payload.length);
  encodeArp(out, 0, f);
  out.set(payload, ARP_LENGTH);
  return out;
}

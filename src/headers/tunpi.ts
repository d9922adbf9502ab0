/**
 * The tun packet-information header (struct tun_pi, <linux/if_tun.h>): prepended to every packet
 * read from or written to a tun/tap file descriptor opened without IFF_NO_PI.
 *
 *   offset 0  u16 flags     TUN_PKT_STRIP (0x0001): the packet was truncated to the read buffer
 *   offset 2  u16 protocol  EtherType, big-endian (__be16 proto)
 *
 * Byte order of `flags`: DESIGN.md (and gVisor) treat it as big-endian, and that is the default
 * here. The kernel declares it `__u16` (host order), so a Linux program on x86-64 or arm64 sees
 * TUN_PKT_STRIP as the bytes 01 00; set `littleEndianFlags` (view) / `flagsLittleEndian`
 * (encode) to speak that form, e.g. when bridging to a real kernel device.
 * View conventions as in ethernet.ts.
 */

export const PI_LENGTH = 4;
export const TUN_PKT_STRIP = 0x0001;

export class TunPacketInfo {
  /** Read and write `flags` in host order of a little-endian machine (as the kernel does). */
  littleEndianFlags = false;

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
    return this.off >= 0 && this.len >= PI_LENGTH && this.off + this.len <= this.buf.length;
  }

  get headerLength(): number {
    return PI_LENGTH;
  }

  get flags(): number {
    const a = this.buf[this.off]!;
    const b = this.buf[this.off + 1]!;
    return this.littleEndianFlags ? (b << 8) | a : (a << 8) | b;
  }

  set flags(v: number) {
    const hi = (v >>> 8) & 0xff;
    const lo = v & 0xff;
    this.buf[this.off] = this.littleEndianFlags ? lo : hi;
    this.buf[this.off + 1] = this.littleEndianFlags ? hi : lo;
  }

  /** TUN_PKT_STRIP is set: the packet was cut short. */
  get truncated(): boolean {
    return (this.flags & TUN_PKT_STRIP) !== 0;
  }

  /** EtherType of the packet (0x0800 IPv4, 0x86dd IPv6, ...). */
  get protocol(): number {
    return (this.buf[this.off + 2]! << 8) | this.buf[this.off + 3]!;
  }

  set protocol(v: number) {
    this.buf[this.off + 2] = v >>> 8;
    this.buf[this.off + 3] = v;
  }

  /** The packet after the header. */
  get payload(): Uint8Array {
    return this.buf.subarray(this.off + PI_LENGTH, this.off + this.len);
  }
}

export interface TunPacketInfoFields {
  flags?: number;
  protocol: number;
  /** Write flags little-endian (host order on x86-64/arm64, as the kernel does). Default false. */
  flagsLittleEndian?: boolean;
}

/** Write a packet-information header at `off`; returns 4. */
export function encodeTunPacketInfo(buf: Uint8Array, off: number, f: TunPacketInfoFields): number {
  const fl = f.flags ?? 0;
  const hi = (fl >>> 8) & 0xff;
  const lo = fl & 0xff;
  buf[off] = f.flagsLittleEndian ? lo : hi;
  buf[off + 1] = f.flagsLittleEndian ? hi : lo;
  buf[off + 2] = f.protocol >>> 8;
  buf[off + 3] = f.protocol;
  return PI_LENGTH;
}

/** A new buffer: header + payload. */
export function buildTunPacketInfo(f: TunPacketInfoFields, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(PI_LENGTH + payload.length);
  encodeTunPacketInfo(out, 0, f);
  out.set(payload, PI_LENGTH);
  return out;
}

/**
 * struct virtio_net_hdr as a tun/tap device with IFF_VNET_HDR prepends it to every packet
 * (<linux/virtio_net.h>). Multi-byte fields are little-endian (virtio 1.0, and legacy virtio on
 * x86; big-endian TUNSETVNETBE devices are not supported).
 *
 *   0  u8  flags        VIRTIO_NET_HDR_F_*
 *   1  u8  gso_type     VIRTIO_NET_HDR_GSO_*
 *   2  u16 hdr_len      length of the headers (Ethernet + IP + TCP/UDP) in a GSO packet
 *   4  u16 gso_size     payload bytes per segment
 *   6  u16 csum_start   where checksumming starts (NEEDS_CSUM)
 *   8  u16 csum_offset  where, after csum_start, the checksum goes
 *  10  u16 num_buffers  (struct virtio_net_hdr_mrg_rxbuf, 12 bytes) merged rx buffers
 *
 * The header size is set per device (TUNSETVNETHDRSZ: 10, 12 or more; bytes past 12 are unused),
 * so the view carries `headerSize`. View conventions as in ethernet.ts.
 */

export const VIRTIO_NET_HDR_LENGTH = 10;
export const VIRTIO_NET_HDR_MRG_RXBUF_LENGTH = 12;

export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
export const VIRTIO_NET_HDR_F_RSC_INFO = 4;

export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_UDP = 3;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
export const VIRTIO_NET_HDR_GSO_UDP_L4 = 5;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

export class VirtioNetHeader {
  /** The device's header size (>= 10). num_buffers exists when it is >= 12. */
  headerSize: number;

  constructor(
    public buf: Uint8Array,
    public off = 0,
    public len = buf.length - off,
    headerSize = VIRTIO_NET_HDR_LENGTH,
  ) {
    this.headerSize = headerSize;
  }

  reset(buf: Uint8Array, off = 0, len = buf.length - off, headerSize = this.headerSize): this {
    this.buf = buf;
    this.off = off;
    this.len = len;
    this.headerSize = headerSize;
    return this;
  }

  /** headerSize >= 10 and the header fits in len. */
  isValid(): boolean {
    return (
      this.off >= 0 &&
      this.headerSize >= VIRTIO_NET_HDR_LENGTH &&
      this.len >= this.headerSize &&
      this.off + this.len <= this.buf.length
    );
  }

  get headerLength(): number {
    return this.headerSize;
  }

  private get16(o: number): number {
    return this.buf[this.off + o]! | (this.buf[this.off + o + 1]! << 8);
  }

  private set16(o: number, v: number): void {
    this.buf[this.off + o] = v;
    this.buf[this.off + o + 1] = v >>> 8;
  }

  get flags(): number {
    return this.buf[this.off]!;
  }

  set flags(v: number) {
    this.buf[this.off] = v;
  }

  get needsCsum(): boolean {
    return (this.buf[this.off]! & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0;
  }

  get dataValid(): boolean {
    return (this.buf[this.off]! & VIRTIO_NET_HDR_F_DATA_VALID) !== 0;
  }

  /** The full gso_type byte (ECN bit included). */
  get gsoType(): number {
    return this.buf[this.off + 1]!;
  }

  set gsoType(v: number) {
    this.buf[this.off + 1] = v;
  }

  /** gso_type without the ECN bit. */
  get gsoProtocol(): number {
    return this.buf[this.off + 1]! & ~VIRTIO_NET_HDR_GSO_ECN & 0xff;
  }

  get gsoEcn(): boolean {
    return (this.buf[this.off + 1]! & VIRTIO_NET_HDR_GSO_ECN) !== 0;
  }

  get hdrLen(): number {
    return this.get16(2);
  }

  set hdrLen(v: number) {
    this.set16(2, v);
  }

  get gsoSize(): number {
    return this.get16(4);
  }

  set gsoSize(v: number) {
    this.set16(4, v);
  }

  get csumStart(): number {
    return this.get16(6);
  }

  set csumStart(v: number) {
    this.set16(6, v);
  }

  get csumOffset(): number {
    return this.get16(8);
  }

  set csumOffset(v: number) {
    this.set16(8, v);
  }

  /** num_buffers, or 0 when the header is the 10-byte form. */
  get numBuffers(): number {
    return this.headerSize >= VIRTIO_NET_HDR_MRG_RXBUF_LENGTH ? this.get16(10) : 0;
  }

  set numBuffers(v: number) {
    if (this.headerSize >= VIRTIO_NET_HDR_MRG_RXBUF_LENGTH) this.set16(10, v);
  }

  /** The packet after the header. */
  get payload(): Uint8Array {
    return this.buf.subarray(this.off + this.headerSize, this.off + this.len);
  }
}

export interface VirtioNetHeaderFields {
  flags?: number;
  gsoType?: number;
  hdrLen?: number;
  gsoSize?: number;
  csumStart?: number;
  csumOffset?: number;
  /** Written only when headerSize >= 12. */
  numBuffers?: number;
}

function putLE16(buf: Uint8Array, o: number, v: number): void {
  buf[o] = v;
  buf[o + 1] = v >>> 8;
}

/** Write a header of `headerSize` bytes (>= 10; bytes past the fields are zeroed); returns headerSize. */
export function encodeVirtioNetHeader(
  buf: Uint8Array,
  off: number,
  f: VirtioNetHeaderFields,
  headerSize = VIRTIO_NET_HDR_LENGTH,
): number {
  buf.fill(0, off, off + headerSize);
  buf[off] = f.flags ?? 0;
  buf[off + 1] = f.gsoType ?? 0;
  putLE16(buf, off + 2, f.hdrLen ?? 0);
  putLE16(buf, off + 4, f.gsoSize ?? 0);
  putLE16(buf, off + 6, f.csumStart ?? 0);
  putLE16(buf, off + 8, f.csumOffset ?? 0);
  if (headerSize >= VIRTIO_NET_HDR_MRG_RXBUF_LENGTH) putLE16(buf, off + 10, f.numBuffers ?? 0);
  return headerSize;
}

/** A new buffer: header + payload. */
export function buildVirtioNetHeader(
  f: VirtioNetHeaderFields,
  payload: Uint8Array = new Uint8Array(0),
  headerSize = VIRTIO_NET_HDR_LENGTH,
): Uint8Array {
  const out = new Uint8Array(headerSize + payload.length);
  encodeVirtioNetHeader(out, 0, f, headerSize);
  out.set(payload, headerSize);
  return out;
}

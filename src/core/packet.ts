/**
 * PacketBuffer: one per packet. Bytes live in `data`, the packet is `data[start, end)`.
 * Outbound packets are built back to front: the payload is placed after reserved headroom and each
 * layer `prepend`s its header into that headroom, so nothing is copied between layers.
 * Layer offsets are recorded as each layer parses or builds its header.
 */

/** Bytes reserved in front of an outbound payload: virtio_net_hdr + Ethernet/VLAN + IPv6 with
 * extension headers + TCP with options, rounded up. */
export const DEFAULT_HEADROOM = 192;

/** How a received frame was addressed at the link layer (as Linux's PACKET_* types). */
export const enum PacketType {
  Host = 0,
  Broadcast = 1,
  Multicast = 2,
  OtherHost = 3,
  Outgoing = 4,
}

/**
 * Who to tell when borrowed bytes (a packet's scatter-gather fragments, a TCP send buffer's
 * adopted ranges) are no longer referenced: `release` is called exactly once per loan.
 */
export interface BufferLease {
  release(): void;
}

/**
 * Small packets are carved out of shared 64 KiB slabs (as Node's Buffer pool does): allocating an
 * ArrayBuffer per packet is the costliest step of a small packet's life, and a shared backing store
 * also lets checksum code reuse its views. Regions are never reused, so they start zeroed.
 */
const SLAB_SIZE = 64 * 1024;
const SLAB_MAX_ALLOC = 4096;
let slab = new Uint8Array(SLAB_SIZE);
let slabUsed = 0;

/**
 * Memory whose every byte the caller overwrites: Node's `Buffer.allocUnsafeSlow` where the
 * platform has it (looked up on globalThis by feature, so the core names no Node global; no
 * zeroing of a 64 KiB super-packet), else a zeroed Uint8Array (Web platforms have no unzeroed
 * allocation). Never handed out before it is filled: no stale bytes can leak.
 */
const nodeBuffer = (globalThis as { Buffer?: { allocUnsafeSlow?: (n: number) => Uint8Array } }).Buffer;
const unzeroed = nodeBuffer?.allocUnsafeSlow?.bind(nodeBuffer);
function allocUnzeroed(n: number): Uint8Array {
  return unzeroed !== undefined ? unzeroed(n) : new Uint8Array(n);
}

function slabAlloc(size: number): Uint8Array {
  if (size > SLAB_MAX_ALLOC) return new Uint8Array(size);
  const rounded = (size + 7) & ~7;
  if (slabUsed + rounded > SLAB_SIZE) {
    slab = new Uint8Array(SLAB_SIZE);
    slabUsed = 0;
  }
  const out = slab.subarray(slabUsed, slabUsed + size);
  slabUsed += rounded;
  return out;
}

export class PacketBuffer {
  data: Uint8Array;
  start: number;
  end: number;
  /** EtherType of the network protocol (0x0800 IPv4, 0x86dd IPv6, 0x0806 ARP), 0 if unknown. */
  networkProtocol = 0;
  /** Offsets into `data`, -1 when the layer is absent or not yet parsed. */
  linkHeaderStart = -1;
  networkHeaderStart = -1;
  networkHeaderLength = 0;
  transportHeaderStart = -1;
  transportHeaderLength = 0;
  /** IP protocol number of the transport header, once known. */
  transportProtocol = 0;
  /** Inbound: how the link layer addressed the frame. */
  packetType: PacketType = PacketType.Host;
  /** Outbound: link address of the next hop (Ethernet destination), null for broadcast/none. */
  remoteLinkAddress: Uint8Array | null = null;
  /** Id of the NIC the packet arrived on (inbound) or leaves through (outbound), 0 if none. */
  nicId = 0;
  /** Offload: the transport checksum is left for the link to fill (outbound) / already
   * verified by the link (inbound). */
  checksumOffload = false;
  /**
   * Inbound: the transport checksum is partial (a local kernel's CHECKSUM_PARTIAL, virtio's
   * NEEDS_CSUM): the field at `csumStart + csumOffset` holds only the pseudo-header sum, to be
   * completed over `data[csumStart, end of the IP datagram)`. Trusted for local delivery (with
   * `checksumOffload`), as Linux trusts it; completed (`completePacketChecksum` in
   * headers/partial-checksum.ts) before the packet is forwarded. -1: the checksum is complete.
   */
  csumStart = -1;
  /** With `csumStart`: the checksum field's offset from it (16 TCP, 6 UDP). */
  csumOffset = 0;
  /** Offload: a GSO super-packet to be segmented at `gsoSize` payload bytes; 0 = none. */
  gsoSize = 0;
  /**
   * Scatter-gather (outbound only): payload bytes that follow `data[start, end)` but stay where
   * they are (a TCP send buffer's memory) instead of being copied in. Only senders on links with
   * LinkCapability.ScatterGather add them; code that needs contiguous bytes calls `linearize()`.
   */
  frags: Uint8Array[] | null = null;
  /** Bytes in `frags`. */
  fragBytes = 0;
  /** Loans behind `frags`, released by `releaseFrags()` (or dropped, if the packet is). */
  private leases: BufferLease[] | null = null;

  constructor(data: Uint8Array, start = 0, end = data.length) {
    this.data = data;
    this.start = start;
    this.end = end;
  }

  /** Wrap received bytes without copying. */
  static wrap(bytes: Uint8Array): PacketBuffer {
    return new PacketBuffer(bytes, 0, bytes.length);
  }

  /**
   * A new outbound packet of `payloadLength` bytes (zeroed) after `headroom` reserved bytes.
   * The payload starts at `start`; write it with `data.set(..., pkt.start)`.
   */
  static alloc(payloadLength: number, headroom = DEFAULT_HEADROOM): PacketBuffer {
    const data = slabAlloc(headroom + payloadLength);
    return new PacketBuffer(data, headroom, headroom + payloadLength);
  }

  /**
   * Like `alloc`, for senders that write every header byte and copy the whole payload, such as
   * TCP segments: small packets come from the slab, large ones get their own memory, unzeroed
   * where the platform can (see `allocUnzeroed`).
   */
  static allocUninitialized(payloadLength: number, headroom = DEFAULT_HEADROOM): PacketBuffer {
    const total = headroom + payloadLength;
    if (total <= SLAB_MAX_ALLOC) return PacketBuffer.alloc(payloadLength, headroom);
    return new PacketBuffer(allocUnzeroed(total), headroom, total);
  }

  /** A copy of received bytes (small ones from a pooled slab: no ArrayBuffer per packet). */
  static copyOf(bytes: Uint8Array): PacketBuffer {
    // Every byte is overwritten: a large packet (a TSO super-packet from a TAP) skips the zeroing.
    const data = bytes.length > SLAB_MAX_ALLOC ? allocUnzeroed(bytes.length) : slabAlloc(bytes.length);
    data.set(bytes);
    return new PacketBuffer(data, 0, bytes.length);
  }

  /** A new outbound packet whose payload is a copy of `payload`. */
  static fromPayload(payload: Uint8Array, headroom = DEFAULT_HEADROOM): PacketBuffer {
    const pkt = PacketBuffer.alloc(payload.length, headroom);
    pkt.data.set(payload, headroom);
    return pkt;
  }

  /** The packet's length (fragments included). */
  get length(): number {
    return this.end - this.start + this.fragBytes;
  }

  /** Append a scatter-gather fragment; `lease` (if any) is released by `releaseFrags`. */
  addFrag(bytes: Uint8Array, lease: BufferLease | null = null): void {
    (this.frags ??= []).push(bytes);
    this.fragBytes += bytes.length;
    if (lease !== null) (this.leases ??= []).push(lease);
  }

  /** The link is done with the fragments (written out or copied): release their loans. */
  releaseFrags(): void {
    const l = this.leases;
    if (l !== null) {
      this.leases = null;
      for (let i = 0; i < l.length; i++) l[i]!.release();
    }
  }

  /** Copy the fragments into `data` after `end` (same headroom), then drop them. */
  linearize(): void {
    const frags = this.frags;
    if (frags === null) return;
    const data = new Uint8Array(this.end + this.fragBytes);
    data.set(this.data.subarray(0, this.end), 0);
    let o = this.end;
    for (let i = 0; i < frags.length; i++) {
      data.set(frags[i]!, o);
      o += frags[i]!.length;
    }
    this.data = data;
    this.end = o;
    this.frags = null;
    this.fragBytes = 0;
    this.releaseFrags();
  }

  /** Bytes of headroom still free in front of `start`. */
  get headroom(): number {
    return this.start;
  }

  /**
   * Grow the packet at the front by `n` bytes and return the new `start`. When the headroom is
   * too small, the bytes are moved into a larger buffer (once) and offsets are rebased.
   */
  prepend(n: number): number {
    if (n > this.start) this.grow(n - this.start + DEFAULT_HEADROOM);
    this.start -= n;
    return this.start;
  }

  /** Drop `n` bytes from the front (after a layer consumed its header). */
  consume(n: number): void {
    if (n > this.length) throw new RangeError(`consume ${n} of ${this.length}`);
    this.start += n;
  }

  /** Cut the packet to `len` bytes (e.g. drop Ethernet padding beyond IP total length). */
  truncate(len: number): void {
    if (len >= this.length) return;
    this.linearize();
    this.end = this.start + len;
  }

  /** A view (no copy, unless fragments had to be joined) of the packet's current bytes. */
  view(): Uint8Array {
    this.linearize();
    return this.data.subarray(this.start, this.end);
  }

  /** A copy of the packet's current bytes. */
  toBytes(): Uint8Array {
    this.linearize();
    return this.data.slice(this.start, this.end);
  }

  /**
   * A deep copy with its own bytes (headroom included, so offsets stay valid) and the same
   * metadata: for links that hand one packet to more than one receiver, or must alter a copy.
   */
  clone(): PacketBuffer {
    this.linearize();
    const c = new PacketBuffer(this.data.slice(), this.start, this.end);
    c.networkProtocol = this.networkProtocol;
    c.linkHeaderStart = this.linkHeaderStart;
    c.networkHeaderStart = this.networkHeaderStart;
    c.networkHeaderLength = this.networkHeaderLength;
    c.transportHeaderStart = this.transportHeaderStart;
    c.transportHeaderLength = this.transportHeaderLength;
    c.transportProtocol = this.transportProtocol;
    c.packetType = this.packetType;
    c.remoteLinkAddress = this.remoteLinkAddress;
    c.nicId = this.nicId;
    c.checksumOffload = this.checksumOffload;
    c.csumStart = this.csumStart;
    c.csumOffset = this.csumOffset;
    c.gsoSize = this.gsoSize;
    return c;
  }

  private grow(extra: number): void {
    const data = new Uint8Array(this.data.length + extra);
    data.set(this.data.subarray(this.start, this.end), this.start + extra);
    this.data = data;
    this.start += extra;
    this.end += extra;
    if (this.linkHeaderStart >= 0) this.linkHeaderStart += extra;
    if (this.networkHeaderStart >= 0) this.networkHeaderStart += extra;
    if (this.transportHeaderStart >= 0) this.transportHeaderStart += extra;
    if (this.csumStart >= 0) this.csumStart += extra;
  }
}

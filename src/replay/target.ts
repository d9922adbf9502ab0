/**
 * What a replay feeds: a stack NIC made for the purpose (StackTarget), or a virtual /dev/net/tun
 * device (TunTarget) whose stack is configured by its owner. Both take frames in (`inject`) and
 * hand every frame the stack sends to `onOutput`.
 */
import { TunstackError } from '../core/errors.js';
import { EthernetEndpoint } from '../link/ethernet.js';
import type { LinkEndpoint, NetworkDispatcher, WireFormat } from '../link/endpoint.js';
import { LinkCapability } from '../link/endpoint.js';
import type { NIC } from '../stack/nic.js';
import { PacketBuffer } from '../core/packet.js';
import type { NetStack } from '../stack/stack.js';
import type { TunDevice } from '../tundev/device.js';

export interface ReplayTarget {
  /** What `inject` takes and `onOutput` gives: Ethernet frames or IP packets. */
  readonly format: WireFormat;
  /** The stack behind the target. */
  readonly stack: NetStack;
  /** The NIC frames arrive on. */
  readonly nic: NIC;
  /** The target's MAC (Ethernet), else null. */
  readonly mac: Uint8Array | null;
  /** Frames the stack sends. */
  onOutput: ((frame: Uint8Array) => void) | null;
  /** Give one frame to the stack. `checksumVerified` tells it not to check transport checksums. */
  inject(frame: Uint8Array, checksumVerified: boolean): void;
  close(): void;
}

/** The link under a replay NIC: what the NIC writes goes to the replay engine. */
class ReplayPort implements LinkEndpoint {
  readonly linkAddress: Uint8Array = new Uint8Array(0);
  readonly capabilities = LinkCapability.None;
  readonly maxHeaderLength = 0;
  private dispatcher: NetworkDispatcher | null = null;
  output: ((frame: Uint8Array) => void) | null = null;

  constructor(
    readonly mtu: number,
    readonly wireFormat: WireFormat,
  ) {}

  get isAttached(): boolean {
    return this.dispatcher !== null;
  }

  attach(d: NetworkDispatcher | null): void {
    this.dispatcher = d;
  }

  writePackets(pkts: readonly PacketBuffer[]): number {
    const out = this.output;
    for (const p of pkts) if (out !== null) out(p.data.slice(p.start, p.end));
    return pkts.length;
  }

  deliver(frame: Uint8Array, etherType: number, checksumVerified: boolean): void {
    const d = this.dispatcher;
    if (d === null) return;
    const pkt = PacketBuffer.copyOf(frame);
    pkt.checksumOffload = checksumVerified;
    d.deliverNetworkPacket(etherType, pkt);
  }

  close(): void {
    this.dispatcher = null;
  }
}

export interface StackTargetOptions {
  format: WireFormat;
  /** MAC of the NIC (Ethernet). */
  mac?: Uint8Array;
  mtu?: number;
  name?: string;
}

/** A NIC on `stack` fed by the replay engine. Addresses and routes are the caller's. */
export class StackTarget implements ReplayTarget {
  readonly format: WireFormat;
  readonly nic: NIC;
  readonly mac: Uint8Array | null;
  onOutput: ((frame: Uint8Array) => void) | null = null;
  private readonly port: ReplayPort;

  constructor(
    readonly stack: NetStack,
    options: StackTargetOptions,
  ) {
    this.format = options.format;
    this.port = new ReplayPort(options.mtu ?? 1500, options.format);
    this.port.output = (f) => this.onOutput?.(f);
    let ep: LinkEndpoint = this.port;
    if (options.format === 'ethernet') {
      const mac = options.mac ?? Uint8Array.of(0x02, 0, 0, 0, 0, 0x01);
      ep = new EthernetEndpoint(this.port, { linkAddress: mac });
      this.mac = mac;
    } else {
      this.mac = null;
    }
    this.nic = stack.createNIC({ name: options.name ?? 'replay0', endpoint: ep, promiscuous: false });
  }

  inject(frame: Uint8Array, checksumVerified: boolean): void {
    let et = 0;
    if (this.format === 'ip' && frame.length > 0) et = frame[0]! >>> 4 === 6 ? 0x86dd : 0x0800;
    this.port.deliver(frame, et, checksumVerified);
  }

  close(): void {
    this.onOutput = null;
  }
}

/**
 * A virtual tun/tap device as the target: frames are written into it, frames read from it are
 * the stack's output. The device must be set up (TUNSETIFF) with IFF_NO_PI and no vnet header;
 * its addresses are configured by the replay engine (the role addresses) unless present.
 * Transport checksums are always verified by the stack behind a tun device, so "ignore"
 * checksums cannot be honoured here: the engine fixes them instead.
 */
export class TunTarget implements ReplayTarget {
  readonly format: WireFormat;
  readonly stack: NetStack;
  onOutput: ((frame: Uint8Array) => void) | null = null;
  private readonly buf = new Uint8Array(65536 + 64);
  private readonly onReadable = (): void => this.drain();

  constructor(readonly device: TunDevice) {
    if (!device.attached) throw new TunstackError('EBADFD', 'the tun device is not set up (TUNSETIFF)');
    if (device.headerLength !== 0) {
      throw new TunstackError('EINVAL', 'replay needs a tun device with IFF_NO_PI and no virtio-net header');
    }
    this.format = device.isTap ? 'ethernet' : 'ip';
    this.stack = device.nic.stack;
    device.on('readable', this.onReadable);
  }

  get nic(): NIC {
    return this.device.nic;
  }

  get mac(): Uint8Array | null {
    return this.format === 'ethernet' ? this.device.mac : null;
  }

  inject(frame: Uint8Array): void {
    try {
      this.device.write(frame);
    } catch {
      // EMSGSIZE / EINVAL: the device refused the frame, as a kernel tun would.
    }
    this.drain();
  }

  private drain(): void {
    for (;;) {
      let n: number;
      try {
        n = this.device.readInto(this.buf, 0);
      } catch {
        return;
      }
      this.onOutput?.(this.buf.slice(0, n));
    }
  }

  close(): void {
    this.device.off('readable', this.onReadable);
    this.onOutput = null;
  }
}

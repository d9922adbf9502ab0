/**
 * ICMP echo for the sandbox guest. A promiscuous NIC would otherwise answer an echo request to
 * any address itself (every ping would "succeed"), so `EchoInterceptEndpoint`, a link wrapper
 * between the Ethernet layer and the NIC, takes echo requests whose destination is not one of the
 * NIC's own addresses (nor multicast/broadcast) out of the inbound path and hands them to a
 * handler. Requests to the gateway and DNS addresses still reach the stack, which answers them.
 *
 * `PingRelay` is that handler where the host lets this process ping: it runs the host's ping(8)
 * once per request (at most `maxInFlight` at a time; more are dropped, as a lossy path would)
 * and, when the host got an answer, sends the guest an echo reply from the pinged address with
 * the request's identifier, sequence number and data. Node has no ICMP sockets; ping(8) uses the
 * kernel's unprivileged ping socket or its own capability, so this works wherever ping does.
 * Without it (`mode: 'gateway'`) such requests are dropped: only the gateway answers.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { getgid, getuid } from 'node:process';
import { checksum } from '../headers/checksum.js';
import { formatIP } from '../core/address.js';
import { setIcmpV6Checksum } from '../headers/icmpv6.js';
import { WrappingEndpoint, type LinkEndpoint } from '../link/endpoint.js';
import type { NIC } from '../stack/nic.js';
import type { PacketBuffer } from '../core/packet.js';
import type { Stack } from '../adapters/stack.js';
import type { RawSocket } from '../transport/raw.js';
import { isLocalHostAddress } from './host-policy.js';

/** An echo request taken from the inbound path: the whole IP datagram (a copy). */
export interface EchoRequest {
  family: 4 | 6;
  datagram: Uint8Array;
  /** Offset of the ICMP header in `datagram`. */
  icmpOffset: number;
}

export type EchoHandler = (req: EchoRequest) => void;

const ETH_IPV4 = 0x0800;
const ETH_IPV6 = 0x86dd;

/** Link wrapper that diverts echo requests for foreign addresses (see the file comment). */
export class EchoInterceptEndpoint extends WrappingEndpoint {
  /** Set after the NIC exists: its addresses decide what is foreign. */
  nic: NIC | null = null;
  intercepted = 0;

  constructor(
    inner: LinkEndpoint,
    private readonly handler: EchoHandler,
  ) {
    super(inner);
  }

  writePackets(pkts: readonly PacketBuffer[]): number {
    return this.inner.writePackets(pkts);
  }

  protected override get passesFrags(): boolean {
    return true;
  }

  deliverNetworkPacket(protocol: number, pkt: PacketBuffer): void {
    const up = this.upper;
    if (up === null) return;
    if (this.nic !== null && this.foreignEcho(protocol, pkt)) {
      this.intercepted++;
      return;
    }
    up.deliverNetworkPacket(protocol, pkt);
  }

  /** True when the packet was an echo request for a foreign address (and was handed over). */
  private foreignEcho(protocol: number, pkt: PacketBuffer): boolean {
    const b = pkt.data;
    const o = pkt.start;
    const len = pkt.end - o;
    const nic = this.nic!;
    if (protocol === ETH_IPV4) {
      if (len < 28 || b[o]! >>> 4 !== 4 || b[o + 9] !== 1) return false;
      const ihl = (b[o]! & 15) * 4;
      // Not a fragment (MF or offset), echo request at the ICMP header.
      if (ihl < 20 || len < ihl + 8 || ((b[o + 6]! & 0x3f) | b[o + 7]!) !== 0 || b[o + ihl] !== 8) return false;
      const d0 = b[o + 16]!;
      if (d0 >= 224 || nic.hasAddress(b, o + 16, 4) || nic.isSubnetBroadcast(b, o + 16)) return false;
      const tl = Math.min(len, (b[o + 2]! << 8) | b[o + 3]!);
      this.handler({ family: 4, datagram: b.slice(o, o + tl), icmpOffset: ihl });
      return true;
    }
    if (protocol === ETH_IPV6) {
      if (len < 48 || b[o]! >>> 4 !== 6 || b[o + 6] !== 58 || b[o + 40] !== 128) return false;
      const d0 = b[o + 24]!;
      if (d0 === 0xff || (d0 === 0xfe && (b[o + 25]! & 0xc0) === 0x80) || nic.hasAddress(b, o + 24, 16)) return false;
      const tl = Math.min(len, 40 + ((b[o + 4]! << 8) | b[o + 5]!));
      this.handler({ family: 6, datagram: b.slice(o, o + tl), icmpOffset: 40 });
      return true;
    }
    return false;
  }
}

export interface PingRelayStats {
  requests: number;
  /** Requests for destinations that are not relayed (dropped). */
  notRelayed: number;
  replies: number;
  /** The host's ping got no answer. */
  lost: number;
  /** Dropped: `maxInFlight` pings were running. */
  overflow: number;
  errors: number;
}

export interface PingRelayOptions {
  /** ping(8) processes at once (default 16). */
  maxInFlight?: number;
  /** Seconds the host's ping waits (default 2). */
  waitSec?: number;
  /** ping(8) path (default 'ping'). */
  command?: string;
  /** What to ping for a guest destination; null drops the request (default: the destination, unless it is the local host). */
  map?: (family: 4 | 6, address: string) => string | null;
}

/** Relays echo requests through the host's ping(8) (see the file comment). */
export class PingRelay {
  readonly stats: PingRelayStats = { requests: 0, notRelayed: 0, replies: 0, lost: 0, overflow: 0, errors: 0 };
  private inFlight = 0;
  private readonly raw4: RawSocket;
  private readonly raw6: RawSocket | null;
  private closed = false;
  private readonly children = new Set<ReturnType<typeof spawn>>();

  constructor(
    stack: Stack,
    private readonly options: PingRelayOptions = {},
  ) {
    // IPPROTO_RAW: send-only, whole datagrams (the NIC may spoof the source).
    this.raw4 = stack.raw({ family: 4, protocol: 255 });
    this.raw6 = stack.networkProtocol(ETH_IPV6) ? stack.raw({ family: 6, protocol: 255 }) : null;
  }

  readonly handle: EchoHandler = (req) => this.relay(req);

  close(): void {
    this.closed = true;
    for (const c of this.children) c.kill('SIGKILL');
    this.children.clear();
    this.raw4.close();
    this.raw6?.close();
  }

  private relay(req: EchoRequest): void {
    if (this.closed) return;
    this.stats.requests++;
    if (this.inFlight >= (this.options.maxInFlight ?? 16)) {
      this.stats.overflow++;
      return;
    }
    const d = req.datagram;
    const original = req.family === 4 ? formatIP(d.subarray(16, 20)) : formatIP(d.subarray(24, 40));
    // Without a map, the host itself is still never pinged on the guest's behalf (HostPolicy).
    const dst = this.options.map ? this.options.map(req.family, original) : isLocalHostAddress(original) ? null : original;
    if (dst === null) {
      this.stats.notRelayed++;
      return;
    }
    const size = Math.max(0, Math.min(65000, d.length - req.icmpOffset - 8));
    const args = ['-n', '-q', '-c', '1', '-W', String(this.options.waitSec ?? 2), '-s', String(size), ...(req.family === 6 ? ['-6'] : ['-4']), dst];
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(this.options.command ?? 'ping', args, { stdio: 'ignore' });
    } catch {
      this.stats.errors++;
      return;
    }
    this.inFlight++;
    this.children.add(child);
    child.on('error', () => {
      this.stats.errors++;
    });
    child.on('close', (code) => {
      this.inFlight--;
      this.children.delete(child);
      if (this.closed) return;
      if (code === 0) this.reply(req);
      else this.stats.lost++;
    });
  }

  private reply(req: EchoRequest): void {
    const d = req.datagram.slice();
    const io = req.icmpOffset;
    try {
      if (req.family === 4) {
        swap(d, 12, 16, 4);
        d[8] = 64;
        d[4] = 0;
        d[5] = 0;
        d[io] = 0;
        d[io + 2] = 0;
        d[io + 3] = 0;
        const c = checksum(d, io, d.length - io);
        d[io + 2] = c >>> 8;
        d[io + 3] = c & 0xff;
        this.raw4.send(d);
      } else if (this.raw6 !== null) {
        swap(d, 8, 24, 16);
        d[7] = 64;
        d[io] = 129;
        setIcmpV6Checksum(d, io, d.length - io, d.subarray(8, 24), d.subarray(24, 40));
        this.raw6.send(d);
      }
      this.stats.replies++;
    } catch {
      this.stats.errors++;
    }
  }
}

function swap(b: Uint8Array, a: number, c: number, n: number): void {
  for (let i = 0; i < n; i++) {
    const t = b[a + i]!;
    b[a + i] = b[c + i]!;
    b[c + i] = t;
  }
}

/**
 * Whether echo requests can be relayed: ping(8) exists and this process may ping (root, or its
 * group inside net.ipv4.ping_group_range); '' when it can, else why not.
 */
export function pingRelayUnavailableReason(command = 'ping'): string {
  if (spawnSync('sh', ['-c', `command -v ${command}`]).status !== 0) return `${command} not found`;
  if (getuid?.() === 0) return '';
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ping_group_range', 'utf8').trim().split(/\s+/).map(Number);
    const gid = getgid?.() ?? -1;
    if (lo !== undefined && hi !== undefined && gid >= lo && gid <= hi) return '';
    return `net.ipv4.ping_group_range (${lo} ${hi}) excludes group ${gid}`;
  } catch {
    return 'cannot read net.ipv4.ping_group_range';
  }
}

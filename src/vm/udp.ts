/**
 * QEMU's datagram transport over UDP: one Ethernet frame per datagram, no header
 * (`-netdev dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=QPORT,
 * remote.type=inet,remote.host=127.0.0.1,remote.port=PORT`). tunstack binds PORT and answers the
 * address the guest's frames come from. The first sender is the guest: datagrams from any other
 * address are dropped and counted (keep both ends on the loopback; any local process can send
 * to a UDP port).
 *
 * Bounds: a datagram shorter than an Ethernet header or longer than the port's largest frame
 * (MTU + 18) is dropped, counted and logged (the first time); sends waiting in the socket are at
 * most `maxInFlight` (default 256), beyond which the FramePort holds frames in its bounded queue
 * and then drops and counts them.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import type { FramePort } from '../link/frame-port.js';
import { ETHERNET_HEADER } from '../link/frame-port.js';

export interface UdpFrameServerOptions {
  port: FramePort;
  log?: (line: string) => void;
  /** Datagrams handed to the socket and not yet sent (default 256). */
  maxInFlight?: number;
}

export interface UdpFrameServerStats {
  framesIn: number;
  /** Datagrams too short or too long for a frame. */
  badSize: number;
  /** Datagrams from an address other than the guest's. */
  foreign: number;
  framesOut: number;
  /** Sends the socket failed. */
  sendErrors: number;
}

export class UdpFrameServer {
  readonly stats: UdpFrameServerStats = { framesIn: 0, badSize: 0, foreign: 0, framesOut: 0, sendErrors: 0 };
  private socket: Socket | null = null;
  private peer: { address: string; port: number } | null = null;
  private inFlight = 0;
  private readonly maxInFlight: number;
  private readonly log: (line: string) => void;
  private loggedBad = false;
  private loggedForeign = false;

  constructor(private readonly options: UdpFrameServerOptions) {
    this.log = options.log ?? (() => {});
    this.maxInFlight = options.maxInFlight ?? 256;
  }

  /** The guest's address once it has sent a frame. */
  get guest(): { address: string; port: number } | null {
    return this.peer;
  }

  /** The UDP port bound. */
  get localPort(): number {
    return this.socket?.address().port ?? 0;
  }

  listen(host: string, port: number): Promise<void> {
    const s = createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
    this.socket = s;
    const fp = this.options.port;
    s.on('message', (msg: Buffer, rinfo: RemoteInfo) => this.receive(msg, rinfo));
    fp.discard();
    fp.setSink((frame) => {
      const peer = this.peer;
      if (peer === null) return true; // nobody to send to yet: the frame is dropped
      this.inFlight++;
      this.stats.framesOut++;
      s.send(frame, peer.port, peer.address, (err) => {
        this.inFlight--;
        if (err) this.stats.sendErrors++;
        if (fp.isBlocked && this.inFlight <= this.maxInFlight >> 1) fp.resume();
      });
      return this.inFlight < this.maxInFlight;
    });
    return new Promise((resolve, reject) => {
      s.once('error', reject);
      s.bind(port, host, () => {
        s.removeListener('error', reject);
        s.on('error', (e) => this.log(`udp: ${e.message}`));
        resolve();
      });
    });
  }

  close(): void {
    this.options.port.setSink(null);
    this.socket?.close();
    this.socket = null;
  }

  private receive(msg: Buffer, rinfo: RemoteInfo): void {
    const fp = this.options.port;
    if (this.peer === null) {
      this.peer = { address: rinfo.address, port: rinfo.port };
      this.log(`udp: guest at ${rinfo.address}:${rinfo.port}`);
    } else if (this.peer.address !== rinfo.address || this.peer.port !== rinfo.port) {
      this.stats.foreign++;
      if (!this.loggedForeign) this.log(`udp: dropping datagrams from ${rinfo.address}:${rinfo.port}, not the guest (counted from now on)`);
      this.loggedForeign = true;
      return;
    }
    if (msg.length < ETHERNET_HEADER || msg.length > fp.maxFrame) {
      this.stats.badSize++;
      if (!this.loggedBad) this.log(`udp: dropping a datagram of ${msg.length} bytes, outside ${ETHERNET_HEADER}..${fp.maxFrame} (counted from now on)`);
      this.loggedBad = true;
      return;
    }
    this.stats.framesIn++;
    fp.send(new Uint8Array(msg));
  }
}

/**
 * QEMU's datagram transport over unix datagram sockets, as vfkit and libkrun use: one Ethernet
 * frame per datagram, no header (`-netdev dgram,id=n0,local.type=unix,local.path=QPATH,
 * remote.type=unix,remote.path=PATH`). tunstack binds PATH and answers the path the guest's
 * frames come from: the first sender with a path is the guest, datagrams from any other are
 * dropped and counted. Node cannot open these sockets, so this needs the native shim
 * (`unixDgram`, `recvFrom`, `sendTo`; an older prebuilt addon lacks them and this says so).
 *
 * Bounds: datagrams shorter than an Ethernet header or longer than the port's largest frame are
 * dropped, counted and logged once; the kernel holds at most 1 MiB for a guest that does not
 * read, after which sends fail with EAGAIN and the frames are dropped and counted.
 */
import { unlinkSync } from 'node:fs';
import { TunstackError } from '../core/errors.js';
import { errnoName, errnoToError, requireNative, type NativeBinding, type PollerHandle } from '../host/native.js';
import { EventMask } from '../tundev/constants.js';
import { ETHERNET_HEADER, type FramePort } from '../link/frame-port.js';

export interface UnixgramFrameServerOptions {
  port: FramePort;
  log?: (line: string) => void;
}

export interface UnixgramFrameServerStats {
  framesIn: number;
  /** Datagrams too short or too long for a frame. */
  badSize: number;
  /** Datagrams from a path other than the guest's, or from no path. */
  foreign: number;
  framesOut: number;
  /** Frames the kernel would not take (the guest reads nothing) or could not deliver. */
  sendDropped: number;
}

const EAGAIN = -11;

/** Why unix datagram sockets are unavailable here ('' when they are). */
export function unixgramUnavailableReason(): string {
  try {
    const n = requireNative('socket');
    return typeof n.unixDgram === 'function' ? '' : 'the native host bridge is too old for unix datagram sockets (rebuild it: node native/build.mjs)';
  } catch (e) {
    return (e as Error).message;
  }
}

export class UnixgramFrameServer {
  readonly stats: UnixgramFrameServerStats = { framesIn: 0, badSize: 0, foreign: 0, framesOut: 0, sendDropped: 0 };
  private readonly n: Required<Pick<NativeBinding, 'unixDgram' | 'recvFrom' | 'sendTo'>> & NativeBinding;
  private fd = -1;
  private poller: PollerHandle | null = null;
  private path = '';
  private peer: string | null = null;
  private readonly buf: Uint8Array;
  private readonly log: (line: string) => void;
  private loggedBad = false;
  private loggedForeign = false;
  private loggedSend = false;

  constructor(private readonly options: UnixgramFrameServerOptions) {
    const why = unixgramUnavailableReason();
    if (why !== '') throw new TunstackError('ENOSYS', why);
    this.n = requireNative('socket') as typeof this.n;
    this.log = options.log ?? (() => {});
    // Room for one byte more than the largest frame (longer datagrams are reported by length).
    this.buf = new Uint8Array(options.port.maxFrame + 1);
  }

  /** The guest's socket path once it has sent a frame. */
  get guest(): string | null {
    return this.peer;
  }

  listen(path: string): void {
    const fd = this.n.unixDgram(path);
    if (fd < 0) throw errnoToError(fd, `cannot bind ${path}`, 'bind');
    this.fd = fd;
    this.path = path;
    const h = this.n.pollerCreate(fd, 0, (a) => (a === -1 ? this.readAll() : undefined), null, null, 0, 0);
    if (typeof h === 'number') {
      this.close();
      throw errnoToError(h, 'uv_poll_init', 'poll');
    }
    this.poller = h;
    this.n.pollerStart(h, EventMask.Readable);
    const fp = this.options.port;
    fp.discard();
    fp.setSink((frame) => {
      const peer = this.peer;
      if (peer === null || this.fd < 0) return true; // nobody to send to: dropped
      const r = this.n.sendTo(this.fd, frame, 0, frame.length, peer);
      if (r < 0) {
        this.stats.sendDropped++;
        if (!this.loggedSend) this.log(`unixgram: sending to ${peer} failed (${errnoName(r)}${r === EAGAIN ? ': the guest is not reading' : ''}); dropping and counting from now on`);
        this.loggedSend = true;
      } else this.stats.framesOut++;
      return true;
    });
  }

  close(): void {
    this.options.port.setSink(null);
    if (this.poller !== null) this.n.pollerClose(this.poller);
    this.poller = null;
    if (this.fd >= 0) {
      this.n.close(this.fd);
      this.fd = -1;
      try {
        unlinkSync(this.path);
      } catch {
        // gone already
      }
    }
  }

  private readAll(): void {
    const fp = this.options.port;
    for (let i = 0; i < 256 && this.fd >= 0; i++) {
      const r = this.n.recvFrom(this.fd, this.buf, 0, this.buf.length);
      if (typeof r === 'number') {
        if (r !== EAGAIN) this.log(`unixgram: recvfrom: ${errnoName(r)}`);
        return;
      }
      const [len, from] = r;
      if (this.peer === null && from !== '') {
        this.peer = from;
        this.log(`unixgram: guest at ${from}`);
      }
      if (from === '' || from !== this.peer) {
        this.stats.foreign++;
        if (!this.loggedForeign) this.log(`unixgram: dropping datagrams from ${from === '' ? 'an unbound socket' : from}, not the guest (counted from now on)`);
        this.loggedForeign = true;
        continue;
      }
      if (len < ETHERNET_HEADER || len > fp.maxFrame) {
        this.stats.badSize++;
        if (!this.loggedBad) this.log(`unixgram: dropping a datagram of ${len} bytes, outside ${ETHERNET_HEADER}..${fp.maxFrame} (counted from now on)`);
        this.loggedBad = true;
        continue;
      }
      this.stats.framesIn++;
      fp.send(this.buf.slice(0, len));
    }
  }
}

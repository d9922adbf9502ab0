/**
 * Host TCP sockets for the relay without a Node `net.Socket` each: the fd from the shim's
 * connect(2) is read with read(2), written with writev(2) and shut down with shutdown(2), and one
 * epoll set (watched by a single poller) says which fds are ready. A flow then costs a small JS
 * object and the kernel's epoll item: no libuv handle, no stream machinery, no native allocation.
 *
 * The semantics follow what the relay relied on from `net.Socket` (allowHalfOpen): reads pause
 * and resume (readable is not polled while paused, so a peer that sends is held by its window),
 * a read of 0 is the host's FIN, end() shuts the write side down once queued bytes are out, the
 * fd closes when both directions are done, an error (reset, EPIPE) closes it and is reported a
 * turn later (as Node's 'close' with hadError), and resetAndDestroy() sends a RST (SO_LINGER 0).
 * Writes the kernel does not take are kept and writable is polled; until they are out, write()
 * says false, so the relay stops reading from the guest and the guest's window closes.
 */
import type { NativeBinding, PollerHandle } from '../host/native.js';

/** The shim's calls these sockets use. */
export type FdStreamNative = Required<Pick<NativeBinding, 'epollCreate' | 'epollCtl' | 'epollWait' | 'writev' | 'shutdown' | 'abortClose'>> &
  Pick<NativeBinding, 'read' | 'close' | 'pollerCreate' | 'pollerStart' | 'pollerClose'>;

/** The shim when it has every call these sockets need, bound; null otherwise (then `net.Socket`). */
export function fdStreamNative(n: NativeBinding | null): FdStreamNative | null {
  if (n === null) return null;
  const { epollCreate, epollCtl, epollWait, writev, shutdown, abortClose } = n;
  if (epollCreate === undefined || epollCtl === undefined || epollWait === undefined || writev === undefined || shutdown === undefined || abortClose === undefined) {
    return null;
  }
  return {
    epollCreate: epollCreate.bind(n),
    epollCtl: epollCtl.bind(n),
    epollWait: epollWait.bind(n),
    writev: writev.bind(n),
    shutdown: shutdown.bind(n),
    abortClose: abortClose.bind(n),
    read: n.read.bind(n),
    close: n.close.bind(n),
    pollerCreate: n.pollerCreate.bind(n),
    pollerStart: n.pollerStart.bind(n),
    pollerClose: n.pollerClose.bind(n),
  };
}

/** Where a socket's reads go (the relay's HostReader). */
export interface FdReader {
  /** The buffer the next read fills. */
  buffer(): Uint8Array;
  /** n bytes were read into it; false: pause. */
  got(n: number): boolean;
  /** The host's FIN was read or is known to be next. */
  ended: boolean;
  /** The socket is closed. */
  close(): void;
}

/** What the socket reports to (the relay's TcpFlow). */
export interface FdOwner {
  onHostEnd(): void;
  onHostClose(hadError: boolean): void;
  onDrain(): void;
}

const EPOLLIN = 0x1;
const EPOLLOUT = 0x4;
const EPOLLERR = 0x8;
const EPOLLHUP = 0x10;
const CTL_ADD = 1;
const CTL_DEL = 2;
const CTL_MOD = 3;
const EAGAIN = 11;
const EINTR = 4;
const SHUT_WR = 1;
/** Queued bytes or buffers (while corked) written at once. */
const FLUSH_BYTES = 262144;
const FLUSH_VIEWS = 64;

/** One epoll set for the relay's host sockets, watched by one poller. */
export class FdHub {
  private readonly ep: number;
  private poller: PollerHandle | null = null;
  private readonly events = new Int32Array(512);
  /** Open sockets by fd (fds are small and dense: an array is smaller than a Map). */
  readonly sockets: Array<FdSocket | undefined> = [];
  private closed = false;
  /**
   * Work that can wait for the end of the loop turn, after the turn's packets went to the guest:
   * fds to close (a host FIN or the socket's release, whose kernel work is the host's side of
   * the close) and sockets whose epoll registration to take back after their host's FIN. The
   * guest's next packet (a SYN, say) is answered first.
   */
  private laterFds: number[] = [];
  private laterSockets: FdSocket[] = [];
  private laterScheduled = false;
  private readonly runLater = (): void => this.flushLater();

  /** Throws (an errno-style Error) when the epoll set or its poller cannot be made. */
  constructor(readonly n: FdStreamNative) {
    const ep = n.epollCreate();
    if (ep < 0) throw Object.assign(new Error('epoll_create1 failed'), { code: 'EIO', errno: ep });
    this.ep = ep;
    const h = n.pollerCreate(ep, 0, (a) => this.onReady(a), null, null, 0, 0);
    if (typeof h === 'number' || n.pollerStart(h, EPOLLIN) < 0) {
      if (typeof h !== 'number') n.pollerClose(h);
      n.close(ep);
      throw Object.assign(new Error('cannot poll the epoll set'), { code: 'EIO' });
    }
    this.poller = h;
  }

  /** A socket on connected stream fd (owned from now on), reading into `reader` at once. */
  open(fd: number, reader: FdReader): FdSocket {
    const s = new FdSocket(this, fd, reader);
    this.sockets[fd] = s;
    s.update();
    return s;
  }

  /** @internal Register fd for `events` (0: not at all), given what it had. */
  ctl(fd: number, had: number, events: number): number {
    return this.n.epollCtl(this.ep, had === 0 ? CTL_ADD : events === 0 ? CTL_DEL : CTL_MOD, fd, events);
  }

  /** @internal Close fd at the end of the turn (it is out of `sockets` already: no events for it). */
  closeLater(fd: number): void {
    if (this.closed) {
      this.n.close(fd);
      return;
    }
    this.laterFds.push(fd);
    this.scheduleLater();
  }

  /** @internal Match s's registration to what it waits for at the end of the turn. */
  updateLater(s: FdSocket): void {
    this.laterSockets.push(s);
    this.scheduleLater();
  }

  private scheduleLater(): void {
    if (this.laterScheduled) return;
    this.laterScheduled = true;
    setImmediate(this.runLater);
  }

  private flushLater(): void {
    this.laterScheduled = false;
    const socks = this.laterSockets;
    if (socks.length > 0) {
      this.laterSockets = [];
      for (const s of socks) s.update();
    }
    const fds = this.laterFds;
    if (fds.length > 0) {
      this.laterFds = [];
      for (const fd of fds) this.n.close(fd);
    }
  }

  private onReady(a: number): void {
    if (a !== -1 || this.closed) return;
    const ev = this.events;
    for (;;) {
      const count = this.n.epollWait(this.ep, ev);
      if (count <= 0) return;
      for (let i = 0; i < count; i++) this.sockets[ev[2 * i]!]?.onEvent(ev[2 * i + 1]!);
      if (count < ev.length / 2) return;
    }
  }

  /** Close every socket (no reports) and the set. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sockets.slice()) s?.destroy();
    this.laterSockets = [];
    for (const fd of this.laterFds) this.n.close(fd);
    this.laterFds = [];
    if (this.poller !== null) this.n.pollerClose(this.poller);
    this.poller = null;
    this.n.close(this.ep);
  }
}

/** Sockets whose close (error or reset) is reported to their owner in the next microtask. */
let reports: FdSocket[] = [];

function runReports(): void {
  const list = reports;
  reports = [];
  for (const s of list) s.report();
}

/** A connected host TCP socket on a raw fd (see the module comment). */
export class FdSocket {
  /** Flags, one bit each (accessors below). */
  private bits = 0;
  owner: FdOwner | null = null;
  /** Epoll events registered now (0: not in the set). */
  private want = 0;
  /** Bytes the kernel has not taken yet, in order; the first maybe partly written (see `head`). */
  private out: Uint8Array[] | null = null;
  /** Bytes queued in `out`. */
  outBytes = 0;
  /** The kernel refused more: writable is polled and write() says false until it is all out. */

  constructor(
    private readonly hub: FdHub,
    readonly fd: number,
    private readonly reader: FdReader,
  ) {}

  get destroyed(): boolean {
    return (this.bits & 1) !== 0;
  }

  set destroyed(v: boolean) {
    this.bits = v ? this.bits | 1 : this.bits & ~1;
  }

  private get paused(): boolean {
    return (this.bits & 2) !== 0;
  }

  private set paused(v: boolean) {
    this.bits = v ? this.bits | 2 : this.bits & ~2;
  }

  private get readEnded(): boolean {
    return (this.bits & 4) !== 0;
  }

  private set readEnded(v: boolean) {
    this.bits = v ? this.bits | 4 : this.bits & ~4;
  }

  private get corked(): boolean {
    return (this.bits & 8) !== 0;
  }

  private set corked(v: boolean) {
    this.bits = v ? this.bits | 8 : this.bits & ~8;
  }

  private get blocked(): boolean {
    return (this.bits & 16) !== 0;
  }

  private set blocked(v: boolean) {
    this.bits = v ? this.bits | 16 : this.bits & ~16;
  }

  private get ending(): boolean {
    return (this.bits & 32) !== 0;
  }

  private set ending(v: boolean) {
    this.bits = v ? this.bits | 32 : this.bits & ~32;
  }

  private get shut(): boolean {
    return (this.bits & 64) !== 0;
  }

  private set shut(v: boolean) {
    this.bits = v ? this.bits | 64 : this.bits & ~64;
  }

  private get hadError(): boolean {
    return (this.bits & 128) !== 0;
  }

  private set hadError(v: boolean) {
    this.bits = v ? this.bits | 128 : this.bits & ~128;
  }

  /** @internal Match the registered events to what the socket waits for. */
  update(): void {
    if (this.destroyed) return;
    const want = (this.paused || this.readEnded ? 0 : EPOLLIN) | (this.blocked ? EPOLLOUT : 0);
    if (want === this.want) return;
    if (this.hub.ctl(this.fd, this.want, want) < 0) {
      this.fail();
      return;
    }
    this.want = want;
  }

  /** @internal */
  onEvent(ev: number): void {
    if (this.destroyed) return;
    if (this.blocked && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) !== 0) {
      this.blocked = false;
      if (!this.flush()) return;
      if (!this.blocked) this.owner?.onDrain();
      if (this.destroyed) return;
    }
    if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) !== 0 && !this.paused && !this.readEnded) this.readSome();
  }

  private readSome(): void {
    const r = this.reader;
    const n = this.hub.n;
    while (!this.paused && !this.readEnded && !this.destroyed) {
      const v = r.buffer();
      const got = n.read(this.fd, v, 0, v.length);
      if (got > 0) {
        const more = r.got(got);
        if (this.destroyed) return;
        if (r.ended) {
          // The FIN is next (peekEnd): it went to the guest with these bytes. Reading stops; the
          // registration is taken back after the turn's packets are out (a level-triggered
          // readable FIN would be reported again only by a later poll).
          this.readEnded = true;
          if (this.shut) this.close(false);
          else this.hub.updateLater(this);
          return;
        }
        if (!more) {
          this.paused = true;
          this.update();
          return;
        }
        if (got < v.length) return;
      } else if (got === 0) {
        this.readEnded = true;
        // Closing takes the fd out of the epoll set: no epoll_ctl first.
        if (!this.shut) this.hub.updateLater(this);
        const o = this.owner;
        if (o !== null) o.onHostEnd();
        else r.ended = true;
        this.maybeClose();
        return;
      } else if (got === -EAGAIN) {
        return;
      } else if (got !== -EINTR) {
        this.fail();
        return;
      }
    }
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.update();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.update();
  }

  cork(): void {
    this.corked = true;
  }

  uncork(): void {
    this.corked = false;
    if (this.outBytes > 0 && !this.blocked) this.flush();
  }

  /** Queue c (kept by reference until written); false while the kernel takes no more. */
  write(c: Uint8Array): boolean {
    if (this.destroyed || this.ending) return false;
    if (c.length === 0) return !this.blocked;
    (this.out ??= []).push(c);
    this.outBytes += c.length;
    if (this.blocked) return false;
    if (this.corked && this.outBytes < FLUSH_BYTES && this.out.length < FLUSH_VIEWS) return true;
    return this.flush();
  }

  /** Write what is queued: true when all of it went (false: blocked, or failed). */
  private flush(): boolean {
    const out = this.out;
    const n = this.hub.n;
    while (out !== null && out.length > 0 && !this.destroyed) {
      const count = Math.min(out.length, FLUSH_VIEWS);
      const w = n.writev(this.fd, out, count);
      if (w < 0) {
        if (w === -EINTR) continue;
        if (w === -EAGAIN) {
          this.blocked = true;
          this.update();
          return false;
        }
        this.fail();
        return false;
      }
      this.outBytes -= w;
      let left = w;
      let i = 0;
      while (i < out.length && left >= out[i]!.length) left -= out[i++]!.length;
      if (left > 0) out[i] = out[i]!.subarray(left);
      out.splice(0, i);
    }
    if (this.destroyed) return false;
    this.out = null;
    this.outBytes = 0;
    if (this.want & EPOLLOUT) this.update();
    if (this.ending && !this.shut) this.shutWrite();
    return !this.destroyed;
  }

  /** Shut the write side down once queued bytes are out (the host reads its FIN). */
  end(): void {
    if (this.destroyed || this.ending) return;
    this.ending = true;
    if (this.outBytes === 0) this.shutWrite();
  }

  private shutWrite(): void {
    this.shut = true;
    // The host has ended too: close(2) sends the FIN just as shutdown(2) would, one call less.
    if (this.readEnded) {
      this.close(false);
      return;
    }
    if (this.hub.n.shutdown(this.fd, SHUT_WR) < 0) {
      this.fail();
      return;
    }
    this.maybeClose();
  }

  /** Both directions done: the fd closes (as Node closes a half-open socket once both ended). */
  private maybeClose(): void {
    if (this.shut && this.readEnded && !this.destroyed) this.close(false);
  }

  /** Close now (no report). */
  destroy(): void {
    if (!this.destroyed) this.close(false);
  }

  /** Close with a RST to the host (SO_LINGER 0); reported as a close. */
  resetAndDestroy(): void {
    if (this.destroyed) return;
    this.close(true);
    this.queueReport();
  }

  /** A read, write or shutdown failed: close, report with hadError. */
  private fail(): void {
    if (this.destroyed) return;
    this.hadError = true;
    this.close(false);
    this.queueReport();
  }

  private queueReport(): void {
    if (reports.push(this) === 1) queueMicrotask(runReports);
  }

  /** @internal */
  report(): void {
    this.owner?.onHostClose(this.hadError);
  }

  private close(reset: boolean): void {
    this.destroyed = true;
    this.hub.sockets[this.fd] = undefined;
    // Closing the fd takes it out of the epoll set. A graceful close (the FIN) waits for the end
    // of the turn; a reset goes at once.
    if (reset) this.hub.n.abortClose(this.fd);
    else this.hub.closeLater(this.fd);
    this.want = 0;
    this.out = null;
    this.outBytes = 0;
    this.reader.close();
  }
}

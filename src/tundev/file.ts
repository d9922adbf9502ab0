import { TunstackError } from '../core/errors.js';
import type { AddressInfo } from '../stack/nic.js';
import type { IfReq, TunIoctlArg, TunIoctlResult } from './device.js';

/**
 * One open of /dev/net/tun, whichever world it is in: the virtual device (`stack.openTun()`,
 * TunDevice) and the kernel's through the native shim (HostTap) both implement it, so code written
 * against it runs on either, checked by the compiler. Reads are non-blocking (`read` throws EAGAIN
 * when nothing waits); `readAsync()` and `for await (const pkt of file)` wait for packets.
 */
export interface TunFile {
  /** The attached interface ('' before TUNSETIFF). */
  readonly name: string;
  /** This open's TUNSETIFF flags. */
  readonly flags: number;
  readonly closed: boolean;
  /** Bytes of packet information and virtio_net_hdr in front of every packet. */
  readonly headerLength: number;
  setIff(req: IfReq): IfReq;
  ioctl(request: number, arg?: TunIoctlArg): TunIoctlResult;
  read(max?: number): Uint8Array;
  readInto(buf: Uint8Array, off?: number): number;
  write(bytes: Uint8Array): number;
  /** The ready part of `mask` (EventMask.Readable | Writable); EventMask.Error when not attached. */
  readiness(mask: number): number;
  /** The next packet, waiting for one; rejects with EBADF when the file closes, or the signal's reason. */
  readAsync(options?: ReadAsyncOptions): Promise<Uint8Array>;
  /** Packets as they come, one read per step (the device queue holds the rest); ends at close. */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array>;
  setPersist(on: boolean): void;
  readonly isUp: boolean;
  up(): void;
  down(): void;
  mtu: number;
  addAddress(addr: string | AddressInfo, options?: { route?: boolean }): AddressInfo;
  close(): void;
}

export interface ReadAsyncOptions {
  /** Largest packet to read (as `read(max)`). */
  max?: number;
  /** Abort the wait (the promise rejects with the signal's reason). */
  signal?: AbortSignal;
}

/** What `readAsync` needs of a file: a non-blocking read and 'readable' / 'close' events. */
export interface TunWaitable {
  readonly closed: boolean;
  read(max?: number): Uint8Array;
  on(event: string, fn: () => void): unknown;
  off(event: string, fn: () => void): unknown;
}

/**
 * The shared `readAsync`: read now; on EAGAIN wait for 'readable' (or 'detached' / 'close') and
 * try again. Only EAGAIN waits; every other error (EBADF once closed, EBADFD, EINVAL) rejects.
 */
export function readAsyncFrom(file: TunWaitable, options: ReadAsyncOptions = {}): Promise<Uint8Array> {
  const { max, signal } = options;
  return new Promise<Uint8Array>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const done = (): void => {
      file.off('readable', attempt);
      file.off('close', attempt);
      file.off('detached', attempt);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      done();
      reject(signal!.reason);
    };
    function attempt(): void {
      try {
        const pkt = file.read(max);
        done();
        resolve(pkt);
      } catch (e) {
        if (e instanceof TunstackError && e.code === 'EAGAIN' && !file.closed) return;
        done();
        reject(e);
      }
    }
    file.on('readable', attempt);
    file.on('close', attempt);
    file.on('detached', attempt);
    signal?.addEventListener('abort', onAbort, { once: true });
    attempt();
  });
}

/** The shared async iterator: `readAsync` until the file closes (then done). */
export async function* packetsOf(file: TunWaitable & { readAsync(o?: ReadAsyncOptions): Promise<Uint8Array> }): AsyncGenerator<Uint8Array, void, undefined> {
  for (;;) {
    if (file.closed) return;
    try {
      yield await file.readAsync();
    } catch (e) {
      if (e instanceof TunstackError && e.code === 'EBADF' && file.closed) return;
      throw e;
    }
  }
}

/**
 * A Web Streams face for a tun/tap file (the virtual `stack.openTun()`, or anything that
 * implements TunFile): what the stack sends as a `ReadableStream` of packets (TUN) or frames
 * (TAP), each with the open's framing (packet information, virtio_net_hdr) as `read()` returns
 * it, and a `WritableStream` whose every chunk is one `write()` into the stack.
 *
 * Backpressure: the readable reads one packet per request of its consumer (plus
 * `readHighWaterMark` packets ahead); the rest wait in the device queue, which holds 1024 and
 * drops the overflow, counted, as Linux's tun does. A write injects the packet and the stack
 * handles it before the write resolves.
 */
import { TunstackError } from '../core/errors.js';
import type { TunFile } from '../tundev/file.js';
import { optionalInteger, optionsObject } from '../core/validate.js';

export interface TunStreamsOptions {
  /** Packets read out of the device queue ahead of the consumer (CountQueuingStrategy); default 0. */
  readHighWaterMark?: number;
}

export interface TunStreams {
  /** Packets (frames on a TAP) the stack sends; closes when the file is closed. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Packets to inject; a chunk the file refuses (EIO while the interface is down, ...) errors the stream. */
  readonly writable: WritableStream<Uint8Array>;
}

/**
 * Web Streams over a tun file. Cancelling the readable or closing the writable does not close
 * the file (its owner does, with `tun.close()`, which also ends the readable).
 */
export function tunStreams(tun: TunFile, options: TunStreamsOptions = {}): TunStreams {
  options = optionsObject<TunStreamsOptions>(options, 'tunStreams');
  optionalInteger(options.readHighWaterMark, 'tunStreams', 'options.readHighWaterMark', 0, 1 << 20);
  const cancelled = new AbortController();
  const readable = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          controller.enqueue(await tun.readAsync({ signal: cancelled.signal }));
        } catch (e) {
          if (cancelled.signal.aborted) return;
          if (e instanceof TunstackError && e.code === 'EBADF' && tun.closed) controller.close();
          else throw e;
        }
      },
      cancel(reason) {
        cancelled.abort(reason);
      },
    },
    new CountQueuingStrategy({ highWaterMark: options.readHighWaterMark ?? 0 }),
  );
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      if (!(chunk instanceof Uint8Array)) throw new TunstackError('EINVAL', 'tun writable: chunks must be Uint8Array', 'write');
      tun.write(chunk);
    },
  });
  return { readable, writable };
}

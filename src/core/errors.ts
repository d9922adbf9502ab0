/**
 * Errors that mirror the kernel carry the errno name as `code`, the way Node's own errors do.
 * Parse failures of bytes (headers, pcap files) use `ParseError`, which also names the offset.
 */

/** errno numbers (Linux x86-64) for the names tunstack uses. */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOTTY: 25,
  ENOSPC: 28,
  EPIPE: 32,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENODATA: 61,
  EPROTO: 71,
  EBADMSG: 74,
  EBADFD: 77,
  EDESTADDRREQ: 89,
  EMSGSIZE: 90,
  EPROTOTYPE: 91,
  ENOPROTOOPT: 92,
  EPROTONOSUPPORT: 93,
  EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETDOWN: 100,
  ENETUNREACH: 101,
  ECONNABORTED: 103,
  ECONNRESET: 104,
  ENOBUFS: 105,
  EISCONN: 106,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EHOSTUNREACH: 113,
  EALREADY: 114,
  EINPROGRESS: 115,
} as const;

export type ErrnoCode = keyof typeof ERRNO;

/** An error with an errno-style `code` (and the negative errno number in `errno`, as Node does). */
export class TunstackError extends Error {
  readonly code: ErrnoCode;
  readonly errno: number;
  readonly syscall: string | undefined;

  constructor(code: ErrnoCode, message: string, syscall?: string) {
    super(`${code}: ${message}`);
    this.name = 'TunstackError';
    this.code = code;
    this.errno = -ERRNO[code];
    this.syscall = syscall;
  }
}

/** Malformed bytes: a header that does not parse, a corrupt or truncated capture file. */
export class ParseError extends TunstackError {
  /** Byte offset (in the buffer or file) where the problem was found. */
  readonly offset: number;

  constructor(message: string, offset: number, code: ErrnoCode = 'EBADMSG') {
    super(code, `${message} (at offset ${offset})`);
    this.name = 'ParseError';
    this.offset = offset;
  }
}

export function errnoError(code: ErrnoCode, message: string, syscall?: string): TunstackError {
  return new TunstackError(code, message, syscall);
}

export function isTunstackError(e: unknown): e is TunstackError {
  return e instanceof TunstackError;
}

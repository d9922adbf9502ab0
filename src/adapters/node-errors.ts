/**
 * Errors in the shapes Node's net and dgram give them: a plain Error with `errno` (negative),
 * `code`, `syscall` and, for connect/listen/bind, `address` and `port`, with Node's messages
 * (`connect ECONNREFUSED 198.18.0.2:80`, `listen EADDRINUSE: address already in use :::80`,
 * `read ECONNRESET`). Keys are set in Node's order, so the objects compare equal field by field.
 */
import { ERRNO, type ErrnoCode } from '../core/errors.js';

/** libuv's uv_strerror text for the codes a listen or bind can fail with. */
const UV_TEXT: Partial<Record<ErrnoCode, string>> = {
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available',
  EACCES: 'permission denied',
  EAFNOSUPPORT: 'address family not supported',
  EINVAL: 'invalid argument',
  EAGAIN: 'resource temporarily unavailable',
  EBADF: 'bad file descriptor',
};

/** getaddrinfo's EAI_NONAME as Node numbers it (UV_EAI_NONAME). */
const UV_EAI_NONAME = -3008;

export type NodeSystemError = Error & { errno: number; code: string; syscall: string; address?: string; port?: number; hostname?: string };

function codeOf(e: unknown): ErrnoCode | null {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' && c in ERRNO ? (c as ErrnoCode) : null;
}

/** Node's errnoException: `read ECONNRESET`. Non-errno errors pass through unchanged. */
export function errnoError(e: unknown, syscall: string): Error {
  const code = codeOf(e);
  if (code === null) return e as Error;
  const ex = new Error(`${syscall} ${code}`) as NodeSystemError;
  ex.errno = -ERRNO[code];
  ex.code = code;
  ex.syscall = syscall;
  return ex;
}

/** Node's exceptionWithHostPort: `connect ECONNREFUSED 198.18.0.2:80` (port omitted when 0). */
export function hostPortError(e: unknown, syscall: string, address: string, port: number): Error {
  const code = codeOf(e);
  if (code === null) return e as Error;
  const ex = new Error(`${syscall} ${code} ${address}${port > 0 ? `:${port}` : ''}`) as NodeSystemError;
  ex.errno = -ERRNO[code];
  ex.code = code;
  ex.syscall = syscall;
  ex.address = address;
  if (port > 0) ex.port = port;
  return ex;
}

/** Node's uvExceptionWithHostPort: `listen EADDRINUSE: address already in use :::80`. */
export function uvHostPortError(e: unknown, syscall: string, address: string, port: number): Error {
  const code = codeOf(e);
  if (code === null) return e as Error;
  const text = UV_TEXT[code] ?? code.toLowerCase();
  const ex = new Error(`${syscall} ${code}: ${text} ${address}${port > 0 ? `:${port}` : ''}`) as NodeSystemError;
  ex.code = code;
  ex.errno = -ERRNO[code];
  ex.syscall = syscall;
  ex.address = address;
  if (port > 0) ex.port = port;
  return ex;
}

/** Node's getaddrinfo failure for a name: `getaddrinfo ENOTFOUND name`. */
export function notFoundError(hostname: string): Error {
  const ex = new Error(`getaddrinfo ENOTFOUND ${hostname}`) as NodeSystemError;
  ex.errno = UV_EAI_NONAME;
  ex.code = 'ENOTFOUND';
  ex.syscall = 'getaddrinfo';
  ex.hostname = hostname;
  return ex;
}

/** An error with a Node `code` (ERR_*), of the given class, as Node's internal errors. */
export function codedError<E extends Error>(Base: new (message: string) => E, code: string, message: string): E & { code: string } {
  const ex = new Base(message) as E & { code: string };
  ex.code = code;
  // Node's internal errors show the code in the name part of the stack: "TypeError [ERR_X]: ...".
  Object.defineProperty(ex, 'name', { value: `${ex.name} [${code}]`, configurable: true, writable: true });
  void ex.stack; // materialise the stack with the coded name
  Object.defineProperty(ex, 'name', { value: Base.name, configurable: true, writable: true });
  return ex;
}

/** Node's SystemError class (its constructor is named NodeError; its name is 'SystemError'). */
export class NodeError extends Error {
  override get name(): string {
    return 'SystemError';
  }
}

import { formatIP } from '../core/address.js';
import { TunstackError, type ErrnoCode } from '../core/errors.js';
import type { TransportError } from './protocol.js';

/**
 * The errno a socket sees for an ICMP or ICMPv6 error (Linux's icmp_err_convert and
 * icmpv6_err_convert), the one map every transport and ping uses. `syscall` goes on the error;
 * `from` names the router that reported it in the message.
 */
export function icmpErrno(e: TransportError, options: { syscall?: string; from?: boolean } = {}): TunstackError {
  let code: ErrnoCode = 'EHOSTUNREACH';
  let what: string;
  switch (e.kind) {
    case 'port-unreachable':
      code = 'ECONNREFUSED';
      what = 'port unreachable';
      break;
    case 'net-unreachable':
      code = 'ENETUNREACH';
      what = 'network unreachable';
      break;
    case 'proto-unreachable':
      code = 'ENOPROTOOPT';
      what = 'protocol unreachable';
      break;
    case 'frag-needed':
    case 'packet-too-big':
      code = 'EMSGSIZE';
      what = `message too long (path MTU ${e.mtu})`;
      break;
    case 'admin-prohibited':
      code = 'EACCES';
      what = 'communication administratively prohibited';
      break;
    case 'param-problem':
      code = 'EPROTO';
      what = 'parameter problem';
      break;
    case 'ttl-exceeded':
      what = e.from.length === 16 ? 'time exceeded: hop limit' : 'time exceeded: TTL';
      break;
    case 'reassembly-timeout':
      what = 'time exceeded: reassembly';
      break;
    default:
      what = 'host unreachable';
  }
  const from = options.from === true && e.from.some((b) => b !== 0) ? ` from ${formatIP(e.from)}` : '';
  return new TunstackError(code, `${what}${from}`, options.syscall);
}

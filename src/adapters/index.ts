/**
 * The Node surfaces: the package's `Stack` (src/adapters/stack.ts) with `net`, `dgram` and `dns`
 * as members, and their classes.
 */
export { Stack, type StackOptions } from './stack.js';
export { DgramModule, DgramSocket, type RemoteInfo } from './dgram.js';
export {
  DnsModule,
  DnsPromises,
  HostsTable,
  PromisesResolver,
  Resolver,
  type DnsError,
  type DnsStats,
  type LookupAddress,
  type LookupOptions,
  type RecordWithTtl,
  type ResolverOptions,
} from './dns.js';
export { NetModule, Server, Socket, type SocketConnectOpts, type ListenOptions, type LookupFunction, type ConnectionSink } from './net.js';

/**
 * Installs `stack.net` and `stack.dgram` (Node-compatible surfaces) on every Stack. Imported by the
 * package entry; the stack core itself knows nothing of adapters.
 */
import { Stack } from '../stack/stack.js';
import { DgramModule } from './dgram.js';
import { DnsModule } from './dns.js';
import { NetModule } from './net.js';

declare module '../stack/stack.js' {
  interface Stack {
    /** Node's `net` bound to this stack: createServer, connect/createConnection, Socket, Server, listen, httpAgent, isIP. */
    readonly net: NetModule;
    /** Node's `dgram` bound to this stack: createSocket('udp4' | 'udp6'). */
    readonly dgram: DgramModule;
    /** Node's `dns` (and `dns.promises`) bound to this stack: lookup, resolve*, reverse, Resolver, hosts. */
    readonly dns: DnsModule;
  }
}

const nets = new WeakMap<Stack, NetModule>();
const dgrams = new WeakMap<Stack, DgramModule>();
const dnses = new WeakMap<Stack, DnsModule>();

Object.defineProperty(Stack.prototype, 'net', {
  configurable: true,
  get(this: Stack): NetModule {
    let m = nets.get(this);
    if (!m) nets.set(this, (m = new NetModule(this)));
    return m;
  },
});

Object.defineProperty(Stack.prototype, 'dgram', {
  configurable: true,
  get(this: Stack): DgramModule {
    let m = dgrams.get(this);
    if (!m) dgrams.set(this, (m = new DgramModule(this)));
    return m;
  },
});

Object.defineProperty(Stack.prototype, 'dns', {
  configurable: true,
  get(this: Stack): DnsModule {
    let m = dnses.get(this);
    if (!m) dnses.set(this, (m = new DnsModule(this)));
    return m;
  },
});

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

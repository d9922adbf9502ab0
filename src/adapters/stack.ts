/**
 * The package's `Stack`: a PortableStack (the usual protocols, src/portable/stack.ts) with Node's
 * surfaces as ordinary members, `net`, `dgram` and `dns`, each made on first use, and TCP's
 * memory budget sized from the machine (`os.totalmem()`, as Linux sizes tcp_mem).
 *
 * `new Stack()` is the whole stack. For a minimal one, build a NetStack (src/stack/stack.ts) with
 * the protocol factories you want.
 */
import { totalmem } from 'node:os';
import { optionsObject } from '../core/validate.js';
import { PortableStack, type StackOptions } from '../portable/stack.js';
import { DgramModule } from './dgram.js';
import { DnsModule } from './dns.js';
import { NetModule } from './net.js';

export type { StackOptions } from '../portable/stack.js';

export class Stack extends PortableStack {
  private netModule: NetModule | null = null;
  private dgramModule: DgramModule | null = null;
  private dnsModule: DnsModule | null = null;

  constructor(options: StackOptions = {}) {
    const o = optionsObject<StackOptions>(options, 'new Stack');
    super(o.tcp === undefined && o.transportProtocols === undefined ? { ...o, tcp: { totalMemory: totalmem() } } : o);
  }

  /** Node's `net` bound to this stack: createServer, connect/createConnection, Socket, Server, listen, httpAgent, isIP. */
  get net(): NetModule {
    return (this.netModule ??= new NetModule(this));
  }

  /** Node's `dgram` bound to this stack: createSocket('udp4' | 'udp6'). */
  get dgram(): DgramModule {
    return (this.dgramModule ??= new DgramModule(this));
  }

  /** Node's `dns` (and `dns.promises`) bound to this stack: lookup, resolve*, reverse, Resolver, hosts. */
  get dns(): DnsModule {
    return (this.dnsModule ??= new DnsModule(this));
  }
}

/**
 * One tunstack host wired to the Linux kernel: a TAP (or TUN) whose kernel interface lives in a
 * fresh network namespace, and a tunstack Stack whose NIC is an FdEndpoint over the TAP's fd.
 *
 *   [ namespace: kernel iface 198.18.0.1/24, 2001:db8::1/64 ] <== TAP fd ==> [ tunstack NIC 198.18.0.2, 2001:db8::2 ]
 */
import { execFileSync } from 'node:child_process';
import {
  EthernetEndpoint,
  IFF_NO_PI,
  IFF_TAP,
  IFF_TUN,
  IFF_VNET_HDR,
  Stack,
  type LinkEndpoint,
  type NIC,
} from '../../../src/index.js';
import { FdEndpoint, HostTap, type FdEndpointOptions } from '../../../src/host/index.js';
import { Netns, uniqueName } from './netns.js';

export const KERNEL4 = '198.18.0.1';
export const STACK4 = '198.18.0.2';
export const KERNEL6 = '2001:db8::1';
export const STACK6 = '2001:db8::2';

export interface PairOptions {
  /** 'tap' (default) or 'tun'. */
  kind?: 'tap' | 'tun';
  /** IFF_VNET_HDR and the kernel's offloads (default true). */
  vnet?: boolean;
  /** MTU of both ends (default 1500). */
  mtu?: number;
  /** Kernel-side MTU when it should differ. */
  kernelMtu?: number;
  /** Stack-side MTU when it should differ. */
  stackMtu?: number;
  /** Configure IPv6 (default true when the stack has IPv6). */
  ipv6?: boolean;
  endpoint?: FdEndpointOptions;
  /** Put an endpoint between the NIC (its Ethernet layer) and the FdEndpoint, e.g. a FaultEndpoint. */
  wrap?: (ep: FdEndpoint, stack: Stack) => LinkEndpoint;
}

export class Pair {
  readonly ns: Netns;
  readonly tap: HostTap;
  readonly ep: FdEndpoint;
  readonly stack: Stack;
  readonly nic: NIC;
  /** The kernel interface's name (inside the namespace). */
  readonly dev: string;
  readonly ipv6: boolean;
  private closed = false;

  constructor(options: PairOptions = {}) {
    const kind = options.kind ?? 'tap';
    const vnet = options.vnet ?? true;
    const mtu = options.mtu ?? 1500;
    this.ns = new Netns();
    let tap: HostTap | null = null;
    try {
      tap = HostTap.open({
        name: uniqueName(kind === 'tap' ? 'tst' : 'tsu'),
        flags: (kind === 'tap' ? IFF_TAP : IFF_TUN) | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0),
      });
      this.tap = tap;
      this.dev = tap.name;
      tap.mtu = options.kernelMtu ?? mtu;
      this.ep = new FdEndpoint(tap, { mtu: options.stackMtu ?? mtu, ...options.endpoint });
      // The fd stays with us; the kernel's end of the interface moves into the namespace.
      execFileSync('ip', ['link', 'set', this.dev, 'netns', this.ns.name]);
      this.ns.ip('addr', 'add', `${KERNEL4}/24`, 'dev', this.dev);
      this.stack = new Stack();
      this.ipv6 = (options.ipv6 ?? true) && this.stack.networkProtocol(0x86dd) !== undefined;
      if (this.ipv6) this.ns.ip('addr', 'add', `${KERNEL6}/64`, 'dev', this.dev, 'nodad');
      this.ns.ip('link', 'set', this.dev, 'up');
      const inner = options.wrap ? options.wrap(this.ep, this.stack) : this.ep;
      const endpoint = inner.wireFormat === 'ethernet' ? new EthernetEndpoint(inner) : inner;
      this.nic = this.stack.createNIC({ name: 'eth0', endpoint });
      this.nic.addAddress(`${STACK4}/24`);
      if (this.ipv6) this.nic.addAddress(`${STACK6}/64`, { nodad: true });
    } catch (e) {
      tap?.close();
      this.ns.remove();
      throw e;
    }
  }

  /** Close the stack, the endpoint and the TAP, kill children and delete the namespace. */
  cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.stack?.close();
    } catch {
      // keep cleaning
    }
    try {
      this.ep?.close();
    } catch {
      // keep cleaning
    }
    this.tap?.close();
    this.ns.remove();
  }
}

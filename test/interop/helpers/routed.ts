/**
 * Tunstack as a router between kernel namespaces: side n is a namespace holding a TAP whose other
 * end is a NIC of the stack, 198.(18+n).0.2/24 inside the namespace with its default route via
 * 198.(18+n).0.1, tunstack's address on that NIC. For the interop tests where the kernel talks to
 * the kernel through tunstack (path MTU, forwarded checksums).
 */
import { execFileSync } from 'node:child_process';
import { IFF_NO_PI, IFF_TAP, IFF_VNET_HDR, type Stack } from '../../../src/index.js';
import { FdEndpoint, fdNicEndpoint, HostTap, type FdEndpointOptions } from '../../../src/host/index.js';
import { Netns, uniqueName } from './netns.js';

export interface RoutedSide {
  ns: Netns;
  tap: HostTap;
  ep: FdEndpoint;
}

export interface RoutedSideOptions {
  /** The namespace's name and the TAP name's prefix. */
  ns: string;
  tap: string;
  /** The TAP's MTU, set before the endpoint is made (default: the kernel's). */
  mtu?: number;
  endpoint?: FdEndpointOptions;
  /** Runs once the endpoint exists, before the TAP moves to the namespace (offload settings). */
  tune?: (tap: HostTap) => void;
}

/** Makes side `n` of `stack` as described above; it is also pushed on `made` for closeSides. */
export function routedSide(stack: Stack, n: number, o: RoutedSideOptions, made: RoutedSide[]): RoutedSide {
  const ns = new Netns(o.ns);
  const tap = HostTap.open({ name: uniqueName(o.tap), flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR });
  if (o.mtu !== undefined) tap.mtu = o.mtu;
  const ep = new FdEndpoint(tap, o.endpoint);
  o.tune?.(tap);
  const side = { ns, tap, ep };
  made.push(side);
  execFileSync('ip', ['link', 'set', tap.name, 'netns', ns.name]);
  ns.ip('addr', 'add', `198.${18 + n}.0.2/24`, 'dev', tap.name);
  ns.ip('link', 'set', tap.name, 'up');
  ns.ip('route', 'add', 'default', 'via', `198.${18 + n}.0.1`);
  stack.createNIC({ name: `eth${n}`, endpoint: fdNicEndpoint(ep) }).addAddress(`198.${18 + n}.0.1/24`);
  return side;
}

/** Closes every side made (endpoint, TAP, namespace). */
export function closeSides(made: RoutedSide[]): void {
  for (const m of made) {
    m.ep.close();
    m.tap.close(); // a no-op when the endpoint closed it
    m.ns.remove();
  }
  made.length = 0;
}

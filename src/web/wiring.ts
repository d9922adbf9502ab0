/**
 * The default protocol set for the browser entry: what src/defaults.ts registers, without the
 * Node surfaces (net/dgram/dns adapters patch `Stack.prototype` and need node:stream and
 * node:http). The browser build resolves src/defaults.ts to this file, so modules that import
 * defaults for its side effects (sim) get this wiring instead.
 */
import { arpFactory } from '../network/arp.js';
import { ipv4Factory } from '../network/ipv4.js';
import { ipv6Factory } from '../network/ipv6.js';
import { pingFactory, rawFactories } from '../transport/raw.js';
import { setDefaultProtocols, setRawFactories, setTunFactory } from '../stack/stack.js';
import { TunDevice } from '../tundev/device.js';
import { udpFactory } from '../transport/udp.js';
import { tcpFactory } from '../transport/tcp/protocol.js';

setDefaultProtocols([ipv4Factory(), arpFactory(), ipv6Factory()], [udpFactory(), tcpFactory({ totalMemory: deviceMemory() }), pingFactory(4), pingFactory(6)]);
setRawFactories(rawFactories);
setTunFactory((stack, options) => new TunDevice(stack, options));

/** What the browser tells of the machine's memory (Chromium: rounded GiB), else 4 GiB. */
function deviceMemory(): number {
  const gib = (globalThis as { navigator?: { deviceMemory?: number } }).navigator?.deviceMemory;
  return (typeof gib === 'number' && gib > 0 ? gib : 4) * 1024 ** 3;
}

/**
 * The default protocol set (IPv4 + ARP, IPv6 with NDP/MLD, UDP, TCP, ping sockets; raw sockets and
 * packet taps). Registered here, at the package entry, so that the stack core (src/stack) does
 * not name any protocol.
 */
import { totalmem } from 'node:os';
import { arpFactory } from './network/arp.js';
import { ipv4Factory } from './network/ipv4.js';
import { ipv6Factory } from './network/ipv6.js';
import { pingFactory, rawFactories } from './transport/raw.js';
import { setDefaultProtocols, setRawFactories, setTunFactory } from './stack/stack.js';
import { TunDevice } from './tundev/device.js';
import { udpFactory } from './transport/udp.js';
import { tcpFactory } from './transport/tcp/protocol.js';

setDefaultProtocols([ipv4Factory(), arpFactory(), ipv6Factory()], [udpFactory(), tcpFactory({ totalMemory: totalmem() }), pingFactory(4), pingFactory(6)]);
setRawFactories(rawFactories);
import './adapters/index.js';
setTunFactory((stack, options) => new TunDevice(stack, options));

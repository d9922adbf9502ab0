/**
 * The default protocol set (IPv4 + ARP, UDP). Registered here, at the package entry, so that the
 * stack core (src/stack) does not name any protocol.
 */
import { arpFactory } from './network/arp.js';
import { ipv4Factory } from './network/ipv4.js';
import { setDefaultProtocols, setTunFactory } from './stack/stack.js';
import { TunDevice } from './tundev/device.js';
import { udpFactory } from './transport/udp.js';
import { tcpFactory } from './transport/tcp/protocol.js';

setDefaultProtocols([ipv4Factory(), arpFactory()], [udpFactory(), tcpFactory()]);
import './adapters/index.js';
setTunFactory((stack) => new TunDevice(stack));

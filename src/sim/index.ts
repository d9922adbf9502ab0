/**
 * The entry `tunstack/sim`: virtual networks whose hosts run the package's `Stack` (with Node's
 * net and dgram) and capturing to files. The browser entry exports the same classes over PortableStack
 * (src/sim/network.ts's default).
 */
import { Stack } from '../adapters/stack.js';
import { PcapWriter } from '../pcap/file.js';
import { LinkType } from '../pcap/writer.js';
import { Network as PortableNetwork, type NetworkOptions } from './network.js';

/** A virtual network of hosts running tunstack's `Stack`, capturing to files (see src/sim/network.ts). */
export class Network extends PortableNetwork<Stack> {
  constructor(options: NetworkOptions = {}) {
    super(
      options,
      (o) => new Stack(o),
      (path) => PcapWriter.toFile(path, { linkType: LinkType.ETHERNET, mkdir: true }),
    );
  }
}

export {
  SimHost,
  SimInterface,
  SimLink,
  type ExternalPort,
  type HostCounters,
  type HostOptions,
  type LinkOptions,
  type LinkProperties,
  type NetworkOptions,
  type StackMember,
} from './network.js';
export { TapPoint } from './capture.js';
export { VirtualPump, macrotask } from './pump.js';

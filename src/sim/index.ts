export {
  Network,
  SimHost,
  SimInterface,
  SimLink,
  type ExternalPort,
  type HostCounters,
  type HostOptions,
  type LinkOptions,
  type LinkProperties,
  type NetworkOptions,
} from './network.js';
export { TapPoint } from './capture.js';
export { VirtualPump } from './pump.js';

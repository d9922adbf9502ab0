export * from './constants.js';
export { TunDevice, type IfReq, type TunDeviceEvents } from './device.js';
export {
  TunEndpoint,
  TunQueue,
  flowHash,
  type TunEndpointOptions,
  type TunEndpointStats,
  type TunQueueReader,
  type TunQueueStats,
} from './endpoint.js';
export { completePartialChecksum, segmentGso } from './gso.js';

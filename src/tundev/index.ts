export * from './constants.js';
export {
  TunDevice,
  truncateIfName,
  type HwAddr,
  type IfReq,
  type TunDeviceEvents,
  type TunIoctlArg,
  type TunIoctlResult,
  type TunOpenOptions,
  type TunTxFilterArg,
} from './device.js';
export {
  TapTxFilter,
  TunEndpoint,
  etherCrc,
  TunQueue,
  flowHash,
  type TunEndpointOptions,
  type TunEndpointStats,
  type TunQueueReader,
  type TunQueueStats,
} from './endpoint.js';
export { completePartialChecksum, segmentGso } from './gso.js';
export { checkBpfProgram, runBpf, type BpfInstruction, type BpfPacketInfo } from './bpf.js';
export { packetsOf, readAsyncFrom, type ReadAsyncOptions, type TunFile } from './file.js';

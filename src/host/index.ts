/**
 * The package entry `tunstack/host`: a real kernel TUN/TAP under a tunstack NIC (HostTap,
 * FdEndpoint) and the optional native addon that opens it.
 */
export {
  HostTap,
  OFFLOAD_PREFERENCES,
  type HostTapOptions,
  type HostTapEvents,
  type BatchOptions,
  type BatchHandler,
} from './tap.js';
export { nativeBinding, nativeUnavailableReason, nativeAddonPath, errnoName, type NativeBinding } from './native.js';
export { installSeccompFilter } from './seccomp.js';
export { FdEndpoint, fdNicEndpoint, FD_TX_QUEUE_LENGTH, type FdEndpointOptions, type FdEndpointStats } from './fd.js';

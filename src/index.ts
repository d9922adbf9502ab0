export * from './errors.js';
export * from './headers/index.js';
export * from './pcap/index.js';
export { Random } from './stack/random.js';
export { ManualClock, RealClock } from './stack/clock.js';
export type { Clock, Timer } from './stack/clock.js';
export { PacketBuffer, PacketType, DEFAULT_HEADROOM } from './stack/packet.js';
export * from './link/endpoint.js';

export { TcpProtocol, TimeWaitRecord, tcpFactory, COOKIE_MSS_TABLE, type TcpProtocolOptions } from './protocol.js';
export { TcpEndpoint, type TcpEndpointEvents, RTO_MIN, RTO_MAX, RTO_INIT, ATO_MIN, ATO_MAX } from './endpoint.js';
export { Cubic, Reno, CUBIC_BETA, CUBIC_C, createCongestionControl, type CongestionControl, type CongestionControlName, type CcHost } from './congestion.js';
export type { TcpState, TcpStats, TcpInfo, TcpEndpointOptions, CaState } from './types.js';
export { SendBuffer, SendBlock, takeBlock, sendBlocksInUse, BLOCK_SIZE, SMALL_BLOCK_SIZE, RecvQueue, OooQueue, Scoreboard, type BufferLease } from './buffers.js';
export { TcpForwarder, TcpForwardRequest, type TcpForwarderOptions, type TcpForwarderStats, type TcpForwardHandler } from './forwarder.js';
export { TcpMemory, defaultTcpMemory, tcpMemoryFromHigh, RANGE_OVERHEAD, type TcpMemoryLimits, type MemoryHolder } from './memory.js';

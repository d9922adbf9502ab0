import './defaults.js';

export * from './errors.js';
export * from './headers/index.js';
export * from './pcap/index.js';
export { Random } from './stack/random.js';
export { ManualClock, RealClock } from './stack/clock.js';
export type { Clock, Timer } from './stack/clock.js';
export { PacketBuffer, PacketType, DEFAULT_HEADROOM } from './stack/packet.js';
export { Stack, type StackOptions } from './stack/stack.js';
export { NIC, type NICOptions, type AddressInfo } from './stack/nic.js';
export { Route, RouteTable, type RouteEntry, type RouteSpec } from './stack/route.js';
export { DEFAULT_NEIGHBOR_CONFIG, NeighborCache, NeighborState, type NeighborConfig, type NeighborProber, type NeighborStats } from './stack/neighbor.js';
export { TransportResult } from './stack/protocol.js';
export type * from './stack/protocol.js';
export { IPv4Protocol, ipv4Factory, type IPv4Stats, type PingOptions, type PingResult } from './network/ipv4.js';
export { Igmp, IgmpMembership, type FilterMode, type IgmpGroupState, type IgmpOptions, type IgmpStats } from './network/igmp.js';
export { ArpProtocol, arpFactory, type ArpStats } from './network/arp.js';
export { Reassembler, type ReassemblyConfig, type ReassemblyStats } from './network/reassembly.js';
export { UdpProtocol, UdpEndpoint, udpFactory, type UdpMessage, type UdpStats, type UdpForwardRequest, type UdpForwarder } from './transport/udp.js';
export { UdpMulticast, type MulticastInterface } from './transport/udp-multicast.js';
export * from './link/index.js';
export { DnsModule, DnsPromises, HostsTable, PromisesResolver, Resolver, type DnsError, type DnsStats, type LookupAddress, type LookupOptions, type RecordWithTtl, type ResolverOptions } from './adapters/index.js';
export { DgramModule, DgramSocket, NetModule, Server, Socket, type RemoteInfo, type SocketConnectOpts, type ListenOptions, type LookupFunction, type ConnectionSink } from './adapters/index.js';
export * from './tundev/index.js';
export {
  TcpProtocol,
  TcpEndpoint,
  TimeWaitRecord,
  tcpFactory,
  Cubic,
  Reno,
  type TcpEndpointEvents,
  type TcpState,
  type TcpStats,
  type TcpInfo,
  type TcpEndpointOptions,
  type CongestionControlName,
  TcpForwarder,
  TcpForwardRequest,
  type TcpForwarderOptions,
  type TcpForwardHandler,
  SendBlock,
  takeBlock,
  sendBlocksInUse,
  BLOCK_SIZE,
  type BufferLease,
  TcpMemory,
  defaultTcpMemory,
  tcpMemoryFromHigh,
  type TcpMemoryLimits,
} from './transport/tcp/index.js';
export {
  IPv6Protocol,
  ipv6Factory,
  linkLocalFromMac,
  solicitedNode,
  multicastMac,
  eui64,
  type IPv6Stats,
  type IPv6Options,
} from './network/ipv6.js';
export { Ndp, type NdpOptions, type NdpStats, type RouterConfig, type RouterPrefix } from './network/ndp.js';
export { Mld, type MldOptions, type MldStats } from './network/mld.js';
export { Icmpv6, icmpv6Errno, type Icmpv6Options, type Icmpv6Stats } from './network/icmpv6.js';
export {
  RawSocket,
  PingSocket,
  PingProtocol,
  PacketTap,
  pingFactory,
  type RawSocketOptions,
  type RawMessage,
  type PingSocketOptions,
  type PingMessage,
  type PacketTapOptions,
  type TappedFrame,
} from './transport/raw.js';
export type { AddressState, NicPacketObserver } from './stack/nic.js';
export type { PortScope } from './stack/ports.js';
export {
  HostTap,
  OFFLOAD_PREFERENCES,
  type HostTapOptions,
  type HostTapEvents,
  type BatchOptions,
  type BatchHandler,
} from './host/tap.js';
export { nativeBinding, nativeUnavailableReason, nativeAddonPath, setNativeBinding, errnoName, type NativeBinding } from './host/native.js';
export { FdEndpoint, fdNicEndpoint, type FdEndpointOptions, type FdEndpointStats } from './link/fd.js';
export * from './sim/index.js';
export * from './replay/index.js';
export { DhcpServer, type DhcpServerOptions } from './sandbox/dhcp.js';
export { DnsRelay, type DnsRelayOptions } from './sandbox/dns-relay.js';
export { HostPolicy, isLocalHostAddress, type HostPolicyOptions } from './sandbox/host-policy.js';
export { SandboxNetwork, SANDBOX_DEFAULTS, type SandboxNetworkOptions, type PortForward, type SandboxLimits } from './sandbox/network.js';
export { runSandbox, sandboxUnavailableReason, type SandboxRunOptions } from './sandbox/run.js';
export { FramePort, type FramePortOptions, type FramePortStats, type FrameSink } from './vm/frame-port.js';
export { StreamFrameServer, StreamDeframer, type FrameServerOptions, type FrameServerStats } from './vm/stream.js';
export { UdpFrameServer, type UdpFrameServerOptions, type UdpFrameServerStats } from './vm/udp.js';
export { UnixgramFrameServer, unixgramUnavailableReason, type UnixgramFrameServerOptions, type UnixgramFrameServerStats } from './vm/unixgram.js';
export { V86Link, type V86Bus, type V86Emulator, type V86LinkOptions, type V86LinkStats } from './vm/v86.js';
export { WsFrameServer, WsFrameTracker, type WsFrameServerOptions, type WsFrameServerStats, type WsGuestNetwork, type WsNetworkMode } from './vm/ws.js';

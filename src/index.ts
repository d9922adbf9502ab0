/**
 * The package entry `tunstack`: the stack, its links, the virtual tun device and the Node
 * surfaces. `Stack` is the whole stack; `NetStack` the core that takes its protocols explicitly. Wire formats are in `tunstack/headers`, captures in `tunstack/pcap`, virtual networks
 * in `tunstack/sim`, capture replay in `tunstack/replay`, the sandbox network in
 * `tunstack/sandbox` and the kernel TUN/TAP bridge in `tunstack/host` (package.json "exports").
 * Internals (buffer pools, queues, reassembly, test hooks) are exported from no entry; README's
 * "Package entry points" lists every name, checked by test/exports.test.ts.
 */
export * from './core/errors.js';
export * from './core/address.js';
export { Random } from './core/random.js';
export { ManualClock, RealClock } from './core/clock.js';
export type { Clock, Timer } from './core/clock.js';
export { PacketBuffer, PacketType, DEFAULT_HEADROOM } from './core/packet.js';
export { Stack, type StackOptions } from './adapters/stack.js';
export { NetStack, type NetStackOptions } from './stack/stack.js';
export { PortableStack, usualNetworkProtocols, usualTransportProtocols } from './portable/stack.js';
export { NIC, type NICOptions, type AddressInfo, type AddressState } from './stack/nic.js';
export { Route, RouteTable, type RouteEntry, type RouteSpec } from './stack/route.js';
export { DEFAULT_NEIGHBOR_CONFIG, NeighborCache, NeighborState, type NeighborConfig, type NeighborStats } from './stack/neighbor.js';
export type { PortScope } from './stack/ports.js';
export { TransportResult } from './stack/protocol.js';
export type * from './stack/protocol.js';

export { IPv4Protocol, ipv4Factory, type IPv4Stats, type PingOptions, type PingResult } from './network/ipv4.js';
export { Igmp, IgmpMembership, type FilterMode, type IgmpGroupState, type IgmpOptions, type IgmpStats } from './network/igmp.js';
export { ArpProtocol, arpFactory, type ArpStats } from './network/arp.js';
export type { ReassemblyConfig, ReassemblyStats } from './network/reassembly.js';
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
export { Icmpv6, type Icmpv6Options, type Icmpv6Stats } from './network/icmpv6.js';

export { UdpProtocol, UdpEndpoint, udpFactory, type UdpMessage, type UdpStats, type UdpForwardRequest, type UdpForwarder } from './transport/udp.js';
export { UdpMulticast, type MulticastInterface } from './transport/udp-multicast.js';
export {
  TcpProtocol,
  TcpEndpoint,
  tcpFactory,
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
  TcpMemory,
  defaultTcpMemory,
  tcpMemoryFromHigh,
  type TcpMemoryLimits,
} from './transport/tcp/index.js';
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

export { BaseEndpoint, LinkCapability, WrappingEndpoint, type LinkEndpoint, type NetworkDispatcher, type WireFormat } from './link/endpoint.js';
export { ChannelEndpoint, type ChannelEndpointOptions, type ChannelEvents, type ChannelStats } from './link/channel.js';
export { LoopbackEndpoint, type LoopbackEndpointOptions, type LoopbackStats } from './link/loopback.js';
export { Wire, WireEnd, type WireDirectionStats, type WireOptions } from './link/wire.js';
export { SnifferEndpoint, type SniffDirection, type SnifferOptions, type SnifferStats } from './link/sniffer.js';
export { EthernetEndpoint, type EthernetEndpointOptions, type EthernetStats } from './link/ethernet.js';
export {
  FaultDirection,
  FaultEndpoint,
  gilbertElliottMeanLoss,
  type FaultConfig,
  type FaultEndpointOptions,
  type FaultStats,
  type GilbertElliottConfig,
} from './link/fault.js';

export * from './tundev/constants.js';
export {
  TunDevice,
  type HwAddr,
  type IfReq,
  type TunDeviceEvents,
  type TunIoctlArg,
  type TunIoctlResult,
  type TunOpenOptions,
  type TunTxFilterArg,
} from './tundev/device.js';
export { TunEndpoint, type TunEndpointOptions, type TunEndpointStats, type TunQueueStats } from './tundev/endpoint.js';
export type { BpfInstruction } from './tundev/bpf.js';
export { packetsOf, readAsyncFrom, type ReadAsyncOptions, type TunFile, type TunWaitable } from './tundev/file.js';

export { DnsModule, DnsPromises, HostsTable, PromisesResolver, Resolver, type DnsError, type DnsStats, type LookupAddress, type LookupOptions, type RecordWithTtl, type ResolverOptions } from './adapters/index.js';
export { DgramModule, DgramSocket, NetModule, Server, Socket, type RemoteInfo, type SocketConnectOpts, type ListenOptions, type LookupFunction, type ConnectionSink } from './adapters/index.js';

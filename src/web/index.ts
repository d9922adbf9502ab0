/**
 * The browser entry (`npm run build:browser` bundles it to dist/browser/tunstack.js): the core
 * stack as the package entry exports it, without the Node surfaces (net/dgram/dns adapters, the
 * host bridge, the fd endpoint, replay, sandbox, VM frame servers), plus Web Streams faces for
 * TCP connections and tun devices, and what an emulator in the page needs to be networked by the
 * page's stack: FramePort, V86Link and the DHCP server. Its `Stack` is a PortableStack (the usual
 * protocols, built explicitly, without Node's net/dgram/dns); its sim `Network` makes PortableStack
 * hosts. Also importable in Node (it names no Node module).
 */
export * from '../core/errors.js';
export * from '../headers/index.js';
// The pcap codec (files are the Node entry's: src/pcap/file.ts).
export * from '../pcap/reader.js';
export * from '../pcap/writer.js';
export { Random } from '../core/random.js';
export { ManualClock, RealClock } from '../core/clock.js';
export type { Clock, Timer } from '../core/clock.js';
export { PacketBuffer, PacketType, DEFAULT_HEADROOM } from '../core/packet.js';
export { PortableStack as Stack, PortableStack, usualNetworkProtocols, usualTransportProtocols, type StackOptions } from '../portable/stack.js';
export { NetStack, type NetStackOptions } from '../stack/stack.js';
export { NIC, type NICOptions, type AddressInfo } from '../stack/nic.js';
export { Route, RouteTable, type RouteEntry, type RouteSpec } from '../stack/route.js';
export { DEFAULT_NEIGHBOR_CONFIG, NeighborCache, NeighborState, type NeighborConfig, type NeighborProber, type NeighborStats } from '../stack/neighbor.js';
export { TransportResult } from '../stack/protocol.js';
export type * from '../stack/protocol.js';
export { IPv4Protocol, ipv4Factory, type IPv4Stats, type PingOptions, type PingResult } from '../network/ipv4.js';
export { Igmp, IgmpMembership, type FilterMode, type IgmpGroupState, type IgmpOptions, type IgmpStats } from '../network/igmp.js';
export { ArpProtocol, arpFactory, type ArpStats } from '../network/arp.js';
export { Reassembler, type ReassemblyConfig, type ReassemblyStats } from '../network/reassembly.js';
export { UdpProtocol, UdpEndpoint, udpFactory, type UdpMessage, type UdpStats, type UdpForwardRequest, type UdpForwarder } from '../transport/udp.js';
export { UdpMulticast, type MulticastInterface } from '../transport/udp-multicast.js';
export { BaseEndpoint, LinkCapability, WrappingEndpoint, type LinkEndpoint, type NetworkDispatcher, type WireFormat } from '../link/endpoint.js';
export { ChannelEndpoint, type ChannelEndpointOptions, type ChannelEvents, type ChannelStats } from '../link/channel.js';
export { LoopbackEndpoint, type LoopbackEndpointOptions, type LoopbackStats } from '../link/loopback.js';
export { Wire, WireEnd, type WireDirectionStats, type WireOptions } from '../link/wire.js';
export { SnifferEndpoint, type SniffDirection, type SnifferOptions, type SnifferStats } from '../link/sniffer.js';
export { EthernetEndpoint, type EthernetEndpointOptions, type EthernetStats } from '../link/ethernet.js';
export {
  FaultDirection,
  FaultEndpoint,
  gilbertElliottMeanLoss,
  type FaultConfig,
  type FaultEndpointOptions,
  type FaultStats,
  type GilbertElliottConfig,
} from '../link/fault.js';
export * from '../tundev/constants.js';
export {
  TunDevice,
  type HwAddr,
  type IfReq,
  type TunDeviceEvents,
  type TunIoctlArg,
  type TunIoctlResult,
  type TunOpenOptions,
  type TunTxFilterArg,
} from '../tundev/device.js';
export { TunEndpoint, type TunEndpointOptions, type TunEndpointStats, type TunQueueStats } from '../tundev/endpoint.js';
export type { BpfInstruction } from '../tundev/bpf.js';
export { packetsOf, readAsyncFrom, type ReadAsyncOptions, type TunFile, type TunWaitable } from '../tundev/file.js';
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
} from '../transport/tcp/index.js';
export {
  IPv6Protocol,
  ipv6Factory,
  linkLocalFromMac,
  solicitedNode,
  multicastMac,
  eui64,
  type IPv6Stats,
  type IPv6Options,
} from '../network/ipv6.js';
export { Ndp, type NdpOptions, type NdpStats, type RouterConfig, type RouterPrefix } from '../network/ndp.js';
export { Mld, type MldOptions, type MldStats } from '../network/mld.js';
export { Icmpv6, icmpv6Errno, type Icmpv6Options, type Icmpv6Stats } from '../network/icmpv6.js';
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
} from '../transport/raw.js';
export type { AddressState, NicPacketObserver } from '../stack/nic.js';
export type { PortScope } from '../stack/ports.js';
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
  type StackMember,
} from '../sim/network.js';
export { TapPoint } from '../sim/capture.js';
export { VirtualPump, macrotask } from '../sim/pump.js';
export { tcpStreams, connectTcp, listenTcp, type WebTcpConnection, type WebTcpListener, type TcpStreamsOptions, type ConnectTcpOptions, type ListenTcpOptions } from './tcp.js';
export { FramePort, type FramePortOptions, type FramePortStats, type FrameSink } from '../link/frame-port.js';
export { V86Link, type V86Bus, type V86Emulator, type V86LinkOptions, type V86LinkStats } from '../link/v86.js';
export { DhcpServer, type DhcpServerOptions } from '../portable/dhcp.js';
export { tunStreams, type TunStreams, type TunStreamsOptions } from './tun.js';

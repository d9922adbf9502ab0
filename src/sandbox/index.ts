/**
 * The package entry `tunstack/sandbox`: the network `tunstack sandbox` serves (SandboxNetwork and
 * its DHCP server, DNS relay and host policy), running a command in it, and the frame servers
 * that give the same network to a virtual machine or an emulator (`tunstack vm`, FramePort).
 */
export { DhcpServer, type DhcpServerOptions } from '../portable/dhcp.js';
export { DnsRelay, type DnsRelayOptions } from './dns-relay.js';
export { HostPolicy, isLocalHostAddress, type HostPolicyOptions } from './host-policy.js';
export { SandboxNetwork, SANDBOX_DEFAULTS, type SandboxNetworkOptions, type SandboxStats, type PortForward, type PublishedPort, type SandboxLimits } from './network.js';
export { runSandbox, sandboxUnavailableReason, type SandboxRunOptions } from './run.js';
export { FramePort, type FramePortOptions, type FramePortStats, type FrameSink } from '../link/frame-port.js';
export { StreamFrameServer, StreamDeframer, type FrameServerOptions, type FrameServerStats } from '../vm/stream.js';
export { UdpFrameServer, type UdpFrameServerOptions, type UdpFrameServerStats } from '../vm/udp.js';
export { UnixgramFrameServer, unixgramUnavailableReason, type UnixgramFrameServerOptions, type UnixgramFrameServerStats } from '../vm/unixgram.js';
export { V86Link, type V86Bus, type V86Emulator, type V86LinkOptions, type V86LinkStats } from '../link/v86.js';
export { WsFrameServer, WsFrameTracker, type WsFrameServerOptions, type WsFrameServerStats, type WsGuestNetwork, type WsNetworkMode } from '../vm/ws.js';

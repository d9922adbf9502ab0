/**
 * The tun ioctls that act on the attached interface (TUNSETLINK, TUNSETCARRIER, send buffer,
 * vnet endianness, TAP MAC and socket filters, SIOC[GS]IFHWADDR), with the argument shapes every
 * tun ioctl takes and their checks. The per-open requests (TUNSETIFF, TUNSETQUEUE, ...) and the
 * dispatch by request number are TunDevice.ioctl in device.ts.
 */
import { TunstackError } from '../core/errors.js';
import { checkBpfProgram, type BpfInstruction } from './bpf.js';
import { TapTxFilter, type TunEndpoint } from './endpoint.js';
import {
  SIOCGIFHWADDR,
  SIOCSIFHWADDR,
  TUNATTACHFILTER,
  TUNDETACHFILTER,
  TUNGETDEVNETNS,
  TUNGETFILTER,
  TUNGETSNDBUF,
  TUNGETVNETBE,
  TUNGETVNETLE,
  TUNSETCARRIER,
  TUNSETDEBUG,
  TUNSETFILTEREBPF,
  TUNSETLINK,
  TUNSETNOCSUM,
  TUNSETSNDBUF,
  TUNSETSTEERINGEBPF,
  TUNSETTXFILTER,
  TUNSETVNETBE,
  TUNSETVNETLE,
} from './constants.js';

/** struct sockaddr of SIOCGIFHWADDR / SIOCSIFHWADDR: the ARPHRD_* family and the address. */
export interface HwAddr {
  family: number;
  address: Uint8Array;
}

/** struct tun_filter of TUNSETTXFILTER: TUN_FLT_ALLMULTI and the destination MACs to pass. */
export interface TunTxFilterArg {
  flags: number;
  addresses: readonly Uint8Array[];
}

/** What `ioctl` takes: a number, an ifreq, a MAC filter, a BPF program or a hardware address. */
export type TunIoctlArg = number | IfReq | TunTxFilterArg | readonly BpfInstruction[] | HwAddr;
export type TunIoctlResult = number | IfReq | BpfInstruction[] | HwAddr;

/** struct ifreq as TUNSETIFF / TUNGETIFF / TUNSETQUEUE use it. */
export interface IfReq {
  /** Interface name; empty or absent: `tun%d` / `tap%d`. */
  name?: string;
  flags: number;
}

/**
 * @internal An interface ioctl on `ep`, the endpoint the TunDevice `dev` is attached to (EINVAL if
 * unknown). `dev.mac` is set for SIOCSIFHWADDR (TunDevice's setter checks the address).
 */
export function interfaceIoctl(dev: { mac: Uint8Array }, ep: TunEndpoint, request: number, arg: TunIoctlArg | undefined): TunIoctlResult {
  switch (request) {
    case TUNSETNOCSUM:
    case TUNSETDEBUG:
      numberArg(arg);
      return 0;
    case TUNSETLINK:
      if (ep.nic!.enabled) throw err('EBUSY', 'TUNSETLINK while the interface is up', 'ioctl');
      ep.linkType = numberArg(arg) & 0xffff;
      return 0;
    case TUNSETCARRIER:
      ep.carrier = numberArg(arg) !== 0;
      return 0;
    case TUNGETSNDBUF:
      return ep.sndbuf;
    case TUNSETSNDBUF: {
      const v = numberArg(arg);
      if (!Number.isInteger(v) || v <= 0 || v > 0x7fffffff) throw err('EINVAL', `send buffer ${v}`, 'ioctl');
      ep.sndbuf = v;
      return 0;
    }
    case TUNSETVNETLE:
      ep.vnetLE = numberArg(arg) !== 0;
      return 0;
    case TUNGETVNETLE:
      return ep.vnetLE ? 1 : 0;
    case TUNSETVNETBE:
    case TUNGETVNETBE:
      throw err('EINVAL', 'big-endian virtio headers need CONFIG_TUN_VNET_CROSS_LE (as x86-64 kernels, not built in)', 'ioctl');
    case TUNSETTXFILTER: {
      if (!ep.isTap) throw err('EINVAL', 'TUNSETTXFILTER is for TAP interfaces', 'ioctl');
      const f = txFilterArg(arg);
      ep.txFilter = TapTxFilter.fromIoctl(f.flags, f.addresses);
      return ep.txFilter?.exactCount ?? 0;
    }
    case TUNATTACHFILTER:
      if (!ep.isTap) throw err('EINVAL', 'TUNATTACHFILTER is for TAP interfaces', 'ioctl');
      ep.socketFilter = checkBpfProgram(arg);
      return 0;
    case TUNDETACHFILTER:
      if (!ep.isTap) throw err('EINVAL', 'TUNDETACHFILTER is for TAP interfaces', 'ioctl');
      ep.socketFilter = null;
      return 0;
    case TUNGETFILTER:
      if (!ep.isTap) throw err('EINVAL', 'TUNGETFILTER is for TAP interfaces', 'ioctl');
      return (ep.socketFilter ?? []).map((i) => ({ ...i }));
    case SIOCGIFHWADDR:
      return { family: ep.linkType, address: ep.isTap ? ep.linkAddress.slice() : new Uint8Array(6) };
    case SIOCSIFHWADDR: {
      const h = hwAddrArg(arg);
      if (!ep.isTap) throw err('EOPNOTSUPP', 'a TUN interface has no MAC', 'ioctl');
      if (h.family !== ep.linkType) throw err('EINVAL', `address family ${h.family} is not the link type ${ep.linkType}`, 'ioctl');
      dev.mac = h.address;
      return 0;
    }
    case TUNSETSTEERINGEBPF:
    case TUNSETFILTEREBPF:
    case TUNGETDEVNETNS:
      // eBPF programs and namespace files need a kernel: answered as a kernel without them
      // (before 4.16 / 4.19 / 5.2) answers, which is how programs probe for them.
      throw err('EINVAL', `tun ioctl 0x${(request >>> 0).toString(16)} is not supported (no eBPF or namespace files here)`, 'ioctl');
    default:
      // Linux: requests other than the few above need an attached file first (EBADFD, above).
      throw err('EINVAL', `unknown tun ioctl 0x${(request >>> 0).toString(16)}`, 'ioctl');
  }
}

function err(code: 'EINVAL' | 'EBUSY' | 'EOPNOTSUPP' | 'EFAULT', message: string, syscall: string): TunstackError {
  return new TunstackError(code, message, syscall);
}

/** @internal */
export function numberArg(arg: TunIoctlArg | undefined): number {
  if (typeof arg !== 'number') throw err('EFAULT', 'this ioctl takes a number', 'ioctl');
  return arg;
}

/** @internal */
export function ifreqArg(arg: TunIoctlArg | undefined): IfReq {
  if (arg === undefined || typeof arg !== 'object' || arg === null || Array.isArray(arg)) throw err('EFAULT', 'this ioctl takes an ifreq', 'ioctl');
  return arg as IfReq;
}

/** @internal */
export function txFilterArg(arg: TunIoctlArg | undefined): TunTxFilterArg {
  const f = arg as Partial<TunTxFilterArg> | undefined;
  if (f === undefined || f === null || typeof f !== 'object' || typeof f.flags !== 'number' || !Array.isArray(f.addresses)) {
    throw err('EFAULT', 'TUNSETTXFILTER takes { flags, addresses }', 'ioctl');
  }
  for (const a of f.addresses) if (!(a instanceof Uint8Array) || a.length !== 6) throw err('EFAULT', 'filter addresses are 6-byte MACs', 'ioctl');
  return { flags: f.flags, addresses: f.addresses };
}

/** @internal */
export function hwAddrArg(arg: TunIoctlArg | undefined): HwAddr {
  const h = arg as Partial<HwAddr> | undefined;
  if (h === undefined || h === null || typeof h !== 'object' || typeof h.family !== 'number' || !(h.address instanceof Uint8Array)) {
    throw err('EFAULT', 'SIOCSIFHWADDR takes { family, address }', 'ioctl');
  }
  return { family: h.family, address: h.address };
}

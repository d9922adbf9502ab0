/**
 * Numbers of the Linux tun/tap interface (<linux/if_tun.h>, <linux/if.h>), so that code written
 * against /dev/net/tun reads the same here.
 *
 * The ioctl request numbers are _IOW('T', nr, int) / _IOR('T', nr, unsigned int): direction in
 * bits 30..31 (1 = write, 2 = read), argument size 4 in bits 16..29, type 'T' (0x54) in bits 8..15
 * and the number in bits 0..7. E.g. TUNSETIFF = 1 << 30 | 4 << 16 | 0x54 << 8 | 202 = 0x400454ca.
 */

/** _IOW('T', 202, int): attach the open to a named (or new) interface. */
export const TUNSETIFF = 0x400454ca;
/** _IOW('T', 203, int): keep the interface after the last close (arg 1) or not (0). */
export const TUNSETPERSIST = 0x400454cb;
/** _IOW('T', 204, int): owning uid. */
export const TUNSETOWNER = 0x400454cc;
/** _IOW('T', 206, int): owning gid. */
export const TUNSETGROUP = 0x400454ce;
/** _IOR('T', 207, unsigned int): the IFF_* flags TUNSETIFF accepts. */
export const TUNGETFEATURES = 0x800454cf;
/** _IOW('T', 208, unsigned int): TUN_F_* offload flags. */
export const TUNSETOFFLOAD = 0x400454d0;
/** _IOR('T', 210, unsigned int): name and flags of the attached interface. */
export const TUNGETIFF = 0x800454d2;
/** _IOR('T', 215, int): virtio_net_hdr size. */
export const TUNGETVNETHDRSZ = 0x800454d7;
/** _IOW('T', 216, int): virtio_net_hdr size (>= 10). */
export const TUNSETVNETHDRSZ = 0x400454d8;
/** _IOW('T', 217, int): IFF_ATTACH_QUEUE / IFF_DETACH_QUEUE on a multi-queue interface. */
export const TUNSETQUEUE = 0x400454d9;

/** TUNSETIFF flags (ifr_flags). */
export const IFF_TUN = 0x0001;
export const IFF_TAP = 0x0002;
export const IFF_MULTI_QUEUE = 0x0100;
/** TUNSETQUEUE flags. */
export const IFF_ATTACH_QUEUE = 0x0200;
export const IFF_DETACH_QUEUE = 0x0400;
/** Reported by TUNGETIFF on a persistent interface (never accepted by TUNSETIFF). */
export const IFF_PERSIST = 0x0800;
export const IFF_NO_PI = 0x1000;
/** Accepted and ignored (as Linux has done since 3.8). */
export const IFF_ONE_QUEUE = 0x2000;
export const IFF_VNET_HDR = 0x4000;
export const IFF_TUN_EXCL = 0x8000;

/** Every flag TUNSETIFF accepts. */
export const IFF_SETIFF_MASK =
  IFF_TUN | IFF_TAP | IFF_MULTI_QUEUE | IFF_NO_PI | IFF_ONE_QUEUE | IFF_VNET_HDR | IFF_TUN_EXCL;
/** What TUNGETFEATURES reports: Linux's set without IFF_NAPI / IFF_NAPI_FRAGS (0x7103). */
export const TUN_FEATURES = IFF_TUN | IFF_TAP | IFF_NO_PI | IFF_ONE_QUEUE | IFF_VNET_HDR | IFF_MULTI_QUEUE;

/** TUNSETOFFLOAD flags. */
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_TSO_ECN = 0x08;
export const TUN_F_UFO = 0x10;
export const TUN_F_USO4 = 0x20;
export const TUN_F_USO6 = 0x40;

/** Interface name buffer size, NUL included: names are at most 15 bytes. */
export const IFNAMSIZ = 16;
/** Linux's MAX_TAP_QUEUES. */
export const MAX_TAP_QUEUES = 256;
/** Outbound packets held per queue (gVisor's defaultDevOutQueueLen). */
export const TUN_QUEUE_LENGTH = 1024;
/** MTU of a new interface (drivers/net/tun.c). */
export const TUN_DEFAULT_MTU = 1500;
/** Largest MTU the interface can be given (Linux MAX_MTU for tun). */
export const TUN_MAX_MTU = 65535;
/** Smallest MTU (IPv4's 68). */
export const TUN_MIN_MTU = 68;
/** Most segments one GSO write may be split into (larger writes: EINVAL). */
export const TUN_MAX_GSO_SEGMENTS = 1024;

/** Readiness bits, valued as poll(2)'s POLLIN / POLLOUT / POLLERR. */
export const EventMask = {
  Readable: 0x1,
  Writable: 0x4,
  /** Not attached (before TUNSETIFF, detached queue, interface gone) or closed. Always reported. */
  Error: 0x8,
} as const;

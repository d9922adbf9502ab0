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

/** _IOW('T', 200, int): obsolete, accepted and ignored. */
export const TUNSETNOCSUM = 0x400454c8;
/** _IOW('T', 201, int): debug messages (a no-op without TUN_DEBUG, as on Linux). */
export const TUNSETDEBUG = 0x400454c9;
/** _IOW('T', 205, int): the interface's ARPHRD_* link type (EBUSY while up). */
export const TUNSETLINK = 0x400454cd;
/** _IOW('T', 209, unsigned int): TAP destination MAC filter for what the reader gets. */
export const TUNSETTXFILTER = 0x400454d1;
/** _IOR('T', 211, int) / _IOW('T', 212, int): send buffer size (default INT_MAX). */
export const TUNGETSNDBUF = 0x800454d3;
export const TUNSETSNDBUF = 0x400454d4;
/** _IOW('T', 213 / 214, struct sock_fprog) and _IOR('T', 219, ...): classic BPF socket filter (TAP). */
export const TUNATTACHFILTER = 0x401054d5;
export const TUNDETACHFILTER = 0x401054d6;
export const TUNGETFILTER = 0x801054db;
/** _IOW('T', 218, unsigned int): ifindex of the interface the next TUNSETIFF creates. */
export const TUNSETIFINDEX = 0x400454da;
/** _IOW('T', 220, int) / _IOR('T', 221, int): virtio header in little-endian (legacy virtio). */
export const TUNSETVNETLE = 0x400454dc;
export const TUNGETVNETLE = 0x800454dd;
/** _IOW('T', 222, int) / _IOR('T', 223, int): big-endian virtio header (EINVAL without
 * CONFIG_TUN_VNET_CROSS_LE, as on x86-64 distribution kernels). */
export const TUNSETVNETBE = 0x400454de;
export const TUNGETVNETBE = 0x800454df;
/** _IOR('T', 224 / 225, int): eBPF steering / filter program by fd (-1 detaches). */
export const TUNSETSTEERINGEBPF = 0x800454e0;
export const TUNSETFILTEREBPF = 0x800454e1;
/** _IOW('T', 226, int): carrier on (non-zero) / off. */
export const TUNSETCARRIER = 0x400454e2;
/** _IO('T', 227): a file descriptor of the interface's network namespace. */
export const TUNGETDEVNETNS = 0x54e3;
/** SIOCGIFHWADDR / SIOCSIFHWADDR on the tun fd (struct sockaddr: family + 6 bytes). */
export const SIOCGIFHWADDR = 0x8927;
export const SIOCSIFHWADDR = 0x8924;
/** ARPHRD_* link types (TUNSETLINK, SIOCGIFHWADDR's sa_family). */
export const ARPHRD_ETHER = 1;
export const ARPHRD_NONE = 0xfffe;
/** TUNSETTXFILTER: let every multicast frame through. */
export const TUN_FLT_ALLMULTI = 0x0001;
/** Longest classic BPF program (BPF_MAXINSNS). */
export const BPF_MAXINSNS = 4096;

/** TUNSETIFF flags (ifr_flags). */
export const IFF_TUN = 0x0001;
export const IFF_TAP = 0x0002;
/** NAPI receive path (accepted, no effect here); NAPI_FRAGS needs NAPI and TAP. */
export const IFF_NAPI = 0x0010;
export const IFF_NAPI_FRAGS = 0x0020;
/** TUNSETIFF: attach without turning the carrier on (not kept in the interface flags). */
export const IFF_NO_CARRIER = 0x0040;
export const IFF_MULTI_QUEUE = 0x0100;
/** TUNSETQUEUE flags. */
export const IFF_ATTACH_QUEUE = 0x0200;
export const IFF_DETACH_QUEUE = 0x0400;
/** Reported by TUNGETIFF on a persistent interface (never accepted by TUNSETIFF). */
export const IFF_PERSIST = 0x0800;
export const IFF_NO_PI = 0x1000;
/** Same bit as IFF_NO_PI: TUNGETIFF always reports it (Linux sets it in every answer). */
export const IFF_NOFILTER = 0x1000;
/** Accepted and ignored (as Linux has done since 3.8). */
export const IFF_ONE_QUEUE = 0x2000;
export const IFF_VNET_HDR = 0x4000;
export const IFF_TUN_EXCL = 0x8000;

/** The TUNSETIFF flags an interface keeps (Linux's TUN_FEATURES); other bits are ignored. */
export const IFF_SETIFF_MASK = IFF_NO_PI | IFF_ONE_QUEUE | IFF_VNET_HDR | IFF_MULTI_QUEUE | IFF_NAPI | IFF_NAPI_FRAGS;
/** What TUNGETFEATURES reports: Linux's 0x7173 (IFF_TUN, IFF_TAP, IFF_NO_CARRIER and the kept set). */
export const TUN_FEATURES = IFF_TUN | IFF_TAP | IFF_NO_CARRIER | IFF_SETIFF_MASK;

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
/** Largest MTU a TUN interface can be given (Linux MAX_MTU). */
export const TUN_MAX_MTU = 65535;
/** Largest TAP MTU: MAX_MTU less the Ethernet header (Linux's max_mtu for a TAP). */
export const TAP_MAX_MTU = 65521;
/** TUNGETSNDBUF before any TUNSETSNDBUF (INT_MAX). */
export const TUN_DEFAULT_SNDBUF = 0x7fffffff;
/** Smallest MTU (IPv4's 68). */
export const TUN_MIN_MTU = 68;
/** Most segments one GSO write may be split into (larger writes: EINVAL). */
export const TUN_MAX_GSO_SEGMENTS = 1024;

/** Readiness bits, valued as poll(2)'s POLLIN / POLLOUT / POLLERR. */
export const EventMask = {
  Readable: 0x1,
  Writable: 0x4,
  /** Not attached (before TUNSETIFF, interface gone) or closed. Always reported. */
  Error: 0x8,
} as const;

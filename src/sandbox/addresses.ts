/**
 * The sandbox guest's addressing: its IPv4 and IPv6 addresses, the gateway and DNS addresses
 * tunstack answers on, and the prefixes. Defaults are slirp4netns's (10.0.2.0/24: guest .100,
 * gateway .2, DNS .3; fd00::/64 alike); `--cidr` moves the IPv4 network (slirp4netns's rule:
 * the same host numbers in the new network), and pasta's `-a -n -g -D` set single addresses,
 * with the others following from the guest's network.
 */
import { TunstackError } from '../core/errors.js';
import { formatIPv4, formatIPv6, ipv4ToU32, maskAddress, tryParseIPv4, tryParseIPv6, u32ToIPv4 } from '../core/address.js';

export interface SandboxAddresses {
  guest4: string;
  gateway4: string;
  dns4: string;
  /** The IPv4 prefix length (default 24). */
  prefix4: number;
  guest6: string;
  gateway6: string;
  dns6: string;
  /** The IPv6 prefix the router advertisements announce, "PREFIX/64". */
  prefix6: string;
}

export const DEFAULT_ADDRESSES: Readonly<SandboxAddresses> = {
  guest4: '10.0.2.100',
  gateway4: '10.0.2.2',
  dns4: '10.0.2.3',
  prefix4: 24,
  guest6: 'fd00::100',
  gateway6: 'fd00::2',
  dns6: 'fd00::3',
  prefix6: 'fd00::/64',
};

/** What a user may choose; anything left out follows from the rest (see sandboxAddresses). */
export interface AddressChoice {
  /** The IPv4 network, "A.B.C.D/N" (slirp4netns --cidr): guest .100, gateway .2, DNS .3 in it. */
  cidr?: string;
  /** Guest addresses, IPv4 and/or IPv6 (pasta -a); an IPv4 one may carry "/N". */
  address?: string[];
  /** The IPv4 prefix length, as bits or a dotted mask (pasta -n). */
  netmask?: string;
  /** Gateway addresses, IPv4 and/or IPv6 (pasta -g). */
  gateway?: string[];
  /** DNS addresses the guest is told about and tunstack answers on, IPv4 and/or IPv6 (pasta -D). */
  dns?: string[];
}

function bad(why: string): never {
  throw new TunstackError('EINVAL', why);
}

/** A prefix length from bits ("24") or a dotted mask ("255.255.255.0"). */
export function parseNetmask(text: string): number {
  if (/^\d{1,2}$/.test(text) && Number(text) <= 32) return Number(text);
  const m = tryParseIPv4(text);
  if (m === null) bad(`bad netmask "${text}" (want bits, 0..32, or a dotted mask)`);
  const v = ipv4ToU32(m);
  const bits = 32 - Math.log2(((~v >>> 0) + 1) >>> 0 || 2 ** 32);
  if (!Number.isInteger(bits) || (bits < 32 && ((v << bits) >>> 0) !== 0)) bad(`bad netmask "${text}" (not contiguous)`);
  return bits;
}

/** Split `list` into its IPv4 and IPv6 members (at most one of each). */
function byFamily(list: string[] | undefined, what: string): { v4?: string; v6?: string } {
  const out: { v4?: string; v6?: string } = {};
  for (const a of list ?? []) {
    const plain = a.replace(/\/\d+$/, '');
    const key = tryParseIPv4(plain) !== null ? 'v4' : tryParseIPv6(plain) !== null ? 'v6' : bad(`bad ${what} "${a}" (not an IP address)`);
    if (out[key] !== undefined) bad(`more than one IP${key} ${what} (${out[key]}, ${a})`);
    out[key] = a;
  }
  return out;
}

/** Resolve a choice into the full set, checking that the addresses make one usable network. */
export function sandboxAddresses(choice: AddressChoice = {}): SandboxAddresses {
  const out: SandboxAddresses = { ...DEFAULT_ADDRESSES };
  const addr = byFamily(choice.address, 'address');
  const gw = byFamily(choice.gateway, 'gateway');
  const dns = byFamily(choice.dns, 'DNS address');

  // IPv4: the network from --cidr, or from the guest address and netmask.
  let guest4: Uint8Array | null = null;
  let prefix = 24;
  if (choice.cidr !== undefined) {
    const m = /^([0-9.]+)\/(\d{1,2})$/.exec(choice.cidr);
    const a = m ? tryParseIPv4(m[1]!) : null;
    if (!m || a === null || Number(m[2]) > 32) bad(`bad --cidr "${choice.cidr}" (want A.B.C.D/N)`);
    prefix = Number(m[2]);
    // Room for the guest at host number 100 (slirp4netns's layout), and a broadcast after it.
    if (prefix > 25) bad(`--cidr ${choice.cidr}: the prefix must be /25 or shorter (the guest is host number 100)`);
    const net = ipv4ToU32(maskAddress(a, prefix));
    guest4 = u32ToIPv4(net + 100);
    out.gateway4 = formatIPv4(u32ToIPv4(net + 2));
    out.dns4 = formatIPv4(u32ToIPv4(net + 3));
  }
  if (addr.v4 !== undefined) {
    const [text, bits] = addr.v4.split('/');
    guest4 = tryParseIPv4(text!);
    if (bits !== undefined) prefix = parseNetmask(bits);
  }
  if (choice.netmask !== undefined) prefix = parseNetmask(choice.netmask);
  if (guest4 !== null) {
    if (prefix > 30) bad(`IPv4 prefix /${prefix} leaves no room for a gateway and a DNS address`);
    const net = ipv4ToU32(maskAddress(guest4, prefix));
    const g = ipv4ToU32(guest4);
    const bcast = (net + 2 ** (32 - prefix) - 1) >>> 0;
    if (g === net || g === bcast) bad(`${formatIPv4(guest4)} is the network or broadcast address of its /${prefix}`);
    out.guest4 = formatIPv4(guest4);
    out.prefix4 = prefix;
    // Gateway and DNS: slirp4netns's host numbers 2 and 3 where they are free, else the next free ones.
    const taken = new Set([g]);
    const pick = (from: number): string => {
      let n = net + from;
      while (taken.has(n) || n >= bcast) n = n + 1 >= bcast ? net + 1 : n + 1;
      taken.add(n);
      return formatIPv4(u32ToIPv4(n));
    };
    out.gateway4 = pick(2);
    out.dns4 = pick(3);
  }
  if (gw.v4 !== undefined) out.gateway4 = gw.v4;
  if (dns.v4 !== undefined) out.dns4 = dns.v4;
  const inNet4 = (a: string): boolean => {
    const x = tryParseIPv4(a);
    const n = tryParseIPv4(out.guest4)!;
    return x !== null && ipv4ToU32(maskAddress(x, out.prefix4)) === ipv4ToU32(maskAddress(n, out.prefix4));
  };
  if (!inNet4(out.gateway4)) bad(`gateway ${out.gateway4} is not in the guest's network ${out.guest4}/${out.prefix4}`);
  if (new Set([out.guest4, out.gateway4, out.dns4]).size !== 3) bad(`the guest, gateway and DNS addresses must differ (${out.guest4}, ${out.gateway4}, ${out.dns4})`);

  // IPv6: a /64 around the guest address; gateway ::2 and DNS ::3 in it unless given.
  if (addr.v6 !== undefined) {
    const a = tryParseIPv6(addr.v6.replace(/\/\d+$/, ''))!;
    const net = maskAddress(a, 64);
    if (net[0] === 0xfe && (net[1]! & 0xc0) === 0x80) bad(`${addr.v6}: a link-local guest address is not supported`);
    if (net[0] === 0xff) bad(`${addr.v6} is a multicast address`);
    const host = (n: number): string => {
      const x = net.slice();
      x[15] = n;
      return formatIPv6(x);
    };
    out.guest6 = formatIPv6(a);
    out.prefix6 = `${formatIPv6(net)}/64`;
    out.gateway6 = host(2) === out.guest6 ? host(1) : host(2);
    out.dns6 = host(3) === out.guest6 ? host(4) : host(3);
  }
  if (gw.v6 !== undefined) out.gateway6 = formatIPv6(tryParseIPv6(gw.v6)!);
  if (dns.v6 !== undefined) out.dns6 = formatIPv6(tryParseIPv6(dns.v6)!);
  if (new Set([out.guest6, out.gateway6, out.dns6]).size !== 3) bad(`the guest, gateway and DNS IPv6 addresses must differ (${out.guest6}, ${out.gateway6}, ${out.dns6})`);
  return out;
}

/**
 * The IPv4 DHCP pool: from the guest address, at most 28 addresses, ending before the gateway,
 * the DNS address or the broadcast address, whichever comes first above it.
 */
export function dhcpPool(a: SandboxAddresses): { start: string; end: string } {
  const u = (s: string): number => ipv4ToU32(tryParseIPv4(s)!);
  const g = u(a.guest4);
  const bcast = (ipv4ToU32(maskAddress(tryParseIPv4(a.guest4)!, a.prefix4)) + 2 ** (32 - a.prefix4) - 1) >>> 0;
  const stops = [g + 28, bcast, ...[u(a.gateway4), u(a.dns4)].filter((x) => x > g)];
  return { start: a.guest4, end: formatIPv4(u32ToIPv4(Math.min(...stops) - 1)) };
}

import { TunstackError } from '../core/errors.js';

/**
 * DHCPv4 (RFC 2131) messages over BOOTP (RFC 951), with options (RFC 2132).
 * Layout: op, htype, hlen, hops, xid(4), secs(2), flags(2), ciaddr, yiaddr, siaddr, giaddr,
 * chaddr(16), sname(64), file(128), magic cookie 99.130.83.99, options.
 */

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;
export const DHCP_FIXED_LENGTH = 236;
export const DHCP_MAGIC = 0x63825363;
export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
export const DHCP_FLAG_BROADCAST = 0x8000;

export const DhcpMessageType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;

export const DhcpOption = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  DOMAIN_NAME: 15,
  BROADCAST: 28,
  INTERFACE_MTU: 26,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAMETER_LIST: 55,
  MESSAGE: 56,
  MAX_MESSAGE_SIZE: 57,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  CLIENT_ID: 61,
  END: 255,
} as const;

/** A parsed DHCP message (addresses as 4-byte arrays, options by code). */
export interface DhcpMessage {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: Uint8Array;
  yiaddr: Uint8Array;
  siaddr: Uint8Array;
  giaddr: Uint8Array;
  /** Client hardware address (hlen bytes, at most 16). */
  chaddr: Uint8Array;
  options: Map<number, Uint8Array>;
}

/** Parse a DHCP message; EBADMSG on anything malformed (options walked with bounds checks). */
export function parseDhcp(b: Uint8Array): DhcpMessage {
  if (b.length < DHCP_FIXED_LENGTH + 4) throw new TunstackError('EBADMSG', `DHCP message of ${b.length} bytes is too short`);
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  if (v.getUint32(DHCP_FIXED_LENGTH) !== DHCP_MAGIC) throw new TunstackError('EBADMSG', 'DHCP magic cookie missing');
  const hlen = b[2]!;
  if (hlen > 16) throw new TunstackError('EBADMSG', `DHCP hlen ${hlen} > 16`);
  const options = new Map<number, Uint8Array>();
  let p = DHCP_FIXED_LENGTH + 4;
  while (p < b.length) {
    const code = b[p]!;
    if (code === DhcpOption.END) break;
    if (code === DhcpOption.PAD) {
      p++;
      continue;
    }
    if (p + 1 >= b.length) throw new TunstackError('EBADMSG', `DHCP option ${code} truncated at ${p}`);
    const len = b[p + 1]!;
    if (p + 2 + len > b.length) throw new TunstackError('EBADMSG', `DHCP option ${code} runs past the message at ${p}`);
    // RFC 3396: repeated options concatenate.
    const prev = options.get(code);
    const val = b.slice(p + 2, p + 2 + len);
    options.set(code, prev ? Uint8Array.from([...prev, ...val]) : val);
    p += 2 + len;
  }
  return {
    op: b[0]!,
    htype: b[1]!,
    hlen,
    hops: b[3]!,
    xid: v.getUint32(4),
    secs: v.getUint16(8),
    flags: v.getUint16(10),
    ciaddr: b.slice(12, 16),
    yiaddr: b.slice(16, 20),
    siaddr: b.slice(20, 24),
    giaddr: b.slice(24, 28),
    chaddr: b.slice(28, 28 + hlen),
    options,
  };
}

/** Encode a DHCP message; options are written in insertion order, then END. */
export function encodeDhcp(m: DhcpMessage): Uint8Array {
  let optLen = 0;
  for (const val of m.options.values()) optLen += 2 * Math.ceil(Math.max(val.length, 1) / 255) + val.length;
  const out = new Uint8Array(Math.max(300, DHCP_FIXED_LENGTH + 4 + optLen + 1));
  const v = new DataView(out.buffer);
  out[0] = m.op;
  out[1] = m.htype;
  out[2] = m.hlen;
  out[3] = m.hops;
  v.setUint32(4, m.xid >>> 0);
  v.setUint16(8, m.secs);
  v.setUint16(10, m.flags);
  out.set(m.ciaddr.subarray(0, 4), 12);
  out.set(m.yiaddr.subarray(0, 4), 16);
  out.set(m.siaddr.subarray(0, 4), 20);
  out.set(m.giaddr.subarray(0, 4), 24);
  out.set(m.chaddr.subarray(0, 16), 28);
  v.setUint32(DHCP_FIXED_LENGTH, DHCP_MAGIC);
  let p = DHCP_FIXED_LENGTH + 4;
  for (const [code, val] of m.options) {
    // Long values are split over several instances (RFC 3396).
    let off = 0;
    do {
      const n = Math.min(255, val.length - off);
      out[p] = code;
      out[p + 1] = n;
      out.set(val.subarray(off, off + n), p + 2);
      p += 2 + n;
      off += n;
    } while (off < val.length);
  }
  out[p] = DhcpOption.END;
  return out;
}

export function u32Option(n: number): Uint8Array {
  return Uint8Array.of(n >>> 24, n >>> 16, n >>> 8, n);
}

export function u16Option(n: number): Uint8Array {
  return Uint8Array.of(n >>> 8, n);
}

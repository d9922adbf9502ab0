import { describe, expect, it } from 'vitest';
import {
  EthernetEndpoint,
  ManualClock,
  PacketBuffer,
  Stack,
  Wire,
  parseIPv4,
  parseMAC,
} from '../../src/index.js';
import { buildEthernet, buildIPv4, buildUdp } from '../../src/headers/index.js';
import { BOOTREQUEST, DhcpMessageType, DhcpOption, encodeDhcp, parseDhcp } from '../../src/headers/dhcp.js';
import { DhcpServer } from '../../src/portable/dhcp.js';
import { dissect, field, haveTshark } from '../helpers/tshark.js';

const GUEST_MAC = parseMAC('52:54:00:12:34:56');

function setup() {
  const clock = new ManualClock();
  const wire = new Wire({ clock });
  const stack = new Stack({ clock, seed: 5 });
  const nic = stack.createNIC({ name: 'tap0', endpoint: new EthernetEndpoint(wire.a, { linkAddress: parseMAC('52:55:0a:00:02:02') }) });
  nic.addAddress('10.0.2.2/24');
  nic.addAddress('10.0.2.3/24');
  const server = new DhcpServer(stack, { nic: 'tap0', poolStart: '10.0.2.100', poolEnd: '10.0.2.101', prefixLength: 24, router: '10.0.2.2', dns: ['10.0.2.3'], mtu: 1500 });
  const frames: Uint8Array[] = [];
  wire.b.attach({ deliverNetworkPacket: (_p, pkt) => frames.push(pkt.data.slice(pkt.linkHeaderStart >= 0 ? pkt.linkHeaderStart : pkt.start, pkt.end)) });
  const send = (type: number, opts: Array<[number, Uint8Array]> = [], ciaddr = new Uint8Array(4), mac = GUEST_MAC): void => {
    const options = new Map<number, Uint8Array>([[DhcpOption.MESSAGE_TYPE, Uint8Array.of(type)], ...opts]);
    const dhcp = encodeDhcp({ op: BOOTREQUEST, htype: 1, hlen: 6, hops: 0, xid: 0xabcd1234, secs: 0, flags: 0, ciaddr, yiaddr: new Uint8Array(4), siaddr: new Uint8Array(4), giaddr: new Uint8Array(4), chaddr: mac, options });
    const src = ciaddr;
    const dst = parseIPv4('255.255.255.255');
    const udp = buildUdp({ srcPort: 68, dstPort: 67, pseudoHeader: { src, dst } }, dhcp);
    const ip = buildIPv4({ src, dst, protocol: 17, ttl: 64 }, udp);
    wire.b.writePackets([PacketBuffer.wrap(buildEthernet({ destination: parseMAC('ff:ff:ff:ff:ff:ff'), source: mac, etherType: 0x0800 }, ip))]);
  };
  const replies = () => frames.filter((f) => f[12] === 0x08 && f[13] === 0x00 && f[23] === 17).map((f) => parseDhcp(f.subarray(42)));
  return { stack, server, frames, send, replies };
}

describe('DHCP server', () => {
  it('offers and acknowledges the pool address with router, DNS, mask, MTU and lease', () => {
    const { server, send, replies } = setup();
    send(DhcpMessageType.DISCOVER);
    const [offer] = replies();
    expect(offer!.options.get(DhcpOption.MESSAGE_TYPE)?.[0]).toBe(DhcpMessageType.OFFER);
    expect([...offer!.yiaddr].join('.')).toBe('10.0.2.100');
    expect(offer!.xid).toBe(0xabcd1234);
    send(DhcpMessageType.REQUEST, [[DhcpOption.REQUESTED_IP, offer!.yiaddr], [DhcpOption.SERVER_ID, parseIPv4('10.0.2.2')]]);
    const ack = replies()[1]!;
    expect(ack.options.get(DhcpOption.MESSAGE_TYPE)?.[0]).toBe(DhcpMessageType.ACK);
    expect([...ack.options.get(DhcpOption.ROUTER)!].join('.')).toBe('10.0.2.2');
    expect([...ack.options.get(DhcpOption.DNS)!].join('.')).toBe('10.0.2.3');
    expect([...ack.options.get(DhcpOption.SUBNET_MASK)!].join('.')).toBe('255.255.255.0');
    expect(server.activeLeases).toEqual([{ address: '10.0.2.100', mac: '52:54:00:12:34:56', expiresAt: 86_400_000 }]);
  });

  it('NAKs a request for an address outside the pool or held by another client, and runs out politely', () => {
    const { send, replies } = setup();
    send(DhcpMessageType.REQUEST, [[DhcpOption.REQUESTED_IP, parseIPv4('10.0.2.50')]]);
    expect(replies()[0]!.options.get(DhcpOption.MESSAGE_TYPE)?.[0]).toBe(DhcpMessageType.NAK);
    send(DhcpMessageType.REQUEST, [[DhcpOption.REQUESTED_IP, parseIPv4('10.0.2.100')]]);
    send(DhcpMessageType.REQUEST, [[DhcpOption.REQUESTED_IP, parseIPv4('10.0.2.100')]], new Uint8Array(4), parseMAC('52:54:00:00:00:02'));
    expect(replies().map((r) => r.options.get(DhcpOption.MESSAGE_TYPE)?.[0])).toEqual([DhcpMessageType.NAK, DhcpMessageType.ACK, DhcpMessageType.NAK]);
    send(DhcpMessageType.DISCOVER, [], new Uint8Array(4), parseMAC('52:54:00:00:00:03'));
    send(DhcpMessageType.DISCOVER, [], new Uint8Array(4), parseMAC('52:54:00:00:00:04'));
    // Pool of two: one leased, one offered to :03, nothing for :04.
    expect(replies()).toHaveLength(4);
  });

  it('ignores garbage and non-requests, counting them', () => {
    const { stack, server, replies } = setup();
    const ep = stack.udp();
    ep.broadcast = true;
    ep.bind('10.0.2.3', 68);
    ep.send(new Uint8Array(40), 67, '10.0.2.2');
    expect(server.stats.malformed).toBe(1);
    expect(replies()).toEqual([]);
  });

  it.skipIf(!haveTshark())('puts replies on the wire that tshark decodes as DHCP with the values set', () => {
    const { send, frames } = setup();
    send(DhcpMessageType.DISCOVER);
    const d = dissect(frames, ['dhcp.option.dhcp', 'dhcp.ip.your', 'dhcp.option.router', 'dhcp.option.domain_name_server', 'dhcp.option.interface_mtu', 'dhcp.option.ip_address_lease_time', 'eth.dst', 'ip.dst', 'udp.dstport']);
    expect(d.expert).toEqual([]);
    const i = d.protocols.findIndex((p) => p.includes('dhcp'));
    expect(i).toBeGreaterThanOrEqual(0);
    expect(field(d, i, 'dhcp.option.dhcp')).toBe('2');
    expect(field(d, i, 'dhcp.ip.your')).toBe('10.0.2.100');
    expect(field(d, i, 'dhcp.option.router')).toBe('10.0.2.2');
    expect(field(d, i, 'dhcp.option.domain_name_server')).toBe('10.0.2.3');
    expect(field(d, i, 'dhcp.option.interface_mtu')).toBe('1500');
    expect(field(d, i, 'dhcp.option.ip_address_lease_time')).toBe('86400');
    expect(field(d, i, 'eth.dst')).toBe('ff:ff:ff:ff:ff:ff');
    expect(field(d, i, 'ip.dst')).toBe('255.255.255.255');
    expect(field(d, i, 'udp.dstport')).toBe('68');
  });
});

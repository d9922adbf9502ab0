import { describe, expect, it } from 'vitest';
import { ChannelEndpoint, ManualClock, Stack, parseIPv4, type UdpForwardRequest, type UdpProtocol } from '../../src/index.js';
import { IcmpV4Header, buildIPv4, buildUdp } from '../../src/headers/index.js';

describe('UDP forwarder (datagrams no socket wants)', () => {
  function host() {
    const stack = new Stack({ clock: new ManualClock(), seed: 3 });
    const link = new ChannelEndpoint();
    const nic = stack.createNIC({ name: 'tap0', endpoint: link, promiscuous: true, spoofing: true });
    nic.addAddress('10.0.2.2/24');
    const udp = stack.requireTransport<UdpProtocol>(17);
    const guest = parseIPv4('10.0.2.100');
    const send = (dst: string, port: number, payload: Uint8Array): void => {
      const d = parseIPv4(dst);
      link.injectBytes(buildIPv4({ src: guest, dst: d, protocol: 17 }, buildUdp({ srcPort: 40000, dstPort: port, pseudoHeader: { src: guest, dst: d } }, payload)));
    };
    return { stack, link, udp, send };
  }

  it('hands datagrams for any address and port to the forwarder, and answers for itself when declined', () => {
    const { stack, link, udp, send } = host();
    const seen: UdpForwardRequest[] = [];
    udp.forwarder = (req) => {
      seen.push(req);
      return req.localPort !== 9;
    };
    send('192.0.2.10', 53, Uint8Array.of(1, 2, 3));
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ family: 4, remoteAddress: '10.0.2.100', remotePort: 40000, localAddress: '192.0.2.10', localPort: 53 });
    expect([...seen[0]!.data]).toEqual([1, 2, 3]);
    expect(link.read()).toBeNull(); // taken: no ICMP
    // A bound socket still wins over the forwarder.
    const s = stack.udp();
    s.bind(null, 5000);
    send('10.0.2.2', 5000, Uint8Array.of(9));
    expect(s.recv()?.data).toEqual(Uint8Array.of(9));
    expect(seen).toHaveLength(1);
    // Declined: port unreachable from the address it was sent to.
    send('192.0.2.10', 9, Uint8Array.of(0));
    const out = link.read()!.toBytes();
    const icmp = new IcmpV4Header(out, 20);
    expect([icmp.type, icmp.code]).toEqual([3, 3]);
    expect([...out.subarray(12, 16)].join('.')).toBe('192.0.2.10');
  });

  it('lets a relay answer from the original destination with a spoofed, connected endpoint', () => {
    const { stack, link, udp, send } = host();
    udp.forwarder = (req) => {
      const reply = stack.udp();
      reply.bind(req.localAddress, req.localPort);
      reply.connect(req.remoteAddress, req.remotePort);
      reply.send(Uint8Array.of(42));
      return true;
    };
    send('198.51.100.7', 123, Uint8Array.of(1));
    const out = link.read()!.toBytes();
    expect([...out.subarray(12, 16)].join('.')).toBe('198.51.100.7');
    expect((out[20]! << 8) | out[21]!).toBe(123);
    expect(out[28]).toBe(42);
  });
});

/**
 * The TCP forwarder hook, packet by packet: a SYN nobody listens for is offered to the callback
 * and answered only when the callback decides (SYN-ACK with negotiated options on accept, RST on
 * reject, nothing on drop); retransmitted SYNs are absorbed; pending requests are bounded.
 */
import { describe, expect, it } from 'vitest';
import { type TcpEndpoint } from '../../src/index.js';
import { buildTcp } from '../../src/headers/index.js';
import { buildIPv4 } from '../../src/headers/ipv4.js';
import { TcpForwarder, type TcpForwardRequest } from '../../src/transport/tcp/forwarder.js';
import { haveTshark } from '../helpers/tshark.js';
import { A, PEER, P, R, RawPeer, S, flagNames, tsharkFields } from '../transport/helpers/raw-peer.js';

const FAR = Uint8Array.of(93, 184, 216, 34);

function setup(options: { maxPending?: number; pendingTimeoutMs?: number } = {}) {
  const p = new RawPeer(11);
  const nic = p.stack.getNIC('eth0');
  nic.promiscuous = true;
  nic.spoofing = true;
  const reqs: TcpForwardRequest[] = [];
  const fwd = new TcpForwarder(p.tcp, (r) => reqs.push(r), options);
  /** A SYN from the peer to FAR:443 (any address: the NIC is promiscuous). */
  const synTo = (sport: number, seq: number, dst = FAR, dport = 443): void => {
    const seg = buildTcp({
      srcPort: sport,
      dstPort: dport,
      seq,
      flags: S,
      window: 64240,
      options: { mss: 1400, windowScale: 7, sackPermitted: true, timestamp: true, tsVal: 1234, tsEcr: 0 },
      pseudoHeader: { src: PEER, dst },
    });
    p.inject(buildIPv4({ src: PEER, dst, protocol: 6, dontFragment: true }, seg));
  };
  const ackTo = (sport: number, seq: number, ack: number, tsEcr: number, payload?: Uint8Array): void => {
    const seg = buildTcp(
      { srcPort: sport, dstPort: 443, seq, ack, flags: payload ? A | P : A, window: 502, options: { timestamp: true, tsVal: 1240, tsEcr }, pseudoHeader: { src: PEER, dst: FAR } },
      payload,
    );
    p.inject(buildIPv4({ src: PEER, dst: FAR, protocol: 6, dontFragment: true }, seg));
  };
  return { p, fwd, reqs, synTo, ackTo };
}

describe('TCP forwarder', () => {
  it('offers the SYN with its 4-tuple and sends nothing until accept; then a SYN-ACK from the original destination', async () => {
    const { p, fwd, reqs, synTo, ackTo } = setup();
    synTo(40001, 5000);
    expect(reqs).toHaveLength(1);
    const r = reqs[0]!;
    expect({ family: r.family, remoteAddress: r.remoteAddress, remotePort: r.remotePort, localAddress: r.localAddress, localPort: r.localPort }).toEqual({
      family: 4,
      remoteAddress: '10.0.0.1',
      remotePort: 40001,
      localAddress: '93.184.216.34',
      localPort: 443,
    });
    p.clock.advance(500);
    expect(p.recv()).toBeNull();
    // Retransmitted SYN while pending: absorbed, no new request, still silent.
    synTo(40001, 5000);
    p.clock.advance(500);
    expect(reqs).toHaveLength(1);
    expect(fwd.stats.synRetransmits).toBe(1);
    expect(p.recv()).toBeNull();

    const got = r.accept();
    const sa = p.recv()!;
    expect(flagNames(sa.flags)).toBe('SA');
    expect([sa.src, sa.dst, sa.sport, sa.dport]).toEqual(['93.184.216.34', '10.0.0.1', 443, 40001]);
    expect(sa.ack).toBe(5001);
    // Options as a listener answers them: MSS from the NIC's MTU, window scale, SACK, TS echoing the SYN's.
    expect(sa.mss).toBe(1460);
    expect(sa.wscale).toBeGreaterThanOrEqual(0);
    expect(sa.sackOk).toBe(true);
    expect(sa.ts).toBe(true);
    expect(sa.tsEcr).toBe(1234);
    expect(p.recv()).toBeNull();
    let ep: TcpEndpoint | null = null;
    void got.then((e) => (ep = e));
    await Promise.resolve();
    expect(ep).toBeNull(); // not before the handshake completes
    ackTo(40001, 5001, sa.seq + 1, sa.tsVal, new TextEncoder().encode('hello'));
    await got;
    expect(ep).not.toBeNull();
    expect(ep!.state).toBe('ESTABLISHED');
    expect(ep!.localAddress).toBe('93.184.216.34');
    expect(new TextDecoder().decode(ep!.read()!)).toBe('hello');
    ep!.write(new TextEncoder().encode('world'));
    const segs = p.recvAll();
    const data = segs.find((s) => s.payload.length > 0)!;
    expect(new TextDecoder().decode(data.payload)).toBe('world');
    expect(fwd.stats).toMatchObject({ requests: 1, accepted: 1, established: 1, failed: 0 });
    expect(fwd.pendingCount).toBe(0);
  });

  it('reject answers RST,ACK (the guest sees ECONNREFUSED); drop answers nothing', () => {
    const { p, reqs, synTo, fwd } = setup();
    synTo(40002, 777);
    reqs[0]!.reject();
    const rst = p.recv()!;
    expect(flagNames(rst.flags)).toBe('RA');
    expect([rst.src, rst.sport, rst.seq, rst.ack]).toEqual(['93.184.216.34', 443, 0, 778]);
    synTo(40003, 1);
    reqs[1]!.drop();
    p.clock.advance(10_000);
    expect(p.recv()).toBeNull();
    // A second decision is ignored; accept after a decision rejects.
    reqs[1]!.reject();
    expect(p.recv()).toBeNull();
    expect(fwd.stats).toMatchObject({ rejected: 1, dropped: 1 });
    return expect(reqs[0]!.accept()).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('a SYN after the request was decided is a new request (the guest retried)', () => {
    const { reqs, synTo } = setup();
    synTo(40004, 1);
    reqs[0]!.drop();
    synTo(40004, 1);
    expect(reqs).toHaveLength(2);
  });

  it('bounds pending requests: beyond maxPending SYNs are dropped and counted, nothing is sent', () => {
    const { p, fwd, reqs, synTo } = setup({ maxPending: 64 });
    for (let i = 0; i < 5000; i++) synTo(1024 + i, i * 7919);
    expect(reqs).toHaveLength(64);
    expect(fwd.pendingCount).toBe(64);
    expect(fwd.stats.overflows).toBe(5000 - 64);
    expect(p.recv()).toBeNull();
    // Deciding frees room.
    for (const r of reqs.slice(0, 10)) r.drop();
    synTo(60000, 1);
    expect(reqs).toHaveLength(65);
  });

  it('expires undecided requests on the stack clock', () => {
    const { p, fwd, reqs, synTo } = setup({ pendingTimeoutMs: 5000 });
    synTo(40005, 1);
    p.clock.advance(4999);
    expect(fwd.pendingCount).toBe(1);
    p.clock.advance(1);
    expect(fwd.pendingCount).toBe(0);
    expect(fwd.stats.expired).toBe(1);
    expect(reqs[0]!.settled).toBe(true);
    expect(p.recv()).toBeNull();
  });

  it('an accepted handshake the guest resets rejects the promise', async () => {
    const { p, reqs, synTo, fwd } = setup();
    synTo(40006, 100);
    const got = reqs[0]!.accept();
    const sa = p.recv()!;
    const seg = buildTcp({ srcPort: 40006, dstPort: 443, seq: 101, flags: R, window: 0, pseudoHeader: { src: PEER, dst: FAR } });
    p.inject(buildIPv4({ src: PEER, dst: FAR, protocol: 6 }, seg));
    expect(sa.flags).toBe(S | A);
    await expect(got).rejects.toMatchObject({ code: 'ECONNABORTED' });
    expect(fwd.stats.failed).toBe(1);
  });

  it('listeners and connections still win; non-SYN strays still get RSTs; closed forwarder restores RSTs', () => {
    const { p, reqs, fwd } = setup();
    const l = p.stack.tcp();
    l.bind(null, 80);
    l.listen(8);
    p.send({ seq: 1, flags: S, mss: 1460 });
    expect(flagNames(p.recv()!.flags)).toBe('SA');
    p.send({ seq: 1, ack: 99, flags: A, dport: 81 });
    expect(flagNames(p.recv()!.flags)).toBe('R');
    expect(reqs).toHaveLength(0);
    fwd.close();
    p.send({ seq: 1, flags: S, dport: 82 });
    expect(flagNames(p.recv()!.flags)).toBe('RA');
    expect(reqs).toHaveLength(0);
  });

  it.skipIf(!haveTshark())('tshark accepts the forwarded handshake, data and reset', async () => {
    const { p, reqs, synTo, ackTo } = setup();
    synTo(40010, 9000);
    const got = reqs[0]!.accept();
    const sa = p.recv()!;
    ackTo(40010, 9001, sa.seq + 1, sa.tsVal, Uint8Array.of(1, 2, 3));
    const ep = await got;
    ep.write(Uint8Array.of(4, 5, 6));
    p.recvAll();
    synTo(40011, 1);
    reqs[1]!.reject();
    p.recvAll();
    const { rows, errors } = tsharkFields(p.packets, ['tcp.flags.str', 'tcp.len']);
    expect(errors).toEqual([]);
    expect(rows.length).toBeGreaterThanOrEqual(6);
  });
});

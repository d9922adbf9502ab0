import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  IFF_NO_PI,
  IFF_TAP,
  IFF_TUN,
  IFF_VNET_HDR,
  Random,
  TunstackError,
  parseIPv4,
  parseMAC,
  type IPv4Protocol,
  type Stack,
  type TunDevice,
} from '../../src/index.js';
import { ARP_OP_REQUEST, IP_PROTO_TCP, IP_PROTO_UDP, TCP_ACK, buildArp, buildEthernet, buildIPv4, buildTcp } from '../../src/headers/index.js';
import { EthernetEndpoint } from '../../src/link/ethernet.js';
import { ChannelEndpoint } from '../../src/link/channel.js';
import { buildVirtioNetHeader, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_UDP_L4 } from '../../src/headers/virtio.js';
import { drain, echoRequest, newStack, udpPacket } from './helpers.js';

const PEER_MAC = parseMAC('02:00:00:00:00:02');
const ALLOWED = new Set(['EINVAL', 'EMSGSIZE']);

/** Valid packets to mutate: echo, UDP (open and closed ports), TCP, fragments, options, ARP. */
function templates(): Uint8Array[] {
  const src = parseIPv4('10.0.0.2');
  const dst = parseIPv4('10.0.0.1');
  const frag = (off: number, more: boolean) =>
    buildIPv4({ src, dst, protocol: IP_PROTO_UDP, id: 4242, fragmentOffset: off, moreFragments: more }, new Uint8Array(512).fill(off & 0xff));
  return [
    echoRequest(),
    echoRequest({ data: new Uint8Array(1000) }),
    udpPacket('10.0.0.2', 1000, '10.0.0.1', 7, new Uint8Array(40)),
    udpPacket('10.0.0.2', 1000, '10.0.0.1', 9, new Uint8Array(3)),
    buildIPv4({ src, dst, protocol: IP_PROTO_TCP }, buildTcp({ srcPort: 1, dstPort: 80, seq: 1, flags: TCP_ACK, window: 100, pseudoHeader: { src, dst } }, new Uint8Array(100))),
    frag(0, true),
    frag(512, true),
    frag(1024, false),
    buildIPv4({ src, dst, protocol: IP_PROTO_UDP, options: Uint8Array.of(7, 7, 4, 0, 0, 0, 0) }, new Uint8Array(20)),
  ];
}

function arpRequest(mac: Uint8Array): Uint8Array {
  return buildEthernet(
    { destination: mac, source: PEER_MAC, etherType: 0x0806 },
    buildArp({ op: ARP_OP_REQUEST, senderHardwareAddress: PEER_MAC, senderProtocolAddress: parseIPv4('10.0.1.2'), targetProtocolAddress: parseIPv4('10.0.1.1') }),
  );
}

function flip(r: Random, b: Uint8Array): Uint8Array {
  const out = b.slice();
  if (out.length === 0) return out;
  const n = 1 + r.below(4);
  for (let i = 0; i < n; i++) {
    const bit = r.below(out.length * 8);
    out[bit >>> 3]! ^= 1 << (bit & 7);
  }
  // Sometimes cut it short.
  return r.chance(0.1) ? out.subarray(0, r.below(out.length + 1)) : out;
}

function randomBytes(r: Random): Uint8Array {
  const len = r.chance(0.9) ? r.below(120) : r.below(1700);
  const b = r.fill(new Uint8Array(len));
  // Give half of them a plausible first byte so they get past the version check.
  if (len > 0 && r.chance(0.5)) b[0] = 0x45;
  return b;
}

/** write() either consumes everything or throws an allowed errno; anything else fails the test. */
function tryWrite(dev: TunDevice, bytes: Uint8Array, codes: Map<string, number>): void {
  try {
    const n = dev.write(bytes);
    if (n !== bytes.length) throw new Error(`write returned ${n} for ${bytes.length} bytes`);
    codes.set('ok', (codes.get('ok') ?? 0) + 1);
  } catch (e) {
    if (!(e instanceof TunstackError) || !ALLOWED.has(e.code)) throw e;
    codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
  }
}

function pingAnswered(tun: TunDevice): boolean {
  drain(tun);
  const req = echoRequest({ ident: 0x7777, seq: 0x4242 });
  tun.write(req);
  const out = drain(tun);
  return out.some((p) => p.length === req.length && p[20] === 0 && p[24] === 0x77 && p[26] === 0x42);
}

let gc: (() => void) | null = null;
try {
  setFlagsFromString('--expose-gc');
  gc = runInNewContext('gc') as () => void;
} catch {
  gc = null;
}

function heapUsed(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
}

function setup(stack: Stack) {
  const tun = stack.openTun();
  tun.setIff({ name: 'tun0', flags: IFF_TUN | IFF_NO_PI });
  tun.up();
  tun.addAddress('10.0.0.1/24');
  const tunPi = stack.openTun({ shareQueue: true });
  tunPi.setIff({ name: 'tun0', flags: IFF_TUN });
  tunPi.up();
  const tap = stack.openTun();
  tap.setIff({ name: 'tap0', flags: IFF_TAP | IFF_NO_PI });
  tap.up();
  tap.addAddress('10.0.1.1/24');
  const tapVnet = stack.openTun({ shareQueue: true });
  tapVnet.setIff({ name: 'tap0', flags: IFF_TAP | IFF_VNET_HDR });
  tapVnet.up();
  const chan = new ChannelEndpoint({ wireFormat: 'ethernet', linkAddress: parseMAC('02:00:00:00:aa:01') });
  const nic = stack.createNIC({ name: 'eth0', endpoint: new EthernetEndpoint(chan) });
  nic.addAddress('10.0.2.1/24');
  return { tun, tunPi, tap, tapVnet, chan };
}

describe('tun device: robustness', () => {
  it('survives 100k random and bit-flipped frames each into TUN (with and without PI), TAP (with and without vnet hdr) and a NIC', () => {
    const { stack, clock } = newStack(2024);
    const r = new Random(99);
    const { tun, tunPi, tap, tapVnet, chan } = setup(stack);
    const errors: unknown[] = [];
    stack.on('internal-error', (e) => errors.push(e));
    const ip = stack.networkProtocol(0x0800) as IPv4Protocol;
    const tpl = templates();
    const tapMac = tap.mac;
    const ethTpl = [...tpl.map((p) => buildEthernet({ destination: tapMac, source: PEER_MAC, etherType: 0x0800 }, p)), arpRequest(tapMac)];
    const gsoTpl = [
      buildVirtioNetHeader(
        { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_TCPV4, hdrLen: 54, gsoSize: 500, csumStart: 34, csumOffset: 16 },
        buildEthernet({ destination: tapMac, source: PEER_MAC, etherType: 0x0800 }, tpl[4]!),
      ),
      buildVirtioNetHeader(
        { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_UDP_L4, hdrLen: 42, gsoSize: 16, csumStart: 34, csumOffset: 6 },
        ethTpl[2]!,
      ),
    ].map((v) => {
      const w = new Uint8Array(4 + v.length);
      w[2] = 0x08;
      w.set(v, 4);
      return w;
    });
    const codes = new Map<string, number>();
    const heap0 = heapUsed();
    const N = 300_000; // 100k per path: TUN, TAP, injected into a NIC
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      const mutate = r.chance(0.6);
      switch (i % 6) {
        case 0:
          tryWrite(tun, mutate ? flip(r, tpl[r.below(tpl.length)]!) : randomBytes(r), codes);
          break;
        case 1: {
          const body = mutate ? flip(r, tpl[r.below(tpl.length)]!) : randomBytes(r);
          const w = new Uint8Array(4 + body.length);
          w[2] = 0x08;
          w.set(body, 4);
          tryWrite(tunPi, r.chance(0.2) ? flip(r, w) : w, codes);
          break;
        }
        case 2:
          tryWrite(tap, mutate ? flip(r, ethTpl[r.below(ethTpl.length)]!) : randomBytes(r), codes);
          break;
        case 3:
          tryWrite(tapVnet, mutate ? flip(r, gsoTpl[r.below(gsoTpl.length)]!) : randomBytes(r), codes);
          break;
        default: {
          const f = mutate ? flip(r, ethTpl[r.below(ethTpl.length)]!) : randomBytes(r);
          chan.injectBytes(f.slice());
        }
      }
      if ((i & 1023) === 1023) {
        // Read what the stack sent (replies, ARP, ICMP errors) and let timers run.
        drain(tun);
        drain(tap);
        chan.drain();
        clock.advance(50);
      }
    }
    const elapsed = performance.now() - t0;
    expect(errors).toEqual([]);
    expect(stack.stats.internalErrors).toBe(0);
    // Something got through and something was refused: the fuzz reached both paths.
    expect(codes.get('ok')).toBeGreaterThan(30_000);
    expect(codes.get('EINVAL')).toBeGreaterThan(3_000);
    // Bounded state.
    for (const d of [tun, tap]) expect(d.queue!.length).toBeLessThanOrEqual(1024);
    expect(ip.reassembler.memoryUsed).toBeLessThanOrEqual(4 << 20);
    clock.advance(60_000); // reassembly timeouts
    expect(ip.reassembler.inProgress).toBe(0);
    expect(pingAnswered(tun)).toBe(true);
    drain(tap);
    chan.drain();
    const delta = heapUsed() - heap0;
    console.log(
      `tundev fuzz: ${N} frames in ${elapsed.toFixed(0)} ms; writes ${JSON.stringify(Object.fromEntries(codes))}; ` +
        `heap delta ${(delta / 1048576).toFixed(2)} MiB${gc ? '' : ' (no gc: not measured strictly)'}; ` +
        `ipv4 ${JSON.stringify({ malformed: ip.stats.malformedReceived, badsum: ip.stats.invalidChecksum, delivered: ip.stats.delivered })}`,
    );
    if (gc) expect(delta).toBeLessThan(8 * 1048576);
  }, 60_000);

  it('fast-check: arbitrary bytes and flags never throw anything but an errno', () => {
    const { stack } = newStack(1);
    const { tun, tunPi, tap, tapVnet, chan } = setup(stack);
    const devs = [tun, tunPi, tap, tapVnet];
    fc.assert(
      fc.property(fc.nat(3), fc.uint8Array({ maxLength: 1600 }), (which, bytes) => {
        const dev = devs[which]!;
        try {
          expect(dev.write(bytes)).toBe(bytes.length);
        } catch (e) {
          if (!(e instanceof TunstackError) || !ALLOWED.has(e.code)) throw e;
        }
        chan.injectBytes(bytes.slice());
        drain(tun);
        drain(tap);
      }),
      { numRuns: 3000, seed: 4 },
    );
    expect(stack.stats.internalErrors).toBe(0);
    expect(pingAnswered(tun)).toBe(true);
  });
});

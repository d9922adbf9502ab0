/**
 * ICMP echo through the virtual tun device, single thread: write an echo request into a TUN
 * device (IFF_NO_PI), read the stack's reply back. Requests per second; target 1,000,000/s.
 * Reference in the same run: the same loop that only copies the request into the read buffer
 * (the floor a tun round trip cannot beat).
 */
import { ManualClock, Stack, parseIPv4 } from '../src/index.js';
import { buildIPv4, buildIcmpV4Echo } from '../src/headers/index.js';
import { IFF_NO_PI, IFF_TUN } from '../src/tundev/constants.js';
import type { BenchRow } from './run.js';

export default function run(): BenchRow[] {
  const stack = new Stack({ clock: new ManualClock(), seed: 1 });
  const tun = stack.openTun();
  tun.setIff({ name: 'tun0', flags: IFF_TUN | IFF_NO_PI });
  tun.addAddress('10.9.0.1/24');
  tun.up();
  const icmp = buildIcmpV4Echo({ ident: 0x1234, sequence: 1 }, new Uint8Array(56).fill(0x42));
  const request = buildIPv4({ src: parseIPv4('10.9.0.2'), dst: parseIPv4('10.9.0.1'), protocol: 1, ttl: 64, id: 7 }, icmp);
  const buf = new Uint8Array(2048);
  // Sanity: the reply is an echo reply to the sender.
  tun.write(request);
  const n = tun.readInto(buf, 0);
  if (n !== request.length || buf[20] !== 0 || buf[12] !== 10 || buf[15] !== 1 || buf[19] !== 2) {
    throw new Error('tun echo bench: no valid echo reply read back');
  }
  const measure = (fn: () => void): number => {
    for (let i = 0; i < 50_000; i++) fn();
    let ops = 0;
    const start = performance.now();
    let now = start;
    while (now - start < 1500) {
      for (let i = 0; i < 1000; i++) fn();
      ops += 1000;
      now = performance.now();
    }
    return ops / ((now - start) / 1000);
  };
  const ours = measure(() => {
    tun.write(request);
    tun.readInto(buf, 0);
  });
  stack.close();
  return [
    {
      name: 'ICMP echo through a TUN device (write, read)',
      value: ours,
      unit: 'req/s',
      reference: 1_000_000,
      referenceName: 'target',
      ratio: ours / 1_000_000,
    },
  ];
}

/**
 * v86 and tunstack together in a browser page (bundled as a module of its own and served at
 * /v86-page.js by the test's static server): a Linux guest in v86 whose ne2k NIC is plugged into
 * the page's own stack through a FramePort and V86Link. The page's stack is the guest's whole
 * network: 10.0.2.2 on the link, a DHCP server handing out 10.0.2.100, and an HTTP server on port
 * 8080 written on tunstack's Web Streams TCP face. The guest downloads a blob from it with wget
 * and prints its sha256, then serves the blob again with busybox httpd, which the page fetches
 * over tunstack TCP. Only Web APIs and the bundle (passed in as `lib`); v86 is loaded from its
 * URL by the page's module loader.
 */
import type { V86Emulator } from '../../src/web/index.js';
import { patternBytes, sha256Hex, type Lib } from './scenarios.js';

export interface V86PageConfig {
  /** URLs of v86's ES module (libv86.mjs), its v86.wasm, the BIOS, the kernel and the initramfs. */
  v86: string;
  wasm: string;
  bios: string;
  kernel: string;
  initrd: string;
  cmdline: string;
  /** Bytes of the blob the page serves on 10.0.2.2:8080/blob. */
  blobBytes: number;
  /** Give up after this many ms of wall time. */
  timeoutMs: number;
}

export interface V86PageResult {
  /** The guest's serial lines that the test reads (LEASE, SHA, SERVING). */
  lease: string;
  guestSha: string;
  /** What the page sent and what it fetched back from the guest's httpd. */
  blobSha256: string;
  fetchedStatus: string;
  fetchedBytes: number;
  fetchedSha256: string;
  /** Requests the page's HTTP server answered (request lines). */
  served: string[];
  dhcpAcks: number;
  link: { framesIn: number; framesInDropped: number; framesOut: number; yields: number };
  port: { rxFrames: number; rxBytes: number; txFrames: number; txBytes: number; txDropped: number };
  /** Wall-clock ms from `new V86` to the lease, to the SHA line, and to the end of the fetch. */
  ms: { lease: number; download: number; fetch: number };
  serialTail: string;
}

interface V86Like extends V86Emulator {
  add_listener(event: 'serial0-output-byte', fn: (byte: number) => void): void;
  destroy(): Promise<void>;
}
type V86Ctor = new (options: Record<string, unknown>) => V86Like;

const enc = new TextEncoder();
const dec = new TextDecoder();

function indexOfCrlfCrlf(b: Uint8Array, end: number): number {
  for (let i = 3; i < end; i++) if (b[i - 3] === 13 && b[i - 2] === 10 && b[i - 1] === 13 && b[i] === 10) return i + 1;
  return -1;
}

/** Reads a whole stream (to its end, bounded by `limit` bytes). */
async function readAll(readable: ReadableStream<Uint8Array>, limit: number, progress: (n: number) => void = () => undefined): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  const reader = readable.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    n += value.length;
    progress(n);
    if (n > limit) throw new Error(`more than ${limit} bytes`);
    parts.push(value);
  }
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) (out.set(p, off), (off += p.length));
  return out;
}

export async function v86InPage(lib: Lib, cfg: V86PageConfig): Promise<V86PageResult> {
  const t0 = performance.now();
  const deadline = t0 + cfg.timeoutMs;
  const stack = new lib.Stack({ clock: new lib.RealClock() });
  const port = new lib.FramePort();
  stack.createNIC({ name: 'vm0', endpoint: new lib.EthernetEndpoint(port) }).addAddress('10.0.2.2/24');
  const dhcp = new lib.DhcpServer(stack, { nic: 'vm0', poolStart: '10.0.2.100', poolEnd: '10.0.2.100', prefixLength: 24, router: '10.0.2.2' });

  // The page's HTTP server (HTTP/1.0, one response per connection, then FIN).
  const blob = patternBytes(cfg.blobBytes, 0x1234567);
  const served: string[] = [];
  const listener = lib.listenTcp(stack, { port: 8080 });
  void (async () => {
    const reader = listener.connections.getReader();
    for (;;) {
      const { value: conn, done } = await reader.read();
      if (done || conn === undefined) return;
      void (async () => {
        const r = conn.readable.getReader();
        const head = new Uint8Array(8192);
        let n = 0;
        let end = -1;
        while (end < 0) {
          const { value, done: eof } = await r.read();
          if (eof || n + value.length > head.length) break;
          head.set(value, n);
          n += value.length;
          end = indexOfCrlfCrlf(head, n);
        }
        r.releaseLock();
        const line = dec.decode(head.subarray(0, n)).split('\r\n')[0] ?? '';
        served.push(line);
        const w = conn.writable.getWriter();
        const ok = line.startsWith('GET /blob ');
        await w.write(enc.encode(ok ? `HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${blob.length}\r\n\r\n` : 'HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n'));
        if (ok) for (let off = 0; off < blob.length; off += 65536) await w.write(blob.subarray(off, off + 65536));
        await w.close();
      })().catch((e: unknown) => console.warn(`page http server: ${String(e)}`));
    }
  })();

  const { V86 } = (await import(/* a URL for the page's loader */ cfg.v86)) as { V86: V86Ctor };
  const emulator = new V86({
    wasm_path: cfg.wasm,
    bios: { url: cfg.bios },
    bzimage: { url: cfg.kernel },
    initrd: { url: cfg.initrd },
    cmdline: cfg.cmdline,
    memory_size: 128 * 1024 * 1024,
    vga_memory_size: 2 * 1024 * 1024,
    autostart: true,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
    net_device: { type: 'ne2k' },
  });
  const link = new lib.V86Link(emulator, port);
  let serial = '';
  const waiters: { re: RegExp; resolve: (line: string) => void }[] = [];
  emulator.add_listener('serial0-output-byte', (byte) => {
    if (byte === 13) return;
    serial += String.fromCharCode(byte);
    if (byte !== 10) return;
    const line = serial.slice(serial.lastIndexOf('\n', serial.length - 2) + 1, -1);
    console.log(`${Math.round(performance.now() - t0)} ms guest: ${line}`);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i]!.re.test(line)) waiters.splice(i, 1)[0]!.resolve(line);
    }
  });
  const state = (): string => `link ${JSON.stringify(link.stats)} port ${JSON.stringify(port.stats)} served ${JSON.stringify(served)}`;
  const late = (what: string): Error => new Error(`${what} in time (${Math.round(performance.now() - t0)} ms); ${state()}; the guest printed:\n${serial.slice(-3000)}`);
  const waitFor = (re: RegExp): Promise<string> =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(late(`the guest did not print ${String(re)}`)), Math.max(0, deadline - performance.now()));
      waiters.push({ re, resolve: (l) => (clearTimeout(t), resolve(l)) });
    });

  try {
    const leased = waitFor(/^LEASE /);
    const shaLine = waitFor(/^SHA /);
    const serving = waitFor(/^SERVING$/);
    const lease = await leased;
    const tLease = performance.now();
    const guestSha = await shaLine;
    const tDownload = performance.now();
    await serving;

    // The page fetches the blob back from the guest's busybox httpd over tunstack TCP.
    const conn = await lib.connectTcp(stack, { address: '10.0.2.100', port: 80 });
    const w = conn.writable.getWriter();
    await w.write(enc.encode('GET /blob HTTP/1.0\r\nHost: 10.0.2.100\r\n\r\n'));
    let timer: ReturnType<typeof setTimeout> | undefined;
    let fetched = 0;
    const response = await Promise.race([
      readAll(conn.readable, cfg.blobBytes + 65536, (n) => (fetched = n)),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(late(`the fetch from the guest did not end (${fetched} bytes, ${conn.endpoint.state}, ${JSON.stringify(conn.endpoint.info())})`)), Math.max(0, deadline - performance.now())))),
    ]).finally(() => clearTimeout(timer));
    await w.close().catch(() => undefined);
    const tFetch = performance.now();
    const bodyAt = indexOfCrlfCrlf(response, response.length);
    const body = bodyAt < 0 ? new Uint8Array(0) : response.subarray(bodyAt);
    return {
      lease,
      guestSha,
      blobSha256: await sha256Hex(blob),
      fetchedStatus: dec.decode(response.subarray(0, Math.max(0, response.indexOf(13)))),
      fetchedBytes: body.length,
      fetchedSha256: await sha256Hex(body),
      served,
      dhcpAcks: dhcp.stats.acks,
      link: { ...link.stats },
      port: { rxFrames: port.stats.rxFrames, rxBytes: port.stats.rxBytes, txFrames: port.stats.txFrames, txBytes: port.stats.txBytes, txDropped: port.stats.txDropped },
      ms: { lease: Math.round(tLease - t0), download: Math.round(tDownload - tLease), fetch: Math.round(tFetch - tDownload) },
      serialTail: serial.slice(-1500),
    };
  } finally {
    link.close();
    listener.close();
    await emulator.destroy();
    stack.close();
  }
}

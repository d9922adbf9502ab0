/**
 * v86 and tunstack both in a headless Chromium page, with no server but this test's static file
 * server on 127.0.0.1 (which serves the bundle, v86's libv86.mjs and v86.wasm, SeaBIOS, the
 * kernel and the initramfs). The guest is test/vm's v86 guest (Debian's i386 kernel, busybox and
 * the NE2000 modules, fetched with apt-get download; helpers/guest.ts), its NIC plugged into the
 * page's stack with FramePort + V86Link (test/browser/v86-page.ts). The page's DHCP server gives
 * it 10.0.2.100; the guest downloads a blob from an HTTP server the page runs on its tunstack
 * stack and prints the sha256, then serves the blob with busybox httpd and the page fetches it
 * back over tunstack TCP. Node hashes the blob itself to check both. Skips without Chromium or
 * the guest files. Heavy (about 300 MB): run under `flock /tmp/heavy.lock`. TUNSTACK_V86_PAGE_LOG=1
 * prints the page's log (the guest's serial lines with their times).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useHeavyGuest } from '../helpers/heavy.js';
import { v86GuestFiles, type V86GuestFiles } from '../vm/helpers/guest.js';
import { V86_CMDLINE, V86_WASM, initPrologue, v86Initrd } from '../vm/helpers/v86.js';
import { chromiumSkipReason, openBrowserPage, type BrowserPage } from './harness.js';
import { patternBytes } from './scenarios.js';
import type { V86PageConfig, V86PageResult } from './v86-page.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const BLOB = 1 << 20;

const files = process.platform !== 'linux' ? 'not Linux' : chromiumSkipReason() || v86GuestFiles();
if (typeof files === 'string') console.log(`skipping the v86-in-a-page test: ${files}`);

/** The guest's /init: the lease, the download from the page (sha256 printed), then httpd serving it. */
function init(g: V86GuestFiles): string {
  return `${initPrologue(g)}
echo "SHA $(wget -q -O /www/blob http://10.0.2.2:8080/blob && sha256sum /www/blob | cut -d' ' -f1)"
httpd -p 80 -h /www
echo SERVING
while true; do sleep 1; done
`;
}


useHeavyGuest();

describe.skipIf(typeof files === 'string')('v86 and tunstack in one browser page', () => {
  let page: BrowserPage;
  beforeAll(async () => {
    const g = files as V86GuestFiles;
    const v86Dir = dirname(V86_WASM);
    page = await openBrowserPage({
      modules: { '/v86-page.js': join(HERE, 'v86-page.ts') },
      files: {
        '/v86/libv86.mjs': ['text/javascript', readFileSync(join(v86Dir, 'libv86.mjs'))],
        '/v86/v86.wasm': ['application/wasm', readFileSync(V86_WASM)],
        '/guest/bios.bin': ['application/octet-stream', g.bios],
        '/guest/vmlinuz': ['application/octet-stream', g.kernel],
        '/guest/initrd': ['application/octet-stream', v86Initrd(g, init(g))],
      },
    });
  }, 120_000);
  afterAll(async () => {
    await page?.close();
  });

  it('the guest gets a lease from the page, downloads 1 MiB from the page stack, serves it back to the page over tunstack TCP, sha256 intact', async () => {
    const cfg: V86PageConfig = {
      v86: '/v86/libv86.mjs',
      wasm: '/v86/v86.wasm',
      bios: '/guest/bios.bin',
      kernel: '/guest/vmlinuz',
      initrd: '/guest/initrd',
      cmdline: V86_CMDLINE,
      blobBytes: BLOB,
      timeoutMs: 150_000,
    };
    let r: V86PageResult;
    try {
      r = await page.runIn<V86PageResult>('/v86-page.js', 'v86InPage', cfg);
    } catch (e) {
      throw new Error(`${String(e)}\npage errors: ${page.errors.join('\n')}\npage log tail:\n${page.logs.slice(-40).join('\n')}`);
    }
    if (process.env.TUNSTACK_V86_PAGE_LOG) console.log(page.logs.join('\n'));
    const truth = createHash('sha256').update(patternBytes(BLOB, 0x1234567)).digest('hex');
    expect(page.errors).toEqual([]);
    expect(r.lease).toMatch(/^LEASE 10\.0\.2\.100\/24 router 10\.0\.2\.2/);
    expect(r.dhcpAcks).toBeGreaterThanOrEqual(1);
    expect(r.served).toContain('GET /blob HTTP/1.1');
    expect(r.blobSha256).toBe(truth);
    expect(r.guestSha, r.serialTail).toBe(`SHA ${truth}`);
    expect(r.fetchedStatus).toMatch(/^HTTP\/1\.[01] 200 /);
    expect(r.fetchedBytes).toBe(BLOB);
    expect(r.fetchedSha256).toBe(truth);
    // Both transfers went through the link: the blob into the guest's NIC and back out of it.
    expect(r.port.txBytes).toBeGreaterThan(BLOB);
    expect(r.port.rxBytes).toBeGreaterThan(BLOB);
    expect(r.link.framesInDropped).toBe(0);
    console.log(`v86 in a page: lease after ${r.ms.lease} ms, 1 MiB guest download ${r.ms.download} ms, 1 MiB page fetch ${r.ms.fetch} ms; link ${JSON.stringify(r.link)}`);
  }, 200_000);
});

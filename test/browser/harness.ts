/**
 * Headless Chromium for the browser tests and bench: builds the browser bundle (as
 * `npm run build:browser` does, in memory) and the scenarios module, serves both from an HTTP
 * server on 127.0.0.1 (a secure context, so crypto.subtle works), launches /usr/bin/chromium with
 * puppeteer-core and opens the page.
 */
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { buildBrowser } from '../../scripts/build-browser.js';

const HERE = dirname(fileURLToPath(import.meta.url));
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Why the browser tests cannot run here, or '' when they can. */
export function chromiumSkipReason(): string {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} not found (install Debian's chromium package, or set CHROMIUM_PATH)`;
  return '';
}

export interface BrowserPage {
  browser: Browser;
  page: Page;
  /** Base URL of the server (http://127.0.0.1:port). */
  url: string;
  /** Errors the page threw or logged (for failure messages). */
  errors: string[];
  /** `await import` the bundle and the scenarios in the page and run `scenarios[name](lib, ...args)`. */
  run<T>(name: string, ...args: unknown[]): Promise<T>;
  close(): Promise<void>;
}

async function text(files: { path: string; text: string }[]): Promise<string> {
  const js = files.find((f) => f.path.endsWith('.js'));
  if (js === undefined) throw new Error('esbuild produced no .js output');
  return js.text;
}

/** Build, serve and open a page (one browser per test file). */
export async function openBrowserPage(): Promise<BrowserPage> {
  const bundle = await text(await buildBrowser({ write: false }));
  const scenarios = await text(await buildBrowser({ write: false, entry: join(HERE, 'scenarios.ts') }));
  const routes: Record<string, [string, string]> = {
    '/': ['text/html', '<!doctype html><meta charset="utf-8"><title>tunstack</title>'],
    '/tunstack.js': ['text/javascript', bundle],
    '/scenarios.js': ['text/javascript', scenarios],
    '/favicon.ico': ['image/x-icon', ''],
  };
  const server: Server = createServer((req, res) => {
    const route = routes[req.url ?? ''];
    if (route === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': route[0], 'cache-control': 'no-store' }).end(route[1]);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let browser: Browser | null = null;
  try {
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
    });
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    await page.goto(`${url}/`);
    const b = browser;
    return {
      browser: b,
      page,
      url,
      errors,
      async run<T>(name: string, ...args: unknown[]): Promise<T> {
        // A string, not a function: nothing of the test's transpiled code goes into the page.
        const call = `(async () => {
          const lib = await import('/tunstack.js');
          const s = await import('/scenarios.js');
          return s[${JSON.stringify(name)}](lib, ...${JSON.stringify(args)});
        })()`;
        return (await page.evaluate(call)) as T;
      },
      async close() {
        await b.close();
        await new Promise<void>((r) => server.close(() => r()));
      },
    };
  } catch (e) {
    await browser?.close();
    server.close();
    throw e;
  }
}

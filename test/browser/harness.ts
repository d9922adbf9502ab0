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
  /** Lines the page logged with console.log/info/warn (for progress and failure messages). */
  logs: string[];
  /** `await import` the bundle and the scenarios in the page and run `scenarios[name](lib, ...args)`. */
  run<T>(name: string, ...args: unknown[]): Promise<T>;
  /** The same with another module served by this page (`modules` of openBrowserPage). */
  runIn<T>(module: string, name: string, ...args: unknown[]): Promise<T>;
  close(): Promise<void>;
}

async function text(files: { path: string; text: string }[]): Promise<string> {
  const js = files.find((f) => f.path.endsWith('.js'));
  if (js === undefined) throw new Error('esbuild produced no .js output');
  return js.text;
}

export interface BrowserPageOptions {
  /** More modules to bundle and serve: URL path -> entry file (as scenarios.ts is served at /scenarios.js). */
  modules?: Record<string, string>;
  /** More files to serve: URL path -> [content type, bytes or text] (e.g. an emulator and its disk images). */
  files?: Record<string, [string, string | Uint8Array]>;
}

/** Build, serve and open a page (one browser per test file). */
export async function openBrowserPage(options: BrowserPageOptions = {}): Promise<BrowserPage> {
  const bundle = await text(await buildBrowser({ write: false }));
  const scenarios = await text(await buildBrowser({ write: false, entry: join(HERE, 'scenarios.ts') }));
  const routes: Record<string, [string, string | Uint8Array]> = {
    '/': ['text/html', '<!doctype html><meta charset="utf-8"><title>tunstack</title>'],
    '/tunstack.js': ['text/javascript', bundle],
    '/scenarios.js': ['text/javascript', scenarios],
    '/favicon.ico': ['image/x-icon', ''],
    ...options.files,
  };
  for (const [path, entry] of Object.entries(options.modules ?? {})) routes[path] = ['text/javascript', await text(await buildBrowser({ write: false, entry }))];
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
      // Long page calls (a guest booting in v86 on a loaded machine) outlast the 180 s default.
      protocolTimeout: 600_000,
      args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
    });
    const page = await browser.newPage();
    const errors: string[] = [];
    const logs: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
      else logs.push(m.text());
    });
    await page.goto(`${url}/`);
    const b = browser;
    const runIn = async <T>(module: string, name: string, ...args: unknown[]): Promise<T> => {
      // A string, not a function: nothing of the test's transpiled code goes into the page.
      const call = `(async () => {
        const lib = await import('/tunstack.js');
        const s = await import(${JSON.stringify(module)});
        return s[${JSON.stringify(name)}](lib, ...${JSON.stringify(args)});
      })()`;
      return (await page.evaluate(call)) as T;
    };
    return {
      browser: b,
      page,
      url,
      errors,
      logs,
      run: <T>(name: string, ...args: unknown[]): Promise<T> => runIn<T>('/scenarios.js', name, ...args),
      runIn,
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

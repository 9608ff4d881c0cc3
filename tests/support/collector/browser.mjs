// browser.mjs — loads tests/support/collector/browser/page.html in Debian's chromium (playwright-core from bindings/wasm,
// no browser download), served from http://127.0.0.1:<random port>, exporting to ENDPOINT (another origin).
// Prints one JSON line: {origin, result (the page's), console [{type, text}], pageErrors}.
// Usage: node browser.mjs ENDPOINT [PROTOCOL] [EVENTS] [WAIT_MS]
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const WASM = join(ROOT, 'bindings/wasm');
const { chromium } = createRequire(join(WASM, 'package.json'))('playwright-core');
const { serve } = await import(pathToFileURL(join(WASM, 'test/browser/serve.mjs')).href);

const CHROMIUM = process.env.POLYTEL_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run', '--disable-sync'];
const [endpoint, protocol = 'http/protobuf', events = '20', waitMs = '10000'] = process.argv.slice(2);
if (!endpoint) throw new Error('usage: node browser.mjs ENDPOINT [PROTOCOL] [EVENTS] [WAIT_MS]');
if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing: apt-get install chromium (scripts/deps.sh)`);

const web = await serve(ROOT);
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
try {
  const page = await browser.newPage();
  const consoleMsgs = [];
  const pageErrors = [];
  page.on('console', (m) => consoleMsgs.push({ type: m.type(), text: m.text() }));
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  const q = new URLSearchParams({ endpoint, protocol, events, wait_ms: waitMs });
  await page.goto(`${web.url}/tests/support/collector/browser/page.html?${q}`);
  await page.waitForFunction(() => globalThis.__polytelResult !== undefined, null, { timeout: 4 * Number(waitMs) + 30000 });
  const result = await page.evaluate(() => globalThis.__polytelResult);
  await page.close();
  console.log(JSON.stringify({ origin: web.url, result, console: consoleMsgs, pageErrors }));
} finally {
  await browser.close();
  await web.close();
}

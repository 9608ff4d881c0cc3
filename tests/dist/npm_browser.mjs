// npm_browser.mjs — loads PROJECT/page.html (a bundler-free page importing the installed @polytel/wasm through an
// import map) in Debian's chromium, served from http://127.0.0.1, and prints the page's result as one RESULT line.
//   node npm_browser.mjs PROJECT_DIR QUERY
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
// The test's own tools (playwright-core, the static server) come from the repository, not from the project.
const { chromium } = createRequire(join(repo, 'bindings/wasm/package.json'))('playwright-core');
const { serve } = await import(join(repo, 'bindings/wasm/test/browser/serve.mjs'));

const [project, query] = process.argv.slice(2);
const web = await serve(project);
const browser = await chromium.launch({
  executablePath: process.env.POLYTEL_CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
});
try {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(`${web.url}/page.html?${query}`);
  await page.waitForFunction(() => globalThis.__result !== undefined, null, { timeout: 60000 });
  const result = await page.evaluate(() => globalThis.__result);
  console.log('RESULT ' + JSON.stringify({ ...result, errors }));
} finally {
  await browser.close();
  await web.close();
}

// browser.test.mjs — Debian's chromium (playwright-core, no browser download) loads the page from http://127.0.0.1,
// shows phase-1 output in its console, bootstraps and exports to a receiver that answers CORS.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';

import { chromium } from 'playwright-core';

import { serve } from './browser/serve.mjs';
import { PKG, startReceiver } from './helpers.mjs';

const CHROMIUM = process.env.POLYTEL_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run', '--disable-sync'];

let rx;
let web;
let browser;
before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} missing: apt-get install chromium (scripts/deps.sh)`);
  rx = await startReceiver({ cors: true });
  web = await serve(PKG);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
});
after(async () => {
  await browser?.close();
  await web?.close();
  await rx?.stop();
});

for (const protocol of ['http/protobuf', 'http/json']) {
  test(`a page: phase 1 in the console, then export to the receiver (${protocol})`, { timeout: 60000 }, async () => {
    await rx.reset();
    const page = await browser.newPage();
    const consoleMsgs = [];
    page.on('console', (m) => consoleMsgs.push({ type: m.type(), text: m.text() }));
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    const q = new URLSearchParams({ endpoint: rx.endpoint, protocol, telemetry: 'true' });
    await page.goto(`${web.url}/test/browser/page.html?${q}`);
    await page.waitForFunction(() => globalThis.__polytelResult !== undefined, null, { timeout: 30000 });
    const result = await page.evaluate(() => globalThis.__polytelResult);
    await page.close();

    assert.deepEqual(pageErrors, []);
    assert.equal(result.error, undefined, result.error);
    assert.equal(result.phase1, 'deferred');
    assert.equal(result.phase2, 'full');
    assert.equal(result.flushed, true);
    assert.equal(result.shutdown, true);
    assert.equal(result.phase3, 'none');

    // Phase-1 output reached the page console, by level.
    const hello = consoleMsgs.filter((m) => m.text.includes('hello from the page'));
    assert.equal(hello.length, 1, JSON.stringify(consoleMsgs));
    assert.equal(hello[0].type, 'info');
    assert.ok(consoleMsgs.some((m) => /defer/i.test(m.text)), JSON.stringify(consoleMsgs));
    const warn = consoleMsgs.filter((m) => m.text.includes('async work in the page'));
    assert.equal(warn.length, 1);
    assert.equal(warn[0].type, 'warning');

    const got = await rx.received();
    assert.deepEqual(got.errors ?? [], []);
    assert.deepEqual(got.logs.map((l) => l.body).sort(), ['async work in the page', 'hello from the page']);
    assert.deepEqual(got.logs.find((l) => l.body === 'hello from the page').attributes, { where: 'browser' });
    for (const l of got.logs) assert.equal(l.service, 'wasm-browser');
    const by = Object.fromEntries(got.spans.map((s) => [s.name, s]));
    assert.deepEqual(Object.keys(by).sort(), ['page-async', 'page-async-child', 'page-child', 'page-root']);
    assert.equal(got.spans.length, 4);
    assert.equal(by['page-root'].span_id, result.rootId);
    assert.equal(by['page-child'].parent_span_id, by['page-root'].span_id);
    assert.equal(by['page-async-child'].parent_span_id, by['page-async'].span_id);
    const clicks = got.metrics.filter((m) => m.name === 'page.clicks');
    assert.equal(clicks[clicks.length - 1].value, 3);
    const ctype = protocol === 'http/json' ? 'application/json' : 'application/x-protobuf';
    for (const r of got.requests) assert.equal(r.content_type, ctype);
  });
}

// browser_exit.test.mjs — a page that leaves with 2400 spans pending (Debian's chromium, playwright-core): what
// polytel's own pagehide handler sends within the browser's 64 KiB keepalive budget arrives, the rest is counted,
// and the counts reach the collector in the last metrics snapshot. Also: the budget outside an exit, the opt-out,
// the resource a page reports, and the warnings for CORS and for a keepalive budget used by other code.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { chromium } from 'playwright-core';

import { serve } from './browser/serve.mjs';
import { closedPort, PKG, sleep, startReceiver } from './helpers.mjs';

const CHROMIUM = process.env.POLYTEL_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run', '--disable-sync'];
const N = 2400;
const BUDGET = 65536;

let rx; // CORS as the OpenTelemetry Collector answers it (origin echoed, credentials allowed: sendBeacon needs that)
let web; // the pages, and a same-origin path to rx (/v1/*)
let browser;
before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} missing: apt-get install chromium (scripts/deps.sh)`);
  rx = await startReceiver({ cors: 'credentials' });
  web = await serve(PKG, 0, { proxy: rx.endpoint });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
});
after(async () => {
  await browser?.close();
  await web?.close();
  await rx?.stop();
});

const lastPoint = (got, name, pred = () => true) => {
  const pts = got.metrics.filter((m) => m.name === name && pred(m));
  return pts[pts.length - 1];
};

/** Opens exit.html with q in a fresh context; returns {ctx, page, consoleMsgs}. */
async function openExitPage(q) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const consoleMsgs = [];
  page.on('console', (m) => consoleMsgs.push({ type: m.type(), text: m.text() }));
  page.on('pageerror', (e) => consoleMsgs.push({ type: 'pageerror', text: String(e) }));
  try {
    await page.goto(`${web.url}/test/browser/exit.html?${new URLSearchParams(q)}`);
  } catch (e) {
    // With ?go= the page leaves by itself, possibly before its load event.
    if (!q.go) throw e;
  }
  return { ctx, page, consoleMsgs };
}

/** The page's own account of its exit (kept in localStorage by exit.html), read from a page of the same origin. */
async function exitRecord(ctx) {
  const p = await ctx.newPage();
  await p.goto(`${web.url}/test/browser/page.html?telemetry=false`);
  let raw = null;
  for (let i = 0; i < 100 && raw === null; i++) {
    raw = await p.evaluate(() => localStorage.getItem('polytel-exit'));
    if (raw === null) await sleep(50);
  }
  assert.ok(raw, 'the page wrote no exit report');
  return JSON.parse(raw);
}

const EXITS = [
  // [name, query, how the page goes away]. "recorded in pagehide": the app's own pagehide listener records the 2400
  // spans just before polytel's runs, so all of them are pending and nothing is in flight: the exit's whole capacity.
  ['protobuf, recorded in pagehide', { protocol: 'http/protobuf', recordAtExit: '1' }, 'navigate'],
  ['OTLP/JSON, recorded in pagehide', { protocol: 'http/json', recordAtExit: '1' }, 'navigate'],
  ['protobuf + gzip, recorded in pagehide', { protocol: 'http/protobuf', compression: 'gzip', recordAtExit: '1' }, 'navigate'],
  ['OTLP/JSON + gzip, recorded in pagehide', { protocol: 'http/json', compression: 'gzip', recordAtExit: '1' }, 'navigate'],
  ['sendBeacon, protobuf, recorded in pagehide', { protocol: 'http/protobuf', exitTransport: 'beacon', recordAtExit: '1' }, 'navigate'],
  ['protobuf, keepaliveBudget 20000, recorded in pagehide', { protocol: 'http/protobuf', keepaliveBudget: '20000', recordAtExit: '1' }, 'navigate'],
  // Recorded, then the page leaves at once (from the same task): part goes before the exit, part at it.
  ['protobuf, cross-origin, navigation', { protocol: 'http/protobuf' }, 'navigate'],
  ['OTLP/JSON, cross-origin, navigation', { protocol: 'http/json' }, 'navigate'],
  ['protobuf + gzip, cross-origin, page closed', { protocol: 'http/protobuf', compression: 'gzip' }, 'close'],
  ['protobuf, same origin (gzip by default), navigation', { protocol: 'http/protobuf', sameOrigin: '1' }, 'navigate'],
];

describe('page exit', () => {
  for (const [name, query, how] of EXITS) {
    test(`${N} spans and a counter, then the page goes away: ${name}`, { timeout: 90000 }, async (t) => {
      await rx.reset();
      const q = { ...query, n: String(N), endpoint: query.sameOrigin ? web.url : rx.endpoint };
      delete q.sameOrigin;
      const next = `${web.url}/test/browser/page.html?telemetry=false`;
      if (how === 'navigate' && !q.recordAtExit) q.go = next;
      const { ctx, page, consoleMsgs } = await openExitPage(q);
      if (q.recordAtExit) {
        await page.waitForFunction(() => globalThis.__polytelResult !== undefined, null, { timeout: 30000 });
        await page.goto(next);
      } else if (how === 'navigate') await page.waitForURL((u) => u.pathname.endsWith('/page.html'), { timeout: 30000 });
      else {
        await page.waitForFunction(() => globalThis.__polytelResult !== undefined, null, { timeout: 30000 });
        await page.close();
      }
      const { report, stats } = await exitRecord(ctx);
      assert.ok(!consoleMsgs.some((m) => m.type === 'pageerror'), JSON.stringify(consoleMsgs));

      // The page's own account: every span is exported, dropped (counted) or still in the air (pending).
      assert.equal(stats.recorded, N);
      if (q.recordAtExit) assert.equal(report.inFlightBytes, 0);
      assert.equal(stats.exported + stats.dropped + stats.unconfirmed + stats.pending, stats.recorded);
      assert.equal(stats.dropped, stats.droppedExport);
      assert.equal(report.final, true);
      assert.equal(report.transport, query.exitTransport ?? 'fetch');
      // The budget: polytel never had more than 64 KiB (or the option) of keepalive bodies in flight during the
      // exit. Answers to requests in flight may land while the exit runs (under load they come in the task that
      // fires pagehide) and give their room back: the accounting identity holds whatever the timing ...
      const budget = Number(query.keepaliveBudget ?? BUDGET);
      const r = JSON.stringify(report);
      assert.equal(report.budget, budget);
      assert.equal(report.inFlightBytes + report.sentBytes - report.releasedBytes, budget - report.leftBytes, r);
      assert.ok(report.releasedBytes >= 0 && report.releasedBytes <= report.inFlightBytes + report.sentBytes, r);
      assert.ok(report.peakBytes >= report.inFlightBytes && report.peakBytes >= budget - report.leftBytes, r);
      assert.ok(report.peakBytes <= budget, r);
      if (!report.releasedBytes) assert.ok(report.inFlightBytes + report.sentBytes <= budget, r);
      assert.equal(report.droppedItems, stats.droppedExport);
      // ... and the exit used it: nothing was dropped that would have fit in the room left (first fit; the last
      // snapshot's reserved room and what came back after a drop are the only slack).
      if (report.droppedRequests) assert.ok(report.leftBytes - report.releasedBytes < report.smallestDroppedBytes + report.reserve, r);

      // What reached the collector: the last snapshot carries the counter and the counts, taken after the drops.
      // Keepalive requests outlive the page, not the browser context: it stays open until they are in.
      const got = await rx.waitFor((g) => {
        const rec = lastPoint(g, 'polytel.recorded');
        return rec && rec.value === N && g.spans.length >= N - stats.dropped;
      }, 20000);
      await ctx.close();
      assert.deepEqual(got.errors, []);
      const ids = new Set(got.spans.map((s) => s.span_id));
      assert.equal(ids.size, got.spans.length, 'no span arrived twice');
      assert.equal(lastPoint(got, 'exit.clicks')?.value, N, 'the counter arrived with its final value');
      const dropped = lastPoint(got, 'polytel.dropped', (m) => m.attributes.reason === 'export');
      assert.equal(dropped?.value, stats.droppedExport, 'the collector is told what was dropped');
      // The identity, seen from outside: received + counted as dropped == recorded.
      assert.equal(got.spans.length + dropped.value, N, `received ${got.spans.length}, dropped ${dropped.value}`);
      assert.ok(got.spans.length >= stats.exported, 'everything confirmed arrived');

      const exitRequests = got.requests.filter((r) => r.path === '/v1/traces');
      const gz = exitRequests.filter((r) => r.content_encoding === 'gzip').length;
      if (query.compression === 'gzip' || query.sameOrigin) assert.equal(gz, exitRequests.length, 'all gzip');
      else assert.equal(gz, 0, 'cross-origin without compression configured: plain bodies');
      if (stats.dropped) {
        const line = consoleMsgs.find((m) => m.text.includes('page exit:'));
        if (line) assert.match(line.text, new RegExp(`${stats.droppedExport} log records/spans could not be sent and are counted as dropped`));
      }
      // The figures docs/reliability.md quotes.
      t.diagnostic(`page exit | ${name} | received ${got.spans.length}/${N} | dropped ${dropped.value} | ` +
        `at the exit: ${report.inFlightBytes} B in flight, sent ${report.sentRequests} requests = ${report.sentBytes} B (${report.sentItems} spans), ` +
        `${report.releasedBytes} B answered meanwhile, at most ${report.peakBytes} B in flight`);
    });
  }

  test("flushOnExit: false: no handler of polytel's; the app's own pagehide calls exitFlush()", { timeout: 60000 }, async () => {
    await rx.reset();
    const q = { n: '100', endpoint: rx.endpoint, flushOnExit: 'false', go: `${web.url}/test/browser/page.html?telemetry=false` };
    const { ctx, page } = await openExitPage(q);
    await page.waitForURL((u) => u.pathname.endsWith('/page.html'), { timeout: 30000 });
    const { report, stats } = await exitRecord(ctx);
    assert.equal(stats.dropped, 0);
    assert.equal(report.droppedRequests, 0);
    const got = await rx.waitFor((g) => g.spans.length >= 100 && lastPoint(g, 'exit.clicks'), 10000);
    await ctx.close();
    assert.equal(got.spans.length, 100);
    assert.equal(lastPoint(got, 'exit.clicks').value, 100);
  });

  test('flushOnExit: false and no exitFlush() of the app: what was pending at the exit never leaves', { timeout: 60000 }, async () => {
    await rx.reset();
    // 50 spans: less than a batch (64 in a page), so nothing is due before the exit.
    const q = { n: '50', endpoint: rx.endpoint, flushOnExit: 'false', noListener: '1', go: `${web.url}/test/browser/page.html?telemetry=false` };
    const { ctx, page } = await openExitPage(q);
    await page.waitForURL((u) => u.pathname.endsWith('/page.html'), { timeout: 30000 });
    await sleep(2000); // with a handler, the spans would be here long before
    await ctx.close();
    const got = await rx.received();
    assert.equal(got.spans.length, 0, 'nothing was due before the exit (no full batch; OTEL_BSP_SCHEDULE_DELAY is 5 s)');
    assert.equal(lastPoint(got, 'exit.clicks'), undefined);
  });
});

describe('keepalive budget outside an exit', () => {
  test('exitFlush() on a page that stays: what did not fit is counted, then export resumes and nothing is left pending', { timeout: 60000 }, async () => {
    await rx.reset();
    const { ctx, page } = await openExitPage({ n: '0', endpoint: rx.endpoint, flushOnExit: 'false', noListener: '1' });
    await page.waitForFunction(() => globalThis.__polytelResult !== undefined, null, { timeout: 30000 });
    const out = await page.evaluate(async (n) => {
      const pt = globalThis.__pt;
      for (let i = 0; i < n; i++) pt.span('exit-span', () => {}, { i });
      const report = await pt.exitFlush();
      for (let i = 0; i < 100; i++) pt.span('after-exit', () => {}, { i });
      const flushed = await pt.flush(20000);
      return { report, flushed, stats: pt.stats() };
    }, N);
    await ctx.close();
    assert.equal(out.report.final, true);
    assert.ok(out.report.droppedItems > 0, '2400 protobuf spans do not fit 64 KiB');
    assert.equal(out.flushed, true, 'nothing stays stuck in flight after the exit');
    assert.equal(out.stats.recorded, N + 100);
    assert.equal(out.stats.pending, 0);
    assert.equal(out.stats.dropped, out.report.droppedItems);
    assert.equal(out.stats.unconfirmed, 0);
    assert.equal(out.stats.exported + out.stats.dropped, out.stats.recorded);
    const got = await rx.received();
    assert.equal(got.spans.filter((sp) => sp.name === 'after-exit').length, 100, 'the page lived on: all of it was sent');
    assert.equal(new Set(got.spans.map((sp) => sp.span_id)).size, out.stats.exported);
  });


  test('512-span requests (~37 KB) never exceed 64 KiB of keepalive bodies in flight, and none fails', { timeout: 60000 }, async () => {
    await rx.reset();
    const env = JSON.stringify({ OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '512' });
    const { ctx, page } = await openExitPage({ n: String(N), endpoint: rx.endpoint, env, trackFetch: '1', flushOnExit: 'false' });
    await page.waitForFunction(() => globalThis.__polytelResult !== undefined, null, { timeout: 30000 });
    const out = await page.evaluate(async () => ({ flushed: await globalThis.__pt.flush(20000), stats: globalThis.__pt.stats(), watch: globalThis.__fetchWatch }));
    await ctx.close();
    assert.equal(out.flushed, true);
    assert.equal(out.stats.exported, N);
    assert.equal(out.stats.exportFailures, 0);
    assert.equal(out.stats.exportRetries, 0, 'no request was refused by the browser');
    assert.ok(out.watch.max <= BUDGET, JSON.stringify(out.watch));
    assert.ok(out.watch.keepalive >= 5, JSON.stringify(out.watch));
    const got = await rx.received();
    assert.equal(new Set(got.spans.map((s) => s.span_id)).size, N);
  });

  test('hidden (visibilitychange): what fits goes, the rest waits and is delivered, nothing is dropped', { timeout: 60000 }, async () => {
    await rx.reset();
    const { ctx, page } = await openExitPage({ n: '0', endpoint: rx.endpoint, protocol: 'http/json' });
    await page.waitForFunction(() => globalThis.__polytelResult !== undefined, null, { timeout: 30000 });
    const out = await page.evaluate(async (n) => {
      const pt = globalThis.__pt;
      for (let i = 0; i < n; i++) pt.span('exit-span', () => pt.counterAdd('exit.clicks', 1), { i });
      Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
      const report = await globalThis.__pt._driver.exitRun;
      const flushed = await globalThis.__pt.flush(20000);
      return { report, flushed, stats: globalThis.__pt.stats() };
    }, N);
    await ctx.close();
    assert.equal(out.report.final, false);
    assert.equal(out.report.droppedRequests, 0);
    assert.ok(out.report.heldRequests > 0, 'OTLP/JSON: 2400 spans do not fit 64 KiB at once');
    assert.equal(out.flushed, true);
    assert.equal(out.stats.dropped, 0);
    assert.equal(out.stats.exported, N);
    const got = await rx.received();
    assert.equal(new Set(got.spans.map((s) => s.span_id)).size, N);
  });

  test('a keepalive refusal caused by other code on the page is named as such, and the request still goes', { timeout: 60000 }, async () => {
    await rx.reset();
    await rx.faults([{ mode: 'stall', path: '/v1/logs', count: 1 }]);
    const { ctx, page, consoleMsgs } = await openExitPage({ n: '10', endpoint: rx.endpoint, flushOnExit: 'false' });
    await page.waitForFunction(() => globalThis.__polytelResult !== undefined, null, { timeout: 30000 });
    const out = await page.evaluate(async (ep) => {
      // Another script's keepalive request that never ends holds 65 000 bytes of the page's budget.
      fetch(`${ep}/v1/logs`, { method: 'POST', keepalive: true, body: new Uint8Array(65000), headers: { 'content-type': 'application/x-protobuf' } }).catch(() => {});
      await new Promise((r) => setTimeout(r, 200));
      return { flushed: await globalThis.__pt.flush(20000), stats: globalThis.__pt.stats() };
    }, rx.endpoint);
    await ctx.close();
    assert.equal(out.flushed, true);
    assert.equal(out.stats.exported, 10);
    const line = consoleMsgs.find((m) => m.text.includes('refused a keepalive request'));
    assert.ok(line, JSON.stringify(consoleMsgs));
    assert.equal(line.type, 'warning');
    assert.match(line.text, /other code on this page uses the browser's 64 KiB keepalive allowance/);
    assert.match(line.text, /keepaliveBudget/);
  });
});

describe('what a page reports', () => {
  for (const protocol of ['http/protobuf', 'http/json']) {
    test(`the resource: browser.*, user_agent.original, a service.instance.id per page load; no pid, no host (${protocol})`, { timeout: 60000 }, async () => {
      await rx.reset();
      const seen = [];
      for (let load = 0; load < 2; load++) {
        const { ctx, page } = await openExitPage({ n: '3', endpoint: rx.endpoint, protocol, flushOnExit: 'false' });
        await page.waitForFunction(() => globalThis.__polytelResult !== undefined, null, { timeout: 30000 });
        const nav = await page.evaluate(async () => {
          await globalThis.__pt.flush(10000);
          const u = navigator.userAgentData;
          return { ua: navigator.userAgent, language: navigator.language, brands: u.brands.map((b) => `${b.brand} ${b.version}`), platform: u.platform, mobile: u.mobile };
        });
        await ctx.close();
        seen.push(nav);
      }
      const got = await rx.received();
      assert.deepEqual(got.errors, []);
      assert.equal(got.spans.length, 6);
      const instances = new Set();
      for (const s of got.spans) {
        const res = s.resource;
        assert.equal(res['telemetry.sdk.language'], 'webjs');
        assert.equal(res['telemetry.sdk.name'], 'polytel');
        assert.equal(res['service.name'], 'wasm-exit');
        assert.deepEqual(res['browser.brands'], seen[0].brands);
        assert.ok(Array.isArray(res['browser.brands']) && res['browser.brands'].length > 0);
        assert.equal(res['browser.platform'], seen[0].platform);
        assert.equal(res['browser.mobile'], false);
        assert.equal(res['browser.language'], seen[0].language);
        assert.equal(res['user_agent.original'], seen[0].ua);
        assert.match(res['service.instance.id'], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        instances.add(res['service.instance.id']);
        for (const k of Object.keys(res)) assert.ok(!/^(process|host)\./.test(k), `a page has no ${k}`);
      }
      assert.equal(instances.size, 2, 'one service.instance.id per page load');
    });
  }
});

describe('failures a page can explain', () => {
  let plain; // a receiver without CORS: a page on another origin is refused
  before(async () => {
    plain = await startReceiver({ cors: false });
  });
  after(async () => {
    await plain?.stop();
  });

  test('gzip and headers against a collector without CORS: the warning adds cors.allowed_headers', { timeout: 60000 }, async () => {
    const { ctx, page, consoleMsgs } = await openExitPage({ n: '3', endpoint: plain.endpoint, flushOnExit: 'false', compression: 'gzip', headers: JSON.stringify({ 'x-api-key': 'secret-value' }) });
    await page.waitForFunction(() => globalThis.__polytelResult !== undefined, null, { timeout: 30000 });
    await page.evaluate(() => globalThis.__pt.flush(1500));
    let line;
    for (let i = 0; i < 100 && !line; i++) {
      line = consoleMsgs.find((m) => m.text.includes('(CORS)'));
      if (!line) await sleep(50);
    }
    await ctx.close();
    assert.ok(line, JSON.stringify(consoleMsgs));
    assert.match(line.text, /and allowed_headers: \["Content-Encoding","x-api-key"\]/);
    assert.ok(!consoleMsgs.some((m) => m.text.includes('secret-value')), 'a header value is never printed');
  });

  test('a collector without CORS for this origin: the warning names CORS and cors.allowed_origins', { timeout: 60000 }, async () => {
    await plain.reset();
    const { ctx, page, consoleMsgs } = await openExitPage({ n: '3', endpoint: plain.endpoint, flushOnExit: 'false' });
    await page.waitForFunction(() => globalThis.__polytelResult !== undefined, null, { timeout: 30000 });
    const origin = await page.evaluate(() => location.origin);
    await page.evaluate(() => globalThis.__pt.flush(1500));
    let line;
    for (let i = 0; i < 100 && !line; i++) {
      line = consoleMsgs.find((m) => m.text.includes('(CORS)'));
      if (!line) await sleep(50);
    }
    const stats = await page.evaluate(() => globalThis.__pt.stats());
    await ctx.close();
    assert.ok(line, JSON.stringify(consoleMsgs));
    assert.equal(line.type, 'warning');
    assert.match(line.text, /the collector answers, but the browser withholds its responses from this page \(CORS\)/);
    assert.ok(line.text.includes(`allowed_origins: ["${origin}"]`), line.text);
    assert.equal(stats.exported, 0);
    assert.equal(stats.pending, 3, 'refused requests are retried, not dropped, until the export timeout');
    // The receiver saw only the refused preflights.
    const got = await plain.received();
    assert.equal(got.spans.length, 0);
    assert.ok(got.errors.some((e) => /OPTIONS \(CORS preflight\)/.test(e.message)), JSON.stringify(got.errors));
  });

  test('a bad keepaliveBudget or exitTransport: one warning each, the defaults kept', { timeout: 60000 }, async () => {
    const { ctx, page, consoleMsgs } = await openExitPage({ n: '1', endpoint: rx.endpoint, flushOnExit: 'false', keepaliveBudget: '100000', exitTransport: 'pigeon' });
    await page.waitForFunction(() => globalThis.__polytelResult !== undefined, null, { timeout: 30000 });
    const report = await page.evaluate(() => globalThis.__pt.exitFlush());
    await ctx.close();
    const budget = consoleMsgs.filter((m) => m.text.includes('keepaliveBudget must be'));
    const transport = consoleMsgs.filter((m) => m.text.includes('exitTransport must be'));
    assert.equal(budget.length, 1, JSON.stringify(consoleMsgs));
    assert.match(budget[0].text, /keepaliveBudget must be 1\.\.65536 bytes \(the browser's cap\), not 100000: using 65536/);
    assert.equal(transport.length, 1);
    assert.match(transport[0].text, /exitTransport must be "auto", "fetch" or "beacon", not "pigeon": using "auto"/);
    assert.equal(report.budget, BUDGET);
    assert.equal(report.transport, 'fetch');
  });

  test('a collector that is down, cross-origin: the warning says unreachable or CORS, and how to allow the origin', { timeout: 60000 }, async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    const { ctx, page, consoleMsgs } = await openExitPage({ n: '3', endpoint, flushOnExit: 'false' });
    await page.waitForFunction(() => globalThis.__polytelResult !== undefined, null, { timeout: 30000 });
    await page.evaluate(() => globalThis.__pt.flush(1500));
    let line;
    for (let i = 0; i < 100 && !line; i++) {
      line = consoleMsgs.find((m) => m.text.includes('browsers report both alike'));
      if (!line) await sleep(50);
    }
    await ctx.close();
    assert.ok(line, JSON.stringify(consoleMsgs));
    // The core's own retry line carries the transport's words: the failure is not "unreachable or timed out".
    const core = consoleMsgs.find((m) => m.text.includes('export of spans failed'));
    assert.match(core?.text ?? '', /opaque network error; on another origin, a CORS refusal is a likely cause\); retrying \(3 spans waiting\)/);
    assert.match(line.text, /is unreachable, or it refuses this page's origin .* \(CORS\): browsers report both alike/);
    assert.match(line.text, /allowed_origins/);
  });
});

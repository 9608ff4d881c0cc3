// view.test.mjs — the page `python -m polytel.view` writes, opened in Debian's chromium (playwright-core) over
// http://127.0.0.1, checked against what the real workers wrote (read here with JSON.parse alone): lanes per
// process, one bar per span, log ticks inside their span's bar, the link across processes, details on click,
// the search filter, metrics, the accounting table; the screenshots docs/trace-view.md shows, not blank. They go to
// $POLYTEL_VIEW_SHOTS (default: BUILD/view-shots), never into the checked-in docs/ unless asked: `make docs-images`
// sets it to docs/.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { BUILD, CHROMIUM, CHROMIUM_ARGS, PY, REPO, buildPage, chromium, decodePng, distinctColours, need, readRaw, runWorker, serveFile } from './helpers.mjs';

const SCENARIO = join(REPO, 'tests', 'smoke', 'scenario.json');
const JOB_STEP = join(BUILD, 'tests', 'job_step');
const SMOKE_C = join(BUILD, 'tests', 'smoke_worker');
const SHOTS = process.env.POLYTEL_VIEW_SHOTS || join(BUILD, 'view-shots');

let tmp, dirs, raw, web, browser, page, built;
const pageErrors = [];

before(async () => {
  need(CHROMIUM, 'apt-get install chromium (scripts/deps.sh)');
  need(PY, 'make py-venv');
  need(JOB_STEP, 'make build');
  need(SMOKE_C, 'make build');
  tmp = mkdtempSync(join(tmpdir(), 'polytel-view-'));
  dirs = { jobs: join(tmp, 'jobs'), c: join(tmp, 'c'), bad: join(tmp, 'bad'), empty: join(tmp, 'empty') };
  // Python jobs whose store step runs in a C process (the trace crosses processes), and the C smoke worker twice:
  // once as is, once with a torn last line appended (what a crash mid-write leaves).
  runWorker(PY, [join(REPO, 'examples', 'python', 'jobs.py'), '--jobs', '3', '--fail', '1', '--job-step', JOB_STEP], dirs.jobs, 'view-jobs',
    { OTEL_METRIC_EXPORT_INTERVAL: '100', OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_BLRP_SCHEDULE_DELAY: '100' });
  runWorker(SMOKE_C, [SCENARIO], dirs.c, 'view-c');
  runWorker(SMOKE_C, [SCENARIO], dirs.bad, 'view-c-torn');
  const tl = readFileSync(join(dirs.bad, 'traces.jsonl'), 'utf8').trimEnd().split('\n');
  writeFileSync(join(dirs.bad, 'traces.jsonl'), tl.join('\n') + '\n' + tl[tl.length - 1].slice(0, 80));
  mkdirSync(dirs.empty);
  raw = readRaw(tmp);
  const out = join(tmp, 'trace.html');
  built = buildPage([dirs.jobs, dirs.c, dirs.bad, dirs.empty], out);
  assert.equal(built.status, 0, built.stderr);
  web = await serveFile(out);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  page = await browser.newPage({ viewport: { width: 1400, height: 860 } });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });
  await page.goto(web.url);
  await page.waitForFunction(() => window.polytelView && window.polytelView.ready, null, { timeout: 60000 });
});

after(async () => {
  await browser?.close();
  await web?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------- expectations from the files themselves
const byTrace = () => {
  const m = new Map();
  for (const s of raw.spans) { if (!m.has(s.traceId)) m.set(s.traceId, []); m.get(s.traceId).push(s); }
  return m;
};
const spanById = () => new Map(raw.spans.map((s) => [s.traceId + s.spanId, s]));
const pv = (fn, ...args) => page.evaluate(fn, ...args);
async function procPids() { return new Map((await pv(() => window.polytelView.processes())).map((p) => [p.index, p.pid])); }

test('the page loads offline and names what it skipped', async () => {
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(web.requests, ['/trace.html']); // nothing else: no script, style, font or favicon fetched
  assert.match(built.stderr, /has no traces\.jsonl, logs\.jsonl or metrics\.jsonl/);
  assert.match(built.stderr, /skipped 1 corrupt line\(s\) and 0 malformed record\(s\)/);
  assert.match(await page.textContent('#notice-bad'), /Skipped 1 corrupt line \(of \d+ lines read\)/);
  assert.match(await page.textContent('#notice-bad pre'), /bad[/]traces\.jsonl:\d+: truncated line/);
  assert.equal(await page.getAttribute('[data-empty]', 'data-empty'), dirs.empty);
  const counts = await pv(() => window.polytelView.counts);
  assert.equal(counts.spans, raw.spans.length);
  assert.equal(counts.logs, raw.logs.length);
  assert.equal(counts.traces, byTrace().size);
  assert.equal(await page.locator('.trace-item').count(), byTrace().size);
});

test('every trace: one bar per span, lanes per process, log ticks inside their span bar, links across processes', async () => {
  const traces = byTrace(), ids = spanById(), pids = await procPids();
  const summaries = await pv(() => window.polytelView.traces());
  let crossSeen = 0;
  for (const tr of summaries) {
    await page.click(`.trace-item[data-trace="${tr.index}"]`);
    const want = traces.get(tr.id);
    assert.ok(want, tr.id);
    const got = await pv(() => {
      const v = window.polytelView, d = v.drawn('trace');
      const sp = (i) => v.span(i);
      const merged = [];
      for (const [, , , , n] of d.merged) merged.push(n);
      return {
        bars: d.bars.map(([s, x, y, w, h]) => ({ ...sp(s), x, y, w, h })), merged,
        ticks: d.ticks.map(([j, x, y, w, h, s]) => ({ log: v.log(j), x, y, w, h, span: s })),
        links: d.links.map(([p, c, cross]) => ({ parent: sp(p).id, child: sp(c).id, cross })),
        lanes: [...document.querySelectorAll('#trace-timeline .lane')].map((e) => +e.dataset.proc),
        dataLanes: +document.getElementById('trace-timeline').dataset.lanes,
      };
    });
    // One bar per span: every span of the trace painted (none merged away at this zoom), nothing else.
    assert.deepEqual(got.merged, [], `trace ${tr.id}: spans merged`);
    assert.deepEqual(got.bars.map((b) => b.id).sort(), want.map((s) => s.spanId).sort(), `trace ${tr.id} (${tr.root})`);
    // Lanes: one per thread (thread.id on the wire) of each process the trace ran in.
    const lanesWant = new Map();
    for (const s of want) { if (!lanesWant.has(s.pid)) lanesWant.set(s.pid, new Set()); lanesWant.get(s.pid).add(s.attrs['thread.id']); }
    const lanesGot = new Map();
    for (const p of got.lanes) lanesGot.set(pids.get(p), (lanesGot.get(pids.get(p)) ?? 0) + 1);
    assert.deepEqual(lanesGot, new Map([...lanesWant].map(([pid, set]) => [pid, set.size])), `trace ${tr.id}: lanes per process`);
    assert.equal(got.dataLanes, got.lanes.length);
    // Log ticks: every log of the trace, each inside the bar of the span it names.
    const logsWant = raw.logs.filter((l) => l.traceId === tr.id);
    assert.equal(got.ticks.length, logsWant.length, `trace ${tr.id}: ticks`);
    const barOf = new Map(got.bars.map((b) => [b.index, b]));
    for (const t of got.ticks) {
      const b = barOf.get(t.span);
      assert.ok(b, `log "${t.log.body}" has no bar`);
      assert.ok(t.x >= b.x - 1 && t.x + t.w <= b.x + b.w + 1 && t.y === b.y && t.h === b.h, `log "${t.log.body}" outside its bar ${JSON.stringify([t, b])}`);
      assert.ok(logsWant.some((l) => l.body.stringValue === t.log.body && ids.get(l.traceId + l.spanId)?.spanId === b.id), t.log.body);
    }
    // Links: parent -> child where they ran on different threads or processes, exactly those.
    const linksWant = want.filter((s) => s.parentSpanId && ids.has(tr.id + s.parentSpanId)).map((s) => [ids.get(tr.id + s.parentSpanId), s])
      .filter(([p, c]) => p.pid !== c.pid || p.attrs['thread.id'] !== c.attrs['thread.id'])
      .map(([p, c]) => ({ parent: p.spanId, child: c.spanId, cross: p.pid !== c.pid ? 1 : 0 }));
    const key = (l) => `${l.parent}>${l.child}:${l.cross}`;
    assert.deepEqual(got.links.map(key).sort(), linksWant.map(key).sort(), `trace ${tr.id}: links`);
    crossSeen += got.links.filter((l) => l.cross).length;
    if (tr.root === 'job' && tr.spans > 2) {
      const store = got.bars.find((b) => b.name === 'store');
      const job = got.bars.find((b) => b.name === 'job');
      assert.ok(got.links.some((l) => l.cross && l.parent === job.id && l.child === store.id), `trace ${tr.id}: job -> store across processes`);
      assert.notEqual(pids.get(store.proc), pids.get(job.proc));
    }
  }
  assert.equal(crossSeen, 2, 'two jobs ran their store step in another process');
});

test('process view: one lane per thread of the process, async spans with their waits', async () => {
  await page.click('#tabs button[data-tab="process"]');
  const pids = await procPids();
  for (const [p, pid] of pids) {
    await page.selectOption('#proc-select', String(p));
    const threads = new Set([...raw.spans, ...raw.logs].filter((x) => x.pid === pid).map((x) => x.attrs['thread.id']));
    assert.equal(await page.locator(`#proc-timeline .lane[data-proc="${p}"]`).count(), threads.size, `pid ${pid}`);
    assert.equal(await page.locator('#proc-timeline .lane').count(), threads.size);
    const d = await pv(() => { const d = window.polytelView.drawn('process'); return { bars: d.bars.length, merged: d.merged.reduce((a, m) => a + m[4], 0), waits: d.waits.length }; });
    assert.equal(d.bars + d.merged, raw.spans.filter((s) => s.pid === pid).length, `pid ${pid}: spans`);
    const service = raw.spans.concat(raw.logs).find((x) => x.pid === pid).service;
    if (service === 'view-jobs') {
      // Three downloads per fetch overlap on the main thread: async, each waits while another runs.
      const names = ['MainThread', 'transform_0'];
      const labels = await page.locator('#proc-timeline .lane').allTextContents();
      assert.ok(labels.some((l) => l.startsWith(names[0])) && labels.some((l) => l.startsWith(names[1])), labels.join('|'));
      assert.ok(d.waits >= 4, `waits drawn: ${d.waits}`);
      const asyncDownloads = await pv(() => { const v = window.polytelView; let n = 0; for (let i = 0; i < v.counts.spans; i++) { const s = v.span(i); if (s.name === 'download' && s.async) n++; } return n; });
      assert.equal(asyncDownloads, raw.spans.filter((s) => s.name === 'download').length);
    }
  }
  await page.click('#tabs button[data-tab="traces"]');
});

test('details on click: attributes, parent in another process, resource; a log tick opens its record', async () => {
  const job = (await pv(() => window.polytelView.traces())).find((t) => t.root === 'job' && t.processes === 2);
  await page.click(`.trace-item[data-trace="${job.index}"]`);
  const at = async (pred) => {
    // The details panel opened by a click may resize the timeline, which redraws on the next frames: read the
    // canvas box and what was drawn only once two frames have passed (a busy machine draws late).
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const box = await page.locator('#trace-timeline canvas.tl-canvas').boundingBox();
    const d = await pv(() => { const v = window.polytelView, d = v.drawn('trace'); return { bars: d.bars.map(([s, x, y, w, h]) => ({ name: v.span(s).name, x, y, w, h })), ticks: d.ticks.map(([j, x, y, w, h]) => ({ body: v.log(j).body, x, y, w, h })), top: document.querySelector('#trace-timeline .tl-body').scrollTop }; });
    const it = pred(d);
    assert.ok(it, 'nothing to click');
    return { x: box.x + it.x + Math.min(it.w / 2, 40), y: box.y + it.y + it.h / 2 - d.top };
  };
  let p = await at((d) => d.bars.find((b) => b.name === 'store'));
  await page.mouse.click(p.x + 6, p.y);
  assert.equal(await page.textContent('#details h2'), 'store');
  const text = await page.textContent('#details');
  assert.match(text, /store\.rows/);
  assert.match(text, /parentjob \(in view-jobs · pid \d+ \(python\)\)/);
  assert.match(text, /processview-jobs-store · pid \d+ \(c\)/);
  assert.match(text, /threadmain #\d+/);
  assert.match(await page.innerHTML('#details'), /telemetry\.sdk\.language/);
  p = await at((d) => d.ticks.find((t) => t.body.startsWith('writing part 0')));
  await page.mouse.click(p.x + 1, p.y);
  assert.match(await page.textContent('#details h2'), /INFO writing part 0 \(\d+ rows\)/);
  assert.match(await page.textContent('#details'), /threadwriter-0 #\d/);
});

test('search filters traces by span name, attribute value and log text', async () => {
  const traces = byTrace();
  const lower = (v) => String(typeof v === 'object' ? JSON.stringify(v) : v).toLowerCase();
  const spanHit = (s, q) => s.name.toLowerCase().includes(q) || (s.status?.message ?? '').toLowerCase().includes(q) || Object.values(s.attrs).some((v) => lower(v).includes(q));
  const logHit = (l, q) => lower(l.body?.stringValue ?? '').includes(q) || Object.values(l.attrs).some((v) => lower(v).includes(q));
  for (const q of ['download', 'sqlite', 'fsync', 'negative']) {
    await page.fill('#search', q);
    await page.waitForFunction((q) => document.getElementById('search-count').dataset.q === q, q);
    const want = [...traces.keys()].filter((t) => traces.get(t).some((s) => spanHit(s, q)) || raw.logs.some((l) => l.traceId === t && logHit(l, q)));
    assert.ok(want.length > 0 && want.length < traces.size, `${q}: ${want.length}`);
    const listed = await page.$$eval('.trace-item', (els) => els.map((e) => +e.dataset.trace));
    const idOf = new Map((await pv(() => window.polytelView.traces())).map((t) => [t.index, t.id]));
    assert.deepEqual(listed.map((i) => idOf.get(i)).sort(), want.sort(), q);
    // In the timeline what matches is drawn full, the rest dimmed.
    const bars = await pv(() => { const v = window.polytelView; return v.drawn('trace').bars.map(([s, , , , , m]) => ({ id: v.span(s).id, trace: v.traces().find((t) => t.index === v.span(s).trace).id, m })); });
    const ids = spanById();
    for (const b of bars) {
      const s = ids.get(b.trace + b.id);
      const hit = spanHit(s, q) || raw.logs.some((l) => l.traceId === b.trace && l.spanId === b.id && logHit(l, q));
      assert.equal(b.m, hit ? 1 : 0, `${q}: ${s.name}`);
    }
  }
  await page.fill('#search', '');
  await page.waitForFunction(() => document.getElementById('search-count').dataset.q === '');
  assert.equal(await page.locator('.trace-item').count(), traces.size);
});

test('metrics: counters as rates, gauges as values, histograms as their last distribution', async () => {
  await page.click('#tabs button[data-tab="metrics"]');
  const card = (name) => page.locator('.card', { has: page.locator('.t', { hasText: new RegExp('^' + name.replace('.', '\\.') + '( |$)') }) }).first();
  assert.match(await card('jobs.done').textContent(), /rate per second \(cumulative counter\); total \d/);
  assert.ok(await card('jobs.done').locator('svg path').count() === 1);
  assert.match(await card('queue.depth').textContent(), /gauge; last 0/);
  const hist = raw.points.filter((p) => p.name === 'job.duration').sort((a, b) => Number(BigInt(a.timeUnixNano) - BigInt(b.timeUnixNano))).pop();
  assert.equal(await card('job.duration').locator('svg rect').count(), hist.bucketCounts.length);
  assert.match(await card('job.duration').textContent(), new RegExp(`last distribution: count ${hist.count}`));
});

test('accounting: recorded, exported and dropped per process from its self-metrics', async () => {
  await page.click('#tabs button[data-tab="accounting"]');
  const rows = await page.$$eval('#acct-table tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  const head = await page.$$eval('#acct-table thead th', (ths) => ths.map((th) => th.textContent));
  const pids = new Set([...raw.spans, ...raw.logs, ...raw.points].map((x) => x.pid));
  assert.equal(rows.length, pids.size);
  for (const r of rows) {
    const pid = r[head.indexOf('pid')];
    const newest = {};
    for (const p of raw.points.filter((x) => x.pid === pid && x.name.startsWith('polytel.')).sort((a, b) => Number(BigInt(a.timeUnixNano) - BigInt(b.timeUnixNano)))) {
      newest[p.name.slice(8) + (p.attrs.reason ? ': ' + p.attrs.reason : '')] = p.asInt ?? p.asDouble;
    }
    const reasons = head.filter((h) => h.startsWith('dropped: ')).map((h) => h.slice(9));
    assert.deepEqual(reasons, Object.keys(newest).filter((k) => k.startsWith('dropped: ')).map((k) => k.slice(9)).sort());
    assert.equal(r[head.indexOf('recorded')], newest.recorded, `pid ${pid}`);
    assert.equal(r[head.indexOf('exported')], newest.exported, `pid ${pid}`);
    for (const reason of reasons) assert.equal(r[head.indexOf('dropped: ' + reason)], String(newest['dropped: ' + reason]));
    assert.equal(r[head.indexOf('unconfirmed')], String(newest.unconfirmed)); // polytel.unconfirmed: every polytel process exports it
    const pending = newest.pending !== undefined ? Number(newest.pending)
      : Number(newest.recorded) - Number(newest.exported) - Number(newest.unconfirmed ?? 0) - reasons.reduce((a, k) => a + Number(newest['dropped: ' + k]), 0);
    assert.equal(r[head.indexOf('pending')], String(pending));
    assert.equal(r[head.indexOf('spans + logs in these files')], String([...raw.spans, ...raw.logs].filter((x) => x.pid === pid).length));
  }
  await page.click('#tabs button[data-tab="traces"]');
});

test('screenshots for docs/trace-view.md: a trace across processes and a process view, neither blank', async () => {
  // The page a user gets from these workers' folders (no corrupt or empty one), at a laptop's size.
  const out = join(tmp, 'docs.html');
  const r = buildPage([dirs.jobs, dirs.c], out);
  assert.equal(r.status, 0, r.stderr);
  const srv = await serveFile(out);
  const p = await browser.newPage({ viewport: { width: 1400, height: 820 } });
  try {
    await p.goto(srv.url);
    await p.waitForFunction(() => window.polytelView && window.polytelView.ready, null, { timeout: 60000 });
    const job = (await p.evaluate(() => window.polytelView.traces())).find((t) => t.root === 'job' && t.processes === 2);
    await p.click(`.trace-item[data-trace="${job.index}"]`);
    const store = await p.evaluate(() => { const v = window.polytelView; return v.drawn('trace').bars.find(([s]) => v.span(s).name === 'store'); });
    const box = await p.locator('#trace-timeline canvas.tl-canvas').boundingBox();
    await p.mouse.click(box.x + store[1] + 8, box.y + store[2] + store[4] / 2);
    assert.equal(await p.textContent('#details h2'), 'store');
    const shots = [['trace-view.png', '#trace-timeline canvas.tl-canvas', 10]];
    for (const [name, canvas, min] of shots) {
      await p.evaluate(() => new Promise((res) => requestAnimationFrame(() => requestAnimationFrame(res))));
      const shot = join(tmp, name);
      await p.screenshot({ path: shot });
      const colours = distinctColours(decodePng(readFileSync(shot)), await p.locator(canvas).boundingBox());
      // Service shades, log severities, the hatch of waits, link colours, lane backgrounds, text.
      assert.ok(colours.length >= min, `${name}: only ${colours.length} colours in the timeline: ${colours.join(' ')}`);
      mkdirSync(SHOTS, { recursive: true });
      copyFileSync(shot, join(SHOTS, name));
      if (name === 'trace-view.png') {
        await p.keyboard.press('Escape');
        await p.click('#tabs button[data-tab="process"]');
        const pyProc = (await p.evaluate(() => window.polytelView.processes())).find((x) => x.service === 'view-jobs');
        await p.selectOption('#proc-select', String(pyProc.index));
        shots.push(['trace-view-process.png', '#proc-timeline canvas.tl-canvas', 8]);
      }
    }
  } finally {
    await p.close();
    await srv.close();
  }
});

// bench_view.mjs — polytel.view at size: telemetry written by the real Python binding (file exporter), the page
// built by `python -m polytel.view`, loaded and drawn in Debian's chromium. Prints one table; each frame beside
// the 60 Hz frame budget (16.7 ms). Run by `make bench-view` (POLYTEL_PY: a python with polytel installed).
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { BUILD, CHROMIUM, CHROMIUM_ARGS, PY, buildPage, chromium, need, runWorker, serveFile } from '../tests/view/helpers.mjs';

const SIZES = (process.env.BENCH_VIEW_SIZES ?? '1000,10000,100000').split(',').map(Number);
const FRAME = 1000 / 60;
const OUT = join(BUILD, 'bench-view');

// N spans and N logs: 4 threads, traces of 10 spans (a root, three children with two grandchildren each), a log
// in every span, one trace in 10 with an error. Flushed as it goes so nothing waits for the pool.
const GEN = `
import sys, threading, polytel
polytel.bootstrap_worker()
n = int(sys.argv[1]); per_thread = n // 4
def work(t):
    done = 0
    while done < per_thread:
        k = done // 10
        with polytel.span("request", route="/items/%d" % (k % 50), worker=t):
            polytel.info("request %d on worker %d" % (k, t), k=k)
            for c in range(3):
                with polytel.span("step.%d" % c, k=k):
                    polytel.info("step %d" % c)
                    for g in range(2):
                        with polytel.span("db.query", table="t%d" % g) as sp:
                            polytel.warn("slow query %d" % g) if g else polytel.info("query %d" % g)
                            if c == 2 and g == 1 and k % 10 == 0:
                                sp.set_status("error", "timeout")
        done += 10
        if done % 2000 == 0:
            polytel.flush(timeout_ms=10000)
ts = [threading.Thread(target=work, args=(t,), name="worker-%d" % t) for t in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
s = polytel.stats()
print(s["spans_recorded"], s["logs_recorded"], s["dropped"])
sys.exit(0 if polytel.shutdown(timeout_ms=30000) == 0 else 1)
`;

function pct(a, q) { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; }

need(CHROMIUM, 'apt-get install chromium');
need(PY, 'make py-venv');
rmSync(OUT, { recursive: true, force: true });
const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, '--enable-precise-memory-info'], headless: true });
const rows = [];
try {
  for (const n of SIZES) {
    const dir = join(OUT, String(n));
    mkdirSync(dir, { recursive: true });
    const gen = runWorker(PY, ['-c', GEN, String(n)], dir, 'bench-view', { POLYTEL_MAX_MEMORY: String(512 << 20) });
    const [spans, logs, dropped] = gen.stdout.trim().split(/\s+/).map(Number);
    const page = join(dir, 'trace.html');
    const t0 = process.hrtime.bigint();
    const b = buildPage([dir], page);
    const writeMs = Number(process.hrtime.bigint() - t0) / 1e6;
    if (b.status !== 0) throw new Error(b.stderr);
    const srv = await serveFile(page);
    const p = await browser.newPage({ viewport: { width: 1400, height: 860 } });
    await p.goto(srv.url, { timeout: 300000 });
    await p.waitForFunction(() => window.polytelView && window.polytelView.ready, null, { timeout: 300000 });
    const m = await p.evaluate(() => {
      const v = window.polytelView, t = v.timings;
      const out = { ...t, counts: v.counts };
      // The process view of the busiest process: every span and log of it on one canvas.
      v.tab('process');
      const tl = v.timeline('process');
      tl.draw();
      out.procDraw = tl.lastDrawMs;
      // 15 zoom steps in (to 1/30 of the whole), 40 pans there, 15 steps out, 20 scrolls: each a full synchronous draw.
      const frames = [];
      tl.fit();
      for (let i = 0; i < 15; i++) { tl.zoom(0.8, 0.4); tl.draw(); frames.push(tl.lastDrawMs); }
      for (let i = 0; i < 40; i++) { tl.pan(i % 2 ? -0.3 : 0.3); tl.draw(); frames.push(tl.lastDrawMs); }
      for (let i = 0; i < 15; i++) { tl.zoom(1.25, 0.4); tl.draw(); frames.push(tl.lastDrawMs); }
      for (let i = 0; i < 20; i++) { tl.body.scrollTop = (i % 2) * 200; tl.draw(); frames.push(tl.lastDrawMs); }
      out.frames = frames;
      let s0 = performance.now();
      v.setSearch('worker 3');
      out.search = performance.now() - s0;
      v.setSearch('');
      v.tab('traces');
      const big = v.traces().reduce((a, x) => (x.spans > a.spans ? x : a));
      s0 = performance.now();
      v.selectTrace(big.index);
      out.traceSelect = performance.now() - s0;
      out.heap = performance.memory ? performance.memory.usedJSHeapSize / 1048576 : NaN;
      return out;
    });
    await p.close();
    await srv.close();
    rows.push({ n, spans, logs, dropped, mb: statSync(page).size / 1048576, writeMs, ...m });
  }
} finally {
  await browser.close();
}

const node = process.version;
const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const ver = spawnSync(CHROMIUM, ['--version'], { encoding: 'utf8' }).stdout.trim();
console.log(`${ver}, node ${node}, viewport 1400x860; the busiest process's view drawn while zooming, panning and scrolling`);
console.log('(90 synchronous draws: zoom in, pan, zoom out, scroll); times in ms unless noted. "ready" is from navigation start to the first trace drawn.\n');
console.log('| spans + logs (dropped) | page | write (python) | ready | JSON.parse | index | trace select | process draw | draw p50 / p95 / max | search | JS heap |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.spans} + ${r.logs} (${r.dropped}) | ${fmt(r.mb)} MB | ${fmt(r.writeMs, 0)} | ${fmt(r.readyAt, 0)} | ${fmt(r.parse, 0)} | ${fmt(r.index, 0)} | ` +
    `${fmt(r.traceSelect)} | ${fmt(r.procDraw)} | ${fmt(pct(r.frames, 0.5))} / ${fmt(pct(r.frames, 0.95))} / ${fmt(Math.max(...r.frames))} | ${fmt(r.search, 0)} | ${fmt(r.heap, 0)} MB |`);
}
console.log('');
for (const r of rows) {
  const p95 = pct(r.frames, 0.95);
  console.log(`draw p95 at ${r.spans} spans vs a 60 Hz frame (${fmt(FRAME)} ms)   ${fmt(p95, 2)} ms   ${(p95 / FRAME).toFixed(2)}x   <=1x ${p95 <= FRAME ? 'met' : 'not met'}`);
}

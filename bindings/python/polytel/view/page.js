// page.js — the polytel trace view: reads the model embedded in the page and draws traces, processes,
// metrics and the accounting. No network, no dependency. Timelines are canvases drawn from per-row
// indexes (virtualised: only what is on screen is visited closely, and one pixel is painted once).
'use strict';
(function () {
  const T0 = performance.now();
  const D = JSON.parse(document.getElementById('polytel-data').textContent);
  const T_PARSED = performance.now();

  // ------------------------------------------------------------------ model
  const STR = D.strings;
  const ATTRS = D.attrsets;
  const PROCS = D.processes;
  const S = D.spans;
  const L = D.logs;
  const NS = S.start.length;
  const NL = L.time.length;
  const sStart = Float64Array.from(S.start);
  const sEnd = Float64Array.from(S.end);
  const sLane = Int32Array.from(S.lane);
  const sParent = Int32Array.from(S.parent);
  const sTrace = Int32Array.from(S.trace);
  const sName = Int32Array.from(S.name);
  const sStatus = Int8Array.from(S.status);
  const sAttrs = Int32Array.from(S.attrs);
  const lTime = Float64Array.from(L.time);
  const lLane = Int32Array.from(L.lane);
  const lSpan = Int32Array.from(L.span);
  const lSev = Uint8Array.from(L.sev);
  const lAttrs = Int32Array.from(L.attrs);
  const LANES = D.lanes.map(([proc, tid, name], i) => ({ i, proc, tid, name }));
  const NT = D.traces.length;

  function attrsOf(i) { return i >= 0 ? ATTRS[i] : []; }
  function hasKeyPrefix(i, prefix) {
    if (i < 0) return false;
    for (const kv of ATTRS[i]) if (STR[kv[0]].startsWith(prefix)) return true;
    return false;
  }

  // CSR lists: children per span, logs per span, spans per trace, spans per lane (by start).
  function csr(n, count, keyOf, order) {
    const off = new Int32Array(n + 1);
    for (let i = 0; i < count; i++) { const k = keyOf(i); if (k >= 0) off[k + 1]++; }
    for (let k = 0; k < n; k++) off[k + 1] += off[k];
    const fill = off.slice(0, n);
    const list = new Int32Array(off[n]);
    const it = order || null;
    for (let j = 0; j < count; j++) {
      const i = it ? it[j] : j;
      const k = keyOf(i);
      if (k >= 0) list[fill[k]++] = i;
    }
    return { off, list };
  }
  const byStart = Int32Array.from({ length: NS }, (_, i) => i).sort((a, b) => sStart[a] - sStart[b] || sEnd[b] - sEnd[a]);
  const CHILD = csr(NS, NS, (i) => sParent[i], byStart);
  const SLOGS = csr(NS, NL, (j) => lSpan[j]);
  const TSPANS = csr(NT, NS, (i) => sTrace[i], byStart);
  const LSPANS = csr(LANES.length, NS, (i) => sLane[i], byStart);
  const LLOGS = csr(LANES.length, NL, (j) => lLane[j]);

  // Depth (for ordering ties) without recursion.
  const sDepth = new Int16Array(NS).fill(-1);
  for (let i = 0; i < NS; i++) {
    if (sDepth[i] >= 0) continue;
    const path = [];
    let j = i, guard = 0;
    while (j >= 0 && sDepth[j] < 0 && guard++ < 10000) { path.push(j); j = sParent[j]; }
    let d = j >= 0 && sDepth[j] >= 0 ? sDepth[j] : -1;
    for (let k = path.length - 1; k >= 0; k--) sDepth[path[k]] = Math.min(++d, 32000);
  }

  // Flags: 1 error status, 2 exception (attributes or an "exception" event); async spans.
  const sErr = new Uint8Array(NS);
  for (let i = 0; i < NS; i++) {
    if (sStatus[i] === 2) sErr[i] |= 1;
    if (hasKeyPrefix(sAttrs[i], 'exception.')) sErr[i] |= 2;
  }
  for (const k in S.events) for (const ev of S.events[k]) if (ev[1] === 'exception') sErr[+k] |= 2;
  const lExc = new Uint8Array(NL);
  for (let j = 0; j < NL; j++) if (hasKeyPrefix(lAttrs[j], 'exception.')) lExc[j] = 1;
  // Async: started from another thread's context, fanned out to another thread, or ran beside an unrelated
  // span on its own thread (concurrent tasks). Their waits are drawn hatched.
  const sAsync = new Uint8Array(NS);
  for (let i = 0; i < NS; i++) {
    const p = sParent[i];
    if (p >= 0 && sLane[p] !== sLane[i] && LANES[sLane[p]].proc === LANES[sLane[i]].proc) { sAsync[i] = 1; sAsync[p] = 1; }
  }

  // Traces: extent, root, processes, errors.
  const TR = new Array(NT);
  for (let t = 0; t < NT; t++) {
    const a = TSPANS.off[t], b = TSPANS.off[t + 1];
    let t0 = Infinity, t1 = -Infinity, root = -1, errs = 0, logs = 0;
    const procs = new Set(), lanes = new Set();
    for (let k = a; k < b; k++) {
      const i = TSPANS.list[k];
      if (sStart[i] < t0) t0 = sStart[i];
      if (sEnd[i] > t1) t1 = sEnd[i];
      if (root < 0 && sParent[i] < 0) root = i;
      if (sErr[i]) errs++;
      procs.add(LANES[sLane[i]].proc);
      lanes.add(sLane[i]);
      logs += SLOGS.off[i + 1] - SLOGS.off[i];
    }
    if (root < 0 && b > a) root = TSPANS.list[a];
    TR[t] = { t, t0, t1, root, n: b - a, errs, logs, procs: [...procs], nlanes: lanes.size };
  }
  const traceOrder = TR.map((x) => x.t).sort((a, b) => TR[a].t0 - TR[b].t0);

  // ------------------------------------------------------------- formatting
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  function fmtDur(ns) {
    const a = Math.abs(ns);
    if (a < 1e3) return ns.toFixed(0) + ' ns';
    if (a < 1e6) return (ns / 1e3).toFixed(a < 1e4 ? 2 : 1) + ' µs';
    if (a < 1e9) return (ns / 1e6).toFixed(a < 1e7 ? 2 : 1) + ' ms';
    if (a < 6e10) return (ns / 1e9).toFixed(a < 1e10 ? 3 : 2) + ' s';
    return Math.floor(a / 6e10) + ' min ' + ((a % 6e10) / 1e9).toFixed(1) + ' s';
  }
  const BASE = BigInt(D.t0);
  function fmtTime(off) {
    const ns = BASE + BigInt(Math.round(off));
    const ms = Number(ns / 1000000n);
    const sub = String(ns % 1000000n).padStart(6, '0');
    const d = new Date(ms);
    return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, '.' + String(ms % 1000).padStart(3, '0') + sub + ' UTC');
  }
  function fmtVal(v) {
    if (v === null || v === undefined) return '<i>null</i>';
    if (typeof v === 'object') return esc(JSON.stringify(v));
    return esc(String(v));
  }
  function procLabel(p) {
    const P = PROCS[p];
    return P.service + (P.pid !== null && P.pid !== undefined ? ' · pid ' + P.pid : '') + (P.lang ? ' (' + P.lang + ')' : '');
  }
  function laneLabel(l) {
    const x = LANES[l];
    if (x.tid === null) return { name: 'no thread', tid: '' };
    return { name: x.name || 'thread', tid: '#' + x.tid };
  }
  const SEV = [[1, 'TRACE', '#8c959f'], [5, 'DEBUG', '#5f8dd3'], [9, 'INFO', '#1a7f37'], [13, 'WARN', '#d4a72c'], [17, 'ERROR', '#cf222e'], [21, 'FATAL', '#8250df']];
  function sevInfo(n) {
    let r = [0, 'UNSET', '#afb8c1'];
    for (const s of SEV) if (n >= s[0]) r = s;
    return r;
  }

  // Colours: one hue per service (red is kept for errors), a lightness step per span name.
  const HUES = [212, 28, 135, 268, 178, 48, 318, 95, 245, 160];
  const serviceIx = new Map();
  for (const P of PROCS) if (!serviceIx.has(P.service)) serviceIx.set(P.service, serviceIx.size);
  const procHue = PROCS.map((P) => HUES[serviceIx.get(P.service) % HUES.length]);
  const colorCache = new Map();
  function spanColor(i) {
    const p = LANES[sLane[i]].proc, n = sName[i];
    const key = p * 1e7 + n;
    let c = colorCache.get(key);
    if (!c) {
      let h = 0;
      for (const ch of STR[n]) h = (h * 31 + ch.charCodeAt(0)) | 0;
      c = 'hsl(' + procHue[p] + ',' + (52 + (Math.abs(h) % 3) * 8) + '%,' + (50 + (Math.abs(h >> 3) % 5) * 6) + '%)';
      colorCache.set(key, c);
    }
    return c;
  }

  // ------------------------------------------------------------- search
  const attrHay = new Array(ATTRS.length);
  function hayOf(a) {
    if (a < 0) return '';
    let h = attrHay[a];
    if (h === undefined) {
      h = ATTRS[a].map((kv) => (typeof kv[1] === 'object' ? JSON.stringify(kv[1]) : String(kv[1]))).join('\u0001').toLowerCase();
      attrHay[a] = h;
    }
    return h;
  }
  let query = '';
  let sMatch = null, lMatch = null, tMatch = null;
  function runSearch(q) {
    query = q.trim().toLowerCase();
    if (!query) { sMatch = lMatch = tMatch = null; return; }
    sMatch = new Uint8Array(NS); lMatch = new Uint8Array(NL); tMatch = new Uint8Array(NT);
    const nameHit = STR.map((s) => s.toLowerCase().includes(query));
    for (let i = 0; i < NS; i++) {
      if (nameHit[sName[i]] || (S.msg[i] >= 0 && nameHit[S.msg[i]]) || hayOf(sAttrs[i]).includes(query)) {
        sMatch[i] = 1; tMatch[sTrace[i]] = 1;
      }
    }
    for (let j = 0; j < NL; j++) {
      if (L.body[j].toLowerCase().includes(query) || hayOf(lAttrs[j]).includes(query)) {
        lMatch[j] = 1;
        if (lSpan[j] >= 0) { tMatch[sTrace[lSpan[j]]] = 1; sMatch[lSpan[j]] |= 2; }
      }
    }
  }

  // ------------------------------------------------------------- views
  const ROW_H = 18, PROC_H = 22, LANE_PAD = 3, MAX_ROWS = 64;

  // Packs spans of one lane into rows: a child goes below its parent, siblings side by side, spans that overlap
  // without nesting (concurrent tasks) in separate rows; those are marked async.
  function packLane(list, rowOf, markAsync) {
    const rowEnd = [], rowLast = [];
    let capped = false;
    for (const s of list) {
      const p = sParent[s];
      let r = p >= 0 && sLane[p] === sLane[s] && rowOf[p] >= 0 ? rowOf[p] + 1 : 0;
      const min = r;
      while (r < rowEnd.length && rowEnd[r] > sStart[s]) r++;
      if (r >= MAX_ROWS) { r = MAX_ROWS - 1; capped = true; }
      if (markAsync && r > min && min < rowLast.length) {
        sAsync[s] = 1;
        const o = rowLast[min];
        if (o !== undefined && o !== p) sAsync[o] = 1;
      }
      if (rowEnd[r] === undefined || sEnd[s] > rowEnd[r]) rowEnd[r] = sEnd[s];
      rowLast[r] = s;
      rowOf[s] = r;
    }
    return { rows: rowEnd.length, capped };
  }

  // A view: lanes (grouped by process) with rows of spans and of logs, links, extent.
  function buildView(spanList, logList, procOrder, markAsync) {
    const rowOf = new Int16Array(NS).fill(-1);
    const perLane = new Map();
    for (const s of spanList) {
      let a = perLane.get(sLane[s]);
      if (!a) perLane.set(sLane[s], (a = []));
      a.push(s);
    }
    const inView = new Uint8Array(NS);
    for (const s of spanList) inView[s] = 1;
    const freeLogs = new Map();
    for (const j of logList) {
      const s = lSpan[j];
      if (s >= 0 && inView[s]) continue;
      let a = freeLogs.get(lLane[j]);
      if (!a) freeLogs.set(lLane[j], (a = []));
      a.push(j);
      if (!perLane.has(lLane[j])) perLane.set(lLane[j], []);
    }
    const laneIds = [...perLane.keys()];
    const pos = new Map(procOrder.map((p, k) => [p, k]));
    laneIds.sort((a, b) => (pos.get(LANES[a].proc) ?? 1e9) - (pos.get(LANES[b].proc) ?? 1e9) || LANES[a].proc - LANES[b].proc ||
      (LANES[a].tid === null) - (LANES[b].tid === null) || Number(LANES[a].tid) - Number(LANES[b].tid));
    const lanes = [], heads = [];
    const laneOfId = new Map();
    let y = 0, lastProc = -1, t0 = Infinity, t1 = -Infinity;
    for (const l of laneIds) {
      const list = perLane.get(l);
      list.sort((a, b) => sStart[a] - sStart[b] || sEnd[b] - sEnd[a] || sDepth[a] - sDepth[b]);
      const { rows, capped } = packLane(list, rowOf, markAsync);
      const proc = LANES[l].proc;
      if (proc !== lastProc) { heads.push({ proc, y }); y += PROC_H; lastProc = proc; }
      const free = freeLogs.get(l) || [];
      const nrows = Math.max(rows, 1) + (free.length ? 1 : 0);
      const lane = { lane: l, proc, y, rows: nrows, spanRows: rows, h: nrows * ROW_H + 2 * LANE_PAD + 14, capped, spans: [], logs: [] };
      for (let r = 0; r < nrows; r++) { lane.spans.push([]); lane.logs.push([]); }
      for (const s of list) {
        lane.spans[rowOf[s]].push(s);
        if (sStart[s] < t0) t0 = sStart[s];
        if (sEnd[s] > t1) t1 = sEnd[s];
      }
      if (free.length) {
        const r = nrows - 1;
        for (const j of free) { lane.logs[r].push(j); if (lTime[j] < t0) t0 = lTime[j]; if (lTime[j] > t1) t1 = lTime[j]; }
      }
      lanes.push(lane);
      laneOfId.set(l, lane);
      y += lane.h;
    }
    // Logs on their span's row (in time order: logList is sorted).
    for (const j of logList) {
      const s = lSpan[j];
      if (s < 0 || !inView[s]) continue;
      laneOfId.get(sLane[s]).logs[rowOf[s]].push(j);
    }
    for (const lane of lanes) {
      lane.spans = lane.spans.map((a) => Int32Array.from(a));
      lane.logs = lane.logs.map((a) => Int32Array.from(a));
    }
    // Links: parent -> child on another lane (thread or process); OTLP span links between spans in view.
    const links = [];
    for (const s of spanList) {
      const p = sParent[s];
      if (p >= 0 && inView[p] && sLane[p] !== sLane[s]) links.push([p, s, LANES[sLane[p]].proc !== LANES[sLane[s]].proc ? 1 : 0, 0]);
    }
    const idIndex = new Map();
    let anyLinks = false;
    for (const k in S.links) { anyLinks = true; break; }
    if (anyLinks) {
      for (const s of spanList) idIndex.set(D.traces[sTrace[s]] + S.id[s], s);
      for (const s of spanList) {
        const ls = S.links[s];
        if (!ls) continue;
        for (const ln of ls) {
          const o = idIndex.get(ln[0] + ln[1]);
          if (o !== undefined) links.push([o, s, LANES[sLane[o]].proc !== LANES[sLane[s]].proc ? 1 : 0, 1]);
        }
      }
    }
    if (t0 === Infinity) { t0 = 0; t1 = 1; }
    if (t1 <= t0) t1 = t0 + 1000;
    return { lanes, heads, rowOf, inView, links, t0, t1, totalH: y + ROW_H, nspans: spanList.length, nlogs: logList.length };
  }

  // Global packing once: per-lane rows for the process view, and the concurrency part of the async flags.
  const T_IDX0 = performance.now();
  const procViews = new Map();
  function processView(p) {
    let v = procViews.get(p);
    if (!v) {
      const spans = [], logs = [];
      for (let l = 0; l < LANES.length; l++) {
        if (LANES[l].proc !== p) continue;
        for (let k = LSPANS.off[l]; k < LSPANS.off[l + 1]; k++) spans.push(LSPANS.list[k]);
        for (let k = LLOGS.off[l]; k < LLOGS.off[l + 1]; k++) logs.push(LLOGS.list[k]);
      }
      logs.sort((a, b) => a - b); // logs are stored in time order: index order is time order
      v = buildView(spans, logs, [p], true);
      procViews.set(p, v);
    }
    return v;
  }
  for (let p = 0; p < PROCS.length; p++) processView(p);
  const T_IDX1 = performance.now();

  function traceView(t) {
    const spans = [], logs = [];
    for (let k = TSPANS.off[t]; k < TSPANS.off[t + 1]; k++) {
      const s = TSPANS.list[k];
      spans.push(s);
      for (let q = SLOGS.off[s]; q < SLOGS.off[s + 1]; q++) logs.push(SLOGS.list[q]);
    }
    logs.sort((a, b) => a - b);
    const first = new Map();
    for (const s of spans) { const p = LANES[sLane[s]].proc; if (!first.has(p)) first.set(p, sStart[s]); }
    const order = [...first.keys()].sort((a, b) => first.get(a) - first.get(b));
    return buildView(spans, logs, order, false);
  }

  // Waits of a span: time its thread ran unrelated spans after it started (it was suspended), and time
  // its children ran on another thread or process. Computed on first draw, cached.
  const waitCache = new Map();
  function isDescendant(x, s) {
    let g = 0;
    while (x >= 0 && sDepth[x] > sDepth[s] && g++ < 10000) x = sParent[x];
    return x === s;
  }
  function waitsOf(s) {
    let w = waitCache.get(s);
    if (w) return w;
    const iv = [];
    const a = sStart[s], b = sEnd[s];
    for (let k = CHILD.off[s]; k < CHILD.off[s + 1]; k++) {
      const c = CHILD.list[k];
      if (sLane[c] !== sLane[s]) iv.push([Math.max(a, sStart[c]), Math.min(b, sEnd[c])]);
    }
    if (sAsync[s]) {
      const l = sLane[s], off = LSPANS.off[l], end = LSPANS.off[l + 1], list = LSPANS.list;
      let lo = off, hi = end;
      while (lo < hi) { const m = (lo + hi) >> 1; if (sStart[list[m]] < a) lo = m + 1; else hi = m; }
      for (let k = lo, n = 0; k < end && sStart[list[k]] < b && n < 5000; k++, n++) {
        const x = list[k];
        if (x === s || isDescendant(x, s) || isDescendant(s, x)) continue;
        iv.push([sStart[x], Math.min(b, sEnd[x])]);
      }
    }
    iv.sort((p, q) => p[0] - q[0]);
    w = [];
    for (const x of iv) {
      if (x[1] <= x[0]) continue;
      const last = w[w.length - 1];
      if (last && x[0] <= last[1]) last[1] = Math.max(last[1], x[1]);
      else w.push([x[0], x[1]]);
    }
    waitCache.set(s, w);
    return w;
  }

  // ------------------------------------------------------------- timeline
  const GUTTER = 240;
  let hatch = null;
  function hatchPattern(ctx) {
    if (hatch) return hatch;
    const c = document.createElement('canvas');
    c.width = c.height = 6;
    const g = c.getContext('2d');
    g.fillStyle = 'rgba(255,255,255,0.72)';
    g.fillRect(0, 0, 6, 6);
    g.strokeStyle = 'rgba(60,60,60,0.55)';
    g.lineWidth = 1;
    g.beginPath(); g.moveTo(0, 6); g.lineTo(6, 0); g.moveTo(-3, 3); g.lineTo(3, -3); g.moveTo(3, 9); g.lineTo(9, 3); g.stroke();
    hatch = ctx.createPattern(c, 'repeat');
    return hatch;
  }

  class Timeline {
    constructor(root, name) {
      this.root = root;
      this.name = name;
      root.innerHTML = '<div class="tl-axis"><div class="tl-tools"><button data-a="fit" title="fit (F)">Fit</button>' +
        '<button data-a="in" title="zoom in (W)">+</button><button data-a="out" title="zoom out (S)">−</button>' +
        '<span class="hint">ctrl+wheel: zoom</span></div><canvas></canvas></div>' +
        '<div class="tl-body"><div class="tl-spacer"><div class="tl-gutter"></div><canvas class="tl-canvas"></canvas></div></div>';
      this.axis = root.querySelector('.tl-axis canvas');
      this.body = root.querySelector('.tl-body');
      this.spacer = root.querySelector('.tl-spacer');
      this.gutter = root.querySelector('.tl-gutter');
      this.canvas = root.querySelector('.tl-canvas');
      this.view = null;
      this.vt0 = 0; this.vt1 = 1;
      this.sel = null; // {kind:'span'|'log', i}
      this.drawn = { barsFlat: [], ticksFlat: [], merged: [], links: [], waits: [], lanes: [] };
      this.lastDrawMs = 0;
      this.pending = false;
      this.onSelect = null;
      root.querySelector('.tl-tools').addEventListener('click', (e) => {
        const a = e.target.dataset && e.target.dataset.a;
        if (a === 'fit') this.fit();
        else if (a === 'in') this.zoom(0.5, 0.5);
        else if (a === 'out') this.zoom(2, 0.5);
      });
      this.body.addEventListener('scroll', () => { this.schedule(); });
      this.canvas.addEventListener('wheel', (e) => this.wheel(e), { passive: false });
      this.axis.addEventListener('wheel', (e) => this.wheel(e, true), { passive: false });
      this.installDrag();
      new ResizeObserver(() => this.schedule()).observe(this.body);
    }

    setView(view) {
      this.view = view;
      this.sel = null;
      this.spacer.style.height = view.totalH + 'px';
      this.root.dataset.lanes = view.lanes.length;
      this.root.dataset.spans = view.nspans;
      this.root.dataset.logs = view.nlogs;
      this.body.scrollTop = 0;
      this.fit();
    }

    fit() {
      if (!this.view) return;
      const pad = (this.view.t1 - this.view.t0) * 0.02;
      this.vt0 = this.view.t0 - pad; this.vt1 = this.view.t1 + pad;
      this.draw();
    }

    zoom(f, at) {
      const w = this.vt1 - this.vt0, c = this.vt0 + w * at;
      const nw = Math.max(100, Math.min(w * f, 1e15));
      this.vt0 = c - nw * at; this.vt1 = this.vt0 + nw;
      this.schedule();
    }

    pan(frac) {
      const w = this.vt1 - this.vt0;
      this.vt0 += w * frac; this.vt1 += w * frac;
      this.schedule();
    }

    wheel(e, onAxis) {
      const rect = this.canvas.getBoundingClientRect();
      const at = Math.min(1, Math.max(0, (e.clientX - rect.left) / Math.max(1, rect.width)));
      if (e.ctrlKey || e.metaKey || onAxis) {
        e.preventDefault();
        this.zoom(Math.pow(1.0025, e.deltaY), at);
      } else if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
        e.preventDefault();
        this.pan((e.deltaX || e.deltaY) / Math.max(1, rect.width));
      }
    }

    installDrag() {
      let down = null, moved = false;
      this.canvas.addEventListener('mousedown', (e) => { down = { x: e.clientX, y: e.clientY, t0: this.vt0, t1: this.vt1, st: this.body.scrollTop }; moved = false; });
      window.addEventListener('mousemove', (e) => {
        if (!down) return;
        const dx = e.clientX - down.x, dy = e.clientY - down.y;
        if (Math.abs(dx) + Math.abs(dy) > 3) { moved = true; this.canvas.classList.add('drag'); }
        if (!moved) return;
        const w = down.t1 - down.t0, px = Math.max(1, this.cssW);
        this.vt0 = down.t0 - dx / px * w; this.vt1 = down.t1 - dx / px * w;
        this.body.scrollTop = down.st - dy;
        this.schedule();
      });
      window.addEventListener('mouseup', (e) => {
        if (down && !moved) this.click(e);
        down = null;
        this.canvas.classList.remove('drag');
      });
      this.canvas.addEventListener('dblclick', (e) => {
        const hit = this.hit(e);
        if (hit && hit.kind === 'span') {
          const s = hit.i, pad = (sEnd[s] - sStart[s]) * 0.05 + 100;
          this.vt0 = sStart[s] - pad; this.vt1 = sEnd[s] + pad;
          this.schedule();
        }
      });
    }

    schedule() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.draw(); });
    }

    X(t) { return (t - this.vt0) / (this.vt1 - this.vt0) * this.cssW; }
    T(x) { return this.vt0 + x / this.cssW * (this.vt1 - this.vt0); }

    rowY(lane, r) { return lane.y + LANE_PAD + 14 + r * ROW_H; }

    visibleLanes(top, bottom) {
      const lanes = this.view.lanes;
      let lo = 0, hi = lanes.length;
      while (lo < hi) { const m = (lo + hi) >> 1; if (lanes[m].y + lanes[m].h < top) lo = m + 1; else hi = m; }
      const out = [];
      for (let k = lo; k < lanes.length && lanes[k].y <= bottom; k++) out.push(lanes[k]);
      return out;
    }

    hit(e) {
      if (!this.view) return null;
      const rect = this.canvas.getBoundingClientRect();
      const x = e.clientX - rect.left, y = e.clientY - rect.top + this.body.scrollTop;
      for (const lane of this.visibleLanes(y - 1, y + 1)) {
        const r = Math.floor((y - lane.y - LANE_PAD - 14) / ROW_H);
        if (r < 0 || r >= lane.rows) continue;
        // Log ticks first (they sit on top of bars), nearest within 3 px.
        const logs = lane.logs[r];
        let best = -1, bd = 4;
        let lo = lowerBound(logs, this.T(x - 4), lTime);
        for (let k = lo; k < logs.length && lTime[logs[k]] <= this.T(x + 4); k++) {
          const d = Math.abs(this.X(lTime[logs[k]]) - x);
          if (d < bd || (d === bd && lSev[logs[k]] > lSev[logs[best]])) { bd = d; best = logs[k]; }
        }
        if (best >= 0) return { kind: 'log', i: best };
        const arr = lane.spans[r];
        lo = lane.capped ? 0 : lowerBound(arr, this.T(x - 2), sEnd);
        for (let k = lo; k < arr.length && sStart[arr[k]] <= this.T(x + 2); k++) {
          const s = arr[k];
          if (this.X(sStart[s]) <= x + 2 && this.X(sEnd[s]) >= x - 2) return { kind: 'span', i: s };
        }
      }
      return null;
    }

    click(e) {
      const h = this.hit(e);
      this.sel = h;
      this.draw();
      if (this.onSelect) this.onSelect(h);
    }

    select(kind, i) {
      this.sel = { kind, i };
      const s = kind === 'span' ? i : lSpan[i];
      if (this.view && s >= 0 && this.view.inView[s]) {
        const lane = this.view.lanes.find((x) => x.lane === sLane[s]);
        if (lane) {
          const y = this.rowY(lane, this.view.rowOf[s]);
          if (y < this.body.scrollTop || y > this.body.scrollTop + this.body.clientHeight - ROW_H) this.body.scrollTop = Math.max(0, y - 60);
        }
        const t = kind === 'span' ? sStart[s] : lTime[i];
        if (t < this.vt0 || t > this.vt1) { const w = this.vt1 - this.vt0; this.vt0 = t - w / 3; this.vt1 = this.vt0 + w; }
      }
      this.draw();
    }

    sizeCanvas(c, w, h) {
      const dpr = window.devicePixelRatio || 1;
      if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
        c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
        c.style.width = w + 'px'; c.style.height = h + 'px';
      }
      const ctx = c.getContext('2d');
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      return ctx;
    }

    draw() {
      const t = performance.now();
      if (!this.view || !this.root.offsetParent) { this.lastDrawMs = 0; return; }
      const w = Math.max(50, this.body.clientWidth - GUTTER), h = Math.max(50, this.body.clientHeight);
      this.cssW = w;
      this.drawAxis(w);
      const ctx = this.sizeCanvas(this.canvas, w, h);
      const top = this.body.scrollTop, bottom = top + h;
      const v = this.view;
      // bars/ticks are flat (5-6 numbers each): a zoomed-out frame paints tens of thousands of them.
      // Reused from frame to frame: a frame that allocates nothing big never waits for the collector.
      const pool = this.pool || (this.pool = { bars: [], ticks: [], wide: [], fills: new Map() });
      const bars = pool.bars, ticks = pool.ticks, wide = pool.wide, fills = pool.fills;
      bars.length = ticks.length = wide.length = 0;
      for (const a of fills.values()) a.length = 0;
      const dr = this.drawn = { barsFlat: bars, ticksFlat: ticks, merged: [], links: [], waits: [], lanes: [] };
      ctx.clearRect(0, 0, w, h);
      ctx.save();
      ctx.translate(0, -top);
      // Process bands and lane backgrounds.
      for (const hd of v.heads) {
        if (hd.y + PROC_H < top || hd.y > bottom) continue;
        ctx.fillStyle = '#eef1f4';
        ctx.fillRect(0, hd.y, w, PROC_H);
      }
      const lanes = this.visibleLanes(top, bottom);
      const dimAll = sMatch !== null;
      const vt0 = this.vt0, vt1 = this.vt1, k = w / (vt1 - vt0);
      // Fills are batched per colour (one path each): state changes, not rectangles, are what a canvas pays for.
      const rect = (style, x, y, rw, rh) => { let a = fills.get(style); if (!a) fills.set(style, (a = [])); a.push(x, y, rw, rh); };
      // wide: bars with room for decorations, drawn over the fills.
      const excMarks = [];
      for (const lane of lanes) {
        dr.lanes.push(lane.lane);
        ctx.fillStyle = (lane.lane % 2) ? '#fbfcfd' : '#ffffff';
        ctx.fillRect(0, lane.y, w, lane.h);
        ctx.fillStyle = '#eaeef2';
        ctx.fillRect(0, lane.y, w, 1);
        for (let r = 0; r < lane.rows; r++) {
          const y = this.rowY(lane, r);
          if (y + ROW_H < top || y > bottom) continue;
          const arr = lane.spans[r];
          let i = lane.capped ? 0 : lowerBound(arr, vt0, sEnd);
          let lastPx = -10, mergedFrom = -1;
          for (; i < arr.length; i++) {
            const s = arr[i];
            const st = sStart[s];
            if (st > vt1) break;
            if (sEnd[s] < vt0) continue;
            let x0 = (st - vt0) * k, x1 = (sEnd[s] - vt0) * k;
            if (x1 - x0 < 1 && Math.floor(x0) <= lastPx) { // lands on a pixel already painted: skip to the next pixel
              if (mergedFrom < 0) mergedFrom = i;
              if (!lane.capped) {
                // Of the spans starting inside the painted pixel only the last can reach past it (a row never
                // overlaps itself): look at that one next.
                const next = lowerBound(arr, vt0 + (lastPx + 1) / k, sStart);
                if (next - 1 > i + 1) i = next - 2;
              }
              continue;
            }
            if (mergedFrom >= 0) { dr.merged.push([lane.lane, r, arr[mergedFrom], arr[i - 1], i - mergedFrom]); mergedFrom = -1; }
            if (x0 < -2) x0 = -2;
            if (x1 > w + 2) x1 = w + 2;
            const bw = x1 - x0 < 1 ? 1 : x1 - x0;
            lastPx = Math.floor(x0 + bw - 1);
            const match = !dimAll || sMatch[s] ? 1 : 0;
            rect(match ? spanColor(s) : 'dim' + spanColor(s), x0, y + 1, bw, ROW_H - 3);
            if (bw >= 4 || sErr[s] || (dimAll && match)) wide.push(s, x0, y, bw, match);
            bars.push(s, x0, y + 1, bw, ROW_H - 3, match);
          }
          if (mergedFrom >= 0) dr.merged.push([lane.lane, r, arr[mergedFrom], arr[i - 1], i - mergedFrom]);
          // Log ticks: one per pixel column, the most severe of those that land there.
          const logs = lane.logs[r];
          if (!logs.length) continue;
          let j = lowerBound(logs, vt0, lTime);
          let px = -10, pj = -1;
          const flush = () => {
            if (pj < 0) return;
            const match = !dimAll || lMatch[pj];
            rect(match ? '#ffffff' : 'dim#ffffff', px - 1, y + 1, 4, ROW_H - 3);
            ticks.push(pj, px, y + 1, 2, ROW_H - 3, lSpan[pj], match ? 1 : 0);
            if (lExc[pj]) excMarks.push([px - 3, y]);
          };
          for (; j < logs.length; j++) {
            const q = logs[j];
            const lt = lTime[q];
            if (lt > vt1) break;
            let x = Math.floor((lt - vt0) * k);
            const ls = lSpan[q];
            if (ls >= 0 && v.inView[ls]) { // on its bar, whole (a log at the span's very end would overhang by the tick's width)
              const sx = (sStart[ls] - vt0) * k, b0 = Math.floor(sx), b1 = Math.ceil(sx + Math.max(1, (sEnd[ls] - sStart[ls]) * k));
              x = Math.max(b0, Math.min(x, b1 - 2));
            }
            if (x === px) { if (lSev[q] > lSev[pj] || (lExc[q] && !lExc[pj])) pj = q; continue; }
            flush();
            px = x; pj = q;
          }
          flush();
        }
      }
      const paint = (style) => {
        const a = fills.get(style);
        ctx.beginPath();
        for (let q = 0; q < a.length; q += 4) ctx.rect(a[q], a[q + 1], a[q + 2], a[q + 3]);
        ctx.fill();
      };
      for (const [style, a] of fills) {
        if (!a.length || style.endsWith('#ffffff')) continue; // tick backgrounds go over the bars
        ctx.globalAlpha = style.startsWith('dim') ? 0.22 : 1;
        ctx.fillStyle = style.startsWith('dim') ? style.slice(3) : style;
        paint(style);
      }
      ctx.globalAlpha = 1;
      // Decorations of bars wide enough to carry them: waits (hatched), async outline, error outline, name.
      const pat = hatchPattern(ctx);
      ctx.font = '11px system-ui, sans-serif';
      ctx.textBaseline = 'middle';
      for (let q = 0; q < wide.length; q += 5) {
        const s = wide[q], x0 = wide[q + 1], y = wide[q + 2], bw = wide[q + 3], match = wide[q + 4];
        ctx.globalAlpha = match ? 1 : 0.22;
        if (bw >= 6 && (sAsync[s] || CHILD.off[s + 1] > CHILD.off[s])) {
          const ws = waitsOf(s);
          if (ws.length) {
            ctx.fillStyle = pat;
            let nw = 0;
            for (const iv of ws) {
              const a0 = Math.max(x0, (iv[0] - vt0) * k), b0 = Math.min(x0 + bw, (iv[1] - vt0) * k);
              if (b0 - a0 >= 1) { ctx.fillRect(a0, y + 1, b0 - a0, ROW_H - 3); nw++; }
            }
            if (nw) dr.waits.push([s, nw]);
          }
        }
        if (sAsync[s] && bw >= 4) {
          ctx.strokeStyle = 'rgba(31,35,40,0.55)';
          ctx.setLineDash([3, 2]);
          ctx.lineWidth = 1;
          ctx.strokeRect(x0 + 0.5, y + 1.5, bw - 1, ROW_H - 4);
          ctx.setLineDash([]);
        }
        if (sErr[s]) {
          ctx.strokeStyle = '#cf222e';
          ctx.lineWidth = 2;
          ctx.strokeRect(x0 + 1, y + 2, Math.max(1, bw - 2), ROW_H - 5);
          if (sErr[s] & 2 || sStatus[s] === 2) excMarks.push([x0, y]);
        }
        if (dimAll && match) {
          ctx.strokeStyle = '#0969da';
          ctx.lineWidth = 2;
          ctx.strokeRect(x0 - 1, y, bw + 2, ROW_H - 1);
        }
        if (bw > 36) {
          const name = STR[sName[s]];
          const room = Math.floor((bw - 6) / 6.2);
          ctx.fillStyle = '#111';
          ctx.fillText(room >= name.length ? name : name.slice(0, Math.max(1, room - 1)) + '…', Math.max(x0, 0) + 3, y + ROW_H / 2);
        }
      }
      ctx.globalAlpha = 1;
      // Ticks over everything: a white edge, then the severity colour (batched per severity).
      for (const style of ['#ffffff', 'dim#ffffff']) {
        if (!fills.has(style) || !fills.get(style).length) continue;
        ctx.globalAlpha = style === '#ffffff' ? 1 : 0.25;
        ctx.fillStyle = '#ffffff';
        paint(style);
      }
      const bySev = new Map();
      for (let q = 0; q < ticks.length; q += 7) {
        const key = sevInfo(lSev[ticks[q]])[2] + (ticks[q + 6] ? '' : '/');
        let a = bySev.get(key);
        if (!a) bySev.set(key, (a = []));
        a.push(ticks[q + 1], ticks[q + 2]);
      }
      for (const [key, a] of bySev) {
        ctx.globalAlpha = key.endsWith('/') ? 0.25 : 1;
        ctx.fillStyle = key.replace('/', '');
        ctx.beginPath();
        for (let q = 0; q < a.length; q += 2) ctx.rect(a[q], a[q + 1], 2, ROW_H - 3);
        ctx.fill();
      }
      ctx.globalAlpha = 1;
      // Exception marks: a red triangle with "!" at the start of the span or at the log.
      for (const [x, y] of excMarks) {
        ctx.fillStyle = '#cf222e';
        ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + 8, y); ctx.lineTo(x + 4, y + 7); ctx.closePath(); ctx.fill();
      }
      this.drawLinks(ctx, top, bottom, w);
      this.drawSelection(ctx);
      ctx.restore();
      this.renderGutter(top, bottom);
      this.lastDrawMs = performance.now() - t;
    }

    drawLinks(ctx, top, bottom, w) {
      const v = this.view, dr = this.drawn;
      const laneOf = new Map(v.lanes.map((x) => [x.lane, x]));
      let n = 0;
      for (const [p, c, cross, explicit] of v.links) {
        const x = this.X(sStart[c]);
        if (x < -20 || x > w + 20) continue;
        const lp = laneOf.get(sLane[p]), lc = laneOf.get(sLane[c]);
        const y1 = this.rowY(lp, v.rowOf[p]) + ROW_H / 2, y2 = this.rowY(lc, v.rowOf[c]) + (y1 < this.rowY(lc, v.rowOf[c]) ? 1 : ROW_H - 2);
        if (Math.max(y1, y2) < top || Math.min(y1, y2) > bottom) continue;
        if (++n > 3000) break;
        const x1 = explicit ? this.X(sStart[p]) : Math.max(this.X(sStart[p]), Math.min(x, this.X(sEnd[p])));
        ctx.strokeStyle = cross ? '#8250df' : '#6e7781';
        ctx.fillStyle = ctx.strokeStyle;
        ctx.lineWidth = cross ? 2 : 1.2;
        if (explicit) ctx.setLineDash([4, 3]);
        ctx.beginPath();
        ctx.moveTo(x1, y1);
        const my = (y1 + y2) / 2;
        ctx.bezierCurveTo(x1 - 14, my, x - 14, my, x, y2);
        ctx.stroke();
        ctx.setLineDash([]);
        const dir = y2 > y1 ? 1 : -1;
        ctx.beginPath(); ctx.moveTo(x, y2); ctx.lineTo(x - 4, y2 - 6 * dir); ctx.lineTo(x + 3, y2 - 5 * dir); ctx.closePath(); ctx.fill();
        ctx.beginPath(); ctx.arc(x1, y1, 2.5, 0, 6.3); ctx.fill();
        dr.links.push([p, c, cross, explicit, x1, y1, x, y2]);
      }
    }

    drawSelection(ctx) {
      const sel = this.sel, v = this.view;
      if (!sel) return;
      const s = sel.kind === 'span' ? sel.i : lSpan[sel.i];
      if (s < 0 || !v.inView[s]) return;
      const lane = v.lanes.find((x) => x.lane === sLane[s]);
      const y = this.rowY(lane, v.rowOf[s]);
      ctx.strokeStyle = '#1f2328';
      ctx.lineWidth = 2;
      if (sel.kind === 'span') {
        const x0 = this.X(sStart[s]), x1 = this.X(sEnd[s]);
        ctx.strokeRect(x0 - 2, y - 1, Math.max(1, x1 - x0) + 4, ROW_H + 1);
      } else {
        const x = this.X(lTime[sel.i]);
        ctx.strokeRect(x - 3, y - 1, 7, ROW_H + 1);
      }
    }

    drawAxis(w) {
      const ctx = this.sizeCanvas(this.axis, w, 30);
      ctx.clearRect(0, 0, w, 30);
      ctx.fillStyle = '#f6f8fa';
      ctx.fillRect(0, 0, w, 30);
      const span = this.vt1 - this.vt0;
      const raw = span / Math.max(1, w / 110);
      const p = Math.pow(10, Math.floor(Math.log10(raw)));
      const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) || 10 * p;
      const base = this.view ? this.view.t0 : 0;
      ctx.font = '11px system-ui, sans-serif';
      ctx.fillStyle = '#57606a';
      ctx.strokeStyle = '#afb8c1';
      ctx.textBaseline = 'top';
      for (let t = Math.ceil((this.vt0 - base) / step) * step + base; t <= this.vt1; t += step) {
        const x = Math.round(this.X(t)) + 0.5;
        ctx.beginPath(); ctx.moveTo(x, 18); ctx.lineTo(x, 30); ctx.stroke();
        ctx.fillText('+' + fmtDur(t - base), x + 3, 4);
      }
      ctx.textAlign = 'right';
      ctx.fillText(fmtDur(span) + ' shown', w - 4, 18);
      ctx.textAlign = 'left';
    }

    renderGutter(top, bottom) {
      const v = this.view;
      const parts = [];
      for (const hd of v.heads) {
        if (hd.y + PROC_H < top - 200 || hd.y > bottom + 200) continue;
        parts.push('<div class="proc-head" data-proc="' + hd.proc + '" style="top:' + hd.y + 'px;height:' + PROC_H + 'px"><span class="sw" style="background:hsl(' +
          procHue[hd.proc] + ',55%,55%)"></span>' + esc(procLabel(hd.proc)) + '</div>');
      }
      for (const lane of this.visibleLanes(top - 200, bottom + 200)) {
        const lb = laneLabel(lane.lane);
        parts.push('<div class="lane" data-proc="' + lane.proc + '" data-lane="' + lane.lane + '" style="top:' + lane.y + 'px;height:' + lane.h + 'px" title="' +
          esc(procLabel(lane.proc) + ' · ' + lb.name + ' ' + lb.tid) + '">' + esc(lb.name) + ' <span class="tid">' + esc(lb.tid) + '</span></div>');
      }
      const html = parts.join('');
      if (html !== this.gutterHtml) { this.gutter.innerHTML = html; this.gutterHtml = html; }
    }
  }

  function lowerBound(arr, t, key) {
    let lo = 0, hi = arr.length;
    while (lo < hi) { const m = (lo + hi) >> 1; if (key[arr[m]] < t) lo = m + 1; else hi = m; }
    return lo;
  }

  // ------------------------------------------------------------- page
  const $ = (id) => document.getElementById(id);
  const tlTrace = new Timeline($('trace-timeline'), 'trace');
  const tlProc = new Timeline($('proc-timeline'), 'process');
  let curTrace = -1, curProc = -1, curTab = 'traces';

  function summary() {
    const nproc = PROCS.length, pts = D.series.reduce((a, s) => a + s.points.length, 0);
    $('summary').textContent = NT + ' traces · ' + NS + ' spans · ' + NL + ' logs · ' + pts + ' metric points · ' + nproc + ' processes · ' +
      D.input.files.length + ' files';
    document.title = 'polytel: ' + [...serviceIx.keys()].slice(0, 4).join(', ') + (serviceIx.size > 4 ? '…' : '') + ' (' + NS + ' spans)';
  }

  function notices() {
    const inp = D.input, out = [];
    if (inp.badLines || inp.badRecords) {
      out.push('<div class="notice bad" id="notice-bad">Skipped <b>' + inp.badLines + '</b> corrupt line' + (inp.badLines === 1 ? '' : 's') +
        (inp.badRecords ? ' and <b>' + inp.badRecords + '</b> malformed record' + (inp.badRecords === 1 ? '' : 's') : '') +
        ' (of ' + inp.lines + ' lines read). <details><summary>which</summary><pre>' + esc(inp.examples.join('\n')) +
        (inp.badLines + inp.badRecords > inp.examples.length ? '\n…' : '') + '</pre></details></div>');
    }
    for (const p of inp.empty || []) out.push('<div class="notice" data-empty="' + esc(p) + '">No traces.jsonl, logs.jsonl or metrics.jsonl under <b>' + esc(p) + '</b>.</div>');
    if (inp.duplicates) out.push('<div class="notice">' + inp.duplicates + ' duplicate spans (same trace and span id) shown once.</div>');
    $('notices').innerHTML = out.join('');
  }

  // Trace list: a virtualised list (only the rows on screen exist in the DOM).
  const ITEM_H = 44;
  let listed = traceOrder;
  function renderList() {
    const box = $('trace-list'), sp = box.firstElementChild;
    sp.style.height = Math.max(1, listed.length * ITEM_H) + 'px';
    const a = Math.max(0, Math.floor(box.scrollTop / ITEM_H) - 5), b = Math.min(listed.length, a + Math.ceil(box.clientHeight / ITEM_H) + 10);
    const parts = [];
    for (let k = a; k < b; k++) {
      const t = listed[k], tr = TR[t];
      const root = tr.root >= 0 ? STR[sName[tr.root]] : '(empty)';
      const svc = tr.procs.map((p) => PROCS[p].service).filter((x, i, arr) => arr.indexOf(x) === i).join(', ');
      parts.push('<div class="trace-item' + (t === curTrace ? ' sel' : '') + '" data-trace="' + t + '" style="top:' + k * ITEM_H + 'px"><div class="n">' +
        (tr.errs ? '<span class="err" title="errors">! </span>' : '') + esc(root) + '</div><div class="m">' + fmtDur(tr.t1 - tr.t0) + ' · ' + tr.n + ' span' +
        (tr.n === 1 ? '' : 's') + (tr.logs ? ' · ' + tr.logs + ' logs' : '') + ' · ' + esc(svc) + (tr.procs.length > 1 ? ' · ' + tr.procs.length + ' processes' : '') + '</div></div>');
    }
    if (!listed.length) parts.push('<div class="empty-note">' + (NT ? 'No trace matches the search.' : 'No spans in these files.') + '</div>');
    sp.innerHTML = parts.join('');
  }
  $('trace-list').addEventListener('scroll', renderList);
  $('trace-list').addEventListener('click', (e) => {
    const it = e.target.closest('.trace-item');
    if (it) selectTrace(+it.dataset.trace);
  });

  function selectTrace(t) {
    curTrace = t;
    renderList();
    if (t < 0) { $('trace-title').textContent = ''; return; }
    const tr = TR[t];
    $('trace-title').innerHTML = '<b>' + esc(tr.root >= 0 ? STR[sName[tr.root]] : '') + '</b> · trace <code>' + D.traces[t] + '</code> · ' + fmtDur(tr.t1 - tr.t0) +
      ' · ' + tr.n + ' spans · ' + tr.procs.length + ' process' + (tr.procs.length === 1 ? '' : 'es') + ' · ' + tr.nlanes + ' threads';
    tlTrace.setView(traceView(t));
  }

  function fillProcSelect() {
    const sel = $('proc-select');
    sel.innerHTML = PROCS.map((P, p) => {
      const nl = LANES.filter((x) => x.proc === p).length;
      return '<option value="' + p + '">' + esc(procLabel(p)) + ' — ' + nl + ' thread' + (nl === 1 ? '' : 's') + ', ' + P.counts.spans + ' spans, ' + P.counts.logs + ' logs</option>';
    }).join('');
    sel.addEventListener('change', () => showProcess(+sel.value));
  }
  function showProcess(p) {
    curProc = p;
    $('proc-select').value = String(p);
    const v = processView(p);
    const asyncN = v.lanes.reduce((a, lane) => a + lane.spans.reduce((b, row) => { let c = 0; for (const s of row) c += sAsync[s]; return b + c; }, 0), 0);
    $('proc-title').innerHTML = '<span class="hint">every thread of the process on one time axis; ' + asyncN + ' async spans (dashed), their waits hatched</span>';
    tlProc.setView(v);
  }

  function tab(name) {
    curTab = name;
    for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('on', b.dataset.tab === name);
    for (const s of document.querySelectorAll('.tab')) s.classList.toggle('on', s.id === 'tab-' + name);
    if (name === 'metrics' && !$('metrics').dataset.built) buildMetrics();
    if (name === 'traces') { renderList(); tlTrace.draw(); }
    if (name === 'process') { if (curProc < 0 && PROCS.length) showProcess(busiestProc()); else tlProc.draw(); }
  }
  $('tabs').addEventListener('click', (e) => { if (e.target.dataset.tab) tab(e.target.dataset.tab); });
  function busiestProc() {
    let best = 0;
    PROCS.forEach((P, p) => { if (P.counts.spans + P.counts.logs > PROCS[best].counts.spans + PROCS[best].counts.logs) best = p; });
    return best;
  }

  // Search: filters the trace list, dims what does not match in the timelines.
  let searchTimer = 0;
  function setSearch(q) {
    runSearch(q);
    listed = tMatch ? traceOrder.filter((t) => tMatch[t]) : traceOrder;
    let nl = 0, ns = 0;
    if (sMatch) { for (let i = 0; i < NS; i++) ns += sMatch[i] & 1; for (let j = 0; j < NL; j++) nl += lMatch[j]; }
    $('search-count').dataset.q = query;
    $('search-count').textContent = query ? listed.length + ' of ' + NT + ' traces · ' + ns + ' spans · ' + nl + ' logs' : '';
    $('trace-list').scrollTop = 0;
    renderList();
    if (query && listed.length && (curTrace < 0 || !tMatch[curTrace])) selectTrace(listed[0]);
    tlTrace.draw();
    tlProc.draw();
  }
  $('search').addEventListener('input', (e) => { clearTimeout(searchTimer); const q = e.target.value; searchTimer = setTimeout(() => setSearch(q), 120); });

  // Keyboard: W/S zoom, A/D pan, F fit, Escape closes the details.
  window.addEventListener('keydown', (e) => {
    if (e.target.tagName === 'INPUT' || e.target.tagName === 'SELECT') return;
    const tl = curTab === 'process' ? tlProc : tlTrace;
    const k = e.key.toLowerCase();
    if (k === 'w') tl.zoom(0.7, 0.5);
    else if (k === 's') tl.zoom(1 / 0.7, 0.5);
    else if (k === 'a') tl.pan(-0.15);
    else if (k === 'd') tl.pan(0.15);
    else if (k === 'f') tl.fit();
    else if (k === 'escape') $('details').hidden = true;
  });

  // ------------------------------------------------------------- details
  function attrTable(a) {
    const kv = attrsOf(a);
    if (!kv.length) return '<p class="hint">none</p>';
    return '<table>' + kv.map(([k, v]) => '<tr><td class="k">' + esc(STR[k]) + '</td><td>' + fmtVal(v) + '</td></tr>').join('') + '</table>';
  }
  function row(k, v) { return '<tr><td class="k">' + esc(k) + '</td><td>' + v + '</td></tr>'; }
  function spanLink(s) { return '<a data-span="' + s + '">' + esc(STR[sName[s]]) + '</a>'; }
  function showDetails(h) {
    const box = $('details');
    if (!h) { box.hidden = true; return; }
    box.hidden = false;
    let html = '<button class="close" title="close (Esc)">×</button>';
    if (h.kind === 'span') {
      const s = h.i, lane = LANES[sLane[s]], lb = laneLabel(sLane[s]);
      const st = sStatus[s] === 2 ? '<span class="status-error">ERROR</span>' : sStatus[s] === 1 ? 'OK' : 'unset';
      html += '<h2>' + esc(STR[sName[s]]) + '</h2><table>' +
        row('status', st + (S.msg[s] >= 0 ? ': ' + esc(STR[S.msg[s]]) : '')) +
        row('duration', fmtDur(sEnd[s] - sStart[s])) + row('start', esc(fmtTime(sStart[s]))) +
        row('process', esc(procLabel(lane.proc))) + row('thread', esc(lb.name + ' ' + lb.tid)) +
        row('trace', '<code>' + D.traces[sTrace[s]] + '</code>') + row('span', '<code>' + S.id[s] + '</code>') +
        row('parent', sParent[s] >= 0 ? spanLink(sParent[s]) + (LANES[sLane[sParent[s]]].proc !== lane.proc ? ' (in ' + esc(procLabel(LANES[sLane[sParent[s]]].proc)) + ')' : '')
          : S.missingParent[s] ? '<code>' + S.missingParent[s] + '</code> (not in these files)' : 'none (root)') +
        row('scope', esc(STR[S.scope[s]])) + (sAsync[s] ? row('async', 'yes: ' + waitsOf(s).length + ' wait(s), ' + fmtDur(waitsOf(s).reduce((a, w) => a + w[1] - w[0], 0)) + ' waiting') : '') +
        '</table><h3>Attributes</h3>' + attrTable(sAttrs[s]);
      const evs = S.events[s];
      html += '<h3>Events</h3>' + (evs ? '<table>' + evs.map((e) => '<tr><td class="k">' + (e[0] !== null ? '+' + fmtDur(e[0] - sStart[s]) : '') + '</td><td><b>' + esc(e[1]) + '</b>' +
        attrTable(e[2]) + '</td></tr>').join('') + '</table>' : '<p class="hint">none</p>');
      const lk = S.links[s];
      if (lk) html += '<h3>Links</h3><table>' + lk.map((x) => '<tr><td class="k">trace <code>' + x[0].slice(0, 8) + '…</code></td><td>span <code>' + x[1] + '</code>' + attrTable(x[2]) + '</td></tr>').join('') + '</table>';
      const kids = [];
      for (let k = CHILD.off[s]; k < CHILD.off[s + 1] && kids.length < 50; k++) kids.push(CHILD.list[k]);
      if (kids.length) html += '<h3>Children</h3><p>' + kids.map(spanLink).join(', ') + (CHILD.off[s + 1] - CHILD.off[s] > 50 ? ' …' : '') + '</p>';
      const logs = [];
      for (let k = SLOGS.off[s]; k < SLOGS.off[s + 1] && logs.length < 200; k++) logs.push(SLOGS.list[k]);
      if (logs.length) {
        html += '<h3>Logs</h3><table>' + logs.map((j) => {
          const sv = sevInfo(lSev[j]);
          return '<tr><td class="k">+' + fmtDur(lTime[j] - sStart[s]) + ' <span class="sev" style="background:' + sv[2] + '">' + sv[1] + '</span></td><td><a data-log="' + j + '">' + esc(L.body[j]) + '</a></td></tr>';
        }).join('') + '</table>';
      }
      html += '<details><summary><h3 style="display:inline">Resource</h3></summary>' + attrTable(PROCS[lane.proc].resource) + '</details>';
    } else {
      const j = h.i, sv = sevInfo(lSev[j]), lane = LANES[lLane[j]], lb = laneLabel(lLane[j]);
      html += '<h2><span class="sev" style="background:' + sv[2] + '">' + sv[1] + '</span> ' + esc(L.body[j]) + '</h2><table>' +
        row('time', esc(fmtTime(lTime[j]))) + row('severity', lSev[j] + ' (' + sv[1] + ')') + row('logger', esc(STR[L.scope[j]])) +
        row('process', esc(procLabel(lane.proc))) + row('thread', esc(lb.name + ' ' + lb.tid)) +
        row('span', lSpan[j] >= 0 ? spanLink(lSpan[j]) + ' (+' + fmtDur(lTime[j] - sStart[lSpan[j]]) + ')' : 'none') +
        '</table><h3>Attributes</h3>' + attrTable(lAttrs[j]) +
        '<details><summary><h3 style="display:inline">Resource</h3></summary>' + attrTable(PROCS[lane.proc].resource) + '</details>';
    }
    box.innerHTML = html;
    box.scrollTop = 0;
  }
  $('details').addEventListener('click', (e) => {
    if (e.target.classList.contains('close')) { $('details').hidden = true; return; }
    const a = e.target.closest('a');
    if (!a) return;
    const kind = a.dataset.span !== undefined ? 'span' : 'log', i = +(a.dataset.span ?? a.dataset.log);
    reveal(kind, i);
  });
  function reveal(kind, i) {
    const s = kind === 'span' ? i : lSpan[i];
    if (curTab === 'traces' && s >= 0 && sTrace[s] !== curTrace) selectTrace(sTrace[s]);
    const tl = curTab === 'process' ? tlProc : tlTrace;
    if (curTab === 'process' && s >= 0 && LANES[sLane[s]].proc !== curProc) showProcess(LANES[sLane[s]].proc);
    tl.select(kind, i);
    showDetails({ kind, i });
  }
  tlTrace.onSelect = showDetails;
  tlProc.onSelect = showDetails;

  // ------------------------------------------------------------- metrics
  function seriesLabel(ser) {
    const kv = attrsOf(ser.attrs);
    return kv.length ? '{' + kv.map(([k, v]) => STR[k] + '=' + (typeof v === 'object' ? JSON.stringify(v) : v)).join(', ') + '}' : '';
  }
  // What a series is drawn as: cumulative monotonic sums as a rate per second, others as values.
  function seriesPoints(ser) {
    const pts = ser.points;
    if (ser.kind === 'sum' && ser.monotonic) {
      const out = [];
      if (ser.temporality === 1) { // delta: each point is the increase since its start
        for (const [t, st, v] of pts) { const dt = st !== null ? t - st : 0; if (dt > 0) out.push([t, v / dt * 1e9]); }
        return { pts: out, what: 'rate /s', total: pts.reduce((a, p) => a + p[2], 0) };
      }
      for (let k = 1; k < pts.length; k++) {
        const [t, st, v] = pts[k], [tp, stp, vp] = pts[k - 1];
        if (t <= tp) continue;
        if (v < vp || (st !== null && stp !== null && st !== stp)) continue; // a reset: no rate across it
        out.push([t, (v - vp) / (t - tp) * 1e9]);
      }
      return { pts: out, what: 'rate /s', total: pts.length ? pts[pts.length - 1][2] : 0 };
    }
    if (ser.kind === 'sum' || ser.kind === 'gauge') return { pts: pts.map((p) => [p[0], p[2]]), what: 'value' };
    return { pts: pts.map((p) => [p[0], p[2]]), what: 'count' };
  }
  const fmtNum = (v) => (typeof v !== 'number' ? String(v) : Math.abs(v) >= 1e6 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : +v.toFixed(3) + '');
  function lineChart(pts, W, H) {
    if (!pts.length) return '<svg width="' + W + '" height="' + H + '"><text x="4" y="' + (H / 2) + '" font-size="11" fill="#8c959f">one point: no rate yet</text></svg>';
    let x0 = pts[0][0], x1 = pts[pts.length - 1][0], y0 = Infinity, y1 = -Infinity;
    for (const p of pts) { if (p[1] < y0) y0 = p[1]; if (p[1] > y1) y1 = p[1]; }
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    if (y1 === y0) { y0 -= Math.abs(y0) * 0.1 + 1; y1 += Math.abs(y1) * 0.1 + 1; }
    const X = (x) => 4 + (x - x0) / (x1 - x0) * (W - 8), Y = (y) => H - 12 - (y - y0) / (y1 - y0) * (H - 20);
    const step = Math.max(1, Math.floor(pts.length / 400));
    let d = '';
    for (let k = 0; k < pts.length; k += step) d += (d ? 'L' : 'M') + X(pts[k][0]).toFixed(1) + ',' + Y(pts[k][1]).toFixed(1);
    const dots = pts.length <= 60 ? pts.map((p) => '<circle cx="' + X(p[0]).toFixed(1) + '" cy="' + Y(p[1]).toFixed(1) + '" r="2"/>').join('') : '';
    return '<svg width="' + W + '" height="' + H + '"><path d="' + d + '" fill="none" stroke="#0969da" stroke-width="1.5"/><g fill="#0969da">' + dots + '</g>' +
      '<text x="' + (W - 4) + '" y="10" font-size="10" fill="#57606a" text-anchor="end">max ' + esc(fmtNum(y1)) + '</text>' +
      '<text x="' + (W - 4) + '" y="' + (H - 1) + '" font-size="10" fill="#57606a" text-anchor="end">min ' + esc(fmtNum(y0)) + ' · ' + fmtDur(pts[pts.length - 1][0] - pts[0][0]) + '</text></svg>';
  }
  function histChart(last, W, H) {
    if (!last || !last.buckets.length) return '<p class="hint">count ' + (last ? last.count : 0) + ', sum ' + fmtNum(last && last.sum !== null ? last.sum : 0) + '</p>';
    const b = last.buckets, n = b.length, mx = Math.max(1, ...b), bw = (W - 8) / n;
    let bars = '';
    for (let k = 0; k < n; k++) {
      const h = b[k] / mx * (H - 22);
      const lab = k < last.bounds.length ? '≤' + fmtNum(last.bounds[k]) : '>' + fmtNum(last.bounds[last.bounds.length - 1] ?? 0);
      bars += '<rect x="' + (4 + k * bw).toFixed(1) + '" y="' + (H - 12 - h).toFixed(1) + '" width="' + Math.max(1, bw - 1).toFixed(1) + '" height="' + h.toFixed(1) +
        '" fill="#8250df"><title>' + esc(lab) + ': ' + b[k] + '</title></rect>';
    }
    return '<svg width="' + W + '" height="' + H + '">' + bars + '<text x="4" y="' + (H - 1) + '" font-size="10" fill="#57606a">' + n + ' buckets, ' + esc(fmtNum(last.bounds[0] ?? 0)) + ' … ' +
      esc(fmtNum(last.bounds[last.bounds.length - 1] ?? 0)) + '</text></svg>';
  }
  function buildMetrics() {
    const box = $('metrics');
    box.dataset.built = '1';
    const byProc = new Map();
    D.series.forEach((ser, k) => { if (!byProc.has(ser.proc)) byProc.set(ser.proc, []); byProc.get(ser.proc).push(k); });
    if (!D.series.length) { box.innerHTML = '<p class="empty-note">No metrics in these files.</p>'; return; }
    const parts = [];
    const card = (k) => {
      const ser = D.series[k];
      let body, v;
      if (ser.kind === 'histogram') {
        body = histChart(ser.last, 284, 80);
        v = 'last distribution: count ' + (ser.last ? ser.last.count : 0) + (ser.last && ser.last.sum !== null ? ', sum ' + fmtNum(ser.last.sum) : '') +
          (ser.last && ser.last.min !== null && ser.last.min !== undefined ? ', min ' + fmtNum(ser.last.min) + ', max ' + fmtNum(ser.last.max) : '');
      } else if (ser.kind === 'sum' || ser.kind === 'gauge') {
        const sp = seriesPoints(ser);
        const lastV = ser.points.length ? ser.points[ser.points.length - 1][2] : null;
        if (sp.what === 'rate /s') {
          v = 'rate per second (cumulative counter); total ' + fmtNum(sp.total);
          body = sp.pts.length ? lineChart(sp.pts, 284, 80) : '<div class="big">' + esc(fmtNum(sp.total)) + '</div><p class="hint">one snapshot: no rate yet</p>';
        } else {
          v = (ser.kind === 'gauge' ? 'gauge' : 'sum') + '; last ' + fmtNum(lastV);
          body = sp.pts.length > 1 ? lineChart(sp.pts, 284, 80) : '<div class="big">' + esc(fmtNum(lastV)) + '</div>';
        }
      } else {
        body = histChart(ser.last, 284, 80);
        v = ser.kind + ': count ' + (ser.last ? ser.last.count : 0);
      }
      return '<div class="card" data-series="' + k + '" data-kind="' + ser.kind + '"><div class="t">' + esc(ser.name) + (ser.unit ? ' <span class="a">(' + esc(ser.unit) + ')</span>' : '') +
        '</div><div class="a">' + esc(seriesLabel(ser)) + '</div><div class="v">' + v + ' · ' + ser.points.length + ' point' + (ser.points.length === 1 ? '' : 's') + '</div>' + body + '</div>';
    };
    // Processes with their own metrics first; polytel's self-metrics folded (the Accounting tab sums them up).
    const own = (list) => list.filter((k) => !D.series[k].name.startsWith('polytel.'));
    const procs = [...byProc.keys()].sort((a, b) => (own(byProc.get(b)).length > 0) - (own(byProc.get(a)).length > 0) || a - b);
    for (const p of procs) {
      const list = byProc.get(p).sort((a, b) => D.series[a].name.localeCompare(D.series[b].name));
      const mine = own(list), self = list.filter((k) => D.series[k].name.startsWith('polytel.'));
      parts.push('<div class="proc" data-proc="' + p + '"><h2>' + esc(procLabel(p)) + '</h2><div class="cards">' + mine.slice(0, 400).map(card).join('') + '</div>');
      if (mine.length > 400) parts.push('<p class="hint">' + (mine.length - 400) + ' more series not shown</p>');
      if (self.length) parts.push('<details class="self"><summary>polytel self-metrics (' + self.length + ' series)</summary><div class="cards">' + self.map(card).join('') + '</div></details>');
      parts.push('</div>');
    }
    box.innerHTML = parts.join('');
  }

  // ------------------------------------------------------------- accounting
  function buildAccounting() {
    const cols = ['recorded', 'exported', 'dropped', 'unconfirmed', 'pending'];
    const anyUnconfirmed = PROCS.some((P) => P.acct.unconfirmed !== undefined);
    const reasons = [...new Set(PROCS.flatMap((P) => Object.keys(P.acct).filter((k) => k.startsWith('dropped.')).map((k) => k.slice(8))))].sort();
    const rows = PROCS.map((P, p) => {
      const a = P.acct;
      const has = a.recorded !== undefined;
      const dropped = reasons.reduce((x, r) => x + (a['dropped.' + r] || 0), 0);
      const un = a.unconfirmed;
      // The process's own pending gauge when it exports one (same snapshot), else what the counters leave.
      const pending = a.pending !== undefined ? a.pending : has ? a.recorded - (a.exported || 0) - dropped - (un || 0) : undefined;
      const cell = (v, cls) => v === undefined ? '<td class="na">—</td>' : '<td class="' + (cls || '') + '">' + v + '</td>';
      return '<tr data-proc="' + p + '"><td class="l">' + esc(P.service) + '</td><td>' + esc(P.pid ?? '') + '</td><td class="l">' + esc(P.lang || '') + '</td>' +
        cell(has ? a.recorded : undefined) + cell(has ? a.exported || 0 : undefined) +
        reasons.map((r) => cell(has ? a['dropped.' + r] || 0 : undefined, a['dropped.' + r] ? 'drop' : '')).join('') +
        (anyUnconfirmed ? cell(un, un ? 'drop' : '') : '') + cell(pending, pending < 0 ? 'drop' : '') +
        '<td>' + (P.counts.spans + P.counts.logs) + '</td></tr>';
    });
    void cols;
    $('accounting').innerHTML = '<h2>Accounting per process (its self-metrics, newest snapshot)</h2>' +
      (PROCS.length ? '<table class="acct" id="acct-table"><thead><tr><th class="l">service</th><th>pid</th><th class="l">language</th><th>recorded</th><th>exported</th>' +
        reasons.map((r) => '<th>dropped: ' + esc(r) + '</th>').join('') + (anyUnconfirmed ? '<th>unconfirmed</th>' : '') +
        '<th>pending</th><th>spans + logs in these files</th></tr></thead><tbody>' + rows.join('') + '</tbody></table>' : '<p class="empty-note">No processes.</p>') +
      '<p class="acct-note">From <code>polytel.recorded</code>, <code>polytel.exported</code>, <code>polytel.dropped{reason}</code>' +
      (anyUnconfirmed ? ', <code>polytel.unconfirmed</code>' : '') + ' as last exported by each process. <b>pending</b> is its <code>polytel.pending</code> gauge, or else recorded − exported − dropped' +
      (anyUnconfirmed ? ' − unconfirmed' : '') + ': what was still buffered when that snapshot was taken (it is exported later, so the files may hold more than <b>exported</b> says). ' +
      '— means the process exported no self-metrics (not polytel, or its metrics file is missing).</p>';
  }

  function legend() {
    const sv = SEV.map((s) => '<span><i style="background:' + s[2] + '"></i>' + s[1] + '</span>').join('');
    const svc = [...serviceIx.keys()].slice(0, 8).map((s) => '<span><i style="background:hsl(' + HUES[serviceIx.get(s) % HUES.length] + ',55%,55%)"></i>' + esc(s) + '</span>').join('');
    $('legend').innerHTML = svc + '<span>log ticks:</span>' + sv + '<span><i style="border:2px solid #cf222e"></i>error / exception ▼</span>' +
      '<span><i style="border:1px dashed #555"></i>async span</span><span><i style="background:repeating-linear-gradient(135deg,#666 0 1px,#fff 1px 4px)"></i>waiting</span>' +
      '<span><i style="background:#8250df;height:3px"></i>link across processes</span><span><i style="background:#6e7781;height:2px"></i>across threads</span>' +
      '<span>click: details · dbl-click: zoom to span · W/S/A/D/F</span>';
  }

  summary();
  notices();
  legend();
  fillProcSelect();
  buildAccounting();
  // Start on the trace that crosses the most processes (then the largest): the one worth looking at.
  let first = -1;
  for (const t of traceOrder) if (first < 0 || TR[t].procs.length > TR[first].procs.length || (TR[t].procs.length === TR[first].procs.length && TR[t].n > TR[first].n)) first = t;
  renderList();
  if (first >= 0) selectTrace(first);
  else $('trace-title').innerHTML = '<span class="hint">No spans in these files' + (NL ? ': see the Processes tab for the logs.' : '.') + '</span>';
  const T_DRAWN = performance.now();

  // For tests and the bench: what is on screen, and a few handles.
  window.polytelView = {
    ready: true,
    timings: { parse: T_PARSED - T0, index: T_IDX1 - T_IDX0, total: T_DRAWN - T0, firstDraw: tlTrace.lastDrawMs, readyAt: T_DRAWN },
    counts: { spans: NS, logs: NL, traces: NT, processes: PROCS.length, lanes: LANES.length },
    traces: () => traceOrder.map((t) => ({ index: t, id: D.traces[t], root: TR[t].root >= 0 ? STR[sName[TR[t].root]] : '', spans: TR[t].n, logs: TR[t].logs, processes: TR[t].procs.length, threads: TR[t].nlanes })),
    processes: () => PROCS.map((P, p) => ({ index: p, service: P.service, pid: P.pid === null || P.pid === undefined ? '' : String(P.pid), lang: P.lang })),
    span: (i) => ({ index: i, id: S.id[i], name: STR[sName[i]], trace: sTrace[i], lane: sLane[i], proc: LANES[sLane[i]].proc, parent: sParent[i], start: sStart[i], end: sEnd[i], async: !!sAsync[i], error: sErr[i] }),
    log: (j) => ({ index: j, body: L.body[j], span: lSpan[j], lane: lLane[j], sev: lSev[j], time: lTime[j] }),
    selectTrace, showProcess, setSearch, tab, reveal,
    current: () => ({ trace: curTrace, proc: curProc, tab: curTab }),
    drawn: (which) => {
      const d = (which === 'process' ? tlProc : tlTrace).drawn;
      const bars = [], ticks = [];
      for (let q = 0; q < d.barsFlat.length; q += 6) bars.push(d.barsFlat.slice(q, q + 6));
      for (let q = 0; q < d.ticksFlat.length; q += 7) ticks.push(d.ticksFlat.slice(q, q + 6));
      return { bars, ticks, merged: d.merged, links: d.links, waits: d.waits, lanes: d.lanes };
    },
    timeline: (which) => (which === 'process' ? tlProc : tlTrace),
  };
  document.body.dataset.ready = '1';
})();

// helpers.mjs — for the trace view's browser test and bench: telemetry written by real workers, the page built by
// `python -m polytel.view`, served on 127.0.0.1, Debian's chromium through playwright-core (no browser download).
import { spawnSync } from 'node:child_process';
import { readFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
// playwright-core is the wasm binding's dev dependency (scripts/deps.sh installs it there).
const require = createRequire(join(REPO, 'bindings', 'wasm', 'package.json'));
export const { chromium } = require('playwright-core');
export const CHROMIUM = process.env.POLYTEL_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run', '--disable-sync'];
export const BUILD = process.env.POLYTEL_BUILD_DIR ?? join(REPO, 'build');
export const PY = process.env.POLYTEL_PY ?? join(BUILD, 'py-venv', 'bin', 'python');

/** Only what the caller sets configures polytel: the developer's OTEL_* / POLYTEL_* are dropped. */
export function cleanEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(OTEL_|POLYTEL_|TELEMETRY_ENABLED$)/.test(k)) env[k] = v;
  }
  return { ...env, NO_COLOR: '1', ...extra };
}

/** Runs a worker that writes OTLP/JSON lines into dir with the file exporter; throws with its output on failure. */
export function runWorker(cmd, args, dir, service, extra = {}) {
  mkdirSync(dir, { recursive: true });
  const env = cleanEnv({ TELEMETRY_ENABLED: 'true', POLYTEL_EXPORTER: 'file', POLYTEL_EXPORT_DIR: dir, OTEL_SERVICE_NAME: service,
    POLYTEL_CONSOLE: 'off', ...extra });
  const r = spawnSync(cmd, args, { cwd: dir, env, encoding: 'utf8', timeout: 120000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** python -m polytel.view ... -o out; returns {stdout, stderr, status}. */
export function buildPage(paths, out) {
  const r = spawnSync(PY, ['-m', 'polytel.view', ...paths, '-o', out], { encoding: 'utf8', timeout: 300000, env: cleanEnv({}) });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A static server for one file at /; resolves to {url, requests, close()} (requests lists every path asked for). */
export async function serveFile(file) {
  const requests = [];
  const server = createServer((req, res) => {
    requests.push(req.url);
    if (req.url !== '/' && req.url !== '/trace.html') { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(readFileSync(file));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}/trace.html`, requests, close: () => new Promise((r) => server.close(r)) };
}

/** Every span, log and metric point of the *.jsonl files under dir, read with JSON.parse alone (the test's own view). */
export function readRaw(dir) {
  const out = { spans: [], logs: [], points: [] };
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (/^(traces|logs|metrics)\.jsonl$/.test(e.name)) {
        for (const line of readFileSync(join(d, e.name), 'utf8').split('\n')) {
          if (!line.trim()) continue;
          let obj;
          try { obj = JSON.parse(line); } catch { continue; } // the corrupt ones: the page counts them
          collect(obj, out);
        }
      }
    }
  };
  walk(dir);
  return out;
}

const attrsOf = (kvs) => Object.fromEntries((kvs ?? []).map((kv) => [kv.key, Object.values(kv.value ?? {})[0]]));
function collect(obj, out) {
  for (const [top, sub, items, dst] of [['resourceSpans', 'scopeSpans', 'spans', out.spans], ['resourceLogs', 'scopeLogs', 'logRecords', out.logs],
    ['resourceMetrics', 'scopeMetrics', 'metrics', out.points]]) {
    for (const rb of obj[top] ?? []) {
      const res = attrsOf(rb.resource?.attributes);
      for (const sb of rb[sub] ?? []) {
        for (const it of sb[items] ?? []) {
          if (top === 'resourceMetrics') {
            const kind = ['sum', 'gauge', 'histogram'].find((k) => it[k]);
            for (const dp of it[kind]?.dataPoints ?? []) dst.push({ ...dp, name: it.name, kind, pid: String(res['process.pid']), attrs: attrsOf(dp.attributes) });
          } else {
            dst.push({ ...it, pid: String(res['process.pid']), service: res['service.name'], attrs: attrsOf(it.attributes) });
          }
        }
      }
    }
  }
}

/** PNG (8-bit RGB or RGBA, as Chromium writes them) -> {width, height, rgba}. */
export function decodePng(buf) {
  if (buf.readUInt32BE(0) !== 0x89504e47) throw new Error('not a PNG');
  let pos = 8, width = 0, height = 0, ctype = 0;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos), type = buf.toString('ascii', pos + 4, pos + 8), data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0); height = data.readUInt32BE(4); ctype = data[9];
      if (data[8] !== 8 || (ctype !== 2 && ctype !== 6) || data[12] !== 0) throw new Error(`unsupported PNG: depth ${data[8]} type ${ctype}`);
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    pos += 12 + len;
  }
  const bpp = ctype === 6 ? 4 : 3, stride = width * bpp, raw = inflateSync(Buffer.concat(idat));
  const px = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)], src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)), row = px.subarray(y * stride, (y + 1) * stride);
    const up = y ? px.subarray((y - 1) * stride, y * stride) : null;
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? row[i - bpp] : 0, b = up ? up[i] : 0, c = up && i >= bpp ? up[i - bpp] : 0;
      let v = src[i];
      if (f === 1) v += a;
      else if (f === 2) v += b;
      else if (f === 3) v += (a + b) >> 1;
      else if (f === 4) { const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c); v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c; }
      row[i] = v & 255;
    }
  }
  const rgba = Buffer.alloc(width * height * 4);
  for (let i = 0, j = 0; i < width * height; i++, j += bpp) { rgba[i * 4] = px[j]; rgba[i * 4 + 1] = px[j + 1]; rgba[i * 4 + 2] = px[j + 2]; rgba[i * 4 + 3] = bpp === 4 ? px[j + 3] : 255; }
  return { width, height, rgba };
}

/** Colours covering at least minPixels pixels of the rectangle (so anti-aliasing does not count). */
export function distinctColours(img, rect, minPixels = 30) {
  const counts = new Map();
  for (let y = Math.max(0, rect.y | 0); y < Math.min(img.height, (rect.y + rect.height) | 0); y++) {
    for (let x = Math.max(0, rect.x | 0); x < Math.min(img.width, (rect.x + rect.width) | 0); x++) {
      const i = (y * img.width + x) * 4, k = (img.rgba[i] << 16) | (img.rgba[i + 1] << 8) | img.rgba[i + 2];
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
  }
  return [...counts.entries()].filter(([, n]) => n >= minPixels).map(([k]) => '#' + k.toString(16).padStart(6, '0'));
}

export function need(path, how) {
  if (!existsSync(path)) throw new Error(`${path} is missing: ${how}`);
}

// index.js — polytel for JavaScript: the wasm core behind a thin ES module (createPolytel), Node and browsers.
//
// Everything that decides (levels, batching, encoding, retry policy, accounting) is the C core's,
// compiled to wasm. This file marshals arguments, routes console lines by level, keeps the current
// span, and moves encoded request bodies with fetch (or node:fs for the file exporter).

const IS_NODE =
  typeof process === 'object' && process !== null && typeof process.versions === 'object' && !!process.versions?.node;

// The core's tables (levels, phases, stats fields, error codes, options), read from the module when it was
// built: JavaScript keeps no copy of them.
import { ERRORS, LEVELS, OPTIONS, PHASES, STATS_FIELDS as CORE_STATS_FIELDS } from '../dist/polytel_tables.mjs';

const STATUS_UNSET = 0;
const STATUS_ERROR = 2;
const ATTR_STRING = 1;
const ATTR_INT = 2;
const ATTR_DOUBLE = 3;
const ATTR_BOOL = 4;
const SIGNAL_FILES = ['traces', 'logs', 'metrics'];
// stats() keys: the core's field names in camelCase (dropped_buffer_full -> droppedBufferFull).
const camel = (k) => k.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
const STATS_FIELDS = CORE_STATS_FIELDS.map(camel);
// polytel_value_type_t: how a setting's text reads.
const VALUE_BOOL = 1;
const VALUE_INT = 2;
// polytel__net_class_t and polytel__done_t (core/src/pipeline.h).
const NET_OK = 0;
const NET_CONNECT = 1;
const NET_TIMEOUT = 2;
const NET_OTHER = 4;
const DONE_RETRY = 1;
// Environment variables the core understands; in Node they are copied into the wasm environment.
const ENV_RE = /^(OTEL_|POLYTEL_)|^(TELEMETRY_ENABLED|NO_COLOR|FORCE_COLOR)$/;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** "true/false/1/0/yes/no/on/off", any case, or a boolean; undefined when neither. */
function parseBool(v) {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v !== 'string') return undefined;
  const s = v.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(s)) return true;
  if (['false', '0', 'no', 'off'].includes(s)) return false;
  return undefined;
}

/** Retry-After (delay-seconds or an HTTP date) in milliseconds; -1 when absent or unreadable. */
export function parseRetryAfter(value, nowMs = Date.now()) {
  if (value === null || value === undefined) return -1;
  const s = String(value).trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  // An HTTP date names its day and month; Date.parse would also take "-5" or "2" as years.
  if (!/[A-Za-z]{3}/.test(s)) return -1;
  const t = Date.parse(s);
  if (Number.isNaN(t)) return -1;
  return Math.max(0, t - nowMs);
}

function unref(timer) {
  if (timer && typeof timer.unref === 'function') timer.unref();
  return timer;
}

function errorMessage(e) {
  if (e instanceof Error) return e.message || e.name;
  try {
    return String(e);
  } catch {
    return 'error';
  }
}

function resourceString(v) {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  return Object.entries(v)
    .map(([k, val]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(val))}`)
    .join(',');
}


// ------------------------------------------------------------------ the core

class Core {
  constructor(M, options) {
    this.M = M;
    this.sink = options.console && typeof options.console === 'object' ? options.console : globalThis.console;
    this.view = null;
    this.arenaPtr = 0;
    this.arenaCap = 0;
    this.cache = new Map(); // interned NUL-terminated strings: targets, metric names, units
    this.layout = {
      size: M._ptw_attr_layout(0),
      key: M._ptw_attr_layout(1),
      type: M._ptw_attr_layout(2),
      strPtr: M._ptw_attr_layout(3),
      strLen: M._ptw_attr_layout(4),
      i: M._ptw_attr_layout(5),
      d: M._ptw_attr_layout(6),
      b: M._ptw_attr_layout(7),
      ctx: M._ptw_attr_layout(8),
      stats: M._ptw_attr_layout(9),
    };
    this.reserve(4096);
  }

  heap() {
    return this.M.HEAPU8; // replaced by emscripten when memory grows: never cache across calls into wasm
  }

  dv() {
    const buf = this.M.HEAPU8.buffer;
    if (!this.view || this.view.buffer !== buf) this.view = new DataView(buf);
    return this.view;
  }

  /** The scratch arena holds one call's arguments; grown (never shrunk) before anything is written. */
  reserve(n) {
    if (n <= this.arenaCap) return;
    let cap = Math.max(4096, this.arenaCap * 2);
    while (cap < n) cap *= 2;
    if (this.arenaPtr) this.M._free(this.arenaPtr);
    this.arenaPtr = this.M._malloc(cap);
    if (!this.arenaPtr) throw new Error('polytel: out of wasm memory');
    this.arenaCap = cap;
  }

  /**
   * A NUL-terminated copy kept for strings that repeat (metric names, units). Only used during one
   * call, so the cache can be emptied when it grows past its bound.
   */
  intern(s) {
    let p = this.cache.get(s);
    if (p !== undefined) return p;
    if (this.cache.size >= 4096) {
      for (const q of this.cache.values()) this.M._free(q);
      this.cache.clear();
    }
    p = this.tmpString(s);
    this.cache.set(s, p);
    return p;
  }

  /** A short-lived NUL-terminated string (freed by freeTmp). */
  tmpString(s) {
    const bytes = encoder.encode(String(s));
    const p = this.M._malloc(bytes.length + 1);
    const h = this.heap();
    h.set(bytes, p);
    h[p + bytes.length] = 0;
    return p;
  }

  /** s into the cap bytes at p, NUL-terminated (a cut character is escaped by the core when shown). */
  writeCString(p, s, cap) {
    const bytes = encoder.encode(String(s)).subarray(0, cap - 1);
    const h = this.heap();
    h.set(bytes, p);
    h[p + bytes.length] = 0;
  }

  /** What is running: the core's resolved configuration, typed (polytel_config_resolved). */
  resolved() {
    const M = this.M;
    const r = M._ptw_resolved();
    if (!r) throw new Error('polytel: out of wasm memory');
    const out = {};
    try {
      for (let i = 0, n = M._ptw_resolved_n(r); i < n; i++) {
        const v = this.readCString(M._ptw_resolved_item(r, i, 1));
        const t = M._ptw_resolved_type(r, i);
        out[this.readCString(M._ptw_resolved_item(r, i, 0))] =
          v === null ? null : t === VALUE_BOOL ? v === 'true' : t === VALUE_INT ? Number(v) : v;
      }
    } finally {
      M._ptw_resolved_free(r);
    }
    return out;
  }

  readCString(p) {
    if (!p) return null;
    const h = this.heap();
    let e = p;
    while (h[e]) e++;
    return decoder.decode(h.subarray(p, e));
  }

  static attrEntries(attrs) {
    if (!attrs) return null;
    const out = [];
    for (const k in attrs) {
      const v = attrs[k];
      if (v === undefined || v === null || typeof v === 'function') continue;
      out.push(k, v);
    }
    return out.length ? out : null;
  }

  /** Upper bound of the arena bytes for attrs (entries as [k, v, k, v...]). */
  attrBytes(entries) {
    if (!entries) return 0;
    let n = 8 + (entries.length / 2) * this.layout.size;
    for (let i = 0; i < entries.length; i += 2) {
      n += entries[i].length * 3 + 1;
      let v = entries[i + 1];
      const t = typeof v;
      if (t === 'object' || t === 'symbol') entries[i + 1] = v = safeString(v);
      if (typeof v === 'string') n += v.length * 3 + 1;
    }
    return n;
  }

  /** Writes a string at off (NUL-terminated); returns [end offset, byte length]. */
  putString(off, s) {
    const h = this.heap();
    const n = s.length;
    // Short ASCII (most messages, keys, names) without TextEncoder's per-call overhead.
    if (n <= 256) {
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c > 127) break;
        h[off + i] = c;
      }
      if (i === n) {
        h[off + n] = 0;
        return n;
      }
    }
    const { written } = encoder.encodeInto(s, h.subarray(off, this.arenaPtr + this.arenaCap - 1));
    h[off + written] = 0;
    return written;
  }

  /** Writes a polytel_attr_t array at off (8-aligned); returns [array pointer, next offset]. */
  putAttrs(off, entries) {
    const L = this.layout;
    off = (off + 7) & ~7;
    const base = off;
    const n = entries.length / 2;
    let s = base + n * L.size;
    const dv = this.dv();
    for (let i = 0; i < n; i++) {
      const a = base + i * L.size;
      const k = entries[2 * i];
      const v = entries[2 * i + 1];
      dv.setUint32(a + L.key, s, true);
      s += this.putString(s, k) + 1;
      if (typeof v === 'string') {
        dv.setUint32(a + L.type, ATTR_STRING, true);
        const len = this.putString(s, v);
        dv.setUint32(a + L.strPtr, s, true);
        dv.setUint32(a + L.strLen, len, true);
        s += len + 1;
      } else if (typeof v === 'boolean') {
        dv.setUint32(a + L.type, ATTR_BOOL, true);
        dv.setInt32(a + L.b, v ? 1 : 0, true);
      } else if (typeof v === 'bigint') {
        dv.setUint32(a + L.type, ATTR_INT, true);
        dv.setBigInt64(a + L.i, BigInt.asIntN(64, v), true);
      } else if (Number.isSafeInteger(v)) {
        dv.setUint32(a + L.type, ATTR_INT, true);
        if (v >= -0x80000000 && v <= 0x7fffffff) {
          dv.setInt32(a + L.i, v, true);
          dv.setInt32(a + L.i + 4, v < 0 ? -1 : 0, true);
        } else {
          dv.setBigInt64(a + L.i, BigInt(v), true);
        }
      } else {
        dv.setUint32(a + L.type, ATTR_DOUBLE, true);
        dv.setFloat64(a + L.d, Number(v), true);
      }
    }
    return [base, s];
  }
}

function safeString(v) {
  try {
    return typeof v === 'object' ? JSON.stringify(v) ?? String(v) : String(v);
  } catch {
    return String(v);
  }
}

// ------------------------------------------------------------- the transport

/**
 * Drives the core's pipeline from the host's event loop: pump -> next -> send -> done. The
 * pipeline decides what to send, when to retry and what to drop; this only moves bytes.
 */
class Driver {
  constructor(pt) {
    this.pt = pt;
    this.M = pt._core.M;
    this.running = false;
    this.generation = 0;
    this.timer = null;
    this.timerAt = Infinity;
    this.soon = false;
    this.inflight = new Set();
    // Requests the pipeline kept for a retry. pending counts only logs and spans, so without this a
    // flush would not wait for a metrics request in backoff.
    this.retrying = new Set();
    this.waiters = [];
    this.options = {};
    this.fs = null;
  }

  configure(options, fsModule) {
    this.options = options;
    this.fs = fsModule;
  }

  started() {
    const M = this.M;
    const core = this.pt._core;
    this.running = true;
    this.generation = M._ptw_generation();
    const cfg = core.resolved();
    this.exporter = cfg.exporter; // "otlp", "file" or "none", as the core resolved it
    this.exportDir = cfg.export_dir;
    const headers = {};
    const n = M._ptw_n_headers();
    for (let i = 0; i < n; i++) headers[core.readCString(M._ptw_header(i, 0))] = core.readCString(M._ptw_header(i, 1));
    Object.assign(headers, this.options.headers || {});
    this.headers = headers;
    this.fetch = this.options.fetch || globalThis.fetch;
    // Runs inside a call into wasm: never throw from here. A file exporter that cannot write sees
    // its requests fail, and the core retries, then drops and counts them.
    if (this.exporter === 'file') {
      if (!this.fs) this.pt._warnOnce('the file exporter needs node:fs (Node only): nothing will be written');
      else {
        try {
          this.fs.mkdirSync(this.exportDir, { recursive: true });
        } catch (e) {
          this.pt._warnOnce(`cannot create ${this.exportDir}: ${errorMessage(e)}`);
        }
      }
    }
    this.wake();
  }

  stopped() {
    this.running = false;
    this.generation = -1;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const f of this.inflight) f.abort();
    this.inflight.clear();
    this.retrying.clear();
    this.notify();
  }

  wake() {
    if (this.soon || !this.running) return;
    this.soon = true;
    unref(setTimeout(() => {
      this.soon = false;
      this.tick();
    }, 0));
  }

  /** Pump, send what is ready, and arm the timer for when the pipeline wants to run next. */
  tick() {
    if (!this.running) return;
    const M = this.M;
    let delay = M._ptw_pump();
    if (delay === -2) return;
    this.sendReady();
    // A safety net: while anything is outstanding, look again at least once a second.
    if (delay < 0 || delay > 1000) {
      if (M._ptw_pending() > 0 || this.inflight.size > 0) delay = 1000;
    }
    if (delay >= 0) this.arm(Math.max(1, delay));
    this.notify();
  }

  arm(ms) {
    const at = Date.now() + ms;
    if (this.timer && this.timerAt <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = unref(setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      this.tick();
    }, ms));
  }

  sendReady() {
    const M = this.M;
    for (;;) {
      if (!this.running) return;
      const req = M._ptw_next();
      if (!req) return;
      this.retrying.delete(req);
      this.send(req);
    }
  }

  send(req) {
    const M = this.M;
    const core = this.pt._core;
    const ptr = M._ptw_req_body(req);
    const len = M._ptw_req_body_len(req);
    const body = core.heap().slice(ptr, ptr + len); // a copy: the request memory is the pipeline's
    const signal = M._ptw_req_signal(req);
    const generation = this.generation;
    // resp: { status, net, sent, retryAfterMs, body?, contentType?, error? } (polytel__response_t).
    const finish = (resp) => {
      if (generation !== this.generation || !this.running) return; // stopped meanwhile: the pipeline is gone
      const heap = core.heap();
      const n = resp.body ? Math.min(resp.body.length, M._ptw_resp_cap(0)) : 0;
      if (n) heap.set(resp.body.subarray(0, n), M._ptw_resp_buf(0));
      core.writeCString(M._ptw_resp_buf(1), resp.contentType || '', M._ptw_resp_cap(1));
      core.writeCString(M._ptw_resp_buf(2), resp.error || '', M._ptw_resp_cap(2));
      // Whether the core kept the request (a retry) or counted it is its decision: only flush() cares.
      if (M._ptw_done(req, resp.status, resp.net, resp.sent ? 1 : 0, resp.retryAfterMs ?? -1, n) === DONE_RETRY)
        this.retrying.add(req);
      this.tick();
    };
    if (this.exporter === 'none') {
      finish({ status: 200, net: NET_OK, sent: 1 });
      return;
    }
    if (this.exporter === 'file') {
      try {
        if (!this.fs) throw new Error('no node:fs');
        const file = `${this.exportDir}/${SIGNAL_FILES[signal] ?? 'unknown'}.jsonl`;
        this.fs.appendFileSync(file, Buffer.concat([body, Buffer.from('\n')]));
      } catch (e) {
        // like a network error: retried by the pipeline, then dropped and counted
        finish({ status: 0, net: NET_OTHER, sent: 0, error: errorMessage(e) });
        return;
      }
      finish({ status: 200, net: NET_OK, sent: 1 });
      return;
    }
    const url = core.readCString(M._ptw_req_url(req));
    const headers = { 'content-type': core.readCString(M._ptw_req_content_type(req)), ...this.headers };
    if (M._ptw_req_gzip(req)) headers['content-encoding'] = 'gzip';
    const timeoutMs = M._ptw_req_timeout_ms(req) || 10000;
    const ac = new AbortController();
    const flight = { abort: () => ac.abort() };
    this.inflight.add(flight);
    let timedOut = false;
    const timer = unref(setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, timeoutMs));
    let p;
    try {
      p = Promise.resolve(
        this.fetch.call(globalThis, url, {
          method: 'POST',
          body,
          headers,
          // Browsers cap keepalive bodies at 64 KiB; past that the request would be refused outright.
          keepalive: len < 60000,
          signal: ac.signal,
        }),
      );
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      async (res) => {
        const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
        let answer = null;
        try {
          answer = new Uint8Array(await res.arrayBuffer()); // partial_success, the collector's message
        } catch {
          /* the status is what counts */
        }
        return { status: res.status, net: NET_OK, sent: 1, retryAfterMs, body: answer,
          contentType: res.headers.get('content-type') };
      },
      (e) => {
        // fetch does not say whether the body went out: only a refused connection (Node) proves it did not.
        const code = e?.cause?.code;
        const refused = code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN';
        const net = timedOut ? NET_TIMEOUT : refused ? NET_CONNECT : NET_OTHER;
        return { status: 0, net, sent: refused ? 0 : 1, error: code ? `${code}: ${errorMessage(e)}` : errorMessage(e) };
      },
    ).then((resp) => {
      clearTimeout(timer);
      this.inflight.delete(flight);
      finish(resp);
    });
  }

  notify() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves on the next progress (a tick, a completion, a stop) or after ms. Keeps Node alive meanwhile. */
  progress(ms) {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, Math.max(1, ms));
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  outstanding() {
    return this.M._ptw_pending() > 0 || this.inflight.size > 0 || this.retrying.size > 0 || this.M._ptw_in_flight() > 0;
  }
}

// ------------------------------------------------------------------ the span

class Span {
  constructor(pt, name, ctx, attrs) {
    this._pt = pt;
    this.name = name;
    this._ctx = ctx; // the polytel_span_ctx_t bytes (ids, start time); null when not recording
    this._attrs = attrs ? { ...attrs } : null;
    this._ended = false;
  }

  /** Adds an attribute, exported with the span when it ends. */
  setAttribute(key, value) {
    if (!this._attrs) this._attrs = {};
    this._attrs[key] = value;
    return this;
  }

  setAttributes(attrs) {
    for (const k in attrs) this.setAttribute(k, attrs[k]);
    return this;
  }

  /** 32 hex digits ("" when the span is not recording). */
  get traceId() {
    return this._ctx ? hex(this._ctx, 0, 16) : '';
  }

  /** 16 hex digits ("" when the span is not recording). */
  get spanId() {
    return this._ctx ? hex(this._ctx, 16, 24) : '';
  }

  _end(status, message) {
    if (this._ended) return;
    this._ended = true;
    if (this._ctx) this._pt._finishSpan(this, status, message);
  }
}

function hex(bytes, from, to) {
  let s = '';
  for (let i = from; i < to; i++) s += bytes[i].toString(16).padStart(2, '0');
  return s;
}

// ---------------------------------------------------------------- the instance

class Logger {
  constructor(pt, target) {
    this._pt = pt;
    this.target = target;
    this._targetPtr = pt._core.tmpString(target); // lives as long as the logger's core
  }

  trace(msg, attrs) {
    this._pt._log(LEVELS.trace, this._targetPtr, msg, attrs);
  }

  debug(msg, attrs) {
    this._pt._log(LEVELS.debug, this._targetPtr, msg, attrs);
  }

  info(msg, attrs) {
    this._pt._log(LEVELS.info, this._targetPtr, msg, attrs);
  }

  warn(msg, attrs) {
    this._pt._log(LEVELS.warn, this._targetPtr, msg, attrs);
  }

  error(msg, attrs) {
    this._pt._log(LEVELS.error, this._targetPtr, msg, attrs);
  }

  fatal(msg, attrs) {
    this._pt._log(LEVELS.fatal, this._targetPtr, msg, attrs);
  }
}

class Polytel extends Logger {
  constructor(core, options, als, fsModule) {
    // Logger's constructor needs _core: set it through a prototype-free path first.
    super({ _core: core }, options.target ?? 'app');
    this._pt = this;
    this._core = core;
    this._options = options;
    this._als = als; // AsyncLocalStorage (Node) or null
    this._stack = []; // the synchronous span stack (browsers; also the fallback in Node)
    this._fs = fsModule;
    this._driver = new Driver(this);
    this._exitHook = null;
    this.version = core.readCString(core.M._polytel_version());
  }

  /** "none", "console", "deferred" or "full". */
  phase() {
    return PHASES[this._core.M._polytel_phase()] ?? 'none';
  }

  /** A logger whose records carry `target` (the OTLP instrumentation scope name). */
  logger(target) {
    return new Logger(this, String(target));
  }

  _log(level, targetPtr, msg, attrs) {
    const core = this._core;
    const M = core.M;
    if (!M._polytel_level_enabled(level)) return;
    const text = typeof msg === 'string' ? msg : safeString(msg);
    const entries = Core.attrEntries(attrs);
    const span = this._current();
    core.reserve(text.length * 3 + 1 + core.attrBytes(entries) + (span ? core.layout.ctx + 8 : 0));
    const base = core.arenaPtr;
    const len = core.putString(base, text);
    let off = base + len + 1;
    let ap = 0;
    let n = 0;
    if (entries) {
      [ap, off] = core.putAttrs(off, entries);
      n = entries.length / 2;
    }
    let sp = 0;
    if (span && span._ctx) {
      sp = (off + 7) & ~7;
      core.heap().set(span._ctx, sp);
    }
    M._polytel_log_attrs(level, targetPtr, base, len, ap, n, sp);
  }

  _current() {
    if (this._als) return this._als.getStore();
    const s = this._stack;
    return s.length ? s[s.length - 1] : undefined;
  }

  _startSpan(name, parent, attrs) {
    const core = this._core;
    const M = core.M;
    const size = core.layout.ctx;
    core.reserve(2 * size + 16);
    const pp = (core.arenaPtr + 7) & ~7;
    const out = pp + ((size + 7) & ~7);
    if (parent && parent._ctx) core.heap().set(parent._ctx, pp);
    const rc = M._polytel_span_start(parent && parent._ctx ? pp : 0, out);
    const ctx = rc === 0 ? core.heap().slice(out, out + size) : null;
    return new Span(this, name, ctx, attrs);
  }

  _finishSpan(span, status, message) {
    const core = this._core;
    const entries = Core.attrEntries(span._attrs);
    const msg = message ?? '';
    core.reserve(core.layout.ctx + 16 + span.name.length * 3 + 1 + msg.length * 3 + 1 + core.attrBytes(entries));
    const cp = (core.arenaPtr + 7) & ~7;
    core.heap().set(span._ctx, cp);
    let off = cp + core.layout.ctx;
    const np = off;
    off += core.putString(off, span.name) + 1;
    let mp = 0;
    if (message) {
      mp = off;
      off += core.putString(off, msg) + 1;
    }
    let ap = 0;
    let n = 0;
    if (entries) {
      [ap, off] = core.putAttrs(off, entries);
      n = entries.length / 2;
    }
    core.M._polytel_span_finish(cp, np, status, mp, ap, n);
  }

  /**
   * Runs fn(span) inside a span and returns its value. A thenable result ends the span when it
   * settles; a throw or a rejection sets the error status (and is passed on unchanged).
   */
  span(name, fn, attrs) {
    if (typeof fn !== 'function') throw new TypeError('polytel: span(name, fn, attrs?) needs a function');
    const span = this._startSpan(String(name), this._current(), attrs);
    let result;
    try {
      if (this._als) {
        result = this._als.run(span, fn, span);
      } else {
        this._stack.push(span);
        try {
          result = fn(span);
        } finally {
          this._stack.pop();
        }
      }
    } catch (e) {
      span._end(STATUS_ERROR, errorMessage(e));
      throw e;
    }
    if (result !== null && (typeof result === 'object' || typeof result === 'function') && typeof result.then === 'function') {
      return result.then(
        (v) => {
          span._end(STATUS_UNSET);
          return v;
        },
        (e) => {
          span._end(STATUS_ERROR, errorMessage(e));
          throw e;
        },
      );
    }
    span._end(STATUS_UNSET);
    return result;
  }

  _metric(kind, name, value, attrs, unit) {
    const core = this._core;
    const M = core.M;
    const np = core.intern(String(name));
    const up = core.intern(unit === undefined || unit === null ? '' : String(unit));
    const entries = Core.attrEntries(attrs);
    let ap = 0;
    let n = 0;
    if (entries) {
      core.reserve(core.attrBytes(entries) + 8);
      [ap] = core.putAttrs(core.arenaPtr, entries);
      n = entries.length / 2;
    }
    if (kind === 1) M._ptw_counter_add(np, up, value, ap, n);
    else if (kind === 2) M._polytel_gauge_set(np, up, value, ap, n);
    else M._polytel_histogram_record(np, up, value, ap, n);
  }

  /** Adds an integer delta (default 1) to a monotonic counter. Negative or non-finite deltas are ignored. */
  counterAdd(name, value = 1, attrs, unit) {
    const v = typeof value === 'bigint' ? Number(value) : Math.trunc(Number(value));
    if (!Number.isFinite(v) || v < 0) {
      this._warnOnce(`counterAdd(${JSON.stringify(String(name))}): ignored a delta that is not a non-negative integer`);
      return;
    }
    this._metric(1, name, v, attrs, unit);
  }

  gaugeSet(name, value, attrs, unit) {
    this._metric(2, name, Number(value), attrs, unit);
  }

  histogramRecord(name, value, attrs, unit) {
    this._metric(3, name, Number(value), attrs, unit);
  }

  _warnOnce(text) {
    this._warned ??= new Set();
    if (this._warned.has(text)) return;
    this._warned.add(text);
    this._core.sink.warn(`polytel: ${text}`);
  }

  _exportFailures() {
    return this.stats().exportFailures;
  }

  /** Log records and spans: recorded = exported + dropped + unconfirmed + pending. Numbers. */
  stats() {
    const core = this._core;
    const size = core.layout.stats;
    core.reserve(size + 8);
    const p = (core.arenaPtr + 7) & ~7;
    core.M._polytel_stats(p);
    const dv = core.dv();
    const out = {};
    STATS_FIELDS.forEach((k, i) => {
      if (8 * i < size) out[k] = Number(dv.getBigUint64(p + 8 * i, true));
    });
    return out;
  }

  /**
   * Phase 2: exports through fetch (or the file exporter, in Node), driven by this event loop.
   * Resolves to the phase afterwards ("full", or "console" when telemetry stays off).
   */
  async bootstrapWorker(options = {}) {
    const merged = { ...this._options, ...options };
    if (options.headers) merged.headers = { ...(this._options.headers || {}), ...options.headers };
    if (String(merged.exporter ?? '').trim().toLowerCase() === 'file' && !IS_NODE)
      throw new Error('polytel: the file exporter is only available in Node');
    this._driver.configure(merged, this._fs);
    applyConfig(this._core, merged);
    const rc = this._core.M._ptw_init_full();
    if (rc !== 0 && rc !== ERRORS.EALREADY) {
      throw new Error(`polytel: phase 2 failed: ${this._core.readCString(this._core.M._polytel_strerror(rc))}`);
    }
    const st = this._status(rc === ERRORS.EALREADY ? 'already running' : this.phase() === 'full' ? 'started' : 'telemetry disabled');
    if (IS_NODE && this._driver.running && !this._exitHook && merged.flushOnExit !== false) {
      // Unref'd timers let Node exit; what is still pending then is flushed once, bounded
      // (exitTimeoutMs, POLYTEL_EXIT_TIMEOUT_MS: the core's exit_timeout_ms).
      const ms = st.config.exit_timeout_ms;
      let done = false;
      this._exitHook = () => {
        if (done || !this._driver.running) return;
        done = true;
        this.flush(ms);
      };
      process.on('beforeExit', this._exitHook);
    }
    return st;
  }

  /** What is running: the core's resolved configuration (phase, not_exporting, every option). */
  resolvedConfig() {
    return this._core.resolved();
  }

  /**
   * bootstrapWorker's answer, from the core's resolved configuration (the same fields as Python's and
   * Ruby's). It compares loosely equal to the phase (`st == 'full'`, `${st}`), as the phase string it
   * replaced did.
   */
  _status(status) {
    const cfg = this._core.resolved();
    const st = {
      phase: cfg.phase,
      status,
      service: cfg.service_name,
      endpoint: cfg.destination,
      exporter: cfg.exporter,
      protocol: cfg.protocol,
      compression: cfg.compression,
      endpoints: { traces: cfg.traces_endpoint, logs: cfg.logs_endpoint, metrics: cfg.metrics_endpoint },
      exportDir: cfg.exporter === 'file' ? cfg.export_dir : null,
      notExporting: cfg.not_exporting,
      pid: IS_NODE ? process.pid : null,
      config: cfg,
    };
    const phase = () => st.phase;
    Object.defineProperty(st, 'toString', { value: phase });
    Object.defineProperty(st, 'valueOf', { value: phase });
    return st;
  }

  /**
   * Hands off everything recorded and waits (asynchronously) until it is delivered or timeoutMs
   * passed. Resolves to true when nothing is pending afterwards. Bounded even when fetch hangs.
   */
  async flush(timeoutMs = 10000) {
    const M = this._core.M;
    const deadline = Date.now() + Math.max(0, timeoutMs);
    const d = this._driver;
    // Phase 1: nothing can be sent; 0 when nothing is pending (console), ESTATE in deferred.
    if (!d.running) return M._polytel_flush(0) === 0;
    M._ptw_force(); // every block drained, every partial batch cut, metrics collected, backoffs ended
    d.tick();
    while (d.running && d.outstanding()) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      await d.progress(Math.min(left, 50));
      d.tick();
    }
    return d.running && !d.outstanding();
  }

  /**
   * Flushes (bounded by timeoutMs), then stops and releases everything; the phase is "none"
   * afterwards. Resolves to true only when everything recorded was delivered.
   */
  async shutdown(timeoutMs = 5000) {
    if (this._driver.running) await this.flush(timeoutMs);
    // What is still undelivered is dropped and counted; 0 only when everything recorded was delivered.
    const rc = this._core.M._ptw_shutdown(0);
    if (this._exitHook) {
      process.removeListener('beforeExit', this._exitHook);
      this._exitHook = null;
    }
    return rc === 0;
  }
}

// ----------------------------------------------------------- configuration

// Options the core has under another name or with a JavaScript spelling; the rest are its options in
// camelCase (serviceName, endpoint, bspScheduleDelayMs, exitTimeoutMs, ...).
const SPECIAL = new Set(['use_env', 'telemetry_enabled', 'console_level', 'console', 'service_name',
  'resource_attributes', 'headers', 'sdk_language', 'compression']);

/**
 * Passes options (+ page globals) to the core's polytel_config_set, as text: the core checks every value
 * and its message is the RangeError's. Unknown options are ignored.
 */
function applyConfig(core, o) {
  const M = core.M;
  const tmp = [];
  const set = (key, v) => {
    if (v === undefined || v === null) return;
    const kp = core.tmpString(key);
    const vp = core.tmpString(String(v));
    tmp.push(kp, vp);
    if (M._ptw_cfg_set(kp, vp) !== 0) throw new RangeError(`polytel: ${core.readCString(M._ptw_cfg_error())}`);
  };
  try {
    M._ptw_cfg_reset();
    set('use_env', core.useEnv);
    set('telemetry_enabled', o.telemetryEnabled ?? o.TELEMETRY_ENABLED ?? core.pageGlobal('TELEMETRY_ENABLED'));
    set('console_level', o.consoleLevel ?? o.logLevel);
    if (o.console === false) set('console', 'off');
    set('service_name', o.serviceName ?? core.defaultServiceName);
    // What the wasm core cannot see (host name, executable), then OTEL_RESOURCE_ATTRIBUTES, then
    // options: later pairs win, so the user's settings override detection.
    const res = [core.detectedResource, core.useEnv ? core.envResource : undefined, resourceString(o.resourceAttributes)]
      .filter((x) => x)
      .join(',');
    set('resource_attributes', res || undefined);
    for (const [key, spec] of Object.entries(OPTIONS)) {
      if (SPECIAL.has(key)) continue;
      const v = o[camel(key)];
      set(key, v ?? (spec.env ? core.pageGlobal(spec.env) : undefined));
    }
  } finally {
    for (const p of tmp) M._free(p);
  }
}

/**
 * Loads the wasm core and runs phase 1: console output through console.debug/info/warn/error by
 * level, and with TELEMETRY_ENABLED (options, then process.env in Node, then globalThis in a page)
 * everything is recorded until bootstrapWorker().
 */
export async function createPolytel(options = {}) {
  const debug = options.debug ?? (IS_NODE && parseBool(process.env.POLYTEL_WASM_DEBUG) === true);
  const { default: factory } = await (debug ? import('../dist/polytel_wasm.debug.mjs') : import('../dist/polytel_wasm.mjs'));
  let core = null;
  let pt = null;
  const route = (level, text) => {
    const sink = core ? core.sink : globalThis.console;
    if (level >= LEVELS.error) sink.error(text);
    else if (level >= LEVELS.warn) sink.warn(text);
    else if (level >= LEVELS.info) sink.info(text);
    else sink.debug(text);
  };
  // Lines that reach fd 1/2 instead of the writer hook (a core without it): routed by the level they name.
  const routeFd = (text) => {
    const m = LEVEL_LINE.exec(text) || LEVEL_JSON.exec(text);
    route(m ? LEVELS[m[1].toLowerCase()] : LEVELS.info, text);
  };
  const M = await factory({
    ptwConsole(level, ptr, len) {
      route(level, decoder.decode(M.HEAPU8.subarray(ptr, ptr + len)));
    },
    ptwTransport(what) {
      if (!pt) return;
      if (what === 1) pt._driver.started();
      else if (what === 2) pt._driver.wake();
      else if (what === 3) pt._driver.stopped();
    },
    print: routeFd,
    printErr: routeFd,
  });
  core = new Core(M, options);

  let als = null;
  let fsModule = null;
  if (IS_NODE) {
    try {
      als = new (await import('node:async_hooks')).AsyncLocalStorage();
    } catch {
      als = null;
    }
    fsModule = await import('node:fs');
  }

  // The environment: Node's real one (OTEL_*, POLYTEL_*, TELEMETRY_ENABLED), or options.env anywhere.
  const env = {};
  if (IS_NODE && options.useEnv !== false) {
    for (const [k, v] of Object.entries(process.env)) if (ENV_RE.test(k) && v !== undefined) env[k] = v;
  }
  if (options.env) Object.assign(env, options.env);
  core.useEnv = Object.keys(env).length > 0 || (IS_NODE && options.useEnv !== false);
  // A page has no environment: globalThis.TELEMETRY_ENABLED and friends stand in for it (after options.env).
  core.pageGlobal = (name) => {
    if (IS_NODE || name in env) return undefined;
    const v = globalThis[name];
    return v === undefined || v === null ? undefined : v;
  };
  for (const [k, v] of Object.entries(env)) {
    const kp = core.tmpString(k);
    const vp = core.tmpString(String(v));
    M._ptw_setenv(kp, vp);
    M._free(kp);
    M._free(vp);
  }
  core.envResource = env.OTEL_RESOURCE_ATTRIBUTES;
  if (IS_NODE) {
    let host;
    try {
      host = (await import('node:os')).hostname();
    } catch {
      host = undefined;
    }
    const exe = (process.execPath || '').split(/[\\/]/).pop();
    core.detectedResource = resourceString({
      ...(host ? { 'host.name': host } : {}),
      ...(exe ? { 'process.executable.name': exe } : {}),
      'process.runtime.name': 'nodejs',
      'process.runtime.version': process.versions.node,
    });
  } else {
    core.detectedResource = resourceString({ 'process.runtime.name': 'browser' });
  }
  // Without OTEL_SERVICE_NAME the core would name the service after the wasm "executable".
  const hasEnvService = env.OTEL_SERVICE_NAME || /(^|,)\s*service\.name=/.test(env.OTEL_RESOURCE_ATTRIBUTES || '');
  if (!hasEnvService) {
    if (IS_NODE && process.argv[1]) core.defaultServiceName = process.argv[1].split(/[\\/]/).pop().replace(/\.[cm]?js$/, '');
    else if (!IS_NODE && globalThis.location?.hostname) core.defaultServiceName = globalThis.location.hostname;
    else core.defaultServiceName = 'unknown_service:webjs';
  }

  pt = new Polytel(core, options, als, fsModule);
  applyConfig(core, options);
  const rc = M._ptw_init_console();
  if (rc !== 0 && rc !== ERRORS.EALREADY) throw new Error(`polytel: phase 1 failed: ${core.readCString(M._polytel_strerror(rc))}`);
  return pt;
}

export const levels = Object.freeze({ ...LEVELS });
export default createPolytel;

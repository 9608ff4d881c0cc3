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
import {
  Context, ROOT_CONTEXT, RemoteSpan, SPAN_KEY, Scope, Span, SpanContext, STATUS_ERROR, STATUS_UNSET, describeError, errorMessage, httpHandler,
  fastRunAls, kindName, run3, toNs, withSpan,
} from './trace.js';
import { registerOpenTelemetry } from './otel.js';

export { SpanContext, Span, Context, ROOT_CONTEXT };

const ATTR_STRING = 1;
const ATTR_INT = 2;
const ATTR_DOUBLE = 3;
const ATTR_BOOL = 4;
const ATTR_STRING_ARRAY = 5;
const ATTR_INT_ARRAY = 6;
const ATTR_DOUBLE_ARRAY = 7;
const ATTR_BOOL_ARRAY = 8;
// POLYTEL_PROPAGATOR_* (polytel.h)
const PROP_TRACECONTEXT = 1;
const PROP_BAGGAGE = 2;
const SIGNAL_FILES = ['traces', 'logs', 'metrics'];
const SIGNAL_METRICS = 2;
// The fetch standard's (and Chromium's) cap on the bodies of one page's keepalive requests in flight together.
const KEEPALIVE_BUDGET = 65536;
const BROWSER_BATCH = 64; // OTEL_BSP/BLRP_MAX_EXPORT_BATCH_SIZE in a page unless set: ~5 KB protobuf requests
// stats() keys: the core's field names in camelCase (dropped_buffer_full -> droppedBufferFull).
const camel = (k) => k.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
const STATS_FIELDS = CORE_STATS_FIELDS.map(camel);
// polytel_value_type_t: how a setting's text reads.
const VALUE_BOOL = 1;
const VALUE_INT = 2;
// polytel__net_class_t and polytel__done_t (core/src/export/pipeline.h).
const NET_OK = 0;
const NET_CONNECT = 1;
const NET_TIMEOUT = 2;
const NET_OTHER = 4;
const NET_ABORTED = 5;
const OTLP_TIMEOUT_WORDS = 'the request timeout (OTEL_EXPORTER_OTLP_TIMEOUT)';
const DONE_RETRY = 1;
// Environment variables the core understands; in Node they are copied into the wasm environment.
const ENV_RE = /^(OTEL_|POLYTEL_)|^(TELEMETRY_ENABLED|NO_COLOR|FORCE_COLOR)$/;

const ATTR_STRINGS = 16; // PTW_RES_STRINGS (shim.c): a resource's string array, NUL-separated

/** What Node knows about this process (the semantic conventions' process.*, host.name). */
function nodeResource(os) {
  let host;
  try {
    host = os.hostname();
  } catch {
    host = undefined;
  }
  const exe = (process.execPath || '').split(/[\\/]/).pop();
  return [
    ['process.pid', process.pid],
    ...(exe ? [['process.executable.name', exe], ['process.executable.path', process.execPath]] : []),
    ['process.runtime.name', 'nodejs'],
    ['process.runtime.version', process.versions.node],
    ['process.runtime.description', 'Node.js'],
    ...(host ? [['host.name', host]] : []),
  ];
}

/** What a browser knows (browser.*, user_agent.original) and a random service.instance.id per page load. */
function browserResource() {
  const nav = globalThis.navigator ?? {};
  const out = [];
  const uad = nav.userAgentData; // User-Agent Client Hints (Chromium); elsewhere these stay unset, as the conventions say
  if (uad && Array.isArray(uad.brands)) out.push(['browser.brands', uad.brands.map((b) => `${b.brand} ${b.version}`)]);
  if (uad && typeof uad.platform === 'string' && uad.platform) out.push(['browser.platform', uad.platform]);
  if (uad && typeof uad.mobile === 'boolean') out.push(['browser.mobile', uad.mobile]);
  if (typeof nav.language === 'string' && nav.language) out.push(['browser.language', nav.language]);
  if (typeof nav.userAgent === 'string' && nav.userAgent) out.push(['user_agent.original', nav.userAgent]);
  out.push(['service.instance.id', randomUUID()]);
  return out;
}

function randomUUID() {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === 'function') return c.randomUUID(); // secure contexts only
  const b = new Uint8Array(16);
  c.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

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

/** Whether fetch() honours keepalive here (Firefox before 133 ignores it: sendBeacon is the way out there). */
function keepaliveSupported() {
  try {
    return new Request('http://localhost/', { method: 'POST', body: 'x', keepalive: true }).keepalive === true;
  } catch {
    return false;
  }
}

/** gzip through CompressionStream. Only microtasks: it completes inside a pagehide handler. */
async function gzipBytes(bytes) {
  const cs = new CompressionStream('gzip');
  const writer = cs.writable.getWriter();
  writer.write(bytes).catch(() => {});
  writer.close().catch(() => {});
  const reader = cs.readable.getReader();
  const parts = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    n += value.length;
  }
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function unref(timer) {
  if (timer && typeof timer.unref === 'function') timer.unref();
  return timer;
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
  /** The bound of the interned strings (see intern). */
  static INTERN_MAX = 4096;
  /** Slots of the ring of finished spans' contexts (see ringSlot). */
  static RING = 256;
  /** Spans staged before an ingest (see stage), and the bytes of their names. */
  static STAGE = 128;
  static STAGE_NAMES = 128 * 257;

  constructor(M, options) {
    this.M = M;
    this.sink = options.console && typeof options.console === 'object' ? options.console : globalThis.console;
    this.quiet = options.console === false; // no console output at all, JavaScript's own warnings included
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
      arrPtr: M._ptw_span_layout(16),
      arrLen: M._ptw_span_layout(17),
      strEl: M._ptw_span_layout(10), // polytel_str_t, an element of a string array
      strElLen: M._ptw_span_layout(11),
    };
    // ptw_span_finish's arrays and polytel_span_ctx_t's fields (shim.c ptw_span_layout)
    this.span = {
      ev: M._ptw_span_layout(0),
      evName: M._ptw_span_layout(1),
      evTime: M._ptw_span_layout(2),
      evAttrs: M._ptw_span_layout(3),
      evN: M._ptw_span_layout(4),
      link: M._ptw_span_layout(5),
      linkCtx: M._ptw_span_layout(6),
      linkTs: M._ptw_span_layout(7),
      linkAttrs: M._ptw_span_layout(8),
      linkN: M._ptw_span_layout(9),
      start: M._ptw_span_layout(12),
      flags: M._ptw_span_layout(13),
      remote: M._ptw_span_layout(14),
    };
    this.reserve(4096);
    // The contexts of spans ptw_span_run started and finished at once (a late reader of their ids gets the ones
    // exported): RING slots in wasm memory; before the ring is reused, its bytes are copied to the generation
    // object the spans of that round point to (kept only as long as one of them is).
    this.ring = M._malloc(Core.RING * this.layout.ctx);
    if (!this.ring) throw new Error('polytel: out of wasm memory');
    this.ringGen = { bytes: null };
    this.ringN = 0;
    // The core's clock, read here (clock.c's polytel__js_wall_ms: Module.ptWallMs, set at its first read).
    M._ptw_now_ns();
    this.wallMs = typeof M.ptWallMs === 'function' ? M.ptWallMs : null;
    // The span calls as the wasm exports themselves: Module's own _ptw_* are looked up in an object of a few
    // hundred properties, and the first call of each goes through emscripten's forwarding stub.
    const asm = M.asm || {};
    this.spanRun = asm.ptw_span_run || M._ptw_span_run;
    this.spanFinish = asm.ptw_span_finish || M._ptw_span_finish;
    this.spanStartAt = asm.ptw_span_start_at || M._ptw_span_start_at;
    // The staging area of plain spans (see stage): Core.STAGE records (ptw_staged_t) and their names' bytes.
    const st = (w) => M._ptw_staged_layout(w);
    this.st = { size: st(0), start: st(1), end: st(2), out: st(3), name: st(4), scope: st(5), scopeV: st(6), status: st(7), kind: st(8), hasParent: st(9) };
    this.stRecs = M._malloc(Core.STAGE * this.st.size + Core.STAGE_NAMES);
    if (!this.stRecs) throw new Error('polytel: out of wasm memory');
    this.stNames = this.stRecs + Core.STAGE * this.st.size;
    this.stN = 0; // records staged, not yet ingested
    this.stNameAt = this.stNames; // where the next staged name goes
    this.stOn = false; // staging while phase 2 runs (Polytel sets it); else every span goes to the core at once
    // Views over wasm memory, made again when it grew (the old buffer is detached: its views read as empty);
    // not Module.HEAPU8, a look-up in an object of a few hundred properties.
    this.stU8 = new Uint8Array(0);
    this.stF64 = new Float64Array(0);
    this.stI32 = new Int32Array(0);
    this.stWake = null; // called when the first record is staged after an ingest (the driver's wake)
    this.spanIngest = asm.ptw_span_ingest || M._ptw_span_ingest;
  }

  /**
   * Stages a plain span's record (name, status, kind, scope pointers, times, parent bytes, ring slot) in wasm
   * memory for the next ingest, instead of a call into wasm per span: false when the name does not fit the
   * short ASCII form (the caller records it at once). What reads the core's state ingests first (ingest).
   */
  stage(span, status, sp, svp, end) {
    const name = span.name;
    const n = name.length;
    if (n > 256) return false;
    const out = this.ringSlot(span); // may ingest (the ring wraps)
    if (this.stN === Core.STAGE || this.stNameAt + n + 1 > this.stNames + Core.STAGE_NAMES) this.ingest();
    let h = this.stU8; // after the last call into wasm (memory may have grown)
    if (h.length === 0) h = this.stViews();
    const np = this.stNameAt;
    for (let i = 0; i < n; i++) {
      const c = name.charCodeAt(i);
      if (c > 127) return false; // the caller records it at once (its ring slot taken again)
      h[np + i] = c;
    }
    h[np + n] = 0;
    const k = this.stN;
    const r = this.stRecs + k * this.st.size;
    const pb = span._pb;
    if (pb) h.set(pb, r);
    const f = this.stF64;
    const w = this.stI32;
    const L = this.st;
    f[(r + L.start) >> 3] = span._t0;
    f[(r + L.end) >> 3] = end;
    const q = r >> 2;
    w[q + (L.out >> 2)] = out;
    w[q + (L.name >> 2)] = np;
    w[q + (L.scope >> 2)] = sp;
    w[q + (L.scopeV >> 2)] = svp;
    w[q + (L.status >> 2)] = status;
    w[q + (L.kind >> 2)] = span._kind;
    w[q + (L.hasParent >> 2)] = pb ? 1 : 0;
    this.stNameAt = np + n + 1;
    this.stN = k + 1;
    if (k === 0 && this.stWake) this.stWake();
    return true;
  }

  /** The staging views over wasm memory as it is now; returns the bytes' view. */
  stViews() {
    const buf = this.M.HEAPU8.buffer;
    this.stF64 = new Float64Array(buf);
    this.stI32 = new Int32Array(buf);
    return (this.stU8 = new Uint8Array(buf));
  }

  /** Records the staged spans in the core (one ptw_span_ingest); before anything reads or exports its state. */
  ingest() {
    const n = this.stN;
    if (n === 0) return;
    this.stN = 0;
    this.stNameAt = this.stNames;
    this.spanIngest(this.stRecs, n);
  }

  /** Unix nanoseconds on the core's clock (polytel_now_ns in wasm), without a call into wasm. */
  nowNs() {
    return this.wallMs ? Math.trunc(this.wallMs() * 1e6) : this.M._ptw_now_ns();
  }

  /** The ring slot for span's context (ptw_span_run writes it); span keeps where it is. */
  ringSlot(span) {
    let k = this.ringN;
    if (k === Core.RING) {
      this.ingest(); // staged spans write their contexts in this round's slots
      this.ringGen.bytes = this.heap().slice(this.ring, this.ring + Core.RING * this.layout.ctx);
      this.ringGen = { bytes: null };
      k = 0;
    }
    this.ringN = k + 1;
    span._gen = this.ringGen;
    span._slot = k;
    return this.ring + k * this.layout.ctx;
  }

  /** The context bytes in slot k of ring generation gen (still in the ring, or in its copy). */
  ringCtx(gen, k) {
    this.ingest(); // the span may still be staged: its ids are decided when the core records it
    const at = k * this.layout.ctx;
    const end = at + this.layout.ctx;
    return gen.bytes ? gen.bytes.slice(at, end) : this.heap().slice(this.ring + at, this.ring + end);
  }

  /** A warning of the JavaScript side (the core's own lines go through its console writer). */
  warn(text) {
    if (!this.quiet) this.sink.warn(`polytel: ${text}`);
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
   * A NUL-terminated copy kept for strings that repeat (metric names, units), valid until the next
   * internRoom(): a call that interns k strings calls internRoom(k) first, so the cache is emptied (and its
   * copies freed) only before a call takes its pointers, never between two of them (a pointer freed by a
   * clear and reused by the next copy would put the wrong name on the wire).
   */
  intern(s) {
    let p = this.cache.get(s);
    if (p !== undefined) return p;
    p = this.tmpString(s);
    this.cache.set(s, p);
    return p;
  }

  /** Room for k more interned strings: past the bound, the cache is emptied (see intern). */
  internRoom(k) {
    if (this.cache.size + k <= Core.INTERN_MAX) return;
    for (const q of this.cache.values()) this.M._free(q);
    this.cache.clear();
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

  /**
   * Upper bound of the arena bytes for attrs (entries as [k, v, k, v...]). Arrays of one kind of value become
   * an ArrayAttr (an OTLP array); other objects their JSON text.
   */
  attrBytes(entries) {
    if (!entries) return 0;
    let n = 8 + (entries.length / 2) * this.layout.size;
    for (let i = 0; i < entries.length; i += 2) {
      n += entries[i].length * 3 + 1;
      let v = entries[i + 1];
      const t = typeof v;
      if (t === 'object' || t === 'symbol') {
        const arr = t === 'object' && (Array.isArray(v) || ArrayBuffer.isView(v)) ? arrayAttr(v) : null;
        entries[i + 1] = v = arr ?? safeString(v);
      }
      if (typeof v === 'string') n += v.length * 3 + 1;
      else if (v instanceof ArrayAttr) {
        n += 8 + v.items.length * 8;
        if (v.type === ATTR_STRING_ARRAY) for (const x of v.items) n += x.length * 3 + 1;
      }
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
      } else if (v instanceof ArrayAttr) {
        s = this.putArray(a, s, v);
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

  /** The elements of an array attribute at s (8-aligned) into the attribute at a; returns the next offset. */
  putArray(a, s, v) {
    const L = this.layout;
    const dv = this.dv();
    const items = v.items;
    const n = items.length;
    s = (s + 7) & ~7;
    dv.setUint32(a + L.type, v.type, true);
    dv.setUint32(a + L.arrPtr, s, true);
    dv.setUint32(a + L.arrLen, n, true);
    if (v.type === ATTR_STRING_ARRAY) {
      let t = s + n * L.strEl;
      for (let j = 0; j < n; j++) {
        const len = this.putString(t, items[j]);
        dv.setUint32(s + j * L.strEl, t, true);
        dv.setUint32(s + j * L.strEl + L.strElLen, len, true);
        t += len + 1;
      }
      return t;
    }
    for (let j = 0; j < n; j++) {
      const x = items[j];
      if (v.type === ATTR_INT_ARRAY) dv.setBigInt64(s + 8 * j, typeof x === 'bigint' ? BigInt.asIntN(64, x) : BigInt(x), true);
      else if (v.type === ATTR_DOUBLE_ARRAY) dv.setFloat64(s + 8 * j, Number(x), true);
      else dv.setInt32(s + 4 * j, x ? 1 : 0, true);
    }
    return s + n * 8;
  }
}

/** An attribute value that is an OTLP array: strings, int64s, doubles or booleans. */
class ArrayAttr {
  constructor(type, items) {
    this.type = type;
    this.items = items;
  }
}

/** The ArrayAttr of a homogeneous array (integers and other numbers together are doubles), or null when mixed. */
function arrayAttr(v) {
  const items = Array.isArray(v) ? v : Array.from(v);
  let strs = 0, bools = 0, ints = 0, nums = 0;
  for (const x of items) {
    const t = typeof x;
    if (t === 'string') strs++;
    else if (t === 'boolean') bools++;
    else if (t === 'bigint' || Number.isSafeInteger(x)) ints++;
    else if (t === 'number') nums++;
    else return null;
  }
  const n = items.length;
  if (strs === n) return new ArrayAttr(ATTR_STRING_ARRAY, items);
  if (bools === n) return new ArrayAttr(ATTR_BOOL_ARRAY, items);
  if (ints === n) return new ArrayAttr(ATTR_INT_ARRAY, items);
  if (ints + nums === n) return new ArrayAttr(ATTR_DOUBLE_ARRAY, items);
  return null;
}

const EMPTY_BAGGAGE = Object.freeze({});
const NO_PARENT = Object.freeze({ bytes: null, tracestate: '', baggage: EMPTY_BAGGAGE });
const NO_OPTS = Object.freeze({});

const PROMISE_THEN = Promise.prototype.then;
const SETTLING = Symbol('polytel.settling');

/**
 * pt.span's fn(span) inside AsyncLocalStorage.run: a native promise result is chained here, still in the
 * span's context, so its reaction runs in that context (Node's promise hooks carry the store of where .then
 * was called) and one pair of handlers per Polytel serves every span, with no closures per span. The
 * chained promise is handed back through pt._settling (run() returns what this returns: SETTLING says so).
 * Any other thenable may call back from anywhere: span() chains it with closures, as before.
 */
function callSettled(pt, fn, span) {
  const r = fn(span);
  if (r instanceof Promise && r.then === PROMISE_THEN) {
    pt._settling = PROMISE_THEN.call(r, pt._onSettledOk, pt._onSettledErr);
    return SETTLING;
  }
  return r;
}


/**
 * The fields of one header in a carrier, names compared case-insensitively: an array of strings (Node gives an
 * array for a repeated header; a comma-joined value stays one field), or undefined when absent.
 */
function header(carrier, name) {
  let v;
  if (typeof carrier.get === 'function' && typeof carrier.has === 'function') {
    v = carrier.get(name); // Headers: case-insensitive already; a Map is searched below
    if ((v === undefined || v === null) && !(globalThis.Headers && carrier instanceof globalThis.Headers)) {
      for (const [k, val] of carrier) if (String(k).toLowerCase() === name) v = val;
    }
  } else {
    v = carrier[name];
    if (v === undefined) {
      for (const k in carrier) if (k.length === name.length && k.toLowerCase() === name) v = carrier[k];
    }
  }
  if (v === undefined || v === null) return undefined;
  return Array.isArray(v) ? v.map(String) : [String(v)];
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
    // Browsers: every keepalive request of the page in flight counts against one budget (64 KiB in
    // Chromium); past it the browser fails the request like a network error. Requests wait here, oldest
    // first, until theirs fits, so all of polytel's can outlive the page.
    this.budget = 0;
    this.keepaliveBytes = 0;
    this.held = [];
    // Requests handed to sendBeacon at a page exit, and keepalive requests whose promise the browser failed
    // as the page went away: they go on in the browser, and no answer comes back.
    this.beaconed = [];
    this.orphans = [];
    this.exitRun = null; // the page-exit flush under way (a promise of its report)
    this.exitReport = null; // its report, kept up to date while the exit's run is under way or the page is exited
    this.exited = false; // the final page exit ran (until the page is shown again)
    this.lastExit = null;
    this.plainFailing = false; // a plain request failed at the network level since the last answer
    this.diagnosed = false; // the network failure was explained once since the last answer
    this.warnedAt = new Map();
  }

  configure(options, fsModule) {
    this.options = options;
    this.fs = fsModule;
  }

  started() {
    const M = this.M;
    const core = this.pt._core;
    const o = this.options;
    this.running = true;
    this.generation = M._ptw_generation();
    const cfg = core.resolved();
    this.exporter = cfg.exporter; // "otlp", "file" or "none", as the core resolved it
    this.exportDir = cfg.export_dir;
    const headers = {};
    const n = M._ptw_n_headers();
    for (let i = 0; i < n; i++) headers[core.readCString(M._ptw_header(i, 0))] = core.readCString(M._ptw_header(i, 1));
    Object.assign(headers, o.headers || {});
    this.headers = headers;
    this.fetch = o.fetch || globalThis.fetch;
    // Runs inside a call into wasm: never throw from here.
    // gzip as configured; unset in a page, for endpoints on the page's own origin (no CORS preflight has to
    // allow Content-Encoding there): far more fits the keepalive budget at a page exit.
    this.gzipMode = o.compressionSet ? (cfg.compression === 'gzip' && this.exporter === 'otlp' ? 'always' : 'never') : IS_NODE ? 'never' : 'same-origin';
    if (cfg.compression === 'zstd') this.pt._warnOnce('zstd compression is not available in wasm (no libzstd, no CompressionStream for it): bodies go out uncompressed');
    if (this.gzipMode !== 'never' && typeof CompressionStream !== 'function') {
      if (this.gzipMode === 'always') this.pt._warnOnce('gzip compression needs CompressionStream, which this runtime lacks: bodies go out uncompressed');
      this.gzipMode = 'never';
    }
    this.keepalive = !IS_NODE && keepaliveSupported();
    this.budget = IS_NODE ? 0 : KEEPALIVE_BUDGET;
    if (!IS_NODE && o.keepaliveBudget !== undefined) {
      const b = Number(o.keepaliveBudget);
      if (Number.isFinite(b) && b >= 1 && b <= KEEPALIVE_BUDGET) this.budget = Math.floor(b);
      else this.pt._warnOnce(`keepaliveBudget must be 1..${KEEPALIVE_BUDGET} bytes (the browser's cap), not ${JSON.stringify(o.keepaliveBudget)}: using ${KEEPALIVE_BUDGET}`);
    }
    let how = String(o.exitTransport ?? 'auto').toLowerCase();
    if (!['auto', 'fetch', 'beacon'].includes(how)) {
      this.pt._warnOnce(`exitTransport must be "auto", "fetch" or "beacon", not ${JSON.stringify(o.exitTransport)}: using "auto"`);
      how = 'auto';
    }
    const beacon = typeof globalThis.navigator?.sendBeacon === 'function';
    this.exitTransport = how === 'beacon' ? (beacon ? 'beacon' : 'none') : how === 'fetch' || this.keepalive ? 'fetch' : beacon ? 'beacon' : 'none';
    // A file exporter that cannot write sees its requests fail, and the core retries, then drops and counts them.
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
    this.held = [];
    this.beaconed = [];
    this.orphans = [];
    this.exitRun = null;
    this.exitReport = null;
    this.exited = false;
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
    this.pt._core.ingest(); // the spans staged since the last tick are the core's before it exports
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

  /** A copy of what the transport needs from a request: its memory is the pipeline's. */
  describe(req) {
    const M = this.M;
    const core = this.pt._core;
    const ptr = M._ptw_req_body(req);
    const len = M._ptw_req_body_len(req);
    return {
      req,
      generation: this.generation,
      signal: M._ptw_req_signal(req),
      items: M._ptw_req_items(req),
      body: core.heap().slice(ptr, ptr + len),
      url: core.readCString(M._ptw_req_url(req)),
      contentType: core.readCString(M._ptw_req_content_type(req)),
      timeoutMs: M._ptw_req_timeout_ms(req) || 10000,
      gzip: false,
      keepaliveRefused: false,
    };
  }

  send(req) {
    const r = this.describe(req);
    if (this.exporter === 'none') {
      this.finish(r, { status: 200, net: NET_OK, sent: 1 });
      return;
    }
    if (this.exporter === 'file') {
      try {
        if (!this.fs) throw new Error('no node:fs');
        const file = `${this.exportDir}/${SIGNAL_FILES[r.signal] ?? 'unknown'}.jsonl`;
        this.fs.appendFileSync(file, Buffer.concat([r.body, Buffer.from('\n')]));
      } catch (e) {
        // like a network error: retried by the pipeline, then dropped and counted
        this.finish(r, { status: 0, net: NET_OTHER, sent: 0, error: errorMessage(e) });
        return;
      }
      this.finish(r, { status: 200, net: NET_OK, sent: 1 });
      return;
    }
    const p = this.compress(r);
    if (p) p.then(() => this.place(r));
    else this.place(r);
  }

  wantGzip(r) {
    if (this.gzipMode === 'always') return true;
    if (this.gzipMode !== 'same-origin') return false;
    try {
      return new URL(r.url, globalThis.location?.href).origin === globalThis.location?.origin;
    } catch {
      return false;
    }
  }

  /** gzip through CompressionStream when wanted: a promise, or undefined when there is nothing to do. */
  compress(r) {
    if (r.gzip || !this.wantGzip(r)) return undefined;
    return gzipBytes(r.body).then(
      (z) => {
        r.body = z;
        r.gzip = true;
      },
      (e) => this.pt._warnOnce(`gzip failed (${errorMessage(e)}): bodies go out uncompressed`),
    );
  }

  /** Sends now, or holds the request until it fits the keepalive budget (browsers). */
  place(r) {
    if (r.generation !== this.generation || !this.running) return; // stopped meanwhile: the pipeline is gone
    if (this.exited) {
      this.exitPlace(r, this.lastExitReport, false);
      return;
    }
    const n = r.body.length;
    // Node has no budget; a body past it can never be a keepalive request (it does not outlive the page).
    if (!this.budget || !this.keepalive || n > this.budget) {
      this.post(r, false);
      return;
    }
    if (r.signal === SIGNAL_METRICS) this.metricsBytes = n;
    if (this.held.length || !this.fits(r)) this.held.push(r);
    else this.post(r, true);
  }

  /**
   * Room for r among the keepalive requests in flight. Logs and spans leave room for a metrics snapshot,
   * so that the last one, which counts what a page exit drops, always goes.
   */
  fits(r) {
    const reserve = r.signal === SIGNAL_METRICS ? 0 : Math.max(4096, (this.metricsBytes ?? 0) + 512);
    return this.keepaliveBytes + r.body.length <= this.budget - Math.min(reserve, this.budget >> 2);
  }

  releaseBudget(n) {
    this.keepaliveBytes -= n;
    if (this.exitReport) {
      this.exitReport.releasedBytes += n;
      this.exitReport.leftBytes = this.budget - this.keepaliveBytes;
    }
    // While an exit runs, it alone places what waits (and its report counts all of it).
    while (this.held.length && !this.exitReport && this.fits(this.held[0])) this.post(this.held.shift(), true);
  }

  /** One fetch. Its outcome goes to the pipeline (finish), which alone decides about retries and drops. */
  post(r, keepalive) {
    const headers = { 'content-type': r.contentType, ...this.headers };
    if (r.gzip) headers['content-encoding'] = 'gzip';
    const ac = new AbortController();
    const flight = { abort: () => ac.abort() };
    this.inflight.add(flight);
    let timedOut = false;
    const timer = unref(setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, r.timeoutMs));
    const n = r.body.length;
    if (keepalive) this.keepaliveBytes += n;
    let p;
    try {
      p = Promise.resolve(this.fetch.call(globalThis, r.url, { method: 'POST', body: r.body, headers, keepalive, signal: ac.signal }));
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
        return { status: res.status, net: NET_OK, sent: 1, retryAfterMs, body: answer, contentType: res.headers.get('content-type') };
      },
      (error) => ({ error }),
    ).then((out) => {
      clearTimeout(timer);
      this.inflight.delete(flight);
      if (out.error !== undefined && keepalive && this.exited) {
        // The page is going away: the browser fails the document's fetch promises, while its keepalive
        // requests go on and keep their part of the budget. Their outcome is unknown here: they stay in
        // flight (pending) in the accounting, unless the page is shown again (resumed).
        this.orphans.push(r);
        return;
      }
      if (keepalive) this.releaseBudget(n);
      if (out.error === undefined) this.finish(r, out);
      else this.failed(r, keepalive, out.error, timedOut);
    });
  }

  failed(r, keepalive, error, timedOut) {
    if (r.generation !== this.generation || !this.running) return;
    if (this.exited) {
      // A plain request the page's exit cut off: whether its body got out nobody can tell.
      this.finish(r, { status: 0, net: NET_ABORTED, sent: 1, error: 'cut off by the page exit' });
      return;
    }
    if (!timedOut && keepalive && !this.plainFailing) {
      // The browser refuses a keepalive request past its budget with the TypeError of any network failure.
      // polytel's own stay inside the budget, so another script holds the rest: one plain attempt tells
      // the two apart (transport mechanics, not a retry: the pipeline sees one outcome).
      r.keepaliveRefused = true;
      this.post(r, false);
      return;
    }
    if (!timedOut && !keepalive) this.plainFailing = true;
    const cross = this.diagnose(r, error, timedOut);
    this.finish(r, this.failure(error, timedOut, cross));
  }

  /**
   * The response description (polytel__response_t) of a fetch that got no answer. fetch does not say
   * whether the body went out. Node names a refused connection (nothing sent). In a browser, a request
   * to another origin is preceded by a CORS preflight (our Content-Types are not CORS-safelisted), so an
   * opaque failure there is a preflight or connection failure: the body did not go out. Otherwise it may
   * have: the records count as unconfirmed if nothing better comes.
   */
  failure(error, timedOut, crossOrigin) {
    const code = error?.cause?.code;
    const refused = code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN';
    const text = code ? `${code}: ${errorMessage(error)}` : errorMessage(error);
    if (timedOut) return { status: 0, net: NET_TIMEOUT, sent: 1, error: `no answer within ${OTLP_TIMEOUT_WORDS}` };
    if (refused) return { status: 0, net: NET_CONNECT, sent: 0, error: text };
    if (crossOrigin) {
      return { status: 0, net: NET_OTHER, sent: 0, error: `${text}: an opaque network error; on another origin, a CORS refusal is a likely cause` };
    }
    return { status: 0, net: NET_OTHER, sent: 1, error: text };
  }

  /** resp: { status, net, sent, retryAfterMs?, body?, contentType?, error? } (polytel__response_t). */
  finish(r, resp) {
    if (r.generation !== this.generation || !this.running) return; // stopped meanwhile: the pipeline is gone
    const M = this.M;
    const core = this.pt._core;
    if (resp.net === NET_OK) {
      this.plainFailing = false;
      this.diagnosed = false;
      if (r.keepaliveRefused) {
        this.warnEvery('keepalive', `the browser refused a keepalive request of ${r.body.length} bytes while polytel's own keepalive requests in flight held ${this.keepaliveBytes} bytes of its ${this.budget}-byte budget: other code on this page uses the browser's 64 KiB keepalive allowance. It went out as a plain request (which does not outlive the page); set keepaliveBudget lower to leave room for the others`);
      }
    }
    const heap = core.heap();
    const n = resp.body ? Math.min(resp.body.length, M._ptw_resp_cap(0)) : 0;
    if (n) heap.set(resp.body.subarray(0, n), M._ptw_resp_buf(0));
    core.writeCString(M._ptw_resp_buf(1), resp.contentType || '', M._ptw_resp_cap(1));
    core.writeCString(M._ptw_resp_buf(2), resp.error || '', M._ptw_resp_cap(2));
    // Whether the core kept the request (a retry) or counted it is its decision: only flush() cares.
    if (M._ptw_done(r.req, resp.status, resp.net, resp.sent ? 1 : 0, resp.retryAfterMs ?? -1, n) === DONE_RETRY) {
      this.retrying.add(r.req);
    }
    this.tick();
  }

  warnEvery(key, text, everyMs = 60000) {
    const now = Date.now();
    const last = this.warnedAt.get(key);
    if (last !== undefined && now - last < everyMs) return;
    this.warnedAt.set(key, now);
    this.pt._core.warn(text);
  }

  /**
   * Browsers report a CORS refusal and an unreachable collector alike (an opaque TypeError). For a
   * cross-origin endpoint, once per failure episode, a no-cors probe (which needs no CORS) tells whether
   * the collector answers at all, and the warning names what to configure. Returns whether the endpoint
   * is on another origin than the page.
   */
  diagnose(r, error, timedOut) {
    if (IS_NODE) return false;
    const page = globalThis.location;
    let target;
    try {
      target = new URL(r.url, page?.href);
    } catch {
      return false;
    }
    if (!page?.origin || page.origin === 'null' || target.origin === page.origin) return false;
    if (timedOut || this.diagnosed) return true;
    this.diagnosed = true;
    const origin = page.origin;
    // Header names only (never a value), and only well-formed ones: a name is echoed into the console.
    const extra = Object.keys(this.headers)
      .filter((h) => h.toLowerCase() !== 'content-type')
      .map((h) => (/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(h) ? h : '<a malformed header name>'));
    if (r.gzip) extra.unshift('Content-Encoding');
    const headersHint = extra.length ? ` and allowed_headers: ${JSON.stringify(extra)}` : '';
    const how = `receivers: otlp: protocols: http: cors: allowed_origins: ["${origin}"]${headersHint}`;
    const what = `${errorMessage(error)}`;
    const where = target.origin + target.pathname; // never the query: it may carry a key
    let probe;
    try {
      probe = Promise.resolve(this.fetch.call(globalThis, target.href, { method: 'HEAD', mode: 'no-cors', cache: 'no-store', credentials: 'omit' }));
    } catch (e) {
      probe = Promise.reject(e);
    }
    probe.then(
      () => this.warnEvery('cors', `export to ${where} failed (${what}): the collector answers, but the browser withholds its responses from this page (CORS): the collector does not allow the origin ${origin}. In the OpenTelemetry Collector: ${how}`, 0),
      () => this.warnEvery('cors', `export to ${where} failed (${what}): an opaque network error: the collector (${target.origin}) is unreachable, or it refuses this page's origin ${origin} (CORS): browsers report both alike. If it is up, allow the origin: ${how}`, 0),
    );
    return true;
  }

  // ------------------------------------------------------------ page exit

  /**
   * What the page can still send as it goes away: one last batch within the keepalive budget (the
   * requests already in flight count against it). final: the page is leaving (pagehide): what does not
   * fit is dropped and counted, and the metrics snapshot, taken after those drops, goes last (its room is
   * reserved). Not final (hidden, the page may live on): what does not fit waits for room.
   */
  exitFlush(final) {
    if (!this.running || this.exporter !== 'otlp') return Promise.resolve(null);
    if (this.exited) return this.exitRun ?? Promise.resolve(this.lastExit);
    if (this.exitRun) return this.exitRun.then(() => this.exitFlush(final));
    const M = this.M;
    this.pt._core.ingest();
    M._ptw_exit_cut();
    const list = [];
    const metricsSuperseded = (r) => r.signal === SIGNAL_METRICS && (M._ptw_exit_release(r.req), true);
    for (const r of this.held.splice(0)) if (!metricsSuperseded(r)) list.push(r);
    for (let req; (req = M._ptw_exit_take()); ) {
      this.retrying.delete(req);
      list.push(this.describe(req));
    }
    // Room for the last snapshot: a snapshot now (its size), given back and superseded by the last one.
    const m0 = M._ptw_exit_metrics(final ? 1 : 0);
    let reserve = 0;
    if (m0) {
      reserve = M._ptw_req_body_len(m0) + 64;
      M._ptw_exit_release(m0);
    }
    const transport = final ? this.exitTransport : 'fetch';
    const report = {
      final,
      transport,
      budget: this.budget,
      inFlightBytes: this.keepaliveBytes,
      // Answers to requests in flight can land while the exit runs (under load, the browser settles the
      // document's fetches in the very task that fires pagehide): their bytes go back to the budget and the
      // exit may use them. The bytes in flight are then inFlightBytes + sentBytes - releasedBytes
      // (= budget - leftBytes), and never more than peakBytes, which the budget bounds.
      releasedBytes: 0,
      peakBytes: this.keepaliveBytes,
      sentRequests: 0,
      sentBytes: 0,
      sentItems: 0,
      gzipped: 0,
      heldRequests: 0,
      droppedRequests: 0,
      droppedItems: 0,
      reserve,
      leftBytes: this.budget - this.keepaliveBytes, // room the exit did not use (so far)
      smallestDroppedBytes: 0,
      reasons: {},
    };
    this.exitReport = report;
    if (final) {
      this.exited = true;
      this.lastExitReport = report;
      // A page that still runs its timers a second after its exit stayed (exitFlush() called on a page that
      // lives on): export as usual again. A page that left runs no more timers; a frozen one resumes on pageshow.
      // (Answers are no such sign: those of earlier requests still arrive between pagehide and the unload.)
      setTimeout(() => this.resumed(), 1000);
    }
    const run = async () => {
      for (const r of list) {
        if (transport === 'fetch') await this.compress(r);
        this.exitPlace(r, report, false);
      }
      // After the drops: its self-metrics count them.
      const m1 = this.running ? M._ptw_exit_metrics(final ? 1 : 0) : 0;
      if (m1) {
        const r = this.describe(m1);
        if (transport === 'fetch') await this.compress(r);
        this.exitPlace(r, report, true);
      }
      if (final && report.droppedRequests) {
        const why = Object.entries(report.reasons).map(([k, v]) => `${v} ${k}`).join(', ');
        this.pt._core.warn(
          `page exit: ${report.droppedItems} log records/spans could not be sent and are counted as dropped (dropped_export): ${why}; ` +
            `sent ${report.sentRequests} requests (${report.sentBytes} bytes${report.gzipped ? `, ${report.gzipped} gzip'd` : ''}, ${report.sentItems} records) by ${transport} ` +
            `within the ${this.budget}-byte keepalive budget (${report.inFlightBytes} bytes were already in flight)`,
        );
      }
      this.lastExit = report;
      return report;
    };
    const p = run().finally(() => {
      if (this.exitRun === p) this.exitRun = null;
      if (!final && this.exitReport === report) {
        this.exitReport = null;
        this.releaseBudget(0); // room that came back during the run, for what the run kept waiting
      }
    });
    this.exitRun = p;
    return p;
  }

  /** Sends r within what is left of the budget; else keeps it (the page may live on) or drops it (final). */
  exitPlace(r, report, lastSnapshot) {
    if (r.generation !== this.generation || !this.running) return;
    const M = this.M;
    const n = r.body.length;
    const room = this.budget - this.keepaliveBytes - (lastSnapshot ? 0 : report.reserve);
    let reason = 'past the keepalive budget';
    if (n <= room) {
      if (report.transport === 'fetch') {
        this.post(r, true);
        this.countSent(report, r);
        return;
      }
      if (report.transport === 'beacon') {
        // sendBeacon carries no headers: no Content-Encoding, no credentials of ours.
        if (Object.keys(this.headers).some((h) => h.toLowerCase() !== 'content-type')) reason = 'sendBeacon cannot carry the configured headers';
        else {
          let ok = false;
          try {
            ok = globalThis.navigator.sendBeacon(r.url, new Blob([r.body], { type: r.contentType }));
          } catch (e) {
            reason = `sendBeacon threw (${errorMessage(e)})`;
          }
          if (ok) {
            this.keepaliveBytes += n; // the browser's budget holds it until it is delivered: no word comes back
            this.beaconed.push(r);
            this.countSent(report, r);
            return;
          }
          if (!reason.startsWith('sendBeacon threw')) reason = 'sendBeacon refused it';
        }
      } else {
        reason = 'no keepalive fetch or sendBeacon in this browser';
      }
    }
    if (!report.final) {
      this.held.push(r);
      report.heldRequests++;
      return;
    }
    M._ptw_exit_drop(r.req);
    if (!report.droppedRequests || n < report.smallestDroppedBytes) report.smallestDroppedBytes = n;
    report.droppedRequests++;
    report.droppedItems += r.items;
    report.reasons[reason] = (report.reasons[reason] ?? 0) + 1;
  }

  /** After r was posted or beaconed (its bytes already count in keepaliveBytes). */
  countSent(report, r) {
    report.sentRequests++;
    if (r.gzip) report.gzipped++;
    report.sentBytes += r.body.length;
    report.sentItems += r.items;
    report.leftBytes = this.budget - this.keepaliveBytes;
    if (this.keepaliveBytes > report.peakBytes) report.peakBytes = this.keepaliveBytes;
  }

  /** The page is shown again (back/forward cache, or visible after an exit flush): export as usual. */
  resumed() {
    if (!this.running || !this.exited) return;
    this.exited = false;
    this.exitReport = null; // the exit is over: its report stays as it was
    // Requests sent at the exit whose answer never came: by now the browser has finished them one way or
    // the other, and they no longer hold its budget. Whether they arrived nobody can tell.
    for (const r of [...this.beaconed.splice(0), ...this.orphans.splice(0)]) {
      this.keepaliveBytes -= r.body.length;
      this.unanswered(r);
    }
    this.releaseBudget(0);
    this.wake();
  }

  /** A request that was sent and never answered: the pipeline retries it (it may arrive twice) or counts it unconfirmed. */
  unanswered(r) {
    this.finish(r, { status: 0, net: NET_TIMEOUT, sent: 1, error: 'sent at the page exit, never answered' });
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
  constructor(core, options, als, fsModule, ear = null) {
    // Logger's constructor needs _core: set it through a prototype-free path first.
    super({ _core: core }, options.target ?? 'app');
    this._pt = this;
    this._core = core;
    this._options = options;
    this._als = als; // AsyncLocalStorage (Node) or null
    this._ear = ear; // executionAsyncResource for run1/run3 (trace.js), or null
    this._settling = null; // callSettled's chained promise, taken by span() right after
    this._onSettledOk = (v) => this._settledOk(v);
    this._onSettledErr = (e) => this._settledErr(e);
    this._stack = []; // the synchronous context stack (browsers; also the fallback in Node)
    this._kindCache = new Map();
    this._tpCache = new WeakMap(); // context bytes -> traceparent
    this._collectors = new Set(); // meters with observable instruments (registerOpenTelemetry): collected at each flush and interval
    this._require = null; // Node: createRequire of this module (registerOpenTelemetry loads @opentelemetry/api with it)
    this._fs = fsModule;
    this._driver = new Driver(this);
    this._exitHooks = null; // [target, event, listener] triples: Node's beforeExit/exit, a page's pagehide/...
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
    // A span the OpenTelemetry API put in the context (a remote parent, another SDK's) links by its ids.
    const sb = span === undefined ? null : span instanceof Span ? span._ctx : this._foreignBytes(span);
    core.reserve(text.length * 3 + 1 + core.attrBytes(entries) + (sb ? core.layout.ctx + 8 : 0));
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
    if (sb) {
      sp = (off + 7) & ~7;
      core.heap().set(sb, sp);
    }
    M._polytel_log_attrs(level, targetPtr, base, len, ap, n, sp);
  }

  // ------------------------------------------------------------ the context

  /** The current context: AsyncLocalStorage's in Node (it follows awaits and callbacks), else the stack's top. */
  _context() {
    if (this._als) return this._als.getStore();
    const s = this._stack;
    return s.length ? s[s.length - 1] : undefined;
  }

  /** The current span (polytel's, or one the OpenTelemetry API put in the context), or undefined. */
  _current() {
    const c = this._als ? this._als.getStore() : this._stack[this._stack.length - 1];
    return c ? c.getValue(SPAN_KEY) : undefined;
  }

  /** fn() with ctx as the current context. A page has no async context: the stack holds only while fn runs. */
  _runWith(ctx, fn, thisArg, args) {
    if (this._als) return this._als.run(ctx, () => fn.apply(thisArg, args));
    this._stack.push(ctx);
    try {
      return fn.apply(thisArg, args);
    } finally {
      this._stack.pop();
    }
  }

  /** fn(span) with span as the current span. */
  _runIn(span, fn) {
    const ctx = withSpan(this._context(), span);
    if (this._als) return this._als.run(ctx, fn, span);
    this._stack.push(ctx);
    try {
      return fn(span);
    } finally {
      this._stack.pop();
    }
  }

  /**
   * A parent as pt.span takes it: undefined (the current span), null (none: a new trace), a SpanContext, a
   * Span, or an OpenTelemetry span or SpanContext. Returns { bytes, tracestate, baggage }.
   */
  _parentInfo(parent) {
    if (parent === undefined) parent = this._current();
    if (parent === null || parent === undefined) return NO_PARENT;
    if (parent instanceof Span || parent instanceof SpanContext || parent instanceof RemoteSpan) {
      const sc = parent instanceof Span ? parent.context : parent instanceof RemoteSpan ? parent._sc : parent;
      return { bytes: sc._ctx, tracestate: sc.tracestate, baggage: sc.baggage };
    }
    // An OpenTelemetry span (the API's NonRecordingSpan, another SDK's) or SpanContext.
    const sc = typeof parent.spanContext === 'function' ? parent.spanContext() : parent;
    if (sc && typeof sc.traceId === 'string' && typeof sc.spanId === 'string') {
      const bytes = this._otelBytes(sc);
      const ts = sc.traceState && typeof sc.traceState.serialize === 'function' ? sc.traceState.serialize() : '';
      return { bytes, tracestate: bytes ? ts : '', baggage: EMPTY_BAGGAGE };
    }
    throw new TypeError('polytel: parent must be a SpanContext, a Span, null or undefined');
  }

  /** polytel_span_ctx_t bytes of an OpenTelemetry SpanContext (ids as hex), or null when its ids are not valid. */
  _otelBytes(sc) {
    if (!/^[0-9a-f]{32}$/.test(sc.traceId) || !/^[0-9a-f]{16}$/.test(sc.spanId)) return null;
    if (/^0+$/.test(sc.traceId) || /^0+$/.test(sc.spanId)) return null;
    const b = new Uint8Array(this._core.layout.ctx);
    for (let i = 0; i < 16; i++) b[i] = parseInt(sc.traceId.substr(2 * i, 2), 16);
    for (let i = 0; i < 8; i++) b[16 + i] = parseInt(sc.spanId.substr(2 * i, 2), 16);
    b[this._core.span.flags] = Number(sc.traceFlags) & 0xff;
    b[this._core.span.remote] = sc.isRemote ? 1 : 0;
    return b;
  }

  _foreignBytes(span) {
    try {
      return this._parentInfo(span).bytes;
    } catch {
      return null;
    }
  }

  /** Unix nanoseconds on the core's clock. */
  _nowNs() {
    return this._core.M._ptw_now_ns();
  }

  /** The core's polytel_span_kind_from_name, or a TypeError naming the bad kind. */
  _kind(kind) {
    const name = kindName(kind);
    if (name === undefined) return 1; // POLYTEL_SPAN_KIND_INTERNAL
    let k = this._kindCache.get(name);
    if (k === undefined) {
      const core = this._core;
      const p = core.tmpString(name);
      k = core.M._polytel_span_kind_from_name(p, encoder.encode(name).length);
      core.M._free(p);
      if (k < 0) throw new TypeError(`polytel: kind must be one of internal, server, client, producer, consumer (got ${JSON.stringify(name)})`);
      this._kindCache.set(name, k);
    }
    return k;
  }

  /** The Scope of a scope option: a string, { name, version }, a Scope (kept as it is), or undefined (the core's "polytel"). */
  static _scope(scope) {
    if (scope === undefined || scope === null) return undefined;
    if (scope instanceof Scope) return scope;
    if (typeof scope === 'string') return scope ? new Scope(scope, '', false) : undefined;
    if (typeof scope === 'object' && scope.name) return new Scope(String(scope.name), scope.version ? String(scope.version) : '', false);
    throw new TypeError('polytel: scope must be a name or { name, version }');
  }

  /**
   * Starts a span: its start time read here; the core's polytel_span_start (ids, the sampler's decision) runs
   * when its context is first needed (_spanCtx) or when it ends (_finishSpan). opts: kind, scope, links,
   * baggage, startTime.
   */
  _startSpan(name, parent, attrs, opts = {}) {
    const kind = typeof opts.kind === 'number' ? opts.kind : opts.kind === undefined ? 1 : this._kind(opts.kind);
    const t0 = opts.startTime !== undefined ? Math.round(toNs(opts.startTime)) : this._core.nowNs();
    const links = opts.links ? Array.from(opts.links) : null;
    const scope = opts.scope === undefined ? undefined : Polytel._scope(opts.scope);
    return new Span(this, name, parent.bytes, parent.tracestate, parent.baggage, attrs, kind, scope, links, opts.baggage, t0);
  }

  /**
   * The span of pt.span without options and of a tracer's plain startSpan: parent is what the context holds
   * (undefined, a polytel Span, or the API's/another SDK's span), read without the { bytes, tracestate,
   * baggage } object _parentInfo makes. kind 1 is INTERNAL; scope a tracer's pinned Scope or undefined.
   */
  _startUnder(name, parent, attrs, scope, kind = 1) {
    if (parent === undefined || parent === null) return new Span(this, name, null, '', EMPTY_BAGGAGE, attrs, kind, scope, null, undefined, this._core.nowNs());
    if (parent instanceof Span) {
      const pb = parent._ctx; // the parent started in the core first, if nobody asked for its ids before
      return new Span(this, name, pb, parent._tracestate, parent._baggage, attrs, kind, scope, null, undefined, this._core.nowNs());
    }
    const info = this._parentInfo(parent);
    return new Span(this, name, info.bytes, info.tracestate, info.baggage, attrs, kind, scope, null, undefined, this._core.nowNs());
  }

  /** span's polytel_span_ctx_t bytes: from the ring when ptw_span_run finished it, else started now (at its start time). */
  _spanCtx(span) {
    const core = this._core;
    const size = core.layout.ctx;
    if (span._gen) return core.ringCtx(span._gen, span._slot);
    core.reserve(2 * size + 16);
    const pp = (core.arenaPtr + 7) & ~7;
    const out = pp + ((size + 7) & ~7);
    if (span._pb) core.heap().set(span._pb, pp);
    const rc = core.spanStartAt(span._pb ? pp : 0, out, span._t0);
    return rc === 0 ? core.heap().slice(out, out + size) : null;
  }

  /** The bytes of a link's target (a SpanContext, a Span, an OTel span/SpanContext, or { context, attributes }). */
  _linkOf(l) {
    if (!l) return null;
    let target = l;
    let attrs = null;
    if (!(l instanceof Span) && !(l instanceof SpanContext) && l.context && typeof l.context === 'object') {
      target = l.context;
      attrs = l.attributes || null;
    }
    let info;
    try {
      info = this._parentInfo(target);
    } catch {
      this._warnOnce('a link that is not a SpanContext, a Span or { context, attributes } was left out');
      return null;
    }
    return info.bytes ? { bytes: info.bytes, tracestate: info.tracestate, attrs } : null;
  }

  /** Records the whole span at once: ptw_span_finish (polytel_span_finish_ex) with kind, scope, events, links. */
  _finishSpan(span, status, message, endNs) {
    const core = this._core;
    // The end is read first: the span ends when _end is called, not after its strings are written.
    const end = endNs || core.nowNs();
    if (!span._events && !span._links && !span._tracestate) {
      const scope = span._scope;
      const name = span.name;
      if (span._attrs === null && !message && span._c === undefined && name.length <= 1024 && (scope === undefined || scope.pinned)) {
        // The commonest span: a name, a status, maybe a tracer's scope, its ids never asked for. Staged while
        // phase 2 runs (Core.stage), else recorded now. The arena holds at least 4096 bytes (reserved at
        // start-up), more than a context and a 1024-character name in UTF-8.
        let sp = 0;
        let svp = 0;
        if (scope !== undefined) {
          scope.pin(core);
          sp = scope._np;
          svp = scope._vp;
        }
        if (core.stOn && core.stage(span, status, sp, svp, end)) return;
        const cp = (core.arenaPtr + 7) & ~7;
        const pb = span._pb;
        if (pb) core.heap().set(pb, cp);
        const np = cp + core.layout.ctx;
        core.putString(np, name);
        core.spanRun(pb ? cp : 0, core.ringSlot(span), span._t0, np, status, 0, 0, 0, span._kind, sp, svp, end);
        return;
      }
      // The plain span (name, status, attributes, a tracer's scope): no event, link or tracestate arrays to
      // lay out; a tracer's scope strings are pinned once (Scope.pin), a per-call scope written beside the name.
      const entries = Core.attrEntries(span._attrs);
      let sp = 0;
      let svp = 0;
      let need = core.layout.ctx + 64 + (span.name.length + (message ? message.length : 0)) * 3 + core.attrBytes(entries);
      if (scope && !scope.pinned) need += (scope.name.length + scope.version.length) * 3 + 2;
      // Not started in the core yet (nobody asked for its context): the parent's bytes go here instead.
      const deferred = span._c === undefined;
      const pb = deferred ? span._pb : span._c;
      core.reserve(need);
      const cp = (core.arenaPtr + 7) & ~7;
      if (pb) core.heap().set(pb, cp);
      const np = cp + core.layout.ctx;
      let off = np + core.putString(np, span.name) + 1;
      let mp = 0;
      if (message) {
        mp = off;
        off += core.putString(off, message) + 1;
      }
      if (scope) {
        if (scope.pinned) {
          scope.pin(core);
          sp = scope._np;
          svp = scope._vp;
        } else {
          sp = off;
          off += core.putString(off, scope.name) + 1;
          if (scope.version) {
            svp = off;
            off += core.putString(off, scope.version) + 1;
          }
        }
      }
      let ap = 0;
      let n = 0;
      if (entries) {
        [ap, off] = core.putAttrs(off, entries);
        n = entries.length / 2;
      }
      // The end time is passed, not read by the core: its clock is the same JavaScript function, and a call from
      // wasm back into JavaScript costs more than the read.
      if (deferred) core.spanRun(pb ? cp : 0, core.ringSlot(span), span._t0, np, status, mp, ap, n, span._kind, sp, svp, end);
      else core.spanFinish(cp, np, status, mp, ap, n, span._kind, sp, svp, 0, 0, 0, 0, 0, end);
      return;
    }
    const L = core.span;
    const S = core.layout.size;
    const entries = Core.attrEntries(span._attrs);
    const msg = message ?? '';
    const scope = span._scope;
    const ts = span._tracestate || '';
    const events = span._events;
    const links = span._links ? span._links.map((l) => this._linkOf(l)).filter((l) => l) : null;
    // Room for everything first: reserve() may move the arena.
    let need = core.layout.ctx + 64 + (span.name.length + msg.length + ts.length) * 3 + core.attrBytes(entries);
    if (scope) need += (scope.name.length + scope.version.length) * 3 + 2;
    const evEntries = [];
    if (events) {
      for (const ev of events) {
        let e = null;
        if (ev.exception) {
          const x = ev.exception;
          need += 3 * S + 16 + (x.type.length + x.message.length + (x.stack ? x.stack.length : 0)) * 3 + 3;
        } else {
          e = Core.attrEntries(ev.attrs);
          need += ev.name.length * 3 + 1 + core.attrBytes(e) + 8;
        }
        evEntries.push(e);
        need += L.ev + 8;
      }
    }
    const linkEntries = [];
    if (links) {
      for (const l of links) {
        const e = Core.attrEntries(l.attrs);
        linkEntries.push(e);
        need += L.link + 8 + l.tracestate.length * 3 + 1 + core.attrBytes(e);
      }
    }
    core.reserve(need);
    const cp = (core.arenaPtr + 7) & ~7;
    core.heap().set(span._ctx, cp);
    let off = cp + core.layout.ctx;
    const str = (s) => {
      const p = off;
      off += core.putString(off, s) + 1;
      return p;
    };
    const np = str(span.name);
    const mp = message ? str(msg) : 0;
    const sp = scope ? str(scope.name) : 0;
    const svp = scope && scope.version ? str(scope.version) : 0;
    const tsp = ts ? str(ts) : 0;
    let ap = 0;
    let n = 0;
    if (entries) {
      [ap, off] = core.putAttrs(off, entries);
      n = entries.length / 2;
    }
    let evp = 0;
    if (events && events.length) {
      off = (off + 7) & ~7;
      evp = off;
      off += events.length * L.ev;
      for (let i = 0; i < events.length; i++) {
        const ev = events[i];
        const at = evp + i * L.ev;
        if (ev.exception) {
          const x = ev.exception;
          off = (off + 7) & ~7;
          const attrs3 = off;
          off += 3 * S;
          const tp = str(x.type);
          const xp = str(x.message);
          const kp = x.stack ? str(x.stack) : 0;
          core.M._polytel_span_exception_event(at, attrs3, tp, xp, kp);
        } else {
          const dv = core.dv();
          dv.setUint32(at + L.evName, str(ev.name), true);
          let eap = 0;
          const e = evEntries[i];
          if (e) [eap, off] = core.putAttrs(off, e);
          dv.setUint32(at + L.evAttrs, eap, true);
          dv.setUint32(at + L.evN, e ? e.length / 2 : 0, true);
        }
        core.dv().setBigUint64(at + L.evTime, BigInt(Math.round(ev.timeNs)), true);
      }
    }
    let lp = 0;
    if (links && links.length) {
      off = (off + 7) & ~7;
      lp = off;
      off += links.length * L.link;
      for (let i = 0; i < links.length; i++) {
        const l = links[i];
        const at = lp + i * L.link;
        core.heap().fill(0, at, at + L.link);
        core.heap().set(l.bytes, at + L.linkCtx);
        const dv = core.dv();
        dv.setUint32(at + L.linkTs, l.tracestate ? str(l.tracestate) : 0, true);
        const e = linkEntries[i];
        let lap = 0;
        if (e) [lap, off] = core.putAttrs(off, e);
        dv.setUint32(at + L.linkAttrs, lap, true);
        dv.setUint32(at + L.linkN, e ? e.length / 2 : 0, true);
      }
    }
    core.M._ptw_span_finish(cp, np, status, mp, ap, n, span._kind, sp, svp, tsp, evp, events ? events.length : 0, lp,
      links ? links.length : 0, end);
  }

  /**
   * Runs fn(span) inside a span and returns its value. A thenable result ends the span when it settles; a
   * throw or a rejection sets ERROR, adds an `exception` event (type, message, the JavaScript stack) and is
   * passed on unchanged. opts: parent (a SpanContext or a Span; null: a new trace; default the current span),
   * kind ("internal", "server", "client", "producer", "consumer"), links, scope (a name or { name, version }),
   * baggage (entries added for this span and its children).
   */
  span(name, fn, attrs, opts) {
    if (typeof fn !== 'function') throw new TypeError('polytel: span(name, fn, attrs?, opts?) needs a function');
    const als = this._als;
    const ear = this._ear;
    if (opts === undefined && ear !== null && als.enabled === true) {
      // The plain span in Node 16-22: run3 inline, the current context read from the async resource the span's
      // context is then set on (one look-up per span).
      const res = ear();
      const k = als.kResourceStore;
      const old = res[k];
      const span = this._startUnder(typeof name === 'string' ? name : String(name), old ? old.getValue(SPAN_KEY) : undefined, attrs, undefined);
      let result;
      try {
        res[k] = withSpan(old, span);
        try {
          result = callSettled(this, fn, span);
        } finally {
          res[k] = old;
        }
      } catch (e) {
        span.recordException(e);
        span._end(STATUS_ERROR, errorMessage(e));
        throw e;
      }
      return this._spanResult(span, result);
    }
    const store = als ? als.getStore() : undefined;
    let span;
    if (opts === undefined) {
      span = this._startUnder(typeof name === 'string' ? name : String(name), als ? (store ? store.getValue(SPAN_KEY) : undefined) : this._current(), attrs, undefined);
    } else {
      const parent = opts && opts.parent !== undefined ? opts.parent : als ? (store ? store.getValue(SPAN_KEY) : undefined) : this._current();
      span = this._startSpan(String(name), this._parentInfo(parent ?? null), attrs, opts || NO_OPTS);
    }
    let result;
    try {
      if (als) result = run3(als, this._ear, withSpan(store, span), callSettled, this, fn, span);
      else result = this._runIn(span, fn);
    } catch (e) {
      span.recordException(e);
      span._end(STATUS_ERROR, errorMessage(e));
      throw e;
    }
    return this._spanResult(span, result);
  }

  /** What pt.span returns for fn's result: its chained promise, a thenable's then pair, or the value (ended). */
  _spanResult(span, result) {
    if (result === SETTLING) {
      result = this._settling;
      this._settling = null;
      return result;
    }
    if (result !== null && (typeof result === 'object' || typeof result === 'function') && typeof result.then === 'function') {
      // A .then pair, not an async function: with AsyncLocalStorage on (Node 20's promise hooks), an await
      // adds a throwaway promise, every promise running the hooks' JavaScript.
      return result.then(
        (v) => {
          span._end(STATUS_UNSET);
          return v;
        },
        (e) => {
          span.recordException(e);
          span._end(STATUS_ERROR, errorMessage(e));
          throw e;
        },
      );
    }
    span._end(STATUS_UNSET);
    return result;
  }

  /** A native promise's settling, chained inside the span's context (callSettled): the span is the current one. */
  _settledOk(v) {
    this._als.getStore().getValue(SPAN_KEY)._end(STATUS_UNSET);
    return v;
  }

  _settledErr(e) {
    const span = this._als.getStore().getValue(SPAN_KEY);
    span.recordException(e);
    span._end(STATUS_ERROR, errorMessage(e));
    throw e;
  }

  /** The current span (undefined outside one). */
  currentSpan() {
    return this._current();
  }

  /** The baggage in force: the current span's (frozen { key: value }). */
  baggage() {
    const s = this._current();
    return s instanceof Span ? s._baggage : EMPTY_BAGGAGE;
  }

  /** ctx's traceparent through the core (polytel_traceparent_format). */
  _traceparent(bytes) {
    // A context's bytes never change: its header is formatted once (inject in a loop, a span injected twice).
    let tp = this._tpCache.get(bytes);
    if (tp === undefined) this._tpCache.set(bytes, (tp = this._formatTraceparent(bytes)));
    return tp;
  }

  _formatTraceparent(bytes) {
    const core = this._core;
    core.reserve(bytes.length + 8 + 64);
    const cp = (core.arenaPtr + 7) & ~7;
    core.heap().set(bytes, cp);
    const out = cp + bytes.length;
    return core.M._polytel_traceparent_format(cp, out, 64) === 0 ? core.readCString(out) : '';
  }

  /**
   * Writes the current span's (or `from`'s: a Span or SpanContext) trace context into carrier, as
   * OTEL_PROPAGATORS says (default tracecontext,baggage): traceparent, plus tracestate and baggage when set.
   * carrier: a plain object (a new one by default), or anything with set(name, value) (Headers, Map).
   * Returns the carrier.
   */
  inject(carrier = {}, from = undefined) {
    const out = this._injectFrom(from, null);
    if (typeof carrier.set === 'function') for (const k in out) carrier.set(k, out[k]);
    else Object.assign(carrier, out);
    return carrier;
  }

  /** { traceparent, tracestate, baggage } of from (undefined: the current span), as OTEL_PROPAGATORS says. */
  _injectFrom(from, extraBaggage) {
    const info = this._parentInfo(from);
    const mask = this._core.M._polytel_propagators();
    const out = {};
    if (mask & PROP_TRACECONTEXT && info.bytes) {
      const tp = this._traceparent(info.bytes);
      if (tp) {
        out.traceparent = tp;
        if (info.tracestate) out.tracestate = info.tracestate;
      }
    }
    if (mask & PROP_BAGGAGE) {
      let bag = info.baggage;
      if (extraBaggage && Object.keys(extraBaggage).length) bag = { ...extraBaggage, ...bag };
      if (bag !== EMPTY_BAGGAGE) {
        const b = this._formatBaggage(bag);
        if (b) out.baggage = b;
      }
    }
    return out;
  }

  /**
   * The SpanContext a carrier (headers: a plain object, Node's req.headers, Headers, a Map) holds, per
   * OTEL_PROPAGATORS; names are case-insensitive; malformed values are ignored as W3C Trace Context says
   * (a bad traceparent: no parent, and its tracestate is not read; a bad tracestate is dropped whole; bad
   * baggage members are skipped). null when there is nothing; a context with baggage and no valid
   * traceparent has isValid false.
   */
  extract(carrier) {
    if (!carrier || typeof carrier !== 'object') return null;
    const mask = this._core.M._polytel_propagators();
    let bytes = null;
    let tracestate = '';
    if (mask & PROP_TRACECONTEXT) {
      const tp = header(carrier, 'traceparent');
      // Two traceparent fields cannot both be the parent: invalid, like a malformed one.
      if (tp !== undefined && tp.length === 1) bytes = this._parseTraceparent(tp[0]);
      if (bytes) {
        const ts = header(carrier, 'tracestate');
        if (ts !== undefined) tracestate = this._tracestate(ts.join(','));
      }
    }
    let baggage = EMPTY_BAGGAGE;
    if (mask & PROP_BAGGAGE) {
      const bg = header(carrier, 'baggage');
      if (bg !== undefined) baggage = this._parseBaggage(bg);
    }
    if (!bytes && baggage === EMPTY_BAGGAGE) return null;
    return new SpanContext(this, bytes, tracestate, baggage);
  }

  _parseTraceparent(value) {
    const core = this._core;
    const s = String(value);
    const size = core.layout.ctx;
    core.reserve(size + 16 + s.length * 3 + 1);
    const cp = (core.arenaPtr + 7) & ~7;
    const sp = cp + size;
    core.putString(sp, s);
    if (core.M._polytel_traceparent_parse(sp, cp) !== 0) return null;
    return core.heap().slice(cp, cp + size);
  }

  /** A tracestate value in the core's normal form, or "" when it must be discarded. */
  _tracestate(value) {
    const core = this._core;
    const cap = 1024;
    core.reserve(cap + value.length * 3 + 8);
    const op = core.arenaPtr;
    const ip = op + cap;
    const len = core.putString(ip, value);
    const n = core.M._ptw_tracestate(ip, len, op, cap);
    return n > 0 ? core.readCString(op) : '';
  }

  _parseBaggage(fields) {
    const core = this._core;
    const M = core.M;
    M._ptw_baggage_reset();
    for (const f of fields) {
      core.reserve(f.length * 3 + 1);
      const len = core.putString(core.arenaPtr, f);
      M._ptw_baggage_parse(core.arenaPtr, len);
    }
    const n = M._ptw_baggage_n();
    if (!n) return EMPTY_BAGGAGE;
    const out = {};
    for (let i = 0; i < n; i++) {
      const vp = M._ptw_baggage_item(i, 1);
      out[core.readCString(M._ptw_baggage_item(i, 0))] = decoder.decode(core.heap().subarray(vp, vp + M._ptw_baggage_value_len(i)));
    }
    return Object.freeze(out);
  }

  _formatBaggage(baggage) {
    const core = this._core;
    const M = core.M;
    M._ptw_baggage_reset();
    const cap = 8192 + 1;
    for (const k in baggage) {
      const key = String(k);
      const value = String(baggage[k]);
      core.reserve(cap + (key.length + value.length) * 3 + 2);
      const kp = core.arenaPtr + cap;
      const kl = core.putString(kp, key);
      const vp = kp + kl + 1;
      const vl = core.putString(vp, value);
      if (M._ptw_baggage_set(kp, kl, vp, vl) !== 0) this._warnOnce(`baggage entry ${JSON.stringify(key)} left out (not a token, or over the W3C limits)`);
    }
    core.reserve(cap);
    const n = M._ptw_baggage_format(core.arenaPtr, cap);
    return n > 0 ? core.readCString(core.arenaPtr) : '';
  }

  /**
   * Node: an http(s) 'request' listener wrapping handler(req, res) in a `server` span whose parent is the
   * request's traceparent, with the HTTP semantic-convention attributes (docs/node-cluster.md).
   * options.route(req) names http.route; options.scope the instrumentation scope (default "polytel.http").
   */
  httpHandler(handler, options) {
    return httpHandler(this, handler, options);
  }

  /**
   * Registers polytel with @opentelemetry/api (a peer dependency): a TracerProvider and a MeterProvider backed
   * by this core, a context manager that shares pt.span's context (AsyncLocalStorage in Node), and the W3C
   * trace-context + baggage propagator. options.api: the API module (needed in a page; in Node it is
   * require()d). Returns { tracerProvider, meterProvider, contextManager, propagator, disable() }.
   */
  registerOpenTelemetry(options = {}) {
    return registerOpenTelemetry(this, options);
  }

  _metric(kind, name, value, attrs, unit) {
    const core = this._core;
    const M = core.M;
    core.internRoom(2);
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
    this._core.warn(text);
  }

  _exportFailures() {
    return this.stats().exportFailures;
  }

  /** Log records and spans: recorded = exported + dropped + unconfirmed + pending. Numbers. */
  stats() {
    const core = this._core;
    const size = core.layout.stats;
    core.ingest(); // a staged span is counted as recorded
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
    merged.compressionSet =
      merged.compression != null || this._core.envKeys.has('OTEL_EXPORTER_OTLP_COMPRESSION') || this._core.pageGlobal('OTEL_EXPORTER_OTLP_COMPRESSION') != null;
    this._driver.configure(merged, this._fs);
    applyConfig(this._core, merged);
    this._core.ingest(); // (nothing is staged before phase 2; kept in case)
    const rc = this._core.M._ptw_init_full();
    if (rc === 0 || rc === ERRORS.EALREADY) this._stageOn();
    if (rc !== 0 && rc !== ERRORS.EALREADY) {
      throw new Error(`polytel: phase 2 failed: ${this._core.readCString(this._core.M._polytel_strerror(rc))}`);
    }
    const st = this._status(rc === ERRORS.EALREADY ? 'already running' : this.phase() === 'full' ? 'started' : 'telemetry disabled');
    if (this._driver.running && !this._exitHooks && merged.flushOnExit !== false) this._hookExit(merged, st.config);
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
   * Node: when the event loop empties ('beforeExit') what is pending is flushed once, bounded by
   * exitTimeoutMs, then polytel shuts down; what is left is dropped, counted and said in one line. On
   * 'exit' (process.exit()) there is no time to send: it is counted and said. Browsers: 'pagehide' sends
   * what fits the keepalive budget and counts the rest (exitFlush); 'visibilitychange' to hidden sends what
   * fits and keeps the rest (the page may live on); 'pageshow' from the back/forward cache resumes.
   */
  _hookExit(o, cfg) {
    const hooks = [];
    const on = (target, event, fn) => {
      target.addEventListener ? target.addEventListener(event, fn) : target.on(event, fn);
      hooks.push([target, event, fn]);
    };
    if (IS_NODE) {
      const ms = cfg.exit_timeout_ms; // exitTimeoutMs or POLYTEL_EXIT_TIMEOUT_MS: the core's exit_timeout_ms
      let flushing = false;
      on(process, 'beforeExit', () => {
        if (flushing || !this._driver.running) return;
        flushing = true;
        this.flush(ms).then(() => this._endAtExit(`not delivered within exitTimeoutMs (${ms} ms)`));
      });
      on(process, 'exit', () => {
        if (this._driver.running) this._endAtExit('process.exit() left no time to send them: await pt.shutdown() first');
      });
    } else if (typeof globalThis.addEventListener === 'function' && typeof globalThis.document === 'object') {
      const doc = globalThis.document;
      on(globalThis, 'pagehide', () => {
        this._driver.exitFlush(true);
      });
      on(doc, 'visibilitychange', () => {
        if (doc.visibilityState === 'hidden') this._driver.exitFlush(false);
        else this._driver.resumed();
      });
      on(globalThis, 'pageshow', (e) => {
        if (e.persisted) this._driver.resumed();
      });
    }
    this._exitHooks = hooks;
  }

  _unhookExit() {
    for (const [target, event, fn] of this._exitHooks ?? []) {
      target.removeEventListener ? target.removeEventListener(event, fn) : target.removeListener(event, fn);
    }
    this._exitHooks = null;
  }

  /**
   * Node, at exit: what is still pending gets its cause said here, then the core stops and counts it
   * (dropped, or unconfirmed when its request was sent without an answer) in its own shutdown line.
   */
  _endAtExit(cause) {
    const { pending } = this.stats();
    if (pending) this._core.warn(`exit: ${pending} log records/spans still pending: ${cause}`);
    this._stageOff();
    this._core.M._ptw_shutdown(0);
    this._unhookExit();
  }

  /**
   * A page's last chance (pagehide calls it, unless flushOnExit is false): sends what is pending within
   * the browser's keepalive budget (requests already in flight count against it), gzip'd when configured,
   * or through sendBeacon where fetch has no keepalive; what does not fit is dropped and counted, and
   * the metrics snapshot (which counts those drops) goes last. Resolves to a report of what went
   * (null where there is nothing to do: Node, phase 1, the file exporter).
   */
  exitFlush() {
    return this._driver.exitFlush(true);
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
    this._core.ingest();
    if (!d.running) return M._polytel_flush(0) === 0;
    await this._collect();
    this._core.ingest(); // what the collectors' callbacks ended
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
   * Plain spans are staged (Core.stage) while phase 2 runs: its export tick, flush, shutdown, stats and any
   * read of a staged span's ids ingest them, and the first span staged after an ingest wakes the driver, so a
   * staged span waits no longer than one turn of the event loop when nothing else runs.
   */
  _stageOn() {
    const core = this._core;
    const d = this._driver;
    core.stWake = () => d.wake();
    core.stOn = true;
  }

  /** Everything staged goes to the core, and spans are recorded at once from here on. */
  _stageOff() {
    const core = this._core;
    core.ingest();
    core.stOn = false;
    core.stWake = null;
  }

  /** Runs the observable instruments' callbacks (registerOpenTelemetry's meters). */
  async _collect() {
    for (const m of this._collectors) await m._collect();
  }

  /**
   * Flushes (bounded by timeoutMs), then stops and releases everything; the phase is "none"
   * afterwards. Resolves to true only when everything recorded was delivered.
   */
  async shutdown(timeoutMs = 5000) {
    if (this._driver.running) await this.flush(timeoutMs);
    // What is still undelivered is dropped and counted; 0 only when everything recorded was delivered.
    this._stageOff();
    const rc = this._core.M._ptw_shutdown(0);
    this._unhookExit();
    return rc === 0;
  }
}

// ----------------------------------------------------------- configuration

// Options the core has under another name or with a JavaScript spelling; the rest are its options in
// camelCase (serviceName, endpoint, bspScheduleDelayMs, exitTimeoutMs, ...).
const SPECIAL = new Set(['use_env', 'telemetry_enabled', 'console_level', 'console', 'service_name',
  'resource_attributes', 'headers', 'sdk_language']);

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
    // The wasm build compresses with CompressionStream, which has no zstd: refused here, as a bad value.
    if (String(o.compression ?? '').trim().toLowerCase() === 'zstd')
      throw new RangeError('polytel: invalid compression="zstd" (zstd is not available in wasm, expected gzip or none)');
    if (o.console === false) set('console', 'off');
    set('service_name', o.serviceName ?? core.defaultServiceName);
    set('sdk_language', IS_NODE ? 'nodejs' : 'webjs');
    // OTEL_RESOURCE_ATTRIBUTES, then options: later pairs win; both override what was detected (ptw_res_add).
    const res = [core.useEnv ? core.envResource : undefined, resourceString(o.resourceAttributes)]
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
  let ear = null;
  let fsModule = null;
  if (IS_NODE) {
    try {
      const hooks = await import('node:async_hooks');
      als = new hooks.AsyncLocalStorage();
      ear = fastRunAls(als, hooks);
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
  if (!IS_NODE) {
    // Small requests against the 64 KiB keepalive budget: at a page exit a dozen fit, not one 512-span batch.
    for (const k of ['OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 'OTEL_BLRP_MAX_EXPORT_BATCH_SIZE']) if (!(k in env)) env[k] = String(BROWSER_BATCH);
  }
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
  core.envKeys = new Set(Object.keys(env));
  M._ptw_res_reset();
  for (const [k, v] of IS_NODE ? nodeResource(await import('node:os')) : browserResource()) {
    const kp = core.tmpString(k);
    const isList = Array.isArray(v);
    const type = isList ? ATTR_STRINGS : typeof v === 'boolean' ? ATTR_BOOL : typeof v === 'number' ? ATTR_INT : ATTR_STRING;
    const bytes = type === ATTR_STRING || isList ? encoder.encode(isList ? v.join('\0') : String(v)) : null;
    const vp = bytes ? M._malloc(bytes.length + 1) : 0;
    if (bytes) M.HEAPU8.set(bytes, vp);
    M._ptw_res_add(kp, type, vp, bytes ? bytes.length : 0, bytes ? 0 : Number(v));
    M._free(kp);
    if (vp) M._free(vp);
  }
  // Without OTEL_SERVICE_NAME the core would name the service after the wasm "executable".
  const hasEnvService = env.OTEL_SERVICE_NAME || /(^|,)\s*service\.name=/.test(env.OTEL_RESOURCE_ATTRIBUTES || '');
  if (!hasEnvService) {
    if (IS_NODE && process.argv[1]) core.defaultServiceName = process.argv[1].split(/[\\/]/).pop().replace(/\.[cm]?js$/, '');
    else if (!IS_NODE && globalThis.location?.hostname) core.defaultServiceName = globalThis.location.hostname;
    else core.defaultServiceName = 'unknown_service:webjs';
  }

  pt = new Polytel(core, options, als, fsModule, ear);
  if (IS_NODE) pt._require = (await import('node:module')).createRequire(import.meta.url);
  applyConfig(core, options);
  const rc = M._ptw_init_console();
  if (rc !== 0 && rc !== ERRORS.EALREADY) throw new Error(`polytel: phase 1 failed: ${core.readCString(M._polytel_strerror(rc))}`);
  return pt;
}

export const levels = Object.freeze({ ...LEVELS });
export default createPolytel;

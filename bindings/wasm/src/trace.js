// trace.js — the span model's JavaScript side: SpanContext, Span, the context that carries the current span
// (AsyncLocalStorage in Node, a synchronous stack in a page), and the http server helper.
//
// Sampling, kinds, limits, the W3C codecs (traceparent, tracestate, baggage) and OTEL_PROPAGATORS are the C
// core's (index.js calls them through the shim); nothing here decides or parses what the core does.

/**
 * The current span lives in a context under the key @opentelemetry/api uses for it (its createContextKey is
 * Symbol.for(description)), so a context made by the API and one made by polytel are read the same way:
 * pt.span inside an OTel span, and trace.getActiveSpan() inside pt.span, both see the other's span.
 */
export const SPAN_KEY = Symbol.for('OpenTelemetry Context Key SPAN');
const DELETED = Symbol('polytel.deleted');

/** An immutable context (the OpenTelemetry Context interface): a chain of (key, value) with the span at hand. */
export class Context {
  constructor(parent, key, value) {
    this._p = parent;
    this._k = key;
    this._v = value;
    this._span = key === SPAN_KEY ? (value === DELETED ? undefined : value) : parent ? parent._span : undefined;
  }

  getValue(key) {
    if (key === SPAN_KEY) return this._span;
    for (let c = this; c; c = c._p) {
      if (c._k === key) return c._v === DELETED ? undefined : c._v;
    }
    return undefined;
  }

  setValue(key, value) {
    return new Context(this, key, value);
  }

  deleteValue(key) {
    return new Context(this, key, DELETED);
  }
}

export const ROOT_CONTEXT = new Context(null, undefined, undefined);

/**
 * AsyncLocalStorage.run(store, fn, x) for one argument, and run3 for three, as Node 16-22's run does it (the
 * store on the current async resource for the call, restored after it, even when fn throws) without run's
 * second and third resource look-ups, its rest-argument array and its same-store check (a span's context is
 * always new). ear is async_hooks.executionAsyncResource when this AsyncLocalStorage keeps its store under
 * kResourceStore (fastRunAls); else null, and run itself is called (Node 24's AsyncContextFrame). Only while
 * als is enabled: the first run enables it (its hooks carry the store into async continuations).
 */
export function run1(als, ear, store, fn, x) {
  if (ear === null || als.enabled !== true) return als.run(store, fn, x);
  const res = ear();
  const k = als.kResourceStore;
  const old = res[k];
  res[k] = store;
  try {
    return fn.call(null, x);
  } finally {
    res[k] = old;
  }
}

export function run3(als, ear, store, fn, a, b, c) {
  if (ear === null || als.enabled !== true) return als.run(store, fn, a, b, c);
  const res = ear();
  const k = als.kResourceStore;
  const old = res[k];
  res[k] = store;
  try {
    return fn.call(null, a, b, c);
  } finally {
    res[k] = old;
  }
}

/** executionAsyncResource when als keeps its store as Node 16-22 do (run1), else null. */
export function fastRunAls(als, hooks) {
  if (!als || typeof hooks.executionAsyncResource !== 'function') return null;
  if (typeof als.kResourceStore !== 'symbol' || typeof als.enabled !== 'boolean' || typeof als._enable !== 'function') return null;
  return hooks.executionAsyncResource;
}

/** ctx with span as its current span; ctx may be any OpenTelemetry Context (the API's own included). */
export function withSpan(ctx, span) {
  return (ctx ?? ROOT_CONTEXT).setValue(SPAN_KEY, span);
}

/**
 * An instrumentation scope (a tracer's name and version). A tracer's is one object for all its spans, so the
 * NUL-terminated copies its spans hand the core are made once (pin()), not written per span.
 */
export class Scope {
  constructor(name, version, pinned) {
    this.name = name;
    this.version = version;
    this.pinned = pinned; // copied into the core's memory once (a tracer's), else written per span
    this._core = null; // the core whose memory holds np/vp
    this._np = 0;
    this._vp = 0;
  }

  /** Pointers to name and version ("" as 0) in core's memory, copied once; kept for the tracer's life. */
  pin(core) {
    if (this._core !== core) {
      this._np = core.tmpString(this.name);
      this._vp = this.version ? core.tmpString(this.version) : 0;
      this._core = core;
    }
  }
}

const KIND_NAMES = ['internal', 'server', 'client', 'producer', 'consumer'];
export const STATUS_UNSET = 0;
export const STATUS_OK = 1;
export const STATUS_ERROR = 2;
const EMPTY_BAGGAGE = Object.freeze({});

function hex(bytes, from, to) {
  let s = '';
  for (let i = from; i < to; i++) s += bytes[i].toString(16).padStart(2, '0');
  return s;
}

/**
 * A span's identity as it crosses a process: trace id, span id, flags (sampled), tracestate and baggage
 * (pt.extract returns one; pt.span takes one as its parent, or in its links). Immutable.
 */
export class SpanContext {
  constructor(pt, bytes, tracestate, baggage) {
    this._pt = pt;
    this._ctx = bytes; // polytel_span_ctx_t bytes; null for a carrier that had baggage and no valid traceparent
    this.tracestate = tracestate || '';
    this.baggage = baggage || EMPTY_BAGGAGE;
    Object.freeze(this);
  }

  /** false when there is no trace (baggage only): a span with this parent starts a new trace, with the baggage. */
  get isValid() {
    return this._ctx !== null;
  }
  /** 32 lowercase hex digits ("" when not valid). */
  get traceId() {
    return this._ctx ? hex(this._ctx, 0, 16) : '';
  }
  /** 16 lowercase hex digits ("" when not valid). */
  get spanId() {
    return this._ctx ? hex(this._ctx, 16, 24) : '';
  }
  /** The W3C trace flags (bit 0: sampled). */
  get traceFlags() {
    return this._ctx ? this._ctx[this._pt._core.span.flags] : 0;
  }
  get sampled() {
    return (this.traceFlags & 1) === 1;
  }
  /** true for a context that came from another process (extract). */
  get isRemote() {
    return this._ctx ? this._ctx[this._pt._core.span.remote] === 1 : false;
  }
  /** The traceparent header value ("00-<trace>-<span>-<flags>"), "" when not valid. */
  get traceparent() {
    return this._ctx ? this._pt._traceparent(this._ctx) : '';
  }
  toString() {
    return this.traceparent;
  }
  toJSON() {
    return { traceId: this.traceId, spanId: this.spanId, sampled: this.sampled, tracestate: this.tracestate, baggage: this.baggage };
  }
}

/**
 * A remote parent in an OpenTelemetry context (what the propagator's extract puts there): a span that records
 * nothing, whose SpanContext (baggage and tracestate included) is the parent of what starts under it.
 */
export class RemoteSpan {
  constructor(sc, pt) {
    this._sc = sc;
    this._pt = pt;
  }
  spanContext() {
    const sc = this._sc;
    const out = { traceId: sc.traceId, spanId: sc.spanId, traceFlags: sc.traceFlags, isRemote: true };
    if (sc.tracestate && this._pt._makeTraceState) out.traceState = this._pt._makeTraceState(sc.tracestate);
    return out;
  }
  setAttribute() {
    return this;
  }
  setAttributes() {
    return this;
  }
  addEvent() {
    return this;
  }
  addLink() {
    return this;
  }
  addLinks() {
    return this;
  }
  setStatus() {
    return this;
  }
  updateName() {
    return this;
  }
  recordException() {}
  end() {}
  isRecording() {
    return false;
  }
}

/**
 * A span: started by pt.span (which ends it when fn returns or its promise settles), by a tracer of
 * pt.registerOpenTelemetry(), or by the http helper. It also implements the OpenTelemetry Span interface
 * (spanContext, setStatus, updateName, end, isRecording, ...), so the API's instrumentation can hold it.
 */
export class Span {
  /**
   * Started on the JavaScript side: startNs (the core's clock) and the parent are kept, and the core starts the
   * span (ids, sampling) only when its context is first asked for (_ctx: a child, a log, its ids, inject), or
   * when it ends (ptw_span_run: start and finish in one call).
   */
  // The parent arrives as its three parts (pb: its context bytes or null, its tracestate and baggage), not as
  // an object: pt.span and a tracer's startSpan hand a polytel parent's fields over with nothing allocated.
  constructor(pt, name, pb, tracestate, parentBaggage, attrs, kind, scope, links, baggage, startNs) {
    this._pt = pt;
    this.name = name;
    // polytel_span_ctx_t bytes; undefined until the core started it; null when it had no context to give
    this._c = undefined;
    this._pb = pb;
    this._t0 = startNs;
    this._gen = null; // finished through ptw_span_run: the ring generation holding its context (Core.ringSlot)
    this._slot = 0;
    this._attrs = attrs ? { ...attrs } : null;
    this._events = null;
    this._links = links;
    this._kind = kind;
    this._scope = scope;
    this._tracestate = tracestate;
    this._baggage = baggage ? Object.freeze({ ...parentBaggage, ...baggage }) : parentBaggage;
    this._status = STATUS_UNSET;
    this._statusMsg = undefined;
    this._ended = false;
    this._sc = null;
  }

  /** The span's context bytes, the core starting it first if nobody asked before (see the constructor). */
  get _ctx() {
    const c = this._c;
    return c !== undefined ? c : (this._c = this._pt._spanCtx(this));
  }

  /** This span's SpanContext (to inject by hand, to link to, or as an explicit parent). */
  get context() {
    return (this._sc ??= new SpanContext(this._pt, this._ctx, this._tracestate, this._baggage));
  }
  /** 32 hex digits ("" when not recording). */
  get traceId() {
    return this._ctx ? hex(this._ctx, 0, 16) : '';
  }
  /** 16 hex digits ("" when not recording). */
  get spanId() {
    return this._ctx ? hex(this._ctx, 16, 24) : '';
  }
  /** The span's baggage (its parent's, with what pt.span's `baggage` option added). */
  get baggage() {
    return this._baggage;
  }

  /** Adds an attribute, exported with the span when it ends. Arrays of strings, numbers or booleans stay arrays. */
  setAttribute(key, value) {
    if (this._ended) return this;
    if (!this._attrs) this._attrs = {};
    this._attrs[key] = value;
    return this;
  }

  setAttributes(attrs) {
    for (const k in attrs) this.setAttribute(k, attrs[k]);
    return this;
  }

  /** A span event, now (or at `time`: ms since the epoch, a Date, or an [s, ns] hrtime). OTel's (name, time) works too. */
  addEvent(name, attrs, time) {
    if (this._ended) return this;
    if (time === undefined && isTimeInput(attrs)) {
      time = attrs;
      attrs = undefined;
    }
    (this._events ??= []).push({ name: String(name), attrs: attrs || null, timeNs: time === undefined ? this._pt._nowNs() : toNs(time) });
    return this;
  }

  /**
   * An `exception` event (exception.type, exception.message, exception.stacktrace: the JavaScript stack)
   * per the semantic conventions. The status is left as it is: pt.span sets ERROR when fn throws.
   */
  recordException(error, time) {
    if (this._ended) return this;
    (this._events ??= []).push({ exception: describeError(error), timeNs: time === undefined ? this._pt._nowNs() : toNs(time) });
    return this;
  }

  /** A link to another span: a SpanContext, a Span, or { context, attributes }. */
  addLink(link) {
    if (!this._ended) (this._links ??= []).push(link);
    return this;
  }

  addLinks(links) {
    for (const l of links) this.addLink(l);
    return this;
  }

  /** 'unset' | 'ok' | 'error' (with a message), or OpenTelemetry's { code, message }. */
  setStatus(status, message) {
    if (this._ended) return this;
    if (typeof status === 'object' && status !== null) {
      message = status.message;
      status = status.code;
    }
    const code = typeof status === 'string' ? ['unset', 'ok', 'error'].indexOf(status.toLowerCase()) : Number(status);
    if (code !== STATUS_UNSET && code !== STATUS_OK && code !== STATUS_ERROR) return this;
    // OTel: OK is final; UNSET never overrides a status set before.
    if (this._status === STATUS_OK || code === STATUS_UNSET) return this;
    this._status = code;
    this._statusMsg = code === STATUS_ERROR && message ? String(message) : undefined;
    return this;
  }

  updateName(name) {
    if (!this._ended) this.name = String(name);
    return this;
  }

  /** Ends the span (once; later calls are ignored). pt.span ends its spans itself. */
  end(endTime) {
    this._end(STATUS_UNSET, undefined, endTime === undefined ? 0 : toNs(endTime));
  }

  /** false once ended, and for a span the sampler left out (it records nothing; its context still travels). */
  isRecording() {
    return !this._ended && this._ctx !== null && (this._ctx[this._pt._core.span.flags] & 1) === 1;
  }

  /** The OpenTelemetry SpanContext (traceFlags, isRemote false; traceState when the API is registered). */
  spanContext() {
    const pt = this._pt;
    const sc = { traceId: this.traceId, spanId: this.spanId, traceFlags: this._ctx ? this._ctx[pt._core.span.flags] : 0, isRemote: false };
    if (this._tracestate && pt._makeTraceState) sc.traceState = pt._makeTraceState(this._tracestate);
    return sc;
  }

  _end(status, message, endNs = 0) {
    if (this._ended) return;
    this._ended = true;
    if (this._status !== STATUS_UNSET) {
      status = this._status;
      message = this._statusMsg;
    }
    if (this._c !== null) this._pt._finishSpan(this, status, message, endNs);
  }
}

/** exception.type / .message / .stacktrace of anything thrown. */
export function describeError(e) {
  if (e !== null && typeof e === 'object') {
    const type = (typeof e.name === 'string' && e.name) || e.constructor?.name || 'Object';
    let message;
    try {
      message = e.message !== undefined ? String(e.message) : String(e);
    } catch {
      message = type;
    }
    return { type, message, stack: typeof e.stack === 'string' ? e.stack : undefined };
  }
  return { type: typeof e, message: String(e), stack: undefined };
}

export function errorMessage(e) {
  if (e instanceof Error) return e.message || e.name;
  try {
    return String(e);
  } catch {
    return 'error';
  }
}

function isTimeInput(t) {
  return typeof t === 'number' || t instanceof Date || (Array.isArray(t) && t.length === 2 && typeof t[0] === 'number');
}

/** OpenTelemetry's TimeInput (ms since the epoch, a Date, or [seconds, nanoseconds]) in Unix nanoseconds. */
export function toNs(t) {
  if (Array.isArray(t)) return t[0] * 1e9 + t[1];
  if (t instanceof Date) return t.getTime() * 1e6;
  const n = Number(t);
  // OTel's hrtime-ish performance.now() values (ms since the time origin) are far below any Unix time.
  if (n < 1e12 && typeof performance === 'object') return (performance.timeOrigin + n) * 1e6;
  return n * 1e6;
}

/** The kind option: a name (the core's polytel_span_kind_from_name decides), or undefined. */
export function kindName(kind) {
  if (kind === undefined || kind === null) return undefined;
  if (typeof kind !== 'string') throw new TypeError(`polytel: kind must be one of ${KIND_NAMES.join(', ')} (got ${String(kind)})`);
  return kind;
}

// ------------------------------------------------------------------- http servers

/**
 * An http(s) 'request' listener that wraps handler(req, res) in a `server` span: the parent is extracted
 * from the request's headers (traceparent, tracestate, baggage), the attributes are the HTTP semantic
 * conventions' (http.request.method, url.path, url.query, url.scheme, server.address, server.port,
 * network.protocol.version, user_agent.original, client.address, http.response.status_code, http.route when
 * options.route names it), and the span ends when the response is finished or the connection closes.
 * A 5xx answer, or a handler that throws or rejects, sets ERROR (the exception as an event).
 */
export function httpHandler(pt, handler, options = {}) {
  if (typeof handler !== 'function') throw new TypeError('polytel: httpHandler(handler) needs a function (req, res)');
  const route = options.route;
  const scope = options.scope ?? 'polytel.http';
  return function polytelHttpRequest(req, res) {
    const method = req.method || 'GET';
    const url = req.url || '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const host = req.headers.host || '';
    const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(host);
    const attrs = {
      'http.request.method': method,
      'url.path': path,
      'url.scheme': req.socket?.encrypted ? 'https' : 'http',
      'network.protocol.version': req.httpVersion,
    };
    if (q >= 0) attrs['url.query'] = url.slice(q + 1);
    if (m && m[1]) attrs['server.address'] = m[1];
    const port = m && m[2] ? Number(m[2]) : req.socket?.localPort;
    if (port) attrs['server.port'] = port;
    if (req.headers['user-agent']) attrs['user_agent.original'] = req.headers['user-agent'];
    if (req.socket?.remoteAddress) attrs['client.address'] = req.socket.remoteAddress;
    const r = typeof route === 'function' ? route(req) : undefined;
    if (r) attrs['http.route'] = String(r);
    const parent = pt.extract(req.headers);
    const name = r ? `${method} ${r}` : method;
    const span = pt._startSpan(name, pt._parentInfo(parent ?? null), attrs, { kind: 'server', scope });
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      const code = res.statusCode;
      span.setAttribute('http.response.status_code', code);
      if (!res.writableFinished && !res.finished) span.setAttribute('error.type', 'aborted');
      if (code >= 500) {
        span.setAttribute('error.type', String(code));
        span._end(STATUS_ERROR, undefined);
      } else span._end(span._status === STATUS_ERROR ? STATUS_ERROR : STATUS_UNSET);
    };
    res.once('finish', finish);
    res.once('close', finish);
    const failed = (e) => {
      span.recordException(e);
      span.setStatus(STATUS_ERROR, errorMessage(e));
      span.setAttribute('error.type', describeError(e).type);
    };
    let out;
    try {
      out = pt._runIn(span, () => handler.call(this, req, res));
    } catch (e) {
      failed(e);
      if (!res.headersSent && !res.writableEnded) finish();
      throw e;
    }
    if (out && typeof out.then === 'function') {
      out.then(undefined, (e) => {
        failed(e);
        // A rejected handler that never answers: the span ends here and says so (the connection is the app's).
        if (!res.writableEnded) finish();
        throw e; // still the app's unhandled rejection, as without polytel
      });
    }
    return out;
  };
}

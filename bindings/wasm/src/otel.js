// otel.js — polytel behind @opentelemetry/api (pt.registerOpenTelemetry): a TracerProvider, a MeterProvider, a
// context manager sharing pt.span's context, and the W3C trace-context + baggage propagator, all on the wasm core.
//
// Nothing here samples, parses or encodes: tracers start and finish polytel spans (the core's sampler decides,
// its limits apply), the propagator is pt.inject/pt.extract (the core's codecs), instruments are pt's metrics.

import { ROOT_CONTEXT, RemoteSpan, SPAN_KEY, Scope, Span, SpanContext, run1 } from './trace.js';

const FIELDS = ['traceparent', 'tracestate', 'baggage'];
const BAGGAGE_KEY = Symbol.for('OpenTelemetry Baggage Key'); // the API's createContextKey(...) is Symbol.for
const ADDERS = ['addListener', 'on', 'once', 'prependListener', 'prependOnceListener'];
const PATCHED = Symbol('polytel.bound');
const MAX_SERIES = 2000; // an UpDownCounter's running sums kept here (the core caps its own series too)

/** The API module: options.api, else require('@opentelemetry/api') from beside this package (Node). */
function loadApi(pt, options) {
  if (options.api) return options.api;
  if (!pt._require) throw new Error('polytel: registerOpenTelemetry() needs { api } outside Node (import * as api from "@opentelemetry/api")');
  try {
    return pt._require('@opentelemetry/api');
  } catch (e) {
    throw new Error(`polytel: registerOpenTelemetry() could not load @opentelemetry/api (npm install @opentelemetry/api): ${e.message}`);
  }
}

class Tracer {
  constructor(pt, api, name, version, state) {
    this._pt = pt;
    this._api = api;
    this._state = state; // { on, root }: on while this registration's context manager is the API's
    this._scope = new Scope(name || 'unknown', version || '', true);
  }

  /** The active context: pt's own (AsyncLocalStorage) while registered, else whatever the API's manager says. */
  _active() {
    return this._state.on ? (this._pt._context() ?? this._state.root) : this._api.context.active();
  }

  startSpan(name, options, context) {
    const pt = this._pt;
    context ??= this._active();
    const parent = options && options.root ? undefined : context.getValue(SPAN_KEY);
    if (!options || (options.kind === undefined && !options.links && options.startTime === undefined))
      return pt._startUnder(typeof name === 'string' ? name : String(name), parent, options && options.attributes, this._scope);
    const info = pt._parentInfo(parent ?? null);
    // The API's SpanKind counts from INTERNAL = 0; OTLP's (the core's) from UNSPECIFIED = 0.
    const kind = Number.isInteger(options.kind) && options.kind >= 0 && options.kind <= 4 ? options.kind + 1 : 1;
    return pt._startSpan(String(name), info, options.attributes, {
      kind,
      scope: this._scope,
      links: options.links,
      startTime: options.startTime,
    });
  }

  startActiveSpan(name, a, b, c) {
    const pt = this._pt;
    const als = pt._als;
    if (als && this._state.on) {
      // (name, fn) while registered, in Node: the current context straight from pt's AsyncLocalStorage, the
      // span made without an options object, and run() passing the span (no closure, no arguments array).
      if (typeof a === 'function') return this._activeUnder(pt, als, name, 1, undefined, a);
      // (name, { kind, attributes }, fn), the form instrumentations use: the same, the options only read.
      if (typeof b === 'function' && c === undefined && typeof a === 'object' && a !== null && !a.root && !a.links && a.startTime === undefined) {
        const k = a.kind;
        // The API's SpanKind counts from INTERNAL = 0; OTLP's (the core's) from UNSPECIFIED = 0.
        return this._activeUnder(pt, als, name, Number.isInteger(k) && k >= 0 && k <= 4 ? k + 1 : 1, a.attributes, b);
      }
    }
    let options;
    let context;
    let fn;
    if (typeof a === 'function') fn = a;
    else if (typeof b === 'function') [options, fn] = [a, b];
    else [options, context, fn] = [a, b, c];
    context ??= this._active();
    const span = this.startSpan(name, options, context);
    const ctx = context.setValue(SPAN_KEY, span);
    // While registered, the API's context.with() would only come back to pt's AsyncLocalStorage: go there
    // directly, and let run() pass the span (no closure, no arguments array).
    if (als && this._state.on) return run1(als, pt._ear, ctx, fn, span);
    return this._api.context.with(ctx, fn, undefined, span);
  }

  /** fn(span) with span (kind, attrs) the current context's child set as the current context (als: pt's). */
  _activeUnder(pt, als, name, kind, attrs, fn) {
    const ear = pt._ear;
    if (ear !== null && als.enabled === true) {
      // run1 inline, its resource also the one the current context is read from (one look-up per span)
      const res = ear();
      const k = als.kResourceStore;
      const old = res[k];
      const context = old ?? this._state.root;
      const span = pt._startUnder(typeof name === 'string' ? name : String(name), context.getValue(SPAN_KEY), attrs, this._scope, kind);
      res[k] = context.setValue(SPAN_KEY, span);
      try {
        return fn.call(null, span);
      } finally {
        res[k] = old;
      }
    }
    const context = als.getStore() ?? this._state.root;
    const span = pt._startUnder(typeof name === 'string' ? name : String(name), context.getValue(SPAN_KEY), attrs, this._scope, kind);
    return als.run(context.setValue(SPAN_KEY, span), fn, span);
  }
}

class TracerProvider {
  constructor(pt, api, state) {
    this._pt = pt;
    this._api = api;
    this._state = state;
    this._tracers = new Map();
  }

  getTracer(name, version, _options) {
    const key = `${name}@${version ?? ''}`;
    let t = this._tracers.get(key);
    if (!t) this._tracers.set(key, (t = new Tracer(this._pt, this._api, name, version, this._state)));
    return t;
  }

  /** The SDK's: everything recorded goes out (bounded). */
  forceFlush(timeoutMs = 10000) {
    return this._pt.flush(timeoutMs).then(() => undefined);
  }

  shutdown() {
    return this.forceFlush();
  }
}

/**
 * The context manager: pt.span's context (AsyncLocalStorage in Node, the synchronous stack in a page) is the
 * API's active context, so either kind of span is the other's parent.
 */
class ContextManager {
  constructor(pt, root, api) {
    this._pt = pt;
    this._root = root;
    this._api = api;
    this._empty = null; // the (frozen, shared) empty baggage of pt's spans, once seen
    this._withBaggage = new WeakMap(); // pt context -> the same with its span's baggage as the API's
  }

  /**
   * pt's current context; inside a pt.span with baggage (its `baggage` option, or a remote parent's) and no
   * API baggage set, the same context with that baggage as the API's, so propagation.getActiveBaggage() sees it.
   */
  active() {
    const c = this._pt._context();
    if (!c) return this._root;
    const span = c.getValue(SPAN_KEY);
    const b = span instanceof Span ? span._baggage : undefined;
    if (!b || b === this._empty) return c;
    const keys = Object.keys(b);
    if (!keys.length) {
      this._empty = b;
      return c;
    }
    if (c.getValue(BAGGAGE_KEY) !== undefined) return c;
    let d = this._withBaggage.get(c);
    if (!d) {
      const entries = {};
      for (const k of keys) entries[k] = { value: b[k] };
      this._withBaggage.set(c, (d = c.setValue(BAGGAGE_KEY, this._api.propagation.createBaggage(entries))));
    }
    return d;
  }

  with(context, fn, thisArg, ...args) {
    return this._pt._runWith(context ?? this._root, fn, thisArg, args);
  }

  bind(context, target) {
    if (typeof target === 'function') {
      const cm = this;
      const bound = function (...args) {
        return cm.with(context, () => target.apply(this, args));
      };
      Object.defineProperty(bound, 'length', { value: target.length, configurable: true });
      return bound;
    }
    if (target && typeof target.on === 'function' && typeof target.removeListener === 'function') return this._bindEmitter(context, target);
    return target;
  }

  /** Listeners added to ee from now on run in context (the API's EventEmitter binding, as its own manager does). */
  _bindEmitter(context, ee) {
    if (ee[PATCHED]) return ee;
    const wrapped = new WeakMap();
    const cm = this;
    for (const m of ADDERS) {
      const orig = ee[m];
      if (typeof orig !== 'function') continue;
      ee[m] = function (event, listener) {
        if (typeof listener !== 'function') return orig.call(this, event, listener);
        let w = wrapped.get(listener);
        if (!w) wrapped.set(listener, (w = cm.bind(context, listener)));
        return orig.call(this, event, w);
      };
    }
    for (const m of ['removeListener', 'off']) {
      const orig = ee[m];
      if (typeof orig !== 'function') continue;
      ee[m] = function (event, listener) {
        return orig.call(this, event, wrapped.get(listener) ?? listener);
      };
    }
    Object.defineProperty(ee, PATCHED, { value: true });
    return ee;
  }

  enable() {
    return this;
  }

  disable() {
    return this;
  }
}

/** W3C traceparent/tracestate and baggage (as OTEL_PROPAGATORS says) through pt.inject / pt.extract. */
class Propagator {
  constructor(pt, api) {
    this._pt = pt;
    this._api = api;
  }

  inject(context, carrier, setter) {
    const api = this._api;
    const span = api.trace.getSpan(context);
    const extra = {};
    const bag = api.propagation.getBaggage(context);
    if (bag) for (const [k, e] of bag.getAllEntries()) extra[k] = e.value;
    const out = this._pt._injectFrom(span ?? null, extra);
    for (const k in out) setter.set(carrier, k, out[k]);
  }

  extract(context, carrier, getter) {
    const api = this._api;
    const c = {};
    for (const f of FIELDS) {
      const v = getter.get(carrier, f);
      if (v !== undefined && v !== null) c[f] = v;
    }
    const sc = this._pt.extract(c);
    if (!sc) return context;
    let ctx = context;
    if (sc.isValid) ctx = api.trace.setSpan(ctx, new RemoteSpan(sc, this._pt));
    const keys = Object.keys(sc.baggage);
    if (keys.length) {
      const entries = {};
      for (const k of keys) entries[k] = { value: sc.baggage[k] };
      ctx = api.propagation.setBaggage(ctx, api.propagation.createBaggage(entries));
    }
    return ctx;
  }

  fields() {
    return FIELDS.slice();
  }
}

// ------------------------------------------------------------------ metrics

const key = (attrs) => (attrs ? JSON.stringify(Object.entries(attrs).sort()) : '');

class ObservableResult {
  constructor(fn) {
    this.observe = fn;
  }
}

class Observable {
  constructor(meter, kind, name, unit) {
    this._meter = meter;
    this._kind = kind; // 'gauge' | 'counter' | 'updown'
    this.name = name;
    this.unit = unit;
    this._callbacks = new Set();
    this._last = new Map(); // counter: the last cumulative value per series, to add the difference
  }

  addCallback(cb) {
    this._callbacks.add(cb);
    this._meter._watch(this);
  }

  removeCallback(cb) {
    this._callbacks.delete(cb);
  }

  /** One observation (a gauge's value, a counter's cumulative total). */
  _observe(value, attrs) {
    const pt = this._meter._pt;
    if (this._kind === 'counter') {
      const k = key(attrs);
      const prev = this._last.get(k) ?? 0;
      if (value >= prev) pt.counterAdd(this.name, value - prev, attrs, this.unit);
      if (this._last.size < MAX_SERIES || this._last.has(k)) this._last.set(k, value);
    } else {
      pt.gaugeSet(this.name, value, attrs, this.unit);
    }
  }

  async _collect() {
    const res = new ObservableResult((v, attrs) => this._observe(Number(v), attrs));
    for (const cb of this._callbacks) {
      try {
        await cb(res);
      } catch (e) {
        this._meter._pt._warnOnce(`observable ${JSON.stringify(this.name)}: its callback threw (${e?.message ?? e})`);
      }
    }
  }
}

/**
 * The core keeps the first bounds set for a name and refuses bad ones, each with one warning line naming the
 * histogram; what is not an array of numbers is refused here, also with one line. Either way the default
 * buckets stay.
 */
function adviseBounds(pt, name, bounds) {
  if (!Array.isArray(bounds) || !bounds.every((b) => typeof b === 'number')) {
    pt._warnOnce(`histogram ${JSON.stringify(name)}: advice.explicitBucketBoundaries is not an array of numbers; it keeps the default buckets`);
    return;
  }
  const core = pt._core;
  const M = core.M;
  if (typeof M._polytel_histogram_set_bounds !== 'function') return; // a core built without it: the defaults
  const np = core.tmpString(name);
  const bp = M._malloc(8 * bounds.length + 8);
  const dv = core.dv();
  for (let i = 0; i < bounds.length; i++) dv.setFloat64(bp + 8 * i, bounds[i], true);
  M._polytel_histogram_set_bounds(np, bp, bounds.length);
  M._free(bp);
  M._free(np);
}

class Meter {
  constructor(pt) {
    this._pt = pt;
    this._observables = new Set();
    this._batch = new Map(); // batch callback -> observables
  }

  createCounter(name, o = {}) {
    const pt = this._pt;
    return { add: (v, attrs) => pt.counterAdd(name, v, attrs, o.unit) };
  }

  /** The core has no up-down sum: the running total per series is kept here and exported as a gauge. */
  createUpDownCounter(name, o = {}) {
    const pt = this._pt;
    const sums = new Map();
    return {
      add: (v, attrs) => {
        const k = key(attrs);
        if (!sums.has(k) && sums.size >= MAX_SERIES) {
          pt._warnOnce(`up-down counter ${JSON.stringify(name)}: more than ${MAX_SERIES} attribute sets; new ones are ignored`);
          return;
        }
        const s = (sums.get(k) ?? 0) + Number(v);
        sums.set(k, s);
        pt.gaugeSet(name, s, attrs, o.unit);
      },
    };
  }

  /** advice.explicitBucketBoundaries become the name's bounds in the core (polytel_histogram_set_bounds). */
  createHistogram(name, o = {}) {
    const pt = this._pt;
    const bounds = o.advice && o.advice.explicitBucketBoundaries;
    if (bounds !== undefined) adviseBounds(pt, String(name), bounds);
    return { record: (v, attrs) => pt.histogramRecord(name, v, attrs, o.unit) };
  }

  createGauge(name, o = {}) {
    const pt = this._pt;
    return { record: (v, attrs) => pt.gaugeSet(name, v, attrs, o.unit) };
  }

  createObservableGauge(name, o = {}) {
    return new Observable(this, 'gauge', name, o.unit);
  }

  createObservableCounter(name, o = {}) {
    return new Observable(this, 'counter', name, o.unit);
  }

  createObservableUpDownCounter(name, o = {}) {
    return new Observable(this, 'updown', name, o.unit);
  }

  addBatchObservableCallback(cb, observables) {
    this._batch.set(cb, observables);
    for (const ob of observables) this._watch(ob);
  }

  removeBatchObservableCallback(cb) {
    this._batch.delete(cb);
  }

  _watch(ob) {
    this._observables.add(ob);
    this._pt._collectors.add(this);
  }

  async _collect() {
    for (const ob of this._observables) await ob._collect();
    for (const [cb, observables] of this._batch) {
      const allowed = new Set(observables);
      const res = { observe: (ob, v, attrs) => allowed.has(ob) && ob._observe(Number(v), attrs) };
      try {
        await cb(res);
      } catch (e) {
        this._pt._warnOnce(`a batch observable callback threw (${e?.message ?? e})`);
      }
    }
  }
}

class MeterProvider {
  constructor(pt) {
    this._pt = pt;
    this._meters = new Map();
  }

  getMeter(name, version) {
    const k = `${name}@${version ?? ''}`;
    let m = this._meters.get(k);
    if (!m) this._meters.set(k, (m = new Meter(this._pt)));
    return m;
  }

  forceFlush(timeoutMs = 10000) {
    return this._pt.flush(timeoutMs).then(() => undefined);
  }

  shutdown() {
    return this.forceFlush();
  }
}

/** pt.registerOpenTelemetry(): see index.js. */
export function registerOpenTelemetry(pt, options = {}) {
  const api = loadApi(pt, options);
  // The root is pt's own empty Context (what pt.span starts from): setting a span on it is one small object,
  // where the API's ROOT_CONTEXT copies a Map. Both implement the API's Context; either is taken as a parent.
  const state = { on: false, root: ROOT_CONTEXT };
  const tracerProvider = new TracerProvider(pt, api, state);
  const meterProvider = new MeterProvider(pt);
  const contextManager = new ContextManager(pt, ROOT_CONTEXT, api);
  const propagator = new Propagator(pt, api);
  pt._makeTraceState = typeof api.createTraceState === 'function' ? (s) => api.createTraceState(s) : null;
  // The API keeps the first registration of each global and refuses the next: polytel replaces what was there.
  // Not the tracer provider blindly: trace.disable() makes a new proxy, and the tracers instrumentations got
  // before (ProxyTracers of the old one) would stay no-ops for good. Only when another provider holds it.
  api.context.disable();
  api.propagation.disable();
  api.metrics.disable();
  state.on = api.context.setGlobalContextManager(contextManager);
  if (!api.trace.setGlobalTracerProvider(tracerProvider)) {
    pt._core.warn('registerOpenTelemetry: another TracerProvider was registered; replaced (tracers taken from it before keep it)');
    api.trace.disable();
    api.trace.setGlobalTracerProvider(tracerProvider);
  }
  api.propagation.setGlobalPropagator(propagator);
  api.metrics.setGlobalMeterProvider(meterProvider);
  pt._otel = { api };
  // pt.inject() of the current context sends the API's baggage too (propagation.setBaggage + context.with), as
  // the API's propagator sends pt.span's: both merge the two the same way (_injectFrom; the span's entries win).
  const protoInject = Object.getPrototypeOf(pt).inject;
  pt.inject = function inject(carrier = {}, from = undefined) {
    const bag = from === undefined ? api.propagation.getBaggage(pt._context() ?? ROOT_CONTEXT) : undefined;
    if (!bag) return protoInject.call(this, carrier, from);
    const extra = {};
    for (const [k, e] of bag.getAllEntries()) extra[k] = e.value;
    const out = this._injectFrom(undefined, extra);
    if (typeof carrier.set === 'function') for (const k in out) carrier.set(k, out[k]);
    else Object.assign(carrier, out);
    return carrier;
  };
  return {
    api,
    tracerProvider,
    meterProvider,
    contextManager,
    propagator,
    /** Unregisters all four (the API falls back to its no-op defaults). */
    disable() {
      state.on = false;
      delete pt.inject; // the prototype's again
      api.context.disable();
      api.trace.disable();
      api.propagation.disable();
      api.metrics.disable();
      pt._makeTraceState = null;
      pt._otel = null;
    },
  };
}

export { Span, SpanContext };

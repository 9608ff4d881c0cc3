// otel.test.mjs — issue 16 in Node: pt.registerOpenTelemetry() behind @opentelemetry/api, tested with the real
// @opentelemetry/instrumentation-http against real local HTTP servers, as the receiver decoded the spans.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { createPolytel } from '../src/index.js';
import { PKG, runNode, startReceiver } from './helpers.mjs';

let rx;
before(async () => {
  rx = await startReceiver();
});
after(async () => {
  await rx?.stop();
});

describe('@opentelemetry/instrumentation-http on polytel', () => {
  test('per request: the client span, the front server span, its client span, the back server span: one trace', { timeout: 120000 }, async () => {
    await rx.reset();
    const N = 3;
    const r = await runNode(join(PKG, 'test/fixtures/otel_http.cjs'), {
      OTEL_EXPORTER_OTLP_ENDPOINT: rx.endpoint, TELEMETRY_ENABLED: 'true', POLYTEL_LOG_LEVEL: 'warn', REQUESTS: String(N),
    });
    assert.equal(r.code, 0, r.stderr);
    const { roots, otel } = JSON.parse(r.stdout.trim().split('\n').pop());
    const got = await rx.waitFor((g) => g.spans.length >= N * 6 + 2 && g.metrics.some((m) => m.name === 'lib.calls'), 10000);
    assert.deepEqual(got.errors, []);
    const HTTP = '@opentelemetry/instrumentation-http';
    for (const [i, root] of roots.entries()) {
      const trace = got.spans.filter((s) => s.trace_id === root.traceId);
      const byParent = (id) => trace.filter((s) => s.parent_span_id === id);
      // caller (pt.span) -> client GET /item/i -> server GET (front) -> client GET /back/item/i -> server GET (back) -> back.work
      const [c1] = byParent(root.spanId);
      assert.equal(c1?.kind, 3, `request ${i}: a client span under the caller`);
      assert.equal(c1.scope, HTTP);
      assert.equal(c1.attributes['http.request.method'], 'GET');
      assert.equal(c1.attributes['http.response.status_code'], 200);
      const [s1] = byParent(c1.span_id);
      assert.equal(s1?.kind, 2, `request ${i}: the front server span under the client span (traceparent went over the wire)`);
      assert.equal(s1.attributes['url.path'], `/item/${i}`);
      assert.equal(s1.attributes['http.response.status_code'], 200);
      const [c2] = byParent(s1.span_id);
      assert.equal(c2?.kind, 3, `request ${i}: the front's outgoing request, a client span under its server span`);
      const [s2] = byParent(c2.span_id);
      assert.equal(s2?.kind, 2);
      assert.equal(s2.attributes['url.path'], `/back/item/${i}`);
      const [work] = byParent(s2.span_id);
      assert.equal(work?.name, 'back.work', 'pt.span nests under the instrumentation\'s server span');
      assert.equal(work.scope, 'polytel');
      assert.equal(trace.length, 6, `request ${i}: one trace of 6 spans`);
    }
    assert.equal(got.spans.filter((s) => s.scope === HTTP && s.kind === 2).length, N * 2, 'a server span per request');
    assert.equal(got.spans.filter((s) => s.scope === HTTP && s.kind === 3).length, N * 2, 'a client span per outgoing request');

    // The API's own tracer: scope, kind, arrays, events, status; propagation.inject; pt.span inside it.
    const lib = got.spans.find((s) => s.name === 'lib.op');
    assert.equal(lib.scope, 'my-lib');
    assert.equal(lib.scope_version, '1.2.3');
    assert.equal(lib.kind, 4, 'SpanKind.PRODUCER');
    assert.deepEqual(lib.attributes, { tags: ['x', 'y'] });
    assert.deepEqual(lib.events.map((e) => [e.name, e.attributes]), [['did', { n: 1 }]]);
    assert.equal(lib.status_code, 2);
    assert.equal(lib.status_message, 'nope');
    assert.equal(otel.carrier.traceparent, `00-${lib.trace_id}-${lib.span_id}-01`);
    assert.equal(otel.inner.active, true, 'trace.getActiveSpan() inside pt.span is the polytel span');
    const inside = got.spans.find((s) => s.name === 'pt.inside.otel');
    assert.equal(inside.parent_span_id, lib.span_id);
    const calls = got.metrics.filter((m) => m.name === 'lib.calls');
    assert.equal(calls[calls.length - 1].value, 3);
    assert.deepEqual(calls[calls.length - 1].attributes, { route: '/a' });
  });

  test('in-process: nesting both ways, a remote parent from propagation.extract, startSpan options, unregistering', async () => {
    await rx.reset();
    const pt = await createPolytel({ useEnv: false, telemetryEnabled: true, console: false, serviceName: 'otel-inproc' });
    await pt.bootstrapWorker({ endpoint: rx.endpoint });
    const api = createRequire(import.meta.url)('@opentelemetry/api');
    // Taken before the registration, as instrumentations constructed early do: the API's proxy delegates later.
    const tracer = api.trace.getTracer('t');
    const reg = pt.registerOpenTelemetry();
    const TP = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const remote = api.propagation.extract(api.ROOT_CONTEXT, { traceparent: TP, baggage: 'k=v' });
    assert.equal(api.trace.getSpanContext(remote).traceId, '0af7651916cd43dd8448eb211c80319c');
    assert.equal(api.trace.getSpanContext(remote).isRemote, true);
    assert.equal(api.propagation.getBaggage(remote).getEntry('k').value, 'v');
    await api.context.with(remote, async () => {
      await pt.span('pt.under.remote', async () => {
        await new Promise((r) => setTimeout(r, 2));
        const s = tracer.startSpan('otel.child', { kind: api.SpanKind.CONSUMER, startTime: Date.now() - 5 });
        assert.equal(s.isRecording(), true);
        s.end();
      }, undefined, { baggage: { more: '1' } });
    });
    const root = tracer.startSpan('root.option', { root: true });
    root.end();
    assert.equal(root.isRecording(), false, 'ended');
    reg.disable();
    assert.equal(api.trace.getTracer('x').startSpan('noop').isRecording(), false, 'after disable(): the API\'s no-op');
    await pt.flush(10000);
    const got = await rx.waitFor((g) => g.spans.length >= 3, 10000);
    await pt.shutdown(5000);
    const by = Object.fromEntries(got.spans.map((s) => [s.name, s]));
    assert.equal(got.spans.length, 3);
    assert.equal(by['pt.under.remote'].trace_id, '0af7651916cd43dd8448eb211c80319c');
    assert.equal(by['pt.under.remote'].parent_span_id, 'b7ad6b7169203331');
    assert.equal(by['otel.child'].parent_span_id, by['pt.under.remote'].span_id, 'an API span under pt.span, across an await');
    assert.equal(by['otel.child'].kind, 5);
    assert.ok(by['otel.child'].start_ns < by['otel.child'].end_ns - 4e6, 'startTime honoured');
    assert.equal(by['root.option'].parent_span_id, '');
  });

  test('startActiveSpan: the active span for pt.span and the API, across await, in its callbacks; after disable() the API decides', async () => {
    await rx.reset();
    const pt = await createPolytel({ useEnv: false, telemetryEnabled: true, console: false, serviceName: 'otel-active' });
    await pt.bootstrapWorker({ endpoint: rx.endpoint });
    const api = createRequire(import.meta.url)('@opentelemetry/api');
    const reg = pt.registerOpenTelemetry();
    const tracer = api.trace.getTracer('lib.active', '1.0.0');
    const seen = {};
    const ret = await tracer.startActiveSpan('otel.outer', async (outer) => {
      seen.active = api.trace.getActiveSpan() === outer;
      seen.current = pt.currentSpan() === outer;
      await new Promise((r) => setTimeout(r, 1));
      await pt.span('pt.middle', async () => {
        await new Promise((r) => setImmediate(r));
        tracer.startActiveSpan('otel.inner', { kind: api.SpanKind.CLIENT, attributes: { n: 1 } }, (inner) => {
          seen.innerActive = api.trace.getActiveSpan() === inner;
          inner.end();
        });
      });
      seen.afterAwait = api.trace.getActiveSpan() === outer;
      outer.end();
      return 'value';
    });
    seen.outside = api.trace.getActiveSpan() === undefined;
    // An explicit context: its span is the parent, whatever is active.
    const explicit = api.trace.setSpan(api.ROOT_CONTEXT, tracer.startSpan('explicit.parent'));
    pt.span('pt.elsewhere', () => {
      tracer.startActiveSpan('otel.explicit', {}, explicit, (s) => s.end());
    });
    api.trace.getSpan(explicit).end();
    // Unregistered: a tracer held from before is ours still (the API's proxy keeps its delegate), but the
    // context is the API's (its no-op manager): no active span is seen, nothing is parented through it.
    reg.disable();
    tracer.startActiveSpan('after.disable', (s) => {
      seen.afterDisableActive = api.trace.getActiveSpan();
      s.end();
    });
    await pt.flush(10000);
    const got = await rx.waitFor((g) => g.spans.length >= 7, 10000);
    await pt.shutdown(5000);
    assert.equal(ret, 'value');
    assert.deepEqual(seen, { active: true, current: true, innerActive: true, afterAwait: true, outside: true, afterDisableActive: undefined });
    const by = Object.fromEntries(got.spans.map((s) => [s.name, s]));
    assert.equal(got.spans.length, 7);
    assert.equal(by['pt.middle'].parent_span_id, by['otel.outer'].span_id);
    assert.equal(by['otel.inner'].parent_span_id, by['pt.middle'].span_id);
    assert.equal(by['otel.inner'].trace_id, by['otel.outer'].trace_id);
    assert.equal(by['otel.inner'].kind, 3);
    assert.deepEqual(by['otel.inner'].attributes, { n: 1 });
    assert.equal(by['otel.outer'].parent_span_id, '');
    assert.equal(by['otel.explicit'].parent_span_id, by['explicit.parent'].span_id);
    assert.equal(by['after.disable'].parent_span_id, '');
    for (const n of ['otel.outer', 'otel.inner', 'otel.explicit']) assert.deepEqual([by[n].scope, by[n].scope_version], ['lib.active', '1.0.0'], n);
  });

  test('startActiveSpan(name, fn) and pt.span without options: a throw restores the outer context, a timer started inside follows, parents of every kind', async () => {
    await rx.reset();
    const pt = await createPolytel({ useEnv: false, telemetryEnabled: true, console: false, serviceName: 'otel-fast' });
    // Node 16-22: spans run in their context through trace.js's run1/run3 (the first one through run itself,
    // which enables the AsyncLocalStorage), so this test goes through both.
    if (Number(process.versions.node.split('.')[0]) <= 22) assert.equal(typeof pt._ear, 'function');
    await pt.bootstrapWorker({ endpoint: rx.endpoint });
    const api = createRequire(import.meta.url)('@opentelemetry/api');
    const reg = pt.registerOpenTelemetry();
    const tracer = api.trace.getTracer('lib.fast', '2.0.0');
    const seen = {};
    let timerDone;
    const timerRan = new Promise((r) => (timerDone = r));
    await pt.span('pt.outer', async (outer) => {
      assert.throws(() => tracer.startActiveSpan('otel.throws', (s) => {
        s.end();
        throw new Error('boom');
      }), /boom/);
      seen.restored = api.trace.getActiveSpan() === outer && pt.currentSpan() === outer;
      tracer.startActiveSpan('otel.timer', (s) => {
        setTimeout(() => {
          seen.timer = api.trace.getActiveSpan() === s;
          pt.span('pt.in.timer', () => {});
          s.end();
          timerDone();
        }, 1);
      });
      seen.afterTimerSet = api.trace.getActiveSpan() === outer;
      // (name, { kind, attributes }, fn), as instrumentations call it; a kind alone; a kind the API has not
      tracer.startActiveSpan('otel.opts', { kind: api.SpanKind.SERVER, attributes: { 'http.route': '/x', n: 2 } }, (s) => {
        seen.optsActive = api.trace.getActiveSpan() === s && pt.currentSpan() === s;
        pt.span('pt.in.opts', () => {});
        s.end();
      });
      seen.optsRestored = api.trace.getActiveSpan() === outer;
      tracer.startActiveSpan('otel.kind', { kind: api.SpanKind.CONSUMER }, (s) => s.end());
      tracer.startActiveSpan('otel.badkind', { kind: 9 }, (s) => s.end());
      await timerRan;
      seen.afterAwait = pt.currentSpan() === outer;
    });
    // A parent that is neither polytel's nor absent: the API's NonRecordingSpan of a remote context.
    const foreign = api.trace.wrapSpanContext({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1, isRemote: true });
    api.context.with(api.trace.setSpan(api.ROOT_CONTEXT, foreign), () => {
      pt.span('pt.under.foreign', () => {});
      tracer.startActiveSpan('otel.under.foreign', (s) => s.end());
    });
    reg.disable();
    await pt.flush(10000);
    const got = await rx.waitFor((g) => g.spans.length >= 10, 10000);
    await pt.shutdown(5000);
    assert.deepEqual(seen, { restored: true, afterTimerSet: true, optsActive: true, optsRestored: true, timer: true, afterAwait: true });
    const by = Object.fromEntries(got.spans.map((s) => [s.name, s]));
    assert.equal(got.spans.length, 10);
    assert.equal(by['otel.opts'].kind, 2, 'SpanKind.SERVER is OTLP server (2)');
    assert.deepEqual(by['otel.opts'].attributes, { 'http.route': '/x', n: 2 });
    assert.equal(by['otel.opts'].parent_span_id, by['pt.outer'].span_id);
    assert.equal(by['pt.in.opts'].parent_span_id, by['otel.opts'].span_id, 'the span with options was the current one');
    assert.equal(by['otel.kind'].kind, 5, 'SpanKind.CONSUMER is OTLP consumer (5)');
    assert.equal(by['otel.badkind'].kind, 1, 'an unknown kind is internal');
    for (const n of ['otel.opts', 'otel.kind', 'otel.badkind']) {
      assert.equal(by[n].parent_span_id, by['pt.outer'].span_id, n);
      assert.deepEqual([by[n].scope, by[n].scope_version], ['lib.fast', '2.0.0'], n);
    }
    assert.equal(by['otel.throws'].parent_span_id, by['pt.outer'].span_id);
    assert.equal(by['otel.timer'].parent_span_id, by['pt.outer'].span_id);
    assert.equal(by['pt.in.timer'].parent_span_id, by['otel.timer'].span_id, 'the context followed into the timer');
    assert.equal(by['pt.in.timer'].trace_id, by['pt.outer'].trace_id);
    for (const n of ['pt.under.foreign', 'otel.under.foreign']) {
      assert.equal(by[n].trace_id, '4bf92f3577b34da6a3ce929d0e0e4736', n);
      assert.equal(by[n].parent_span_id, '00f067aa0ba902b7', n);
    }
    for (const n of ['otel.throws', 'otel.timer', 'otel.under.foreign']) assert.deepEqual([by[n].scope, by[n].scope_version], ['lib.fast', '2.0.0'], n);
    assert.equal(by['pt.outer'].scope, 'polytel');
    // Both timestamps are clock readings of their own: the child's interval inside its parent's.
    for (const s of got.spans) assert.ok(s.start_ns > 0 && s.start_ns <= s.end_ns, s.name);
    const [t, c] = [by['otel.timer'], by['pt.in.timer']];
    assert.ok(t.start_ns <= c.start_ns && c.end_ns <= t.end_ns, 'pt.in.timer within otel.timer');
    assert.ok(t.end_ns - t.start_ns >= 1e6 - 1e5, 'otel.timer lasted its setTimeout (>= ~1 ms)');
  });

  test('baggage in step: the API\'s baggage in pt.inject(), pt.span\'s in the API and its propagator; disable() undoes it', async () => {
    const pt = await createPolytel({ useEnv: false, telemetryEnabled: true, console: false, serviceName: 'otel-bag' });
    await pt.bootstrapWorker({ exporter: 'none' });
    const api = createRequire(import.meta.url)('@opentelemetry/api');
    const reg = pt.registerOpenTelemetry();
    const apiInject = () => {
      const c = {};
      api.propagation.inject(api.context.active(), c);
      return c.baggage;
    };
    const bag = (o) => api.propagation.createBaggage(Object.fromEntries(Object.entries(o).map(([k, v]) => [k, { value: v }])));
    const seen = {};
    api.context.with(api.propagation.setBaggage(api.context.active(), bag({ tenant: 'acme' })), () => {
      seen.apiToPt = [pt.inject({}).baggage, apiInject()];
      pt.span('under.api.baggage', () => {
        seen.inSpan = [pt.inject({}).baggage, apiInject()];
      });
    });
    pt.span('with.baggage', () => {
      seen.ptToApi = [Object.fromEntries(api.propagation.getActiveBaggage().getAllEntries().map(([k, e]) => [k, e.value])), apiInject(), pt.inject({}).baggage];
      // The API's baggage set on top: both send both (the span's entries win a clash).
      api.context.with(api.propagation.setBaggage(api.context.active(), bag({ job: '8', extra: 'x' })), () => {
        seen.stacked = [pt.inject({}).baggage, apiInject()];
      });
    }, undefined, { baggage: { job: '7' } });
    seen.outside = [pt.inject({}).baggage, apiInject(), api.propagation.getActiveBaggage()];
    reg.disable();
    seen.afterDisable = Object.hasOwn(pt, 'inject'); // pt.inject is the prototype's again
    await pt.shutdown(5000);
    assert.deepEqual(seen, {
      apiToPt: ['tenant=acme', 'tenant=acme'],
      inSpan: ['tenant=acme', 'tenant=acme'],
      ptToApi: [{ job: '7' }, 'job=7', 'job=7'],
      stacked: ['job=7,extra=x', 'job=7,extra=x'],
      outside: [undefined, undefined, undefined],
      afterDisable: false,
    });
  });

  test('Histogram: advice.explicitBucketBoundaries are the bounds on the wire; bad advice keeps the defaults, with a warning', async () => {
    await rx.reset();
    const warnings = [];
    const pt = await createPolytel({ useEnv: false, telemetryEnabled: true, console: false, serviceName: 'otel-hist' });
    await pt.bootstrapWorker({ endpoint: rx.endpoint });
    pt._core.warn = (t) => warnings.push(t);
    const api = createRequire(import.meta.url)('@opentelemetry/api');
    const reg = pt.registerOpenTelemetry();
    const meter = api.metrics.getMeter('lib.hist');
    const h = meter.createHistogram('req.latency', { unit: 'ms', advice: { explicitBucketBoundaries: [1, 10, 100] } });
    for (const v of [0.5, 7, 7, 300]) h.record(v, { route: '/' });
    meter.createHistogram('odd.hist', { advice: { explicitBucketBoundaries: ['ten'] } }).record(6);
    meter.createHistogram('plain.hist').record(6);
    await pt.flush(10000);
    const got = await rx.waitFor((g) => ['req.latency', 'odd.hist', 'plain.hist'].every((n) => g.metrics.some((m) => m.name === n)), 10000);
    reg.disable();
    await pt.shutdown(5000);
    const last = (n) => got.metrics.filter((m) => m.name === n).pop();
    const lat = last('req.latency');
    assert.deepEqual([lat.type, lat.count, lat.sum, lat.explicit_bounds, lat.bucket_counts], ['histogram', 4, 314.5, [1, 10, 100], [1, 2, 0, 1]]);
    const defaults = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];
    for (const n of ['odd.hist', 'plain.hist']) assert.deepEqual([last(n).explicit_bounds, last(n).bucket_counts.slice(0, 3)], [defaults, [0, 0, 1]], n);
    assert.ok(warnings.some((w) => w.includes('histogram "odd.hist": advice.explicitBucketBoundaries is not an array of numbers')), warnings.join('\n'));
  });
});

// trace.test.mjs — issue 14 in wasm: pt.inject/pt.extract (W3C rules, OTEL_PROPAGATORS), pt.span's parent, kind,
// links, scope and baggage, events and exceptions as events, array attributes, sampling, the async context.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { createPolytel, SpanContext } from '../src/index.js';
import { sleep, startReceiver } from './helpers.mjs';

let rx;
before(async () => {
  rx = await startReceiver();
});
after(async () => {
  await rx?.stop();
});

const base = { useEnv: false, telemetryEnabled: true, console: false, serviceName: 'wasm-trace' };
const TID = '0af7651916cd43dd8448eb211c80319c';
const SID = 'b7ad6b7169203331';
const TP = `00-${TID}-${SID}-01`;

async function exporting(env = {}) {
  const pt = await createPolytel({ ...base, env });
  await pt.bootstrapWorker({ endpoint: rx.endpoint });
  return pt;
}

/** The spans the receiver got once `n` arrived (after pt's flush). */
async function spansAfter(pt, n) {
  assert.equal(await pt.flush(10000), true, 'flushed');
  const got = await rx.waitFor((g) => g.spans.length >= n, 10000);
  return got.spans;
}

describe('inject / extract', () => {
  let pt;
  before(async () => {
    pt = await createPolytel({ ...base, telemetryEnabled: false });
  });

  test('round trip: the current span into a new carrier, and back (names case-insensitive)', () => {
    let carrier;
    let ids;
    pt.span('s', (s) => {
      carrier = pt.inject();
      ids = [s.traceId, s.spanId];
    });
    assert.match(carrier.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.equal(carrier.traceparent, `00-${ids[0]}-${ids[1]}-01`);
    assert.equal(carrier.tracestate, undefined, 'no tracestate when none is set');
    assert.equal(carrier.baggage, undefined);
    const sc = pt.extract({ TRACEPARENT: carrier.traceparent });
    assert.ok(sc instanceof SpanContext);
    assert.equal(sc.traceId, ids[0]);
    assert.equal(sc.spanId, ids[1]);
    assert.equal(sc.sampled, true);
    assert.equal(sc.isRemote, true);
    assert.equal(sc.traceparent, carrier.traceparent);
    assert.deepEqual(pt.inject({}), {}, 'outside a span there is nothing to inject');
    const into = { existing: 'kept' };
    assert.equal(pt.span('t', () => pt.inject(into)), into, 'the carrier given is filled and returned');
    assert.equal(into.existing, 'kept');
  });

  test('Headers, a Map and arrays of fields are carriers too', () => {
    const h = new Headers({ TraceParent: TP, TraceState: 'a=1' });
    assert.equal(pt.extract(h).tracestate, 'a=1');
    assert.equal(pt.extract(new Map([['Traceparent', TP]])).spanId, SID);
    // Node gives repeated tracestate fields as an array: joined, as W3C says.
    assert.equal(pt.extract({ traceparent: TP, tracestate: ['a=1', 'b=2'] }).tracestate, 'a=1,b=2');
    const out = new Headers();
    pt.span('s', () => pt.inject(out));
    assert.match(out.get('traceparent'), /^00-/);
  });

  test('malformed headers are ignored as W3C says: no parent, no throw', () => {
    const bad = [
      `ff-${TID}-${SID}-01`, // version ff is invalid
      `00-${TID.toUpperCase()}-${SID}-01`, // uppercase hex
      `00-${'0'.repeat(32)}-${SID}-01`, // all-zero trace id
      `00-${TID}-${'0'.repeat(16)}-01`, // all-zero span id
      `00-${TID}-${SID}-1`, // short flags
      `00-${TID}-${SID}-01-extra`, // version 00 with more
      `00-${TID.slice(1)}x-${SID}-01`, // not hex
      '',
      'garbage',
    ];
    for (const tp of bad) assert.equal(pt.extract({ traceparent: tp }), null, tp);
    assert.equal(pt.extract({ traceparent: [TP, TP] }), null, 'two traceparent fields');
    assert.equal(pt.extract(null), null);
    assert.equal(pt.extract('traceparent'), null);
    // A later version is read by its first 55 characters.
    assert.equal(pt.extract({ traceparent: `01-${TID}-${SID}-01-later` })?.spanId, SID);
    // tracestate: dropped whole when invalid, and never read beside a bad traceparent.
    const members = (n) => Array.from({ length: n }, (_, i) => `k${i}=v`).join(',');
    assert.equal(pt.extract({ traceparent: TP, tracestate: members(32) }).tracestate, members(32));
    assert.equal(pt.extract({ traceparent: TP, tracestate: members(33) }).tracestate, '', 'more than 32 members');
    assert.equal(pt.extract({ traceparent: TP, tracestate: 'a=1,a=2' }).tracestate, '', 'a duplicate key');
    assert.equal(pt.extract({ traceparent: TP, tracestate: 'UPPER=1' }).tracestate, '', 'a bad key');
    // Baggage: bad members are skipped, good ones kept, values percent-decoded.
    const sc = pt.extract({ traceparent: TP, baggage: 'user=al%20ice,bad member,n=1;prop=x' });
    assert.deepEqual({ ...sc.baggage }, { user: 'al ice', n: '1' });
    const only = pt.extract({ baggage: 'k=v' });
    assert.equal(only.isValid, false, 'baggage without a traceparent: a context with no trace');
    assert.deepEqual({ ...only.baggage }, { k: 'v' });
  });

  test('OTEL_PROPAGATORS decides what is injected and extracted', async () => {
    const none = await createPolytel({ ...base, telemetryEnabled: false, env: { OTEL_PROPAGATORS: 'none' } });
    assert.equal(none.extract({ traceparent: TP, baggage: 'k=v' }), null);
    assert.deepEqual(none.span('s', () => none.inject()), {});
    const bag = await createPolytel({ ...base, telemetryEnabled: false, env: { OTEL_PROPAGATORS: 'baggage' } });
    const sc = bag.extract({ traceparent: TP, baggage: 'k=v' });
    assert.equal(sc.isValid, false, 'tracecontext is off');
    assert.deepEqual(bag.span('s', () => bag.inject(), undefined, { baggage: { k: 'v' } }), { baggage: 'k=v' });
  });
});

describe('spans against the receiver', () => {
  test('a server span under an extracted parent: kind, scope, tracestate, baggage to the children, links, events, arrays', async () => {
    await rx.reset();
    const pt = await exporting();
    const parent = pt.extract({ traceparent: TP, tracestate: 'vendor=x', baggage: 'tenant=t1' });
    const linked = pt.extract({ traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01` });
    let injected;
    let childBaggage;
    await pt.span(
      'handle',
      async (s) => {
        s.addEvent('got it', { n: 3, tags: ['a', 'b'] });
        s.setAttribute('retries', [1, 2, 3]);
        await sleep(5);
        await pt.span('child', async () => {
          await sleep(1);
          injected = pt.inject();
          childBaggage = pt.baggage();
        }, { ratio: [0.5, 1], flags: [true, false], mixed: [1, 'a'] }, { kind: 'client', links: [linked, { context: parent, attributes: { why: 'batch' } }] });
      },
      { 'http.route': '/x' },
      { parent, kind: 'server', scope: { name: 'billing', version: '2.1' }, baggage: { user: 'u7' } },
    );
    const spans = await spansAfter(pt, 2);
    await pt.shutdown(5000);
    const h = spans.find((s) => s.name === 'handle');
    const c = spans.find((s) => s.name === 'child');
    assert.equal(h.trace_id, TID);
    assert.equal(h.parent_span_id, SID);
    assert.equal(h.kind, 2, 'SPAN_KIND_SERVER');
    assert.equal(h.scope, 'billing');
    assert.equal(h.scope_version, '2.1');
    assert.equal(h.trace_state, 'vendor=x', "the parent's tracestate travels on");
    assert.deepEqual(h.attributes, { 'http.route': '/x', retries: [1, 2, 3] });
    assert.equal(h.events.length, 1);
    assert.equal(h.events[0].name, 'got it');
    assert.deepEqual(h.events[0].attributes, { n: 3, tags: ['a', 'b'] });
    assert.ok(h.events[0].time_ns >= h.start_ns && h.events[0].time_ns <= h.end_ns);
    assert.equal(c.trace_id, TID);
    assert.equal(c.parent_span_id, h.span_id, 'the async context carried the parent across awaits');
    assert.equal(c.kind, 3, 'SPAN_KIND_CLIENT');
    assert.equal(c.scope, 'polytel');
    assert.deepEqual(c.attributes, { ratio: [0.5, 1], flags: [true, false], mixed: '[1,"a"]' });
    assert.deepEqual(c.links.map((l) => [l.trace_id, l.span_id, l.attributes]), [
      ['1'.repeat(32), '2'.repeat(16), {}],
      [TID, SID, { why: 'batch' }],
    ]);
    assert.equal(injected.traceparent, `00-${TID}-${c.span_id}-01`);
    assert.equal(injected.tracestate, 'vendor=x');
    assert.deepEqual(new Set(injected.baggage.split(',')), new Set(['tenant=t1', 'user=u7']));
    assert.deepEqual({ ...childBaggage }, { tenant: 't1', user: 'u7' });
  });

  test('a throwing fn: ERROR, an exception event with the JavaScript stack, rethrown (sync and async)', async () => {
    await rx.reset();
    const pt = await exporting();
    class PaymentError extends Error {
      constructor(m) {
        super(m);
        this.name = 'PaymentError';
      }
    }
    assert.throws(() => pt.span('sync', () => {
      throw new PaymentError('card declined');
    }), PaymentError);
    await assert.rejects(pt.span('async', async () => {
      await sleep(1);
      throw new TypeError('bad input');
    }), TypeError);
    await assert.rejects(pt.span('rejected', () => Promise.reject('plain string')), (e) => e === 'plain string');
    pt.span('recorded', (s) => s.recordException(new RangeError('kept going')));
    const spans = await spansAfter(pt, 4);
    await pt.shutdown(5000);
    const by = Object.fromEntries(spans.map((s) => [s.name, s]));
    const ex = (s) => s.events.find((e) => e.name === 'exception')?.attributes;
    assert.equal(by.sync.status_code, 2);
    assert.equal(by.sync.status_message, 'card declined');
    assert.equal(ex(by.sync)['exception.type'], 'PaymentError');
    assert.equal(ex(by.sync)['exception.message'], 'card declined');
    assert.match(ex(by.sync)['exception.stacktrace'], /^PaymentError: card declined\n\s+at .*trace\.test\.mjs/);
    assert.equal(by.async.status_code, 2);
    assert.equal(ex(by.async)['exception.type'], 'TypeError');
    assert.match(ex(by.async)['exception.stacktrace'], /TypeError: bad input\n\s+at /);
    assert.equal(by.rejected.status_code, 2);
    assert.deepEqual(ex(by.rejected), { 'exception.type': 'string', 'exception.message': 'plain string' });
    assert.equal(by.recorded.status_code, 0, 'recordException alone leaves the status');
    assert.equal(ex(by.recorded)['exception.type'], 'RangeError');
  });

  test('concurrent async spans keep their own parents; setTimeout and queueMicrotask follow too', async () => {
    await rx.reset();
    const pt = await exporting();
    const branch = (name) =>
      pt.span(name, async () => {
        await sleep(3);
        await new Promise((r) => setTimeout(() => pt.span(`${name}.timer`, r), 2));
        await new Promise((r) => queueMicrotask(() => pt.span(`${name}.micro`, r)));
        await pt.span(`${name}.inner`, () => sleep(2));
      });
    await pt.span('root', () => Promise.all([branch('a'), branch('b')]));
    const spans = await spansAfter(pt, 9);
    await pt.shutdown(5000);
    const by = Object.fromEntries(spans.map((s) => [s.name, s]));
    assert.equal(spans.length, 9);
    for (const b of ['a', 'b']) {
      assert.equal(by[b].parent_span_id, by.root.span_id);
      for (const k of ['timer', 'micro', 'inner']) assert.equal(by[`${b}.${k}`].parent_span_id, by[b].span_id, `${b}.${k}`);
    }
    assert.equal(new Set(spans.map((s) => s.trace_id)).size, 1);
  });

  test('parent: null starts a new trace; parent: a Span; a bad kind or parent is a TypeError before fn runs', async () => {
    await rx.reset();
    const pt = await exporting();
    let outer;
    pt.span('outer', (s) => {
      outer = s;
      pt.span('detached', () => {}, undefined, { parent: null });
    });
    pt.span('later', () => {}, undefined, { parent: outer, kind: 'CONSUMER' });
    let ran = false;
    assert.throws(() => pt.span('x', () => (ran = true), undefined, { kind: 'bogus' }), /kind must be one of internal, server, client, producer, consumer/);
    assert.throws(() => pt.span('x', () => (ran = true), undefined, { parent: 42 }), /parent must be/);
    assert.equal(ran, false);
    const spans = await spansAfter(pt, 3);
    await pt.shutdown(5000);
    const by = Object.fromEntries(spans.map((s) => [s.name, s]));
    assert.notEqual(by.detached.trace_id, by.outer.trace_id);
    assert.equal(by.detached.parent_span_id, '');
    assert.equal(by.later.parent_span_id, by.outer.span_id);
    assert.equal(by.later.kind, 5, 'kind names ignore case (SPAN_KIND_CONSUMER)');
  });

  test('sampling is the core\'s: always_off records nothing (counted as sampledOut) and still propagates', async () => {
    await rx.reset();
    const pt = await exporting({ OTEL_TRACES_SAMPLER: 'always_off' });
    let carrier;
    pt.span('off', (s) => {
      assert.equal(s.isRecording(), false);
      carrier = pt.inject();
      pt.info('inside an unsampled span');
    });
    assert.match(carrier.traceparent, /-00$/, 'the sampled flag is off in traceparent');
    // A sampled remote parent is followed? always_off is not parent-based: still off.
    pt.span('remote', () => {}, undefined, { parent: pt.extract({ traceparent: TP }) });
    assert.equal(await pt.flush(10000), true);
    const st = pt.stats();
    assert.equal(st.sampledOut, 2);
    await pt.shutdown(5000);
    const got = await rx.waitFor((g) => g.logs.length >= 1, 5000);
    assert.equal(got.spans.length, 0);
    assert.equal(got.logs[0].trace_id, carrier.traceparent.slice(3, 35), 'the log keeps the unsampled trace id');
  });
});

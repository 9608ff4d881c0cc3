// export.test.mjs — phase 2 through fetch against the real receiver (official protos), JSON and protobuf.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { createPolytel } from '../src/index.js';
import { ROOT, sleep, startReceiver } from './helpers.mjs';

let rx;
before(async () => {
  rx = await startReceiver();
});
after(async () => {
  await rx?.stop();
});

const base = { useEnv: false, telemetryEnabled: true, console: false, serviceName: 'wasm-test' };
const bodies = (got, body) => got.logs.filter((l) => l.body === body).length;
const lastPoint = (got, name, pred = () => true) => {
  const pts = got.metrics.filter((m) => m.name === name && pred(m));
  return pts[pts.length - 1];
};

for (const protocol of ['http/protobuf', 'http/json']) {
  const ctype = protocol === 'http/json' ? 'application/json' : 'application/x-protobuf';

  describe(`export over ${protocol}`, () => {
    test('deferred events are exported exactly once, after bootstrap', async () => {
      await rx.reset();
      const pt = await createPolytel(base);
      assert.equal(pt.phase(), 'deferred');
      for (let i = 0; i < 5; i++) pt.info(`deferred ${i}`, { i, tag: 'early' });
      pt.span('deferred-span', () => {});
      await sleep(100);
      assert.equal((await rx.received()).logs.length, 0, 'nothing leaves before phase 2');

      const st = await pt.bootstrapWorker({ endpoint: rx.endpoint, protocol });
      assert.equal(st.phase, 'full');
      assert.equal(st.status, 'started');
      assert.equal(st.endpoint, rx.endpoint);
      assert.equal(st.protocol, protocol);
      assert.equal(st.config.sdk_language, 'nodejs');
      const again = await pt.bootstrapWorker({ endpoint: 'http://127.0.0.1:9', protocol });
      assert.equal(again.phase, 'full', 'phase 2 again: no change');
      assert.equal(again.status, 'already running');
      assert.equal(again.endpoint, rx.endpoint, 'a repeated call shows what runs');
      pt.info('after bootstrap');
      assert.equal(await pt.flush(10000), true);
      assert.equal(await pt.flush(10000), true, 'a second flush sends nothing twice');
      assert.equal(await pt.shutdown(5000), true);
      assert.equal(pt.phase(), 'none');

      const got = await rx.received();
      for (let i = 0; i < 5; i++) assert.equal(bodies(got, `deferred ${i}`), 1, `deferred ${i}`);
      assert.equal(bodies(got, 'after bootstrap'), 1);
      assert.equal(got.logs.length, 6);
      const l3 = got.logs.find((l) => l.body === 'deferred 3');
      assert.deepEqual(l3.attributes, { i: 3, tag: 'early' });
      assert.equal(l3.severity_text, 'INFO');
      assert.equal(l3.severity_number, 9);
      assert.equal(l3.scope, 'app');
      assert.equal(l3.service, 'wasm-test');
      assert.equal(l3.resource['telemetry.sdk.language'], 'nodejs');
      assert.equal(got.spans.filter((s) => s.name === 'deferred-span').length, 1);
      assert.ok(got.requests.length > 0);
      for (const r of got.requests) assert.equal(r.content_type, ctype);
    });

    test('nested spans, sync and async, with parent links; logs inside spans carry their ids', async () => {
      await rx.reset();
      const pt = await createPolytel(base);
      await pt.bootstrapWorker({ endpoint: rx.endpoint, protocol });
      const ids = {};
      pt.span('root', (s) => {
        ids.root = s.spanId;
        pt.span('child', (c) => {
          ids.child = c.spanId;
          pt.info('in child');
          pt.span('grandchild', (g) => {
            ids.grandchild = g.spanId;
          });
        });
      }, { kind: 'sync' });
      const v = await pt.span('aroot', async (s) => {
        ids.aroot = s.spanId;
        await sleep(2);
        // Concurrent async children: each must get aroot as parent, and its own logs.
        await Promise.all([
          pt.span('a1', async (c) => {
            ids.a1 = c.spanId;
            await sleep(5);
            pt.info('in a1');
            await pt.span('a1x', async () => { await sleep(1); });
          }),
          pt.span('a2', async () => {
            await sleep(1);
            pt.info('in a2');
          }),
        ]);
        return 'value';
      });
      assert.equal(v, 'value');
      assert.throws(() => pt.span('boom', () => { throw new Error('bad thing'); }), /bad thing/);
      await assert.rejects(pt.span('aboom', async () => { await sleep(1); throw new Error('async bad'); }), /async bad/);
      pt.span('attrs', (s) => s.setAttribute('late', 7).setAttributes({ ok: true, ratio: 0.5 }), { early: 'x' });
      assert.equal(await pt.flush(10000), true);
      await pt.shutdown(5000);

      const got = await rx.received();
      const span = (name) => {
        const all = got.spans.filter((s) => s.name === name);
        assert.equal(all.length, 1, `${name} exported once`);
        return all[0];
      };
      const root = span('root');
      const child = span('child');
      const grandchild = span('grandchild');
      assert.equal(root.parent_span_id, '');
      assert.equal(root.span_id, ids.root);
      assert.equal(child.parent_span_id, root.span_id);
      assert.equal(grandchild.parent_span_id, child.span_id);
      assert.equal(child.trace_id, root.trace_id);
      assert.equal(grandchild.trace_id, root.trace_id);
      assert.deepEqual(root.attributes, { kind: 'sync' });
      assert.ok(root.start_ns <= child.start_ns && child.end_ns <= root.end_ns);

      const aroot = span('aroot');
      assert.equal(aroot.parent_span_id, '');
      assert.notEqual(aroot.trace_id, root.trace_id);
      for (const n of ['a1', 'a2']) {
        assert.equal(span(n).parent_span_id, aroot.span_id, `${n}'s parent`);
        assert.equal(span(n).trace_id, aroot.trace_id);
      }
      assert.equal(span('a1x').parent_span_id, span('a1').span_id);
      assert.ok(aroot.end_ns >= span('a1').end_ns, 'the async root ends when its promise settles');

      const inChild = got.logs.find((l) => l.body === 'in child');
      assert.equal(inChild.span_id, child.span_id);
      assert.equal(inChild.trace_id, root.trace_id);
      assert.equal(got.logs.find((l) => l.body === 'in a1').span_id, span('a1').span_id);
      assert.equal(got.logs.find((l) => l.body === 'in a2').span_id, span('a2').span_id);

      assert.equal(span('boom').status_code, 2);
      assert.equal(span('boom').status_message, 'bad thing');
      assert.equal(span('aboom').status_code, 2);
      assert.equal(span('aboom').status_message, 'async bad');
      assert.equal(root.status_code, 0);
      assert.deepEqual(span('attrs').attributes, { early: 'x', late: 7, ok: true, ratio: 0.5 });
    });

    test('counters are exact; gauges and histograms', async () => {
      await rx.reset();
      const pt = await createPolytel(base);
      await pt.bootstrapWorker({ endpoint: rx.endpoint, protocol });
      for (let i = 0; i < 100; i++) pt.counterAdd('requests', 1, { route: '/a' });
      pt.counterAdd('requests', 5, { route: '/b' });
      pt.counterAdd('requests', undefined, { route: '/b' });
      pt.counterAdd('big', 2 ** 40);
      pt.gaugeSet('temperature', 21.5, { room: 'lab' });
      for (const v of [3, 7, 30]) pt.histogramRecord('latency', v, undefined, 'ms');
      assert.equal(await pt.flush(10000), true);
      await pt.shutdown(5000);
      const got = await rx.received();
      const a = lastPoint(got, 'requests', (m) => m.attributes.route === '/a');
      assert.equal(a.value, 100);
      assert.equal(a.type, 'sum');
      assert.equal(a.is_monotonic, true);
      assert.equal(lastPoint(got, 'requests', (m) => m.attributes.route === '/b').value, 6);
      assert.equal(lastPoint(got, 'big').value, 2 ** 40);
      const g = lastPoint(got, 'temperature');
      assert.equal(g.type, 'gauge');
      assert.equal(g.value, 21.5);
      assert.deepEqual(g.attributes, { room: 'lab' });
      const h = lastPoint(got, 'latency');
      assert.equal(h.type, 'histogram');
      assert.equal(h.count, 3);
      assert.equal(h.sum, 40);
      assert.equal(h.unit, 'ms');
    });

    test('a 503 is retried by the core, then delivered exactly once', async () => {
      await rx.reset();
      await rx.faults([{ status: 503, count: 1, path: '/v1/logs', retry_after: '1' }]);
      const pt = await createPolytel(base);
      await pt.bootstrapWorker({ endpoint: rx.endpoint, protocol });
      pt.info('retry me');
      assert.equal(await pt.flush(20000), true);
      const stats = pt.stats();
      await pt.shutdown(5000);
      const got = await rx.received();
      assert.equal(bodies(got, 'retry me'), 1);
      const logReqs = got.requests.filter((r) => r.path === '/v1/logs').map((r) => r.status_returned);
      assert.deepEqual(logReqs, [503, 200]);
      assert.ok(stats.exportRetries >= 1, JSON.stringify(stats));
      assert.equal(stats.dropped, 0);
    });
  });
}

test('configured headers are sent', async () => {
  await rx.reset();
  const pt = await createPolytel(base);
  await pt.bootstrapWorker({ endpoint: rx.endpoint, headers: { 'x-api-key': 'secret-1' } });
  pt.info('with headers');
  assert.equal(await pt.flush(10000), true);
  await pt.shutdown(5000);
  const got = await rx.received();
  assert.ok(got.requests.length > 0);
  for (const r of got.requests) assert.equal(r.headers['x-api-key'], 'secret-1');
});

test('the file exporter appends one OTLP/JSON request per line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'polytel-wasm-files-'));
  try {
    const pt = await createPolytel(base);
    pt.info('to a file', { n: 1 });
    await pt.bootstrapWorker({ exporter: 'file', exportDir: dir });
    pt.span('file-span', () => pt.counterAdd('file.count', 4));
    assert.equal(await pt.shutdown(5000), true);
    assert.deepEqual(readdirSync(dir).sort().filter((f) => f.endsWith('.jsonl')), ['logs.jsonl', 'metrics.jsonl', 'traces.jsonl']);
    const py = join(ROOT, '.venv/bin/python');
    const code = 'import sys, json; sys.path.insert(0, sys.argv[1]); import jsonl; print(json.dumps(jsonl.load_dir(sys.argv[2])))';
    const got = JSON.parse(execFileSync(py, ['-c', code, join(ROOT, 'tests/support'), dir], { encoding: 'utf8' }));
    assert.equal(bodies(got, 'to a file'), 1);
    assert.equal(got.spans.filter((s) => s.name === 'file-span').length, 1);
    assert.equal(lastPoint(got, 'file.count').value, 4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('attribute values keep their types: int64 (negative, large, bigint), double, bool, string, objects as JSON', async () => {
  await rx.reset();
  const pt = await createPolytel(base);
  await pt.bootstrapWorker({ endpoint: rx.endpoint, protocol: 'http/json' });
  pt.info('typed', {
    neg: -5,
    big: 2 ** 53 - 1,
    bigNeg: -(2 ** 40),
    bi: 9007199254740993n,
    dbl: -0.25,
    yes: true,
    no: false,
    text: 'héllo, wörld ✓',
    obj: { a: [1, 2] },
    skipped: undefined,
  });
  assert.equal(await pt.flush(10000), true);
  await pt.shutdown(5000);
  const got = await rx.received();
  const l = got.logs.find((x) => x.body === 'typed');
  assert.deepEqual(l.attributes, {
    neg: -5,
    big: 2 ** 53 - 1,
    bigNeg: -(2 ** 40),
    bi: 9007199254740993,
    dbl: -0.25,
    yes: true,
    no: false,
    text: 'héllo, wörld ✓',
    obj: '{"a":[1,2]}',
  });
});

test('flush waits for a metrics request the core is retrying', async () => {
  await rx.reset();
  await rx.faults([{ status: 503, count: 1, path: '/v1/metrics' }]);
  const pt = await createPolytel(base);
  await pt.bootstrapWorker({ endpoint: rx.endpoint });
  pt.counterAdd('retried.metric', 4);
  assert.equal(await pt.flush(20000), true);
  const got = await rx.received(); // before shutdown: the flush itself delivered it
  assert.deepEqual(got.requests.filter((r) => r.path === '/v1/metrics').map((r) => r.status_returned), [503, 200]);
  assert.equal(lastPoint(got, 'retried.metric').value, 4);
  await pt.shutdown(5000);
});

test('a metric name interned just before the string cache is emptied keeps its name on the wire', async () => {
  await rx.reset();
  const pt = await createPolytel(base);
  await pt.bootstrapWorker({ endpoint: rx.endpoint });
  const core = pt._core;
  const MAX = 4096; // the cache's bound (Core.INTERN_MAX)
  const M = core.M;
  // The cache one short of its bound (as 4,095 distinct metric names and units would leave it); then a call
  // whose name is the last string that fits and whose unit is new: the unit's copy must not free the name's.
  for (let i = 0; core.cache.size < MAX - 1; i++) core.intern(`filler.${i}`);
  // A free block the name's copy will take, between two live ones (the allocator's exact-size reuse), so a
  // name freed by the cache's clear is the block the unit's copy (same length) gets: the wrong name on the
  // wire, not freed memory that happens to still read right.
  const pins = [M._malloc(14), M._malloc(14), M._malloc(14)];
  M._free(pins[1]);
  pt.counterAdd('intern.victim', 3, undefined, 'bytes.per.sec');
  pt.counterAdd('intern.after', 2, undefined, 'ms');
  M._free(pins[0]);
  M._free(pins[2]);
  assert.ok(core.cache.size <= MAX, `cache bounded (${core.cache.size})`);
  assert.equal(await pt.flush(10000), true);
  await pt.shutdown(5000);
  const got = await rx.received();
  const victim = lastPoint(got, 'intern.victim');
  assert.ok(victim, `intern.victim exported (names: ${[...new Set(got.metrics.map((m) => m.name))].join(', ')})`);
  assert.equal(victim.value, 3);
  assert.equal(victim.unit, 'bytes.per.sec');
  assert.equal(lastPoint(got, 'intern.after').value, 2);
  assert.equal(lastPoint(got, 'intern.after').unit, 'ms');
  assert.deepEqual(got.metrics.filter((m) => m.name === 'bytes.per.sec' || m.name === 'ms'), [], 'no unit exported as a name');
});

test("a span's ids read after it ended are the ones exported (started in the core only when it ended)", async () => {
  await rx.reset();
  const pt = await createPolytel(base);
  await pt.bootstrapWorker({ endpoint: rx.endpoint });
  // Nothing asks for these spans' ids while they run: each is started and finished in one call, its context
  // kept in the ring of finished spans (Core.RING slots), then in that ring's copy once the ring is reused.
  const held = [];
  const total = 3 * 256 + 10;
  for (let i = 0; i < total; i++) pt.span(`late-${i}`, (s) => void (i % 97 === 0 && held.push([i, s])));
  // One span whose ids are read while it runs (started then), and its child (the parent is started first).
  let early;
  let earlyId;
  pt.span('early', (s) => {
    early = s;
    earlyId = s.spanId;
    pt.span('early-child', () => {});
  });
  const async1 = await pt.span('async-late', async (s) => s);
  assert.equal(await pt.flush(10000), true);
  await pt.shutdown(5000);
  const got = await rx.received();
  const byName = (n) => {
    const all = got.spans.filter((s) => s.name === n);
    assert.equal(all.length, 1, `one ${n}`);
    return all[0];
  };
  assert.equal(got.spans.filter((s) => s.name.startsWith('late-')).length, total);
  assert.ok(held.length >= 8);
  for (const [i, s] of held) {
    const x = byName(`late-${i}`);
    assert.equal(s.spanId, x.span_id, `late-${i} span id`);
    assert.equal(s.traceId, x.trace_id, `late-${i} trace id`);
    assert.equal(s.context.traceparent, `00-${x.trace_id}-${x.span_id}-01`);
  }
  assert.equal(early.spanId, earlyId);
  assert.equal(byName('early').span_id, earlyId);
  assert.equal(byName('early-child').parent_span_id, earlyId);
  assert.equal(byName('async-late').span_id, async1.spanId);
  assert.equal(new Set(got.spans.map((s) => s.span_id)).size, got.spans.length, 'span ids unique');
});

// Plain spans are staged in phase 2 (Core.stage) and ingested in one call: nothing staged may be lost, counted
// late, or get ids other than the ones a late reader saw.
test('staged spans: counted by stats, exported by flush, ids read after the end as exported', { timeout: 60000 }, async () => {
  await rx.reset();
  const pt = await createPolytel(base);
  await pt.bootstrapWorker({ endpoint: rx.endpoint });
  pt.span('staged-one', () => {});
  assert.equal(pt.stats().recorded, 1); // counted as soon as anything asks
  // More than the staging area and the ring of contexts hold; one of the early ones asked for its ids late.
  let early;
  const total = 1000;
  for (let i = 0; i < total; i++) {
    const s = pt.span(i % 3 ? 'staged-many' : 'staged-ü', (sp) => sp);
    if (i === 5) early = s;
  }
  const child = pt.span('staged-parent', () => pt.span('staged-child', (s) => s));
  assert.equal(await pt.flush(10000), true);
  const st = pt.stats();
  assert.equal(st.recorded, total + 3);
  assert.equal(st.exported, total + 3);
  // a span staged after the flush: shutdown ingests it before it stops
  pt.span('staged-last', () => {});
  assert.equal(await pt.shutdown(5000), true);
  const end = pt.stats();
  assert.deepEqual([end.recorded, end.exported, end.dropped, end.pending], [total + 4, total + 4, 0, 0]);
  const got = await rx.received();
  const named = (n) => got.spans.filter((s) => s.name === n);
  assert.equal(named('staged-one').length, 1);
  assert.equal(named('staged-many').length, 666);
  assert.equal(named('staged-ü').length, 334);
  assert.equal(named('staged-last').length, 1);
  const ids = new Set([...named('staged-many'), ...named('staged-ü')].map((s) => s.span_id));
  assert.equal(ids.size, total);
  assert.ok(ids.has(early.spanId), 'a span id read after the ring moved on is the exported one');
  const [p] = named('staged-parent');
  const [c] = named('staged-child');
  assert.equal(c.parent_span_id, p.span_id);
  assert.equal(c.span_id, child.spanId);
  for (const s of got.spans) assert.ok(s.start_ns > 0 && s.end_ns >= s.start_ns);
});

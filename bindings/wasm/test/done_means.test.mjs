// done_means.test.mjs — the "Done means" script, as a user runs it, against the receiver; JSON and protobuf.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { PKG, runNode, startReceiver } from './helpers.mjs';

let rx;
before(async () => {
  rx = await startReceiver();
});
after(async () => {
  await rx?.stop();
});

for (const protocol of ['http/json', 'http/protobuf']) {
  test(`done means (${protocol})`, { timeout: 60000 }, async () => {
    await rx.reset();
    const run = await runNode(join(PKG, 'test/fixtures/done_means.mjs'), {
      TELEMETRY_ENABLED: 'true',
      OTEL_EXPORTER_OTLP_ENDPOINT: rx.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
      OTEL_SERVICE_NAME: 'done-means',
    });
    assert.equal(run.code, 0, run.stderr);
    const phases = run.stdout.split('\n').filter((l) => l.startsWith('phase=') || l.startsWith('shutdown='));
    assert.deepEqual(phases, ['phase=deferred', 'phase=full', 'shutdown=true', 'phase=none'], run.stdout + run.stderr);

    const got = await rx.received();
    assert.deepEqual(got.errors ?? [], []);
    const ctype = protocol === 'http/json' ? 'application/json' : 'application/x-protobuf';
    for (const r of got.requests) assert.equal(r.content_type, ctype);

    const bodies = got.logs.map((l) => l.body).sort();
    assert.deepEqual(bodies, ['async step done', 'handling', 'worker loading', 'worker ready', 'worker stopping'].sort());
    for (const l of got.logs) assert.equal(l.service, 'done-means');
    assert.deepEqual(got.logs.find((l) => l.body === 'worker loading').attributes, { stage: 'load' });

    const names = got.spans.map((s) => s.name).sort();
    assert.deepEqual(names, ['async-job', 'async-step', 'db-query', 'handle-request']);
    const by = Object.fromEntries(got.spans.map((s) => [s.name, s]));
    assert.equal(by['handle-request'].parent_span_id, '');
    assert.equal(by['db-query'].parent_span_id, by['handle-request'].span_id);
    assert.equal(by['async-step'].parent_span_id, by['async-job'].span_id);
    assert.equal(by['handle-request'].attributes['http.route'], '/jobs');
    assert.equal(got.logs.find((l) => l.body === 'handling').span_id, by['handle-request'].span_id);
    assert.equal(got.logs.find((l) => l.body === 'async step done').span_id, by['async-step'].span_id);

    const points = got.metrics.filter((m) => m.name === 'jobs.processed');
    assert.ok(points.length >= 1);
    assert.equal(points[points.length - 1].value, 5);
    assert.deepEqual(points[points.length - 1].attributes, { queue: 'default' });
  });
}

test('a worker that never calls shutdown exits on its own, and beforeExit delivers its telemetry once', { timeout: 60000 }, async () => {
  await rx.reset();
  const run = await runNode(join(PKG, 'test/fixtures/exit_flush.mjs'), {
    TELEMETRY_ENABLED: 'true',
    OTEL_EXPORTER_OTLP_ENDPOINT: rx.endpoint,
    OTEL_SERVICE_NAME: 'exit-flush',
  });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /main done/);
  const got = await rx.received();
  assert.deepEqual(got.logs.map((l) => l.body), ['delivered at exit']);
  assert.deepEqual(got.spans.map((s) => s.name), ['exit-span']);
  const pts = got.metrics.filter((m) => m.name === 'exit.count');
  assert.equal(pts[pts.length - 1].value, 7);
});

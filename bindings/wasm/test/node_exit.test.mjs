// node_exit.test.mjs — Node: the resource a process reports, gzip through CompressionStream, and a process that
// ends without shutdown() while the collector is down (bounded, counted, and said in one line).
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { createPolytel } from '../src/index.js';
import { closedPort, PKG, runNode, startReceiver } from './helpers.mjs';

let rx;
before(async () => {
  rx = await startReceiver();
});
after(async () => {
  await rx?.stop();
});


for (const protocol of ['http/protobuf', 'http/json']) {
  test(`the resource in Node: nodejs, the real pid, host and runtime; user attributes win (${protocol})`, { timeout: 30000 }, async () => {
    await rx.reset();
    const pt = await createPolytel({ useEnv: false, telemetryEnabled: true, console: false, serviceName: 'node-res', resourceAttributes: { 'deployment.environment.name': 'test', 'host.name': 'chosen-host' } });
    await pt.bootstrapWorker({ endpoint: rx.endpoint, protocol });
    pt.span('res-span', () => {});
    assert.equal(await pt.shutdown(5000), true);
    const got = await rx.received();
    assert.deepEqual(got.errors, []);
    const res = got.spans[0].resource;
    assert.equal(res['telemetry.sdk.language'], 'nodejs');
    assert.equal(res['telemetry.sdk.name'], 'polytel');
    assert.equal(res['process.pid'], process.pid);
    assert.equal(res['process.runtime.name'], 'nodejs');
    assert.equal(res['process.runtime.version'], process.versions.node);
    assert.equal(res['process.runtime.description'], 'Node.js');
    assert.equal(res['process.executable.path'], process.execPath);
    assert.equal(res['process.executable.name'], process.execPath.split('/').pop());
    assert.equal(res['host.name'], 'chosen-host', 'OTEL_RESOURCE_ATTRIBUTES / options override detection');
    assert.equal(res['deployment.environment.name'], 'test');
    assert.equal(res['service.name'], 'node-res');
    assert.ok(!Object.keys(res).some((k) => k.startsWith('browser.')));
  });
}

test('the detected host.name is the machine\'s', { timeout: 30000 }, async () => {
  await rx.reset();
  const pt = await createPolytel({ useEnv: false, telemetryEnabled: true, console: false });
  await pt.bootstrapWorker({ endpoint: rx.endpoint });
  pt.info('hello');
  assert.equal(await pt.shutdown(5000), true);
  const got = await rx.received();
  assert.equal(got.logs[0].resource['host.name'], hostname());
});

test('OTEL_EXPORTER_OTLP_COMPRESSION=gzip: bodies go out gzip\'d (CompressionStream) and decode', { timeout: 30000 }, async () => {
  await rx.reset();
  const pt = await createPolytel({ useEnv: false, telemetryEnabled: true, console: false, env: { OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip' } });
  await pt.bootstrapWorker({ endpoint: rx.endpoint });
  for (let i = 0; i < 300; i++) pt.span('gz-span', () => {}, { i });
  pt.info('gz-log');
  pt.counterAdd('gz.count', 3);
  assert.equal(await pt.shutdown(5000), true);
  const got = await rx.received();
  assert.deepEqual(got.errors, []);
  assert.equal(got.spans.length, 300);
  assert.equal(got.logs.length, 1);
  assert.ok(got.requests.length >= 3);
  for (const r of got.requests) assert.equal(r.content_encoding, 'gzip', JSON.stringify(r));
});

test('compression: a bad value is refused with the option named', async () => {
  const pt = await createPolytel({ useEnv: false, telemetryEnabled: true, console: false });
  await assert.rejects(pt.bootstrapWorker({ exporter: 'none', compression: 'zstd' }), /invalid compression="zstd" \(zstd is not available in wasm, expected gzip or none\)/);
  await pt.shutdown(100);
});

for (const how of ['end', 'exit']) {
  test(`a process that ends ${how === 'end' ? 'by itself' : 'with process.exit()'} without shutdown() while the collector is down: bounded, counted, said`, { timeout: 60000 }, async () => {
    const run = await runNode(join(PKG, 'test/fixtures/exit_down.mjs'), {
      TELEMETRY_ENABLED: 'true',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${await closedPort()}`,
      OTEL_EXPORTER_OTLP_TIMEOUT: '300',
      OTEL_SERVICE_NAME: 'exit-down',
      EXIT_TIMEOUT_MS: '800',
    }, [how]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /main done/);
    const stats = JSON.parse(/STATS (.*)/.exec(run.stdout)[1]);
    assert.equal(stats.recorded, 63);
    assert.equal(stats.exported, 0);
    assert.equal(stats.pending, 0, 'nothing is left pending: what could not go is counted');
    assert.equal(stats.dropped, 63);
    assert.equal(stats.droppedExport, 63);
    assert.equal(stats.unconfirmed, 0, 'a refused connection proves nothing was sent');
    // The cause, from the binding; then the core's own last word, with the counts.
    const lines = run.stderr.split('\n').filter((l) => l.includes('polytel: exit:'));
    assert.equal(lines.length, 1, run.stderr);
    assert.match(lines[0], /exit: 63 log records\/spans still pending: /);
    assert.match(lines[0], how === 'end' ? /not delivered within exitTimeoutMs \(800 ms\)/ : /process\.exit\(\) left no time to send them/);
    const last = run.stderr.split('\n').filter((l) => l.includes('polytel: shutdown:'));
    assert.equal(last.length, 1, run.stderr);
    assert.match(last[0], /shutdown: 63 records dropped \(dropped_export 63\), 0 unconfirmed/);
    assert.ok(run.stderr.indexOf(lines[0]) < run.stderr.indexOf(last[0]), 'the cause comes first');
  });
}

test('a process that ends by itself with the collector up says nothing at exit', { timeout: 60000 }, async () => {
  await rx.reset();
  const run = await runNode(join(PKG, 'test/fixtures/exit_down.mjs'), {
    TELEMETRY_ENABLED: 'true',
    OTEL_EXPORTER_OTLP_ENDPOINT: rx.endpoint,
    OTEL_SERVICE_NAME: 'exit-up',
    EXIT_TIMEOUT_MS: '10000',
  }, ['end']);
  assert.equal(run.code, 0, run.stderr);
  const stats = JSON.parse(/STATS (.*)/.exec(run.stdout)[1]);
  assert.equal(stats.exported, 63);
  assert.equal(stats.dropped, 0);
  assert.ok(!run.stderr.includes('polytel: exit:'), run.stderr);
  assert.ok(!run.stderr.includes('polytel: shutdown:'), run.stderr);
  const got = await rx.received();
  assert.equal(got.logs.length + got.spans.length, 63);
});

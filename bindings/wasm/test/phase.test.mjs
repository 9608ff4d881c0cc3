// phase.test.mjs — phase 1 at instantiation: TELEMETRY_ENABLED from options, then process.env; console.* by level.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';

import { createPolytel, parseRetryAfter } from '../src/index.js';
import { PKG, runNode } from './helpers.mjs';

const PHASE = join(PKG, 'test/fixtures/phase.mjs');

function result(run) {
  const line = run.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, `no RESULT line; code ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
  return JSON.parse(line.slice(7));
}

test('TELEMETRY_ENABLED unset: console, and phase 2 leaves it console', async () => {
  const run = await runNode(PHASE, {});
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(result(run), { phase1: 'console', phase2: 'console' });
  assert.match(run.stdout, /INFO .*phase one line/);
});

test('TELEMETRY_ENABLED=true: deferred with one notice line, then full', async () => {
  const run = await runNode(PHASE, { TELEMETRY_ENABLED: 'true' });
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(result(run), { phase1: 'deferred', phase2: 'full' });
  const all = run.stdout + run.stderr;
  assert.match(all, /defer/i);
});

test('TELEMETRY_ENABLED=false (and other spellings) stays console', async () => {
  for (const v of ['false', '0', 'OFF']) {
    const run = await runNode(PHASE, { TELEMETRY_ENABLED: v });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(result(run), { phase1: 'console', phase2: 'console' }, v);
  }
  const yes = await runNode(PHASE, { TELEMETRY_ENABLED: 'Yes' });
  assert.deepEqual(result(yes), { phase1: 'deferred', phase2: 'full' });
});

test('options win over process.env', async () => {
  const saved = process.env.TELEMETRY_ENABLED;
  process.env.TELEMETRY_ENABLED = 'true';
  try {
    const off = await createPolytel({ telemetryEnabled: false, console: false });
    assert.equal(off.phase(), 'console');
    const on = await createPolytel({ TELEMETRY_ENABLED: 'true', console: false });
    assert.equal(on.phase(), 'deferred');
    delete process.env.TELEMETRY_ENABLED;
    const fromEnvGone = await createPolytel({ console: false });
    assert.equal(fromEnvGone.phase(), 'console');
  } finally {
    if (saved === undefined) delete process.env.TELEMETRY_ENABLED;
    else process.env.TELEMETRY_ENABLED = saved;
  }
});

test('console output goes to console.debug/info/warn/error by level', async () => {
  const seen = [];
  const sink = {};
  for (const m of ['debug', 'info', 'warn', 'error', 'log']) sink[m] = (text) => seen.push([m, text]);
  const pt = await createPolytel({ useEnv: false, console: sink, consoleLevel: 'debug' });
  assert.equal(pt.phase(), 'console');
  pt.debug('dbg message');
  pt.info('info message', { user: 'ada', n: 3 });
  pt.warn('warn message');
  pt.error('error message');
  pt.trace('trace message (below the threshold)');
  const find = (s) => seen.filter(([, t]) => t.includes(s));
  assert.deepEqual(find('dbg message').map(([m]) => m), ['debug']);
  assert.deepEqual(find('info message').map(([m]) => m), ['info']);
  assert.deepEqual(find('warn message').map(([m]) => m), ['warn']);
  assert.deepEqual(find('error message').map(([m]) => m), ['error']);
  assert.equal(find('trace message').length, 0);
  assert.match(find('info message')[0][1], /user=ada/);
});

test('messages are never format strings, and lines cannot be forged', async () => {
  const seen = [];
  const sink = { debug() {}, info: (t) => seen.push(t), warn: (t) => seen.push(t), error: (t) => seen.push(t) };
  const pt = await createPolytel({ useEnv: false, console: sink });
  pt.info('100%s %d %n done\nFAKE line');
  assert.equal(seen.length, 1);
  assert.ok(seen[0].includes('100%s %d %n done'), seen[0]);
  assert.ok(!seen[0].includes('\n'), seen[0]);
});

test('spans return fn\'s value and pass throws/rejections through in phase 1', async () => {
  const pt = await createPolytel({ useEnv: false, console: false });
  assert.equal(pt.span('s', () => 42), 42);
  assert.equal(await pt.span('a', async () => 'v'), 'v');
  assert.throws(() => pt.span('t', () => { throw new TypeError('nope'); }), TypeError);
  await assert.rejects(pt.span('r', async () => { throw new RangeError('later'); }), RangeError);
  assert.throws(() => pt.span('x'), TypeError);
});

test('phase 2 with telemetryEnabled upgrades a console instance without a restart', async () => {
  const pt = await createPolytel({ useEnv: false, console: false });
  assert.equal(pt.phase(), 'console');
  const off = await pt.bootstrapWorker({ exporter: 'none' });
  assert.equal(off.phase, 'console', 'still off: phase 1 was complete');
  assert.equal(off.notExporting, 'TELEMETRY_ENABLED is not true: console only');
  const on = await pt.bootstrapWorker({ telemetryEnabled: true, exporter: 'none' });
  assert.equal(on.phase, 'full');
  assert.equal(on.endpoint, null);
  assert.equal(`${on}`, 'full', 'a status reads as its phase');
  pt.info('now recorded');
  assert.equal(await pt.flush(5000), true);
  const s = pt.stats();
  assert.equal(s.logsRecorded, 1);
  assert.equal(s.exported, 1);
  assert.equal(await pt.shutdown(2000), true);
  assert.equal(pt.phase(), 'none');
});

test('Retry-After: delay-seconds or an HTTP date, in milliseconds', () => {
  const now = Date.parse('Sun, 22 Nov 2026 05:00:00 GMT');
  assert.equal(parseRetryAfter('3', now), 3000);
  assert.equal(parseRetryAfter(' 0 ', now), 0);
  assert.equal(parseRetryAfter('Sun, 22 Nov 2026 05:00:07 GMT', now), 7000);
  assert.equal(parseRetryAfter('Sun, 22 Nov 2026 04:59:00 GMT', now), 0, 'a date in the past: now');
  assert.equal(parseRetryAfter(null, now), -1);
  assert.equal(parseRetryAfter('soon', now), -1);
  assert.equal(parseRetryAfter('-5', now), -1);
});

test('JSON console lines are routed by level too', async () => {
  const seen = [];
  const sink = {};
  for (const m of ['debug', 'info', 'warn', 'error']) sink[m] = (text) => seen.push([m, text]);
  const pt = await createPolytel({ useEnv: false, console: sink, consoleFormat: 'json' });
  pt.warn('json warn', { k: 'v' });
  pt.info('json info');
  const warn = seen.find(([, t]) => t.includes('json warn'));
  assert.equal(warn[0], 'warn');
  const rec = JSON.parse(warn[1]);
  assert.equal(rec.level, 'WARN');
  assert.equal(seen.find(([, t]) => t.includes('json info'))[0], 'info');
});

test('options go through the core: its checks, its messages, its resolved values', async () => {
  const pt = await createPolytel({ useEnv: false, console: false });
  await assert.rejects(pt.bootstrapWorker({ protocol: 'grpc' }), {
    name: 'RangeError',
    message: 'polytel: invalid protocol="grpc" (grpc is not supported, expected http/protobuf or http/json)',
  });
  await assert.rejects(pt.bootstrapWorker({ timeoutMs: 0 }), /invalid timeout_ms="0" \(expected an integer from 1/);
  assert.equal(pt.phase(), 'console', 'a refused option starts nothing');
  const st = await pt.bootstrapWorker({ telemetryEnabled: 'yes', exporter: 'none', bspScheduleDelayMs: 250,
    endpoint: 'localhost:4318' });
  assert.equal(st.config.bsp_schedule_delay_ms, 250, 'any core option, in camelCase');
  assert.equal(st.config.endpoint, 'http://localhost:4318', 'what the core corrected, not what was asked');
  assert.equal(st.config.exit_timeout_ms, 5000, "the core's POLYTEL_EXIT_TIMEOUT_MS default");
  assert.deepEqual(pt.resolvedConfig(), st.config);
  assert.equal(await pt.shutdown(1000), true);
});

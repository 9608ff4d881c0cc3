// node_workers.test.mjs — issue 15 in Node: cluster workers and worker_threads each bootstrap polytel in the
// worker; pt.httpHandler turns each request's traceparent into the parent of a `server` span.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { createPolytel } from '../src/index.js';
import { PKG, runNode, sleep, startReceiver } from './helpers.mjs';

let rx;
before(async () => {
  rx = await startReceiver();
});
after(async () => {
  await rx?.stop();
});

const env = () => ({ OTEL_EXPORTER_OTLP_ENDPOINT: rx.endpoint, TELEMETRY_ENABLED: 'true', POLYTEL_LOG_LEVEL: 'warn' });
const hex = (n) => Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join('');

function get(port, path, headers) {
  return new Promise((resolve, reject) => {
    // agent: false: one connection per request, so the cluster's round robin hands them to both workers.
    const req = http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
  });
}

describe('Node cluster', () => {
  test('2 workers, 10 requests carrying traceparent: 10 server spans in the callers\' traces, from both workers', { timeout: 120000 }, async () => {
    await rx.reset();
    const base = {};
    for (const [k, v] of Object.entries(process.env)) if (!/^(OTEL_|POLYTEL_|TELEMETRY_ENABLED$)/.test(k)) base[k] = v;
    const primary = spawn(process.execPath, [join(PKG, 'test/fixtures/cluster_server.mjs')], {
      env: { ...base, ...env(), WORKERS: '2' },
      cwd: PKG,
    });
    let out = '';
    let err = '';
    primary.stdout.on('data', (d) => (out += d));
    primary.stderr.on('data', (d) => (err += d));
    const exited = new Promise((r) => primary.once('exit', r));
    try {
      for (let i = 0; i < 600 && !/ready \d+/.test(out); i++) {
        if (primary.exitCode !== null) break;
        await sleep(100);
      }
      const m = /ready (\d+) ([\d,]+)/.exec(out);
      assert.ok(m, `the cluster did not start: ${out} ${err}`);
      const port = Number(m[1]);
      const workerPids = new Set(m[2].split(',').map(Number));
      assert.equal(workerPids.size, 2);

      const callers = [];
      for (let i = 0; i < 10; i++) {
        const c = { traceId: hex(32), spanId: hex(16), path: `/orders/${i}?page=2` };
        callers.push(c);
        const res = await get(port, c.path, { traceparent: `00-${c.traceId}-${c.spanId}-01`, 'user-agent': 'cluster-test' });
        assert.equal(res.status, 200);
      }
      primary.kill('SIGTERM'); // the primary disconnects its workers; each flushes at its beforeExit
      let guard;
      const code = await Promise.race([exited, new Promise((r) => (guard = setTimeout(() => r('hung'), 60000)))]);
      clearTimeout(guard);
      assert.equal(code, 0, `primary: ${out} ${err}`);
      assert.equal((out.match(/worker \d+ exited 0/g) || []).length, 2, out);

      const got = await rx.waitFor((g) => g.spans.length >= 10, 10000);
      const servers = got.spans.filter((s) => s.kind === 2);
      assert.equal(servers.length, 10, `cluster: server spans received (${got.spans.length} spans in all)`);
      for (const c of callers) {
        const s = servers.filter((x) => x.trace_id === c.traceId);
        assert.equal(s.length, 1, `one server span in trace ${c.traceId}`);
        assert.equal(s[0].parent_span_id, c.spanId, "the caller's span is the parent");
        const path = c.path.split('?')[0];
        assert.equal(s[0].name, `GET ${path}`);
        assert.equal(s[0].scope, 'polytel.http');
        assert.deepEqual(
          {
            method: s[0].attributes['http.request.method'],
            path: s[0].attributes['url.path'],
            query: s[0].attributes['url.query'],
            route: s[0].attributes['http.route'],
            status: s[0].attributes['http.response.status_code'],
            port: s[0].attributes['server.port'],
            ua: s[0].attributes['user_agent.original'],
            scheme: s[0].attributes['url.scheme'],
          },
          { method: 'GET', path, query: 'page=2', route: path, status: 200, port, ua: 'cluster-test', scheme: 'http' },
        );
        assert.equal(s[0].status_code, 0);
      }
      const pids = new Set(servers.map((s) => s.resource['process.pid']));
      assert.deepEqual([...pids].sort(), [...workerPids].sort(), 'spans from both workers, none from the primary');
      // Each log line once, in its request's trace.
      const logs = got.logs.filter((l) => l.body === 'handled');
      assert.equal(logs.length, 10, 'cluster: log lines received');
      assert.deepEqual(new Set(logs.map((l) => l.trace_id)), new Set(callers.map((c) => c.traceId)));
    } finally {
      if (primary.exitCode === null) primary.kill('SIGKILL');
    }
  });
});

describe('worker_threads', () => {
  test('a producer on the main thread, a consumer span in each of 2 threads (each its own polytel), one trace', { timeout: 120000 }, async () => {
    await rx.reset();
    const r = await runNode(join(PKG, 'test/fixtures/worker_threads.mjs'), { ...env(), THREADS: '2' });
    assert.equal(r.code, 0, r.stderr);
    const m = /done ([0-9a-f]{32}) ([0-9a-f]{16}) ([\d,]+)/.exec(r.stdout);
    assert.ok(m, r.stdout + r.stderr);
    assert.equal(m[3], '0,0', 'both threads exited normally');
    const got = await rx.waitFor((g) => g.spans.length >= 3 && g.logs.length >= 2, 10000);
    const producer = got.spans.filter((s) => s.kind === 4);
    const jobs = got.spans.filter((s) => s.kind === 5);
    assert.equal(producer.length, 1);
    assert.equal(jobs.length, 2, 'worker_threads: consumer spans received');
    assert.equal(producer[0].span_id, m[2]);
    for (const j of jobs) {
      assert.equal(j.trace_id, m[1]);
      assert.equal(j.parent_span_id, m[2]);
    }
    assert.deepEqual(jobs.map((j) => j.attributes.job).sort(), [0, 1]);
    assert.equal(new Set(jobs.map((j) => j.attributes['worker.thread_id'])).size, 2);
    const logs = got.logs.filter((l) => l.body === 'job ran');
    assert.equal(logs.length, 2);
    assert.ok(logs.every((l) => l.trace_id === m[1]));
  });
});

describe('pt.httpHandler', () => {
  test('a 5xx answer is an ERROR span; a malformed traceparent starts a new trace; spans inside follow the request', { timeout: 60000 }, async () => {
    await rx.reset();
    const pt = await createPolytel({ useEnv: false, telemetryEnabled: true, console: false, serviceName: 'http-helper' });
    await pt.bootstrapWorker({ endpoint: rx.endpoint });
    const server = http.createServer(pt.httpHandler(async (req, res) => {
      await sleep(2);
      await pt.span('db', () => sleep(1));
      res.statusCode = req.url === '/fail' ? 503 : 201;
      res.end();
    }));
    let got;
    const TID = `a${hex(31)}`; // a letter in it: its uppercase form differs (and is invalid)
    const parentId = `b${hex(15)}`;
    try {
      await new Promise((r) => server.listen(0, '127.0.0.1', r));
      const { port } = server.address();
      assert.equal((await get(port, '/fail', { traceparent: `00-${TID}-${parentId}-01` })).status, 503);
      assert.equal((await get(port, '/ok', { traceparent: `00-${TID.toUpperCase()}-${hex(16)}-01` })).status, 201);
      await new Promise((r) => server.close(r));
      assert.equal(await pt.flush(20000), true);
      got = await rx.received();
    } finally {
      server.close();
      await pt.shutdown(5000);
    }
    assert.deepEqual(got.errors, []);
    assert.equal(got.spans.length, 4, JSON.stringify(got.spans.map((s) => s.name)));
    const servers = got.spans.filter((s) => s.kind === 2);
    assert.equal(servers.length, 2);
    const fail = servers.find((s) => s.attributes['url.path'] === '/fail');
    const ok = servers.find((s) => s.attributes['url.path'] === '/ok');
    assert.equal(fail.status_code, 2);
    assert.equal(fail.attributes['error.type'], '503');
    assert.equal(fail.attributes['http.response.status_code'], 503);
    assert.equal(fail.trace_id, TID);
    assert.equal(fail.parent_span_id, parentId);
    assert.equal(ok.status_code, 0);
    assert.equal(ok.attributes['http.response.status_code'], 201);
    assert.equal(ok.attributes['error.type'], undefined);
    assert.notEqual(ok.trace_id, TID, 'an uppercase traceparent is invalid: a new trace');
    assert.equal(ok.parent_span_id, '');
    for (const s of [fail, ok]) {
      const db = got.spans.filter((x) => x.name === 'db' && x.trace_id === s.trace_id);
      assert.equal(db.length, 1);
      assert.equal(db[0].parent_span_id, s.span_id, "a span in the handler, after awaits, is the request span's child");
    }
  });
});

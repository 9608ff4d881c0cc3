// otel_bench.mjs — the same @opentelemetry/api-instrumented Node code on four back ends, side by side in one run
// (a table; never asserts a timing): the OpenTelemetry SDK (@opentelemetry/sdk-trace's TracerProvider with a
// BatchSpanProcessor and the OTLP/HTTP exporter, sdk-metrics with the OTLP/HTTP metric exporter, the
// AsyncLocalStorage context manager, as a Node set-up registers them), polytel (pt.registerOpenTelemetry()),
// both exporting to the same local receiver (tests/support/otlp_receiver.py), the API's no-op default (nothing
// registered), and a plain call of the callback (the floor). Each back end runs in its own process: the API keeps
// one global of each kind.
// In @opentelemetry 2.x/3.x, `@opentelemetry/sdk-trace` is what `@opentelemetry/sdk-trace-base` became (the
// last sdk-trace-base, 2.12, re-exports it and does not accept @opentelemetry/api 1.10, which the tests use).
// Env: BENCH_N (calls per round, default 100000), BENCH_REPEAT (best of, default 5), BENCH_PYTHON (the receiver's
// interpreter, default .venv/bin/python). Run: node bench/otel_bench.mjs (after the wasm build).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const N = Number(process.env.BENCH_N ?? 100000);
const REPEAT = Number(process.env.BENCH_REPEAT ?? 5);
const CHUNK = 10000;
const BACKENDS = ['sdk', 'polytel', 'noop', 'floor'];
const CASES = {
  span: "`tracer.startActiveSpan('x', (s) => s.end())`",
  counter: "`counter.add(1, { k: 'v' })`",
};

// ------------------------------------------------------------------ a child: one back end

// The process's CPU time (user + system, every thread: the garbage collector's helpers too), not the wall clock:
// on a machine shared with other work the time a back end spends preempted is not its cost.
const cpuNs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
};

/** CPU ns per call: best of REPEAT rounds, the cases interleaved; between chunks `between()` (not counted) exports. */
async function measure(cases, between) {
  const best = {};
  for (const fn of Object.values(cases)) for (let i = 0; i < CHUNK; i++) fn(); // warm-up (JIT)
  await between();
  for (let r = 0; r < REPEAT; r++) {
    for (const [name, fn] of Object.entries(cases)) {
      let total = 0;
      for (let done = 0; done < N; done += CHUNK) {
        const t0 = cpuNs();
        for (let i = 0; i < CHUNK; i++) fn();
        total += cpuNs() - t0;
        await between();
      }
      best[name] = Math.min(best[name] ?? Infinity, total / N);
    }
  }
  return best;
}

function loops(tracer, counter) {
  const attrs = { k: 'v' };
  const end = (s) => s.end();
  return {
    span: () => tracer.startActiveSpan('x', end),
    counter: () => counter.add(1, attrs),
  };
}

async function child(backend, endpoint) {
  const req = createRequire(join(ROOT, 'bindings/wasm/package.json'));
  const api = req('@opentelemetry/api');
  if (backend === 'sdk') {
    const { TracerProvider, BatchSpanProcessor } = req('@opentelemetry/sdk-trace');
    const { OTLPTraceExporter } = req('@opentelemetry/exporter-trace-otlp-http');
    const { MeterProvider, PeriodicExportingMetricReader } = req('@opentelemetry/sdk-metrics');
    const { OTLPMetricExporter } = req('@opentelemetry/exporter-metrics-otlp-http');
    const { AsyncLocalStorageContextManager } = req('@opentelemetry/context-async-hooks');
    const exporter = new OTLPTraceExporter({ url: `${endpoint}/v1/traces` });
    const sent = { ok: 0, failed: 0 };
    const exportFn = exporter.export.bind(exporter);
    exporter.export = (spans, done) =>
      exportFn(spans, (r) => {
        sent[r.code === 0 ? 'ok' : 'failed'] += spans.length;
        done(r);
      });
    // The queue holds a chunk: every span of a chunk is exported (the default 2048 would drop most of them,
    // which is cheaper than exporting and not what the rows compare).
    const bsp = new BatchSpanProcessor({ exporter, maxQueueSize: CHUNK });
    const tp = new TracerProvider({ spanProcessors: [bsp] });
    const mp = new MeterProvider({
      readers: [new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter({ url: `${endpoint}/v1/metrics` }), exportIntervalMillis: 60000 })],
    });
    api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    api.trace.setGlobalTracerProvider(tp);
    api.metrics.setGlobalMeterProvider(mp);
    const res = await measure(loops(api.trace.getTracer('bench'), api.metrics.getMeter('bench').createCounter('bench.count')), () => tp.forceFlush());
    await mp.forceFlush();
    await tp.shutdown();
    await mp.shutdown();
    res._accounting = `SDK spans exported ${sent.ok}, failed ${sent.failed}`;
    res._exported = sent.ok;
    return res;
  }
  if (backend === 'polytel') {
    const { createPolytel } = await import('../bindings/wasm/src/index.js');
    const pt = await createPolytel({ useEnv: false, telemetryEnabled: true, console: false, serviceName: 'otel-bench-node' });
    await pt.bootstrapWorker({ endpoint });
    pt.registerOpenTelemetry({ api });
    const res = await measure(loops(api.trace.getTracer('bench'), api.metrics.getMeter('bench').createCounter('bench.count')), () => pt.flush(10000));
    await pt.shutdown(10000);
    const st = pt.stats();
    res._accounting = `polytel recorded ${st.recorded}, exported ${st.exported}, dropped ${st.dropped}`;
    res._exported = st.dropped === 0 && st.recorded === st.exported ? st.exported : -1;
    return res;
  }
  const tick = () => new Promise((r) => setImmediate(r));
  if (backend === 'noop') {
    // Nothing registered: what api.trace.getTracer() gives every instrumented library by default.
    return measure(loops(api.trace.getTracer('bench'), api.metrics.getMeter('bench').createCounter('bench.count')), tick);
  }
  // The floor: the callback called with a span that does nothing, and an empty add.
  const span = { end() {} };
  const tracer = { startActiveSpan: (_name, fn) => fn(span) };
  return measure(loops(tracer, { add() {} }), tick);
}

// ------------------------------------------------------------------ the parent: the receiver, the table

async function startReceiver() {
  const dir = mkdtempSync(join(tmpdir(), 'otel-bench-'));
  const portFile = join(dir, 'port');
  const py = process.env.BENCH_PYTHON ?? join(ROOT, '.venv/bin/python');
  const proc = spawn(py, [join(ROOT, 'tests/support/otlp_receiver.py'), '--port-file', portFile], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < 600 && !existsSync(portFile); i++) await new Promise((r) => setTimeout(r, 50)); // hang guard: 30 s
  if (!existsSync(portFile)) {
    proc.kill();
    throw new Error('otel_bench: the receiver did not start');
  }
  const port = Number(readFileSync(portFile, 'utf8').trim());
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise((r) => {
        proc.once('exit', r);
        proc.kill('SIGTERM');
      }).finally(() => rmSync(dir, { recursive: true, force: true })),
  };
}

const fmt = (v) => (v === undefined ? '—' : `${v.toFixed(0)} ns`);

async function main() {
  if (process.argv[2] === '--child') {
    const res = await child(process.argv[3], process.env.BENCH_ENDPOINT);
    process.stdout.write(`${JSON.stringify(res)}\n`);
    return;
  }
  const rx = await startReceiver();
  const results = {};
  try {
    for (const b of BACKENDS) {
      const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', b], {
        env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_') && !k.startsWith('POLYTEL_'))), BENCH_ENDPOINT: rx.endpoint },
        encoding: 'utf8',
        timeout: 1800000,
        maxBuffer: 1 << 24,
      });
      if (r.status !== 0) {
        process.stderr.write(r.stderr ?? '');
        throw new Error(`otel_bench: the ${b} run failed (${r.status ?? r.signal})`);
      }
      results[b] = JSON.parse(r.stdout.trim().split('\n').pop());
    }
  } finally {
    await rx.stop();
  }
  console.log('### The OpenTelemetry API on polytel, Node (issue 16)\n');
  console.log(
    `CPU time per call (the process's, every thread), best of ${REPEAT} rounds of ${N} (chunks of ${CHUNK}; each back end exports between chunks, not counted), ` +
      `each back end in its own process, one run, node ${process.versions.node}. SDK: @opentelemetry/sdk-trace TracerProvider + ` +
      `BatchSpanProcessor (maxQueueSize ${CHUNK}) + OTLP/HTTP exporter, sdk-metrics + OTLP/HTTP, the AsyncLocalStorage context manager; ` +
      'polytel: `pt.registerOpenTelemetry()`; both export to the same local receiver. no-op: the API with nothing registered; ' +
      'floor: the callback called directly.\n',
  );
  console.log('| code | OTel SDK | polytel | API no-op | floor | polytel vs SDK | polytel / no-op |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const [c, title] of Object.entries(CASES)) {
    const v = Object.fromEntries(BACKENDS.map((b) => [b, results[b][c]]));
    const vsSdk = v.sdk && v.polytel ? `${(v.sdk / v.polytel).toFixed(1)}x cheaper` : '—';
    const vsNoop = v.noop && v.polytel ? `${(v.polytel / v.noop).toFixed(2)}x` : '—';
    console.log(`| ${title} | ${BACKENDS.map((b) => fmt(v[b])).join(' | ')} | ${vsSdk} | ${vsNoop} |`);
  }
  console.log(
    `\nTargets (issue 16): polytel's span >= 10x cheaper than the SDK's, and no costlier than the no-op ` +
      `(polytel / no-op <= 1.0). ${results.sdk._accounting}; ${results.polytel._accounting}.`,
  );
  // Every span of the warm-up and of every round reached the receiver, on both sides (a dropped span is cheaper).
  const spans = CHUNK + REPEAT * N;
  const every = (b) => (results[b]._exported === spans ? 'yes' : `NO (${results[b]._exported} of ${spans})`);
  console.log(`Every span exported (${spans} each): SDK ${every('sdk')}, polytel ${every('polytel')}.`);
}

await main();

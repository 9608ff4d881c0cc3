// worker.mjs — runs tests/smoke/scenario.json step by step with the wasm binding under Node (bindings/wasm, built).
//
// Usage: node worker.mjs [SCENARIO]  (default: ../scenario.json). Configuration comes from the environment
// (TELEMETRY_ENABLED, OTEL_*, POLYTEL_*). With SMOKE_REPORT=FILE it appends JSON lines saying what it
// observed (phase after load/bootstrap). JavaScript has no fork: the fork step is skipped (and noted).
// "exit" stops running steps and lets the event loop drain: the binding's beforeExit hook flushes.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = process.env.POLYTEL_WASM_DIR || resolve(here, '../../../bindings/wasm');

// The package's own entry point, as its package.json exports it.
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
const exp = pkg.exports?.['.'];
const entry = (typeof exp === 'string' ? exp : exp?.import ?? exp?.default) ?? pkg.main;
const { createPolytel } = await import(pathToFileURL(join(pkgDir, entry)).href);

class Exit extends Error {}

class Worker {
  constructor(scenario) {
    this.target = scenario.target;
    this.spans = []; // the open spans, innermost last
    this.pt = null;
    this.log = null;
  }

  note(obj) {
    const path = process.env.SMOKE_REPORT;
    if (path) appendFileSync(path, JSON.stringify({ pid: process.pid, ...obj }) + '\n');
  }

  async run(steps) {
    for (const step of steps) {
      const op = this[`op_${step.op}`];
      if (!op) throw new Error(`unknown op ${step.op}`);
      await op.call(this, step);
    }
  }

  async op_load() {
    this.pt = await createPolytel(); // phase 1
    this.log = this.pt.logger(this.target);
    this.note({ event: 'load', phase: this.pt.phase() });
  }

  op_log(step) {
    this.log[step.level](step.body, step.attributes ?? {});
  }

  async op_bootstrap() {
    const st = await this.pt.bootstrapWorker();
    this.note({ event: 'bootstrap', phase: this.pt.phase(), status: st.status, config: st.config });
  }

  async op_span(step) {
    await this.pt.span(
      step.name,
      async (span) => {
        this.spans.push(span);
        try {
          await this.run(step.steps);
        } finally {
          this.spans.pop();
        }
      },
      step.attributes ?? {},
    );
  }

  op_set_attribute(step) {
    this.spans[this.spans.length - 1].setAttribute(step.key, step.value);
  }

  op_counter_add(step) {
    this.pt.counterAdd(step.name, step.value, step.attributes ?? {}, step.unit ?? '');
  }

  op_fork(step) {
    if (step.where !== 'available') throw new Error('this worker cannot fork; the scenario must allow skipping it');
    this.note({ event: 'fork-skipped' });
  }

  op_exit(step) {
    process.exitCode = step.code ?? 0;
    throw new Exit();
  }
}

const path = process.argv[2] || join(here, '..', 'scenario.json');
if (!existsSync(join(pkgDir, 'dist', 'polytel_wasm.mjs'))) {
  console.error(`worker.mjs: ${pkgDir}/dist/polytel_wasm.mjs is missing: run \`make wasm-build\``);
  process.exit(2);
}
const scenario = JSON.parse(readFileSync(path, 'utf8'));
try {
  await new Worker(scenario).run(scenario.steps);
} catch (e) {
  if (!(e instanceof Exit)) throw e;
}

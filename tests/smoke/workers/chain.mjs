// chain.mjs — the wasm hop of tests/smoke/test_chain.py, under Node: the last consumer of the job chain.
//
// Usage: node chain.mjs QUEUE_IN. For each job: a 'consumer' span "consume job" (parent: pt.extract(headers),
// Ruby's producer span) with the baggage it received as the attribute chain.tenant. With CHAIN_BATCH=1, then
// a 'consumer' span "batch" linking the first two jobs' upstream spans (a batch consumer links the jobs it
// took). Appends {"lang": "wasm", "stats", "baggage"} to CHAIN_REPORT; the binding's exit hook flushes.
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const pkgDir = process.env.POLYTEL_WASM_DIR;
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
const exp = pkg.exports?.['.'];
const entry = (typeof exp === 'string' ? exp : exp?.import ?? exp?.default) ?? pkg.main;
const { createPolytel } = await import(pathToFileURL(join(pkgDir, entry)).href);

const pt = await createPolytel();
await pt.bootstrapWorker();
const jobs = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const seen = {};
const upstream = [];
for (const job of jobs) {
  const parent = pt.extract(job.headers);
  upstream.push(parent);
  pt.span('consume job', (span) => {
    seen[job.job] = pt.baggage().tenant ?? null;
    span.setAttribute('chain.tenant', seen[job.job] ?? '');
  }, { 'chain.job': job.job }, { parent, kind: 'consumer' });
}
if (process.env.CHAIN_BATCH === '1') {
  pt.span('batch', () => {}, { 'chain.jobs': 2 }, { parent: null, kind: 'consumer', links: upstream.slice(0, 2) });
}
appendFileSync(process.env.CHAIN_REPORT, JSON.stringify({ lang: 'wasm', stats: pt.stats(), baggage: seen }) + '\n');

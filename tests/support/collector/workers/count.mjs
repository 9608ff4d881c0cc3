// count.mjs — the counting workload of tests/support/programs/worker_c.c (one thread) with the wasm binding under Node:
// per event a span "outer" { span "inner" { log "event <i> from thread 0" } } and counter worker.events += 1; then
// shutdown and one JSON line with the stats (snake_case keys, as in C). Usage: node count.mjs EVENTS SHUTDOWN_MS.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const pkgDir = process.env.POLYTEL_WASM_DIR;
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
const exp = pkg.exports?.['.'];
const entry = (typeof exp === 'string' ? exp : exp?.import ?? exp?.default) ?? pkg.main;
const { createPolytel } = await import(pathToFileURL(join(pkgDir, entry)).href);

const events = Number(process.argv[2]);
const shutdownMs = Number(process.argv[3]);
const pt = await createPolytel();
await pt.bootstrapWorker();
const log = pt.logger('worker');
for (let i = 0; i < events; i++) {
  pt.span('outer', () => pt.span('inner', () => log.info(`event ${i} from thread 0`)));
  pt.counterAdd('worker.events', 1, {}, '1');
}
const ok = await pt.shutdown(shutdownMs);
const snake = (k) => k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
const stats = Object.fromEntries(Object.entries(pt.stats()).map(([k, v]) => [snake(k), Number(v)]));
console.log(JSON.stringify({ shutdown_rc: ok ? 0 : 1, emitted: [events], ...stats }));

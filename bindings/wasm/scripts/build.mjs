// build.mjs — compiles the polytel core (core/sources.txt, no libuv) + src/shim.c with emcc into dist/polytel_wasm[.debug].mjs.
//   node scripts/build.mjs [--release|--debug]
// Incremental: an object is rebuilt only when its source or any header is newer.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, join, resolve, basename } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, '..');
const root = resolve(pkg, '../..');
const debug = process.argv.includes('--debug');
const mode = debug ? 'debug' : 'release';
const dist = join(pkg, 'dist');
const objDir = join(dist, `obj-${mode}`);
mkdirSync(objDir, { recursive: true });

// emscripten 3.1.6 (Debian) needs its JS dependencies (acorn) from the system node path.
const env = { ...process.env, NODE_PATH: '/usr/share/nodejs' + (process.env.NODE_PATH ? ':' + process.env.NODE_PATH : '') };
delete env.EM_CACHE; // the system-library cache is prebuilt and frozen

function run(cmd, args) {
  const r = spawnSync(cmd, args, { env, stdio: 'inherit' });
  if (r.error) {
    console.error(`build: cannot run ${cmd}: ${r.error.message} (install the 'emscripten' package: scripts/deps.sh)`);
    process.exit(1);
  }
  if (r.status !== 0) {
    console.error(`build: ${cmd} failed (exit ${r.status})`);
    process.exit(r.status ?? 1);
  }
}

// --- the version: POLYTEL_VERSION_STRING of the checked-in polytel/version.h (CMake renders it from project(VERSION))
const core = join(root, 'core');
const versionH = join(core, 'include/polytel/version.h');
const vm = /#define POLYTEL_VERSION_STRING "([^"]+)"/.exec(readFileSync(versionH, 'utf8'));
if (!vm) {
  console.error(`build: no POLYTEL_VERSION_STRING in ${versionH}`);
  process.exit(1);
}
const version = vm[1];

// --- sources: core/sources.txt, the one list, without its `uv` lines (no libuv here) and `native` lines
// (src/shim.c defines what they would); plus the shim
const sources = [];
for (const line of readFileSync(join(core, 'sources.txt'), 'utf8').split('\n')) {
  const [path, ...where] = line.replace(/#.*/, '').trim().split(/\s+/);
  if (path && !where.includes('uv') && !where.includes('native')) sources.push(join(core, path));
}
sources.push(join(pkg, 'src/shim.c'));

const coreSrc = join(core, 'src');
const headers = [
  ...readdirSync(core, { recursive: true }).filter((f) => f.endsWith('.h')).map((f) => join(core, f)),
];
const newestHeader = Math.max(...headers.map((h) => statSync(h).mtimeMs));

const cflags = [
  '-std=gnu11',
  '-Wall', '-Wextra', '-Wshadow', '-Wpedantic',
  '-D_GNU_SOURCE',
  '-I', join(core, 'include'),
  '-I', coreSrc,
  ...(debug ? ['-O0', '-g'] : ['-O2']),
];

const objects = [];
for (const src of sources) {
  // Objects by base name: core file names are unique across its folders (core/sources.txt).
  const obj = join(objDir, basename(src).replace(/\.c$/, '.o'));
  objects.push(obj);
  const fresh = existsSync(obj) && statSync(obj).mtimeMs >= Math.max(statSync(src).mtimeMs, newestHeader);
  if (fresh) continue;
  console.log(`emcc ${basename(src)}`);
  // The shim is ours and must stay warning-free; the core's warnings under clang/wasm are reported, not fatal.
  const werror = src.startsWith(join(pkg, 'src')) ? ['-Werror'] : [];
  run('emcc', [...cflags, ...werror, '-c', src, '-o', obj]);
}

// --- link
const exported = [
  '_malloc', '_free',
  '_polytel_phase', '_polytel_phase_name', '_polytel_flush', '_polytel_shutdown', '_polytel_level_enabled',
  '_polytel_log_attrs', '_polytel_span_start', '_polytel_span_finish', '_polytel_gauge_set',
  '_polytel_histogram_record', '_polytel_stats', '_polytel_version', '_polytel_strerror', '_polytel_err_name',
  // the span model and trace context (issue 14): index.js never re-implements them
  '_polytel_traceparent_parse', '_polytel_traceparent_format', '_polytel_propagators', '_polytel_span_kind_from_name',
  '_polytel_span_exception_event',
  '_polytel_histogram_set_bounds', // the OpenTelemetry API's bucket advice (otel.js)
];
const outName = debug ? 'polytel_wasm.debug.mjs' : 'polytel_wasm.mjs';
const raw = join(objDir, outName);
const ldflags = [
  '-sMODULARIZE=1',
  '-sEXPORT_ES6=1',
  '-sEXPORT_NAME=createPolytelModule',
  // The wasm bytes inside the .mjs: one file that loads the same way in Node 20 and in a page.
  '-sSINGLE_FILE=1',
  '-sENVIRONMENT=web,node',
  '-sALLOW_MEMORY_GROWTH=1',
  '-sFILESYSTEM=0',
  // A library must not install process-wide handlers in its host.
  '-sNODEJS_CATCH_EXIT=0',
  '-sNODEJS_CATCH_REJECTION=0',
  `-sEXPORTED_FUNCTIONS=${JSON.stringify(exported)}`,
  ...(debug ? ['-sASSERTIONS=2', '-g', '-O0'] : ['-O2']),
];
const outPath = join(dist, outName);
const upToDate =
  existsSync(outPath) &&
  statSync(outPath).mtimeMs >= Math.max(statSync(fileURLToPath(import.meta.url)).mtimeMs, ...objects.map((o) => statSync(o).mtimeMs));
const tablesPath = join(dist, 'polytel_tables.mjs');
if (upToDate && existsSync(tablesPath) && statSync(tablesPath).mtimeMs >= statSync(outPath).mtimeMs) {
  console.log(`dist/${outName} is up to date (polytel ${version}, ${mode})`);
  process.exit(0);
}
if (!upToDate) console.log(`emcc -> dist/${outName}`);
if (!upToDate) run('emcc', [...objects, ...ldflags, '-o', raw]);

// EXPORT_ES6 output of emscripten 3.1.6 expects CommonJS's __dirname and require under Node, which ES
// modules do not have. With SINGLE_FILE __dirname only builds a path that is never read; require is
// what the debug build's environment assertion checks for.
const prologue = [
  `// polytel ${version} (${mode}) — generated by bindings/wasm/scripts/build.mjs; do not edit.`,
  `var __dirname = '';`,
  `var require = typeof process == 'object' && process !== null && process.versions && process.versions.node`,
  `  ? (await import('node:module')).createRequire(import.meta.url) : undefined;`,
  '',
].join('\n');
if (!upToDate) {
  const tmp = join(dist, outName + '.tmp');
  writeFileSync(tmp, prologue + readFileSync(raw, 'utf8'));
  renameSync(tmp, outPath);
}

// index.js's constants, read back from the module just built: the core's tables (levels, phases, stats
// fields, error codes, options), never a copy kept by hand in JavaScript.
{
  const { default: factory } = await import(`${pathToFileURL(outPath).href}?t=${Date.now()}`);
  const M = await factory({ ptwConsole() {}, ptwTransport() {}, print() {}, printErr() {} });
  const str = (p) => {
    if (!p) return null;
    let e = p;
    while (M.HEAPU8[e]) e++;
    return new TextDecoder().decode(M.HEAPU8.subarray(p, e));
  };
  const levels = {};
  for (let i = 0; M._ptw_level(i, 0); i++) levels[str(M._ptw_level(i, 0))] = Number(str(M._ptw_level(i, 1)));
  const phases = [];
  for (let i = 0; i < 4; i++) phases.push(str(M._polytel_phase_name(i)));
  const stats = [];
  for (let i = 0; M._ptw_stats_field(i); i++) stats.push(str(M._ptw_stats_field(i)));
  const errors = {};
  for (let i = 0, c; (c = M._ptw_err_code(i)) !== 0; i++) errors[str(M._polytel_err_name(c)).replace(/^POLYTEL_/, '')] = c;
  const options = {};
  for (let i = 0; M._ptw_option(i, 0); i++)
    options[str(M._ptw_option(i, 0))] = { env: str(M._ptw_option(i, 1)), type: Number(str(M._ptw_option(i, 2))), default: str(M._ptw_option(i, 3)) };
  const out = [
    `// polytel ${version} — the core's tables, generated by bindings/wasm/scripts/build.mjs from the module; do not edit.`,
    `export const LEVELS = Object.freeze(${JSON.stringify(levels)});`,
    `export const PHASES = Object.freeze(${JSON.stringify(phases)});`,
    `export const STATS_FIELDS = Object.freeze(${JSON.stringify(stats)});`,
    `export const ERRORS = Object.freeze(${JSON.stringify(errors)});`,
    `export const OPTIONS = Object.freeze(${JSON.stringify(options)});`,
    '',
  ].join('\n');
  if (!existsSync(tablesPath) || readFileSync(tablesPath, 'utf8') !== out || !upToDate) writeFileSync(tablesPath, out);
  // Their types, for src/index.d.ts.
  const camel = (k) => k.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
  const union = (xs) => xs.map((x) => JSON.stringify(x)).join(' | ');
  const dts = [
    `// polytel ${version} — the types of the core's tables, generated by bindings/wasm/scripts/build.mjs; do not edit.`,
    `export type LevelName = ${union(Object.keys(levels))};`,
    `export type Phase = ${union(phases)};`,
    '/** polytel_stats_t (POLYTEL_STATS_FIELDS), camelCase: recorded = exported + dropped + unconfirmed + pending. */',
    `export interface Stats {\n${stats.map((f) => `  ${camel(f)}: number;`).join('\n')}\n}`,
    `export declare const LEVELS: Readonly<Record<LevelName, number>>;`,
    `export declare const PHASES: readonly Phase[];`,
    `export declare const STATS_FIELDS: readonly string[];`,
    `export declare const ERRORS: Readonly<Record<string, number>>;`,
    `export declare const OPTIONS: Readonly<Record<string, { env: string | null; type: number; default: string | null }>>;`,
    '',
  ].join('\n');
  const dtsPath = join(dist, 'polytel_tables.d.ts');
  if (!existsSync(dtsPath) || readFileSync(dtsPath, 'utf8') !== dts) writeFileSync(dtsPath, dts);
}
writeFileSync(join(dist, 'version.json'), JSON.stringify({ version }) + '\n');
console.log(`built dist/${outName} (polytel ${version}, ${mode})`);

"""The npm tarball: installed into an empty project with no emscripten (nor any compiler) on PATH, imported by
name in Node and through a bundler-free ES module import (an import map) in a real headless Chromium."""
import json
import tarfile
import urllib.parse

import pytest
from conftest import DIST, REPO, VERSION, WORK, assert_arrived, result_line, run, user_env

TGZ = DIST / ("polytel-wasm-%s.tgz" % VERSION)

NODE_WORKER = """
import { createPolytel } from '@polytel/wasm';
const results = {};
for (const debug of [false, true]) {
  const pt = await createPolytel({ debug, serviceName: debug ? 'dist-npm-debug' : 'dist-npm' });
  const phase1 = pt.phase();
  pt.span('dist.npm.job', () => pt.info('hello from the npm package', { debug }));
  const st = await pt.bootstrapWorker();
  const phase2 = st.phase + '/' + st.status + '/' + st.service;
  const shutdown = await pt.shutdown(10000);
  results[debug ? 'debug' : 'release'] = { version: pt.version, phase1, phase2, shutdown };
}
console.log('RESULT ' + JSON.stringify(results));
"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="importmap">{"imports": {"@polytel/wasm": "/node_modules/@polytel/wasm/src/index.js"}}</script>
<script>
  const q = new URLSearchParams(location.search);
  globalThis.TELEMETRY_ENABLED = 'true';
  globalThis.OTEL_EXPORTER_OTLP_ENDPOINT = q.get('endpoint');
</script>
<script type="module">
  import { createPolytel } from '@polytel/wasm';
  const r = {};
  try {
    const pt = await createPolytel({ serviceName: 'dist-npm-browser' });
    r.version = pt.version;
    r.phase1 = pt.phase();
    pt.span('dist.browser.job', () => pt.info('hello from the page'));
    const st = await pt.bootstrapWorker();
    r.phase2 = st.phase + '/' + st.status + '/' + st.service;
    r.shutdown = await pt.shutdown(10000);
  } catch (e) { r.error = String(e && e.stack || e); }
  globalThis.__result = r;
</script></head><body></body></html>
"""


@pytest.fixture(scope="module")
def project(toolless_bin):
    """An empty npm project with the tarball installed (no registry: it has no dependencies)."""
    d = WORK / "test-npm-project"
    run(["rm", "-rf", d])
    d.mkdir(parents=True)
    (d / "package.json").write_text(json.dumps({"name": "dist-test", "private": True, "type": "module"}))
    env = user_env([toolless_bin], npm_config_cache=str(WORK / "npm-cache"))
    run(["npm", "install", "--no-audit", "--no-fund", "--offline", TGZ], cwd=d, env=env, timeout=300)
    return d


def test_tarball_has_both_modules_types_and_readme():
    with tarfile.open(TGZ) as tf:
        names = set(tf.getnames())
        pkg = json.load(tf.extractfile("package/package.json"))
    for f in ("dist/polytel_wasm.mjs", "dist/polytel_wasm.debug.mjs", "src/index.js", "src/index.d.ts", "README.md",
              "package.json"):
        assert "package/" + f in names, f
    assert pkg["version"] == VERSION
    assert not [n for n in names if n.endswith((".c", ".o")) or "/test/" in n], names


def test_node_imports_the_installed_package_and_exports(project, toolless_bin, receiver):
    (project / "worker.mjs").write_text(NODE_WORKER)
    env = user_env([toolless_bin], TELEMETRY_ENABLED="true", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)
    w = run(["node", "worker.mjs"], cwd=project, env=env, timeout=120)
    r = result_line(w.stdout)
    for mode in ("release", "debug"):
        svc = "dist-npm-debug" if mode == "debug" else "dist-npm"
        assert r[mode] == {"version": VERSION, "phase1": "deferred", "phase2": "full/started/" + svc, "shutdown": True}, r
    assert_arrived(receiver, "dist-npm", ["dist.npm.job"], ["hello from the npm package"], "nodejs")
    assert_arrived(receiver, "dist-npm-debug", ["dist.npm.job"], ["hello from the npm package"], "nodejs")


def test_browser_imports_it_without_a_bundler(project, toolless_bin, receiver_factory):
    rx = receiver_factory(cors=True)
    (project / "page.html").write_text(PAGE)
    q = urllib.parse.urlencode({"endpoint": rx.endpoint})
    w = run(["node", REPO / "tests" / "dist" / "npm_browser.mjs", project, q], env=user_env([toolless_bin]),
            cwd=project, timeout=180)
    r = result_line(w.stdout)
    assert r == {"version": VERSION, "phase1": "deferred", "phase2": "full/started/dist-npm-browser", "shutdown": True, "errors": []}, r
    assert_arrived(rx, "dist-npm-browser", ["dist.browser.job"], ["hello from the page"], "webjs")

"""test_collector.py — each language's worker against the real OpenTelemetry Collector (tests/support/collector: otelcol
v0.165.0 with its OTLP/HTTP receiver) in http/protobuf, http/json and gzip: the smoke scenario arrives as recorded
(names, attributes, span tree, severities, counter values, the fork child), the counting workload arrives exactly
once and the stats agree (exported <= received <= exported + unconfirmed, recorded = exported + dropped +
unconfirmed + pending); and the browser page exports cross-origin to it, with and without `cors` configured.

One collector serves the module (runs are told apart by mark()/received(since=)); the CORS tests start their own.
Where the runtimes are: as in test_smoke.py (POLYTEL_BUILD_DIR, POLYTEL_PY, POLYTEL_RUBY_GEM_HOME, POLYTEL_WASM_DIR);
the collector binary: POLYTEL_OTELCOL (default $BUILD/otelcol-polytel, `make collector`).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

from otelcol_fixtures import collector, collector_factory  # noqa: E402,F401
from test_smoke import (  # noqa: E402
    BUILD, LANGS, RUN_TIMEOUT_S, SCENARIO_PATH, WASM_DIR, check_exit, check_report, check_telemetry, clean_env,
    worker_command,
)
from worker_harness import check_spans, counter_total, expected_log_bodies  # noqa: E402

WIRES = {
    "protobuf": {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_COMPRESSION": "none"},
    "json": {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_COMPRESSION": "none"},
    "protobuf+gzip": {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"},
    "json+gzip": {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"},
}
# Short batching delays keep the runs short; the shutdown bound is generous so that a loaded machine still
# delivers everything (these tests need nothing dropped: the pool default, 16 MiB, holds the whole workload).
FAST = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BLRP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "500"}
SHUTDOWN_MS = 30000
COUNT_THREADS, COUNT_EVENTS = 4, 100  # C: 4 threads x 100 events; the bindings: 1 x 200
BINDING_EVENTS = 200
COUNT_WORKERS = os.path.join(ROOT, "tests", "support", "collector", "workers")
BROWSER_DRIVER = os.path.join(ROOT, "tests", "support", "collector", "browser.mjs")
POLYTEL_LINE = re.compile(r"^\S+ (WARN|ERROR|FATAL) polytel: (.*)$", re.M)


def problems_in_console(r: dict) -> list[str]:
    """polytel's own warnings and errors: none expected when the collector accepts everything."""
    return [m.group(0) for stream in ("stdout", "stderr") for m in POLYTEL_LINE.finditer(r[stream])]


def run_scenario(lang: str, wire: str, col) -> dict:
    argv, extra = worker_command(lang)
    mark = col.mark()
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.jsonl")
        env = clean_env()
        env.update(extra)
        env.update(WIRES[wire])
        env.update(TELEMETRY_ENABLED="true", OTEL_SERVICE_NAME=f"smoke-{lang}", OTEL_EXPORTER_OTLP_ENDPOINT=col.endpoint,
                   SMOKE_REPORT=report)
        proc = subprocess.Popen(argv + [SCENARIO_PATH], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=tmp)
        try:
            out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"[{lang}, {wire}] the worker hung for {RUN_TIMEOUT_S}s\nstdout:\n{out}\nstderr:\n{err}")
        lines = open(report).read().splitlines() if os.path.exists(report) else []
    # The exit hooks return once delivery is done, and the Collector wrote each batch before answering it.
    got = col.received(since=mark)
    return {"lang": lang, "mode": "enabled", "pid": proc.pid, "returncode": proc.returncode, "stdout": out,
            "stderr": err, "got": got, "received": got, "file_error": None,
            "report": [json.loads(ln) for ln in lines], "target": col.endpoint}


@pytest.mark.parametrize("wire", list(WIRES))
@pytest.mark.parametrize("lang", LANGS)
def test_scenario_through_the_collector(collector, lang, wire):
    """What the Collector received is what the scenario recorded, in every language and wire format."""
    r = run_scenario(lang, wire, collector)
    where = f"[{lang}, {wire}, real Collector]"
    check_exit(r, where)
    child_pid = check_report(r, where)
    check_telemetry(r, where, child_pid, {})
    assert not problems_in_console(r), f"{where} polytel warned:\n" + "\n".join(problems_in_console(r))
    assert {q["signal"] for q in r["got"]["requests"]} == {"traces", "logs", "metrics"}, r["got"]["requests"]


# ------------------------------------------------------------------ counting


def count_command(lang: str) -> tuple[list[str], dict, int, int]:
    """argv, extra env, threads, events per thread for the counting workload (worker_c's shape)."""
    if lang == "c":
        exe = os.path.join(BUILD, "tests", "worker_c")
        assert os.access(exe, os.X_OK), f"{exe} is not built: run `make build`"
        return ([exe, "--threads", COUNT_THREADS, "--events", COUNT_EVENTS, "--shutdown-ms", SHUTDOWN_MS], {},
                COUNT_THREADS, COUNT_EVENTS)
    base, extra = worker_command(lang)  # fails naming the make target when the binding is not built
    script = {"python": "count.py", "ruby": "count.rb", "wasm": "count.mjs"}[lang]
    return [base[0], os.path.join(COUNT_WORKERS, script), BINDING_EVENTS, SHUTDOWN_MS], extra, 1, BINDING_EVENTS


def check_counted(got: dict, out: dict, threads: int, events: int, where: str) -> None:
    """The bounds and the identity first (they hold even on a machine that drops), then exactness (these runs
    are sized so that nothing is dropped)."""
    per = out["emitted"]
    assert len(per) == threads and all(n >= events for n in per), f"{where} {out}"
    spans, logs = got["spans"], got["logs"]
    span_ids = Counter(s["span_id"] for s in spans)
    bodies = Counter(lg["body"] for lg in logs)
    want = expected_log_bodies(threads, per)
    unknown = bodies - want
    assert not unknown, f"{where} logs that were never recorded, or arrived twice: {sorted(unknown)[:5]}"
    assert all(n == 1 for n in span_ids.values()), f"{where} a span arrived twice"
    received = len(span_ids) + sum(bodies.values())
    s = out
    assert s["exported"] <= received <= s["exported"] + s["unconfirmed"], \
        f"{where} received {received} outside [exported, exported + unconfirmed]: {s}"
    assert s["recorded"] == s["exported"] + s["dropped"] + s["unconfirmed"] + s["pending"], f"{where} {s}"
    n = 3 * sum(per)
    assert (s["shutdown_rc"], s["recorded"], s["exported"], s["dropped"], s["unconfirmed"], s["pending"]) == \
        (0, n, n, 0, 0, 0), f"{where} {s}"
    assert received == n and bodies == want, f"{where} received {received} of {n}"
    check_spans(spans)
    assert counter_total(got["metrics"]) == sum(per), f"{where} counter worker.events"


@pytest.mark.parametrize("wire", list(WIRES))
@pytest.mark.parametrize("lang", LANGS)
def test_counts_through_the_collector(collector, lang, wire):
    argv, extra, threads, events = count_command(lang)
    env = clean_env()
    env.update(extra)
    env.update(FAST)
    env.update(WIRES[wire])
    env.update(TELEMETRY_ENABLED="true", OTEL_SERVICE_NAME="worker-c", OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
               POLYTEL_WASM_DIR=WASM_DIR)
    mark = collector.mark()
    p = subprocess.run([str(a) for a in argv], env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S + 30)
    where = f"[{lang}, {wire}, real Collector]"
    assert p.returncode == 0, f"{where} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"{where} no stats line\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    check_counted(collector.received(since=mark), json.loads(lines[-1]), threads, events, where)


# ------------------------------------------------------------------ the browser page, cross-origin


def run_page(col, protocol: str = "http/protobuf", events: int = 20, wait_ms: int = 10000) -> dict:
    node = shutil.which("node")
    assert node, "no `node` on PATH: run `make deps`"
    assert os.path.exists(os.path.join(WASM_DIR, "dist", "polytel_wasm.mjs")), "run `make wasm-build`"
    p = subprocess.run([node, BROWSER_DRIVER, col.endpoint, protocol, str(events), str(wait_ms)], capture_output=True,
                       text=True, timeout=4 * wait_ms / 1000 + 120, cwd=ROOT)
    assert p.returncode == 0, f"browser driver exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert lines, p.stdout + p.stderr
    return json.loads(lines[-1])


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_browser_page_with_cors(collector_factory, protocol):
    """The Collector allows the page's origin: everything arrives, exactly once, and the stats say so."""
    col = collector_factory(cors_origins=["http://127.0.0.1:*"])
    n = 20
    out = run_page(col, protocol, n)
    res = out["result"]
    assert out["pageErrors"] == [] and "error" not in res, out
    assert res["flushed"] is True and res["shutdown"] is True, out
    got = col.received()
    assert sorted(lg["body"] for lg in got["logs"]) == sorted(f"page event {i}" for i in range(n))
    assert all(lg["service"] == "browser-collector" for lg in got["logs"] + got["spans"])
    ops = {s["span_id"]: s for s in got["spans"] if s["name"] == "page-op"}
    steps = [s for s in got["spans"] if s["name"] == "page-step"]
    assert len(ops) == n and len(steps) == n and len(got["spans"]) == 2 * n
    for s in steps:
        assert s["parent_span_id"] in ops and ops[s["parent_span_id"]]["trace_id"] == s["trace_id"]
    assert counter_total(got["metrics"], "page.events") == n
    st = res["stats"]
    received = len(got["spans"]) + len(got["logs"])
    assert st["exported"] <= received <= st["exported"] + st["unconfirmed"], st
    assert (st["recorded"], st["exported"], st["dropped"], st["unconfirmed"], st["pending"]) == \
        (3 * n, 3 * n, 0, 0, 0), st


def test_browser_page_without_cors(collector_factory):
    """No `cors` block: the preflight is refused, the page sees an opaque network error. polytel names CORS as the
    likely cause in its warning, and every record is counted (none exported, none pending), not lost silently."""
    col = collector_factory()
    n = 20
    out = run_page(col, "http/protobuf", n, wait_ms=2000)
    res = out["result"]
    assert out["pageErrors"] == [] and "error" not in res, out
    got = col.received()
    assert got["spans"] == [] and got["logs"] == [] and got["metrics"] == [], "the Collector got data without CORS?"
    warnings = [m["text"] for m in out["console"] if m["type"] in ("warning", "error") and "polytel" in m["text"]]
    assert any("CORS" in w for w in warnings), "no polytel warning naming CORS:\n" + "\n".join(
        f"{m['type']}: {m['text']}" for m in out["console"])
    st = res["stats"]
    assert res["shutdown"] is False, "shutdown said everything was delivered"
    assert st["recorded"] == 3 * n and st["exported"] == 0 and st["pending"] == 0, st
    assert st["recorded"] == st["exported"] + st["dropped"] + st["unconfirmed"] + st["pending"], st

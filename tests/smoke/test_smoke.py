"""test_smoke.py — one scenario (scenario.json), four workers (C, Python, Ruby, wasm under Node), each run with
TELEMETRY_ENABLED=true and unset against the real test receiver: the same telemetry and console from all four.

Where the runtimes are (set by `make test-smoke`; defaults are the `make` build locations):
  POLYTEL_BUILD_DIR       the CMake build (tests/smoke_worker)            default <repo>/build
  POLYTEL_PY              the venv python with the binding pip-installed   default $BUILD/py-venv/bin/python
  POLYTEL_RUBY_GEM_HOME   GEM_HOME holding the installed polytel gem       default $BUILD/ruby-gems
  POLYTEL_WASM_DIR        the wasm package (built dist/)                   default <repo>/bindings/wasm
A third mode runs the embedded file exporter (what `make demo` uses): the OTLP/JSON lines it writes, read
back with tests/receiver/jsonl.py, must say the same as what the receiver got.
A binding that is not built fails its tests with the make target that builds it; nothing is skipped.

PYTEST_DONT_REWRITE: the failure messages below name the language and the difference; pytest's own
expansion of each assert would only repeat them.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "receiver"))

from jsonl import load_dir  # noqa: E402
from otlp_receiver import Receiver  # noqa: E402

SCENARIO_PATH = os.path.join(HERE, "scenario.json")
BUILD = os.environ.get("POLYTEL_BUILD_DIR") or os.path.join(ROOT, "build")
PY = os.environ.get("POLYTEL_PY") or os.path.join(BUILD, "py-venv", "bin", "python")
GEM_HOME = os.environ.get("POLYTEL_RUBY_GEM_HOME") or os.path.join(BUILD, "ruby-gems")
WASM_DIR = os.environ.get("POLYTEL_WASM_DIR") or os.path.join(ROOT, "bindings", "wasm")

LANGS = ["c", "python", "ruby", "wasm"]
HAS_FORK = {"c": True, "python": True, "ruby": True, "wasm": False}
MODES = {"enabled": {"TELEMETRY_ENABLED": "true"}, "unset": {}, "file": {"TELEMETRY_ENABLED": "true",
                                                                        "POLYTEL_EXPORTER": "file"}}
MODE_LABEL = {"enabled": "TELEMETRY_ENABLED=true", "unset": "TELEMETRY_ENABLED unset",
              "file": "TELEMETRY_ENABLED=true POLYTEL_EXPORTER=file"}
ENABLED = {"enabled": True, "unset": False, "file": True}
LEVELS = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "error": 17, "fatal": 21}
LEVEL_TEXT = {v: k.upper() for k, v in LEVELS.items()}
RUN_TIMEOUT_S = 60  # a hang guard only: a normal run takes well under a second

with open(SCENARIO_PATH) as _f:
    SCENARIO = json.load(_f)


# ------------------------------------------------------------------ the workers


def worker_command(lang: str) -> tuple[list[str], dict]:
    """argv (without the scenario path) and extra environment; fails naming the make target when not built."""
    if lang == "c":
        exe = os.path.join(BUILD, "tests", "smoke_worker")
        if not os.access(exe, os.X_OK):
            pytest.fail(f"[c] {exe} is not built: run `make build` (or set POLYTEL_BUILD_DIR)", pytrace=False)
        return [exe], {}
    if lang == "python":
        if not os.access(PY, os.X_OK):
            pytest.fail(f"[python] {PY} does not exist: run `make py-venv` (or set POLYTEL_PY)", pytrace=False)
        p = subprocess.run([PY, "-c", "import polytel"], capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                           env={**clean_env(), "POLYTEL_CONSOLE": "off"})
        if p.returncode != 0:
            pytest.fail(f"[python] the binding is not installed in {PY}: run `make py-venv`\n{p.stderr}",
                        pytrace=False)
        return [PY, os.path.join(HERE, "workers", "worker.py")], {}
    if lang == "ruby":
        ruby = shutil.which("ruby")
        if not ruby:
            pytest.fail("[ruby] no `ruby` on PATH: run `make deps`", pytrace=False)
        if not glob.glob(os.path.join(GEM_HOME, "specifications", "polytel-*.gemspec")):
            pytest.fail(f"[ruby] the polytel gem is not installed in {GEM_HOME}: run `make ruby-gem` "
                        "(or set POLYTEL_RUBY_GEM_HOME)", pytrace=False)
        return [ruby, os.path.join(HERE, "workers", "worker.rb")], {"GEM_HOME": GEM_HOME}
    if lang == "wasm":
        node = shutil.which("node")
        if not node:
            pytest.fail("[wasm] no `node` on PATH: run `make deps`", pytrace=False)
        if not os.path.exists(os.path.join(WASM_DIR, "dist", "polytel_wasm.mjs")):
            pytest.fail(f"[wasm] {WASM_DIR}/dist/polytel_wasm.mjs is not built: run `make wasm-build`", pytrace=False)
        return [node, os.path.join(HERE, "workers", "worker.mjs")], {"POLYTEL_WASM_DIR": WASM_DIR}
    raise AssertionError(lang)


def clean_env() -> dict:
    """The caller's environment without anything that configures polytel or its console."""
    drop = ("OTEL_", "TELEMETRY_", "POLYTEL_", "SMOKE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    for k in ("NO_COLOR", "FORCE_COLOR", "GEM_HOME", "GEM_PATH", "NODE_OPTIONS"):
        env.pop(k, None)
    return env


_runs: dict = {}


def run(lang: str, mode: str) -> dict:
    """Runs one worker once (cached): its exit, console, report lines and what the receiver got."""
    key = (lang, mode)
    if key in _runs:
        return _runs[key]
    argv, extra = worker_command(lang)
    with tempfile.TemporaryDirectory() as tmp, Receiver() as rcv:
        report = os.path.join(tmp, "report.jsonl")
        export_dir = os.path.join(tmp, "export")
        env = clean_env()
        env.update(extra)
        env.update(MODES[mode])
        env.update(OTEL_SERVICE_NAME=f"smoke-{lang}", OTEL_EXPORTER_OTLP_ENDPOINT=rcv.endpoint, SMOKE_REPORT=report,
                   POLYTEL_EXPORT_DIR=export_dir)
        proc = subprocess.Popen(argv + [SCENARIO_PATH], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=tmp)
        try:
            out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"[{lang}, {MODE_LABEL[mode]}] the worker hung for {RUN_TIMEOUT_S}s\nstdout:\n{out}\n"
                        f"stderr:\n{err}", pytrace=False)
        # Every process of the run has exited (the parent waits for its fork child), and the exit hooks
        # return only once delivery is done or failed: nothing more can arrive.
        received = rcv.received()
        got, file_error = received, None
        if mode == "file":
            got = None
            try:
                got = load_dir(export_dir)  # strict: a malformed or torn line raises, naming file:line
            except (OSError, ValueError) as e:
                file_error = f"{type(e).__name__}: {e}"
        lines = open(report).read().splitlines() if os.path.exists(report) else []
        result = {
            "lang": lang, "mode": mode, "pid": proc.pid, "returncode": proc.returncode, "stdout": out,
            "stderr": err, "got": got, "received": received, "file_error": file_error,
            "report": [json.loads(ln) for ln in lines],
            "target": export_dir if mode == "file" else rcv.endpoint,
            "endpoint": rcv.endpoint, "export_dir": export_dir,
        }  # fmt: skip
    _runs[key] = result
    return result


# ------------------------------------------------------------------ what the scenario says


def expected(has_fork: bool) -> dict:
    """{"parent": proc, "child": proc | None, "order": [(role, console entry)]}; proc = {spans, logs, counters,
    events}: what the scenario makes each process record, derived from scenario.json alone."""
    target = SCENARIO["target"]

    def proc():
        return {"spans": [], "logs": [], "counters": defaultdict(int), "events": []}

    procs = {"parent": proc(), "child": None}
    order = []  # (role, console entry) in execution order: the parent waits for its child

    def walk(steps, role, stack) -> bool:
        p = procs[role]
        for st in steps:
            op = st["op"]
            if op in ("load", "bootstrap"):
                p["events"].append(op)
                order.append((role, op))
            elif op == "log":
                span = stack[-1]["name"] if stack else None
                level = LEVELS[st["level"]]
                p["logs"].append({"body": st["body"], "severity_number": level, "severity_text": LEVEL_TEXT[level],
                                  "scope": target, "attributes": st.get("attributes", {}), "span": span})
                order.append((role, (LEVEL_TEXT[level], target, st["body"])))
            elif op == "span":
                sp = {"name": st["name"], "parent": stack[-1]["name"] if stack else None, "scope": "polytel",
                      "attributes": dict(st.get("attributes", {})), "status_code": 0}
                p["spans"].append(sp)
                if walk(st["steps"], role, stack + [sp]):
                    return True
            elif op == "set_attribute":
                stack[-1]["attributes"][st["key"]] = st["value"]
            elif op == "counter_add":
                p["counters"][metric_key(st["name"], st.get("unit", ""), st.get("attributes", {}))] += st["value"]
            elif op == "fork":
                assert st.get("where") == "available", "the fork step must say where it runs"
                if has_fork:
                    procs["child"] = proc()
                    walk(st["steps"], "child", [])
            elif op == "exit":
                return True
            else:
                raise AssertionError(f"scenario.json: unknown op {op!r}")
        return False

    walk(SCENARIO["steps"], "parent", [])
    for p in filter(None, procs.values()):
        p["counters"] = dict(p["counters"])
    procs["order"] = order
    return procs


def metric_key(name, unit, attrs) -> str:
    return json.dumps([name, unit, attrs], sort_keys=True)


def expected_console(lang: str, mode: str, target: str, has_fork: bool) -> list[tuple[str, tuple]]:
    """(key, (LEVEL, target, message)) for each console line, in order, from the scenario and the phase table.
    key = "<role>#<n>" (the n-th line of the parent or the fork child), to compare languages line by line."""
    out = []
    enabled = ENABLED[mode]
    seen = defaultdict(int)
    for role, entry in expected(has_fork)["order"]:
        if entry == "load":
            if enabled:
                line = ("INFO", "polytel", "deferring full telemetry to worker bootstrap (TELEMETRY_ENABLED=true); "
                                           "events are kept until then")
            else:  # the receiver's endpoint is set: the first run says why nothing leaves (docs/configuration.md)
                line = ("INFO", "polytel", "export is off: OTEL_EXPORTER_OTLP_ENDPOINT is set but TELEMETRY_ENABLED "
                                           "is not true; set TELEMETRY_ENABLED=true to export (console-only logging "
                                           "until then)")
        elif entry == "bootstrap":
            if not enabled:
                continue
            where = (f"writing OTLP/JSON lines to {target}/" if mode == "file"
                     else f"exporting to {target} (http/protobuf)")
            line = ("INFO", "polytel", f'full telemetry: {where} as service "smoke-{lang}"')
        else:
            line = entry
        out.append((f"{role}#{seen[role]}", line))
        seen[role] += 1
    return out


# ------------------------------------------------------------------ what arrived, normalized

LINE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (TRACE|DEBUG|INFO|WARN|ERROR|FATAL) ([^ :]+): (.*)$")


def console_lines(r: dict) -> list[tuple[str, str, str]]:
    """The console lines in order. The native workers write everything to stderr (the POLYTEL_CONSOLE default)
    and nothing to stdout; the wasm binding prints through Node's console by level (docs/wasm.md): info and
    below on stdout, warn and above on stderr."""
    where = f"[{r['lang']}, {MODE_LABEL[r['mode']]}]"
    parsed = {}
    for stream in ("stdout", "stderr"):
        rows = []
        for ln in r[stream].splitlines():
            m = LINE_RE.match(ln)
            assert m, f"{where} unexpected {stream} output (not a console line): {ln!r}\n{stream}:\n{r[stream]}"
            rows.append(m.groups())
        parsed[stream] = rows
    if r["lang"] != "wasm":
        assert not parsed["stdout"], f"{where} console lines on stdout (expected stderr):\n{r['stdout']}"
        return parsed["stderr"]
    bad_out = [x for x in parsed["stdout"] if LEVELS[x[0].lower()] >= LEVELS["warn"]]
    bad_err = [x for x in parsed["stderr"] if LEVELS[x[0].lower()] < LEVELS["warn"]]
    assert not bad_out and not bad_err, (f"{where} console lines on the wrong stream (Node: console.info -> stdout, "
                                         f"console.warn/error -> stderr): stdout {bad_out}, stderr {bad_err}")
    return parsed["stdout"] + parsed["stderr"]


def check_console(r: dict, expect: list[tuple[str, tuple]]) -> dict:
    """Matches the console lines to the expected ones, in order; returns {key: the whole line without its time}."""
    where = f"[{r['lang']}, {MODE_LABEL[r['mode']]}]"
    got = console_lines(r)
    is_warn = lambda x: LEVELS[x[0].lower()] >= LEVELS["warn"]  # noqa: E731
    if r["lang"] == "wasm":
        # Two streams: the order is checked within each (the relative order across two pipes is lost).
        pairs = [([x for x in got if is_warn(x) == w], [e for e in expect if is_warn(e[1]) == w])
                 for w in (False, True)]
    else:
        pairs = [(got, expect)]
    matched = {}
    for g, e in pairs:
        shown = "\n".join(f"  {x[0]} {x[1]}: {x[2]}" for x in g)
        want = "\n".join(f"  {x[0]} {x[1]}: {x[2]}" for _, x in e)
        assert len(g) == len(e), f"{where} console: {len(g)} lines, expected {len(e)}\ngot:\n{shown}\nexpected:\n{want}"
        for n, (gl, (key, el)) in enumerate(zip(g, e)):
            # A log line is "LEVEL target: body" plus " key=value" per attribute (compared across languages).
            ok = gl[:2] == el[:2] and (gl[2] == el[2] or (el[1] != "polytel" and gl[2].startswith(el[2] + " ")))
            assert ok, f"{where} console line {n + 1}: got {gl}, expected {el}\ngot:\n{shown}\nexpected:\n{want}"
            matched[key] = " ".join(gl[:2]) + ": " + gl[2]
    return matched


def split_by_process(r: dict) -> dict:
    """{pid: {"spans", "logs", "metrics"}}, after checking service.name and the presence of process.pid."""
    where = f"[{r['lang']}, {MODE_LABEL[r['mode']]}]"
    by_pid = defaultdict(lambda: {"spans": [], "logs": [], "metrics": []})
    for kind in ("spans", "logs", "metrics"):
        for item in r["got"][kind]:
            assert item["service"] == f"smoke-{r['lang']}", \
                f"{where} a {kind[:-1]} under service.name {item['service']!r}, expected 'smoke-{r['lang']}': {item}"
            pid = item["resource"].get("process.pid")
            assert isinstance(pid, int), f"{where} a {kind[:-1]} without an integer process.pid: {item['resource']}"
            by_pid[pid][kind].append(item)
    return by_pid


def normalize_process(items: dict, where: str) -> dict:
    """Ids, times and pids taken out: span tree by names, logs with their span's name, counter totals."""
    spans = items["spans"]
    by_id = {s["span_id"]: s for s in spans}
    assert len(by_id) == len(spans), f"{where} a span id arrived twice: {sorted(s['name'] for s in spans)}"
    out_spans = []
    for s in spans:
        parent = None
        if s["parent_span_id"]:
            p = by_id.get(s["parent_span_id"])
            parent = p["name"] if p else f"<unknown span {s['parent_span_id']}>"
            if p:
                assert p["trace_id"] == s["trace_id"], f"{where} span {s['name']!r} is in another trace than its parent"
                assert p["start_ns"] <= s["start_ns"] and s["end_ns"] <= p["end_ns"], \
                    f"{where} span {s['name']!r} [{s['start_ns']}, {s['end_ns']}] is not within its parent " \
                    f"{p['name']!r} [{p['start_ns']}, {p['end_ns']}]"
        assert s["start_ns"] <= s["end_ns"], f"{where} span {s['name']!r} ends before it starts"
        out_spans.append({"name": s["name"], "parent": parent, "scope": s["scope"], "attributes": s["attributes"],
                          "status_code": s["status_code"]})
    out_logs = []
    for lg in items["logs"]:
        span = None
        if lg["span_id"]:
            sp = by_id.get(lg["span_id"])
            span = sp["name"] if sp else f"<unknown span {lg['span_id']}>"
            if sp:
                assert lg["trace_id"] == sp["trace_id"], f"{where} log {lg['body']!r}: trace id is not its span's"
                # Recorded while the span was open: a trace viewer shows it outside the span otherwise.
                t, start, end = lg["time_ns"], sp["start_ns"], sp["end_ns"]
                assert start <= t <= end, f"{where} log {lg['body']!r} at {t} is outside its span {sp['name']!r} " \
                                          f"[{start}, {end}]: {t - start if t < start else t - end:+d} ns"
        out_logs.append({"body": lg["body"], "severity_number": lg["severity_number"],
                         "severity_text": lg["severity_text"], "scope": lg["scope"], "attributes": lg["attributes"],
                         "span": span})
    counters = {}
    last = {}
    series = defaultdict(list)
    for m in items["metrics"]:
        if m["name"].startswith("polytel."):
            continue  # the core's self-metrics (recorded/exported/dropped): not part of the scenario
        k = metric_key(m["name"], m["unit"], m["attributes"])
        assert m["scope"] == "polytel", f"{where} counter {m['name']!r} under scope {m['scope']!r}, expected 'polytel'"
        assert m["type"] == "sum" and m["is_monotonic"] and m["temporality"] == 2, \
            f"{where} counter {m['name']!r} is not a monotonic cumulative sum: {m}"
        assert isinstance(m["value"], int), f"{where} counter {m['name']!r} is not an int sum: {m['value']!r}"
        series[k].append((m["time_ns"], m["value"]))
        if k not in last or m["time_ns"] >= last[k]:
            last[k] = m["time_ns"]  # cumulative: the latest collection holds the total
            counters[k] = m["value"]
    for k, points in series.items():
        values = [v for _, v in sorted(points)]
        assert values == sorted(values), f"{where} cumulative counter {k} went down between collections: {values}"
    return {"spans": out_spans, "logs": out_logs, "counters": counters,
            "log_times": {lg["body"]: lg["time_ns"] for lg in items["logs"]}}


SDK_LANGUAGE = {"c": "c", "python": "python", "ruby": "ruby", "wasm": "nodejs"}


def check_resource(items, lang: str, where: str) -> dict:
    """One resource per process, with the keys every binding sets; returns the part all languages share."""
    if not items:
        return {}
    resources = {canon(x["resource"]) for k in ("spans", "logs", "metrics") for x in items[k]}
    assert len(resources) == 1, f"{where}: items of one process carry different resources: {sorted(resources)}"
    res = json.loads(resources.pop())
    missing = [k for k in ("service.name", "process.pid", "host.name", "process.executable.name", "telemetry.sdk.name",
                           "telemetry.sdk.version", "telemetry.sdk.language") if k not in res]
    assert not missing, f"{where}: resource without {missing}: {res}"
    assert res["telemetry.sdk.name"] == "polytel", f"{where}: telemetry.sdk.name {res['telemetry.sdk.name']!r}"
    assert res["telemetry.sdk.language"] == SDK_LANGUAGE[lang], \
        f"{where}: telemetry.sdk.language {res['telemetry.sdk.language']!r}, expected {SDK_LANGUAGE[lang]!r}"
    return {k: res[k] for k in ("host.name", "telemetry.sdk.name", "telemetry.sdk.version")}


def canon(x) -> str:
    return json.dumps(x, sort_keys=True)


def multiset_diff(got: list, want: list) -> str:
    """'' when equal as multisets; else what is missing and what is extra (duplicates count)."""
    g = sorted(map(canon, got))
    w = sorted(map(canon, want))
    if g == w:
        return ""
    missing, extra = list(w), []
    for x in g:
        if x in missing:
            missing.remove(x)
        else:
            extra.append(x)
    return "".join([f"\n  missing: {m}" for m in missing] + [f"\n  unexpected: {e}" for e in extra])


def compare_process(where: str, role: str, got: dict, want: dict) -> None:
    problems = []
    for kind in ("spans", "logs"):
        d = multiset_diff(got[kind], want[kind])
        if d:
            problems.append(f"{where} {role} {kind} differ from the scenario:{d}")
    if got["counters"] != want["counters"]:
        problems.append(f"{where} {role} counter totals: got {got['counters']}, expected {want['counters']}")
    # Logs were recorded in scenario order: their timestamps must not go backwards (ties allowed).
    times = [got["log_times"].get(lg["body"]) for lg in want["logs"]]
    if None not in times and times != sorted(times):
        problems.append(f"{where} {role} log timestamps are not in scenario order: "
                        f"{list(zip([lg['body'] for lg in want['logs']], times))}")
    assert not problems, "\n".join(problems)


def outcome(lang: str, mode: str) -> dict:
    """Checks one run against the scenario; returns its normalized telemetry and console for cross-language use.
    Each part (exit, phases, console, telemetry) is checked even when another failed; one failure lists them all."""
    r = run(lang, mode)
    where = f"[{lang}, {MODE_LABEL[mode]}]"
    problems = []
    result = {"parent": None, "child": None, "console": {}}

    def part(fn):
        try:
            fn()
        except AssertionError as e:
            problems.append(str(e))

    part(lambda: check_exit(r, where))
    child_pid = []
    part(lambda: child_pid.append(check_report(r, where)))

    def console():
        matched = check_console(r, expected_console(lang, mode, r["target"], HAS_FORK[lang]))
        result["console"] = {k: v.replace(f"smoke-{lang}", "smoke-LANG").replace(r["target"], "TARGET")
                             for k, v in matched.items()}

    part(console)
    part(lambda: check_telemetry(r, where, child_pid[0] if child_pid else None, result))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
    return result


def check_exit(r: dict, where: str) -> None:
    assert r["returncode"] == 0, \
        f"{where} worker exited {r['returncode']}\nstdout:\n{r['stdout']}\nstderr:\n{r['stderr']}"


def check_report(r: dict, where: str):
    """What each process observed (its report lines): phases after load and bootstrap, the fork child. Returns
    the fork child's pid (None without fork)."""
    enabled = ENABLED[r["mode"]]
    rep = r["report"]
    parent = [x for x in rep if x["pid"] == r["pid"]]
    assert parent and parent[0]["event"] == "load", f"{where} no report from the worker process {r['pid']}: {rep}"
    phase1 = "deferred" if enabled else "console"
    phase2 = "full" if enabled else "console"
    assert parent[0]["phase"] == phase1, f"{where} phase after load: {parent[0]['phase']}, expected {phase1}"
    boots = [x for x in parent if x["event"] == "bootstrap"]
    assert [b["phase"] for b in boots] == [phase2], f"{where} phase after bootstrap: {boots}, expected {phase2}"
    if not HAS_FORK[r["lang"]]:
        assert [x["event"] for x in rep] == ["load", "bootstrap", "fork-skipped"], f"{where} report: {rep}"
        return None
    forks = [x for x in parent if x["event"] == "fork"]
    assert len(forks) == 1, f"{where} expected one fork in the report: {rep}"
    child_pid = forks[0]["child_pid"]
    assert forks[0]["child_exit"] == 0, f"{where} the fork child exited {forks[0]['child_exit']}"
    child = [x for x in rep if x["pid"] == child_pid]
    assert [x["event"] for x in child] == ["fork-child", "bootstrap"], f"{where} fork child report: {child}"
    assert child[1]["phase"] == phase2, f"{where} fork child phase after bootstrap: {child[1]}, expected {phase2}"
    assert len(rep) == len(parent) + len(child), f"{where} report lines from unknown processes: {rep}"
    return child_pid


def check_telemetry(r: dict, where: str, child_pid, result: dict) -> None:
    got = r["got"]
    if r["mode"] != "enabled":
        rcv = r["received"]
        why = "telemetry is off" if r["mode"] == "unset" else "the file exporter is on"
        assert not rcv["requests"] and not rcv["errors"], \
            f"{where} {why} but the receiver got {len(rcv['requests'])} requests: " \
            f"{[q['path'] for q in rcv['requests']]} errors {rcv['errors']}"
        if r["mode"] == "unset":
            return
        assert got is not None, f"{where} the file exporter's output is not OTLP/JSON lines: {r['file_error']}"
        files = sorted({os.path.basename(q["path"]) for q in got["requests"]})
        assert files == ["logs.jsonl", "metrics.jsonl", "traces.jsonl"], f"{where} file exporter wrote {files}"
    has_fork = HAS_FORK[r["lang"]]
    want = expected(has_fork)
    assert not got["errors"], f"{where} the receiver refused requests: {got['errors']}"
    by_pid = split_by_process(r)
    unknown = set(by_pid) - {r["pid"], child_pid}
    assert not unknown, f"{where} telemetry from unknown process.pid {sorted(unknown)} " \
                        f"(parent {r['pid']}, fork child {child_pid})"
    problems = []
    for role, pid in (("parent", r["pid"]), ("child", child_pid)):
        if role == "child" and not has_fork:
            continue
        try:
            result.setdefault("resource", {})[role] = check_resource(by_pid.get(pid), r["lang"], f"{where} {role}")
            norm = normalize_process(by_pid.get(pid, {"spans": [], "logs": [], "metrics": []}),
                                     f"{where} {role} (pid {pid})")
            compare_process(where, f"{role} (process.pid {pid})", norm, want[role])
            norm.pop("log_times")
            result[role] = norm
        except AssertionError as e:
            problems.append(str(e))
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ the tests


def test_scenario_is_well_formed():
    want = expected(True)
    names = [sp["name"] for sp in want["parent"]["spans"] + (want["child"] or {"spans": []})["spans"]]
    assert len(names) == len(set(names)), f"span names must be unique (parents are checked by name): {names}"
    assert want["child"] is not None and want["child"]["logs"] and want["child"]["counters"], \
        "the scenario needs a fork child that logs and counts"
    assert any(sp["parent"] for sp in want["parent"]["spans"]), "the scenario needs nested spans"
    assert want["parent"]["counters"], "the scenario needs a counter"
    assert want["parent"]["events"] == ["load", "bootstrap"], "the scenario loads, then bootstraps"
    assert SCENARIO["steps"][-1]["op"] == "exit", "the scenario ends without an explicit shutdown"


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("lang", LANGS)
def test_worker_runs_the_scenario(lang, mode):
    outcome(lang, mode)


@pytest.mark.parametrize("mode", list(MODES))
def test_same_telemetry_in_every_language(mode):
    results = {lang: outcome(lang, mode) for lang in LANGS}
    base = "c"
    problems = []
    for lang in LANGS:
        if lang == base:
            continue
        a, b = results[base], results[lang]
        for role in ("parent", "child"):
            if a[role] is None or b[role] is None:
                continue
            for kind in ("spans", "logs"):
                d = multiset_diff(b[role][kind], a[role][kind])
                if d:
                    problems.append(f"{lang} vs {base}: {role} {kind}:{d}")
            if a[role]["counters"] != b[role]["counters"]:
                problems.append(f"{lang} vs {base}: {role} counters {b[role]['counters']} != {a[role]['counters']}")
            ra, rb = a.get("resource", {}).get(role), b.get("resource", {}).get(role)
            if ra != rb:
                problems.append(f"{lang} vs {base}: {role} resource (host, sdk name and version) {rb} != {ra}")
        for key in sorted(set(a["console"]) | set(b["console"])):
            la, lb = a["console"].get(key), b["console"].get(key)
            if lb is None and key.startswith("child#") and not HAS_FORK[lang]:
                continue  # the fork child's lines: only where there is fork
            if la != lb:
                problems.append(f"{lang} vs {base}: console line {key}: {lb!r} != {la!r}")
    assert not problems, f"[{MODE_LABEL[mode]}] the languages disagree:\n" + "\n".join(problems)


# Keys whose values are the language's own: the SDK's name and the service the harness names per language.
OWN_CONFIG = {"sdk_language", "service_name"}


@pytest.mark.parametrize("mode", list(MODES))
def test_same_resolved_configuration_in_every_language(mode):
    """bootstrap_worker in Python, Ruby and wasm (and polytel_config_resolved in C) return the same resolved
    configuration for the same environment: the core resolved it, once."""
    configs = {}
    for lang in LANGS:
        r = run(lang, mode)
        check_exit(r, f"[{lang}, {MODE_LABEL[mode]}]")
        boots = [x for x in r["report"] if x["pid"] == r["pid"] and x["event"] == "bootstrap"]
        assert len(boots) == 1 and "config" in boots[0], f"[{lang}] no configuration in the report: {boots}"
        # Each run has a receiver and a directory of its own: the same environment but for those two.
        text = json.dumps(boots[0]["config"]).replace(r["endpoint"], "<endpoint>").replace(r["export_dir"], "<dir>")
        cfg = json.loads(text)
        assert cfg["service_name"] == f"smoke-{lang}", cfg["service_name"]
        assert cfg["phase"] == ("full" if ENABLED[mode] else "console")
        assert cfg["endpoint"] == "<endpoint>" and cfg["export_dir"] == "<dir>", cfg
        configs[lang] = {k: v for k, v in cfg.items() if k not in OWN_CONFIG}
    base = configs["c"]
    assert base["endpoint"] and base["exit_timeout_ms"] == 5000 and len(base) > 40, base
    for lang, cfg in configs.items():
        diff = {k: (cfg.get(k), base.get(k)) for k in set(cfg) | set(base) if cfg.get(k) != base.get(k)}
        assert not diff, f"[{MODE_LABEL[mode]}] {lang} resolved differently from c ({lang}, c): {diff}"


def test_resolved_configuration_with_corrections_in_every_language(tmp_path):
    """One environment with values the core corrects, clamps or refuses: every language reports the same."""
    scenario = tmp_path / "config.json"
    scenario.write_text(json.dumps({"target": "config", "steps": [{"op": "load"}, {"op": "bootstrap"},
                                                                   {"op": "exit"}]}))  # fmt: skip
    env = {"TELEMETRY_ENABLED": "yes", "POLYTEL_EXPORTER": "none", "OTEL_SERVICE_NAME": "smoke-config",
           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.example:4318//", "OTEL_EXPORTER_OTLP_PROTOCOL": "HTTP/JSON",
           "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4096", "OTEL_EXPORTER_OTLP_TIMEOUT": "10s",
           "POLYTEL_EXIT_TIMEOUT_MS": "1234", "OTEL_LOGS_EXPORTER": "none", "POLYTEL_MAX_MEMORY": "8M",
           "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20s3cret", "POLYTEL_LOG_LEVEL": "error"}  # fmt: skip
    configs = {}
    for lang in LANGS:
        argv, extra = worker_command(lang)
        report = tmp_path / f"{lang}.jsonl"
        p = subprocess.run(argv + [str(scenario)], env={**clean_env(), **extra, **env, "SMOKE_REPORT": str(report)},
                           capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=str(tmp_path))
        assert p.returncode == 0, f"[{lang}] exited {p.returncode}\n{p.stderr}"
        boots = [json.loads(ln) for ln in report.read_text().splitlines() if '"bootstrap"' in ln]
        assert len(boots) == 1, f"[{lang}] {boots}"
        configs[lang] = {k: v for k, v in boots[0]["config"].items() if k not in OWN_CONFIG - {"service_name"}}
    c = configs["c"]
    want = {"phase": "full", "not_exporting": "the exporter is none: recording and counting only",
            "destination": None, "endpoint": "http://collector.example:4318", "protocol": "http/json",
            "logs_endpoint": "http://collector.example:4318/v1/logs", "bsp_max_export_batch_size": 2048,
            "timeout_ms": 10000, "exit_timeout_ms": 1234, "logs_exporter": "none", "traces_exporter": "otlp",
            "max_memory_bytes": 8 << 20, "telemetry_enabled": True, "headers": "authorization=\u2026",
            "service_name": "smoke-config", "console_level": "error"}  # fmt: skip
    assert {k: c[k] for k in want} == want
    for lang, cfg in configs.items():
        assert "s3cret" not in json.dumps(cfg), f"[{lang}] a header value in the resolved configuration"
        diff = {k: (cfg.get(k), c.get(k)) for k in set(cfg) | set(c) if cfg.get(k) != c.get(k)}
        assert not diff, f"{lang} resolved differently from c ({lang}, c): {diff}"

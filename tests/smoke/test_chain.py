"""test_chain.py — one trace across four processes in four languages (issue 14's cross-language proof).

A job chain, one process per language, each handing the next its W3C `traceparent` and `baggage` through a
queue file, as a job queue would: the C producer (tests/support/programs/chain_producer.c) starts a PRODUCER
span per job and sets the baggage entry tenant = "acme corp/job <j>"; Python (workers/chain.py) consumes
each job in a CONSUMER span and enqueues it for Ruby in a PRODUCER span, then runs Ruby (workers/chain.rb),
which consumes it, fails a "validate job" step with Chain::InvalidJob (an exception event with a Ruby stack
trace, status ERROR) and hands it to a wasm worker under Node (workers/chain.mjs), which consumes it and
records the baggage it received; a "batch" span there links two jobs' upstream spans. Every process exports
to the project's receiver (tests/support/otlp_receiver.py, on 127.0.0.1, a random port).

test_chain: two jobs, every span checked (trace, parents, kinds, flags, links, baggage, the exception).
test_chain_sampled: 200 jobs with OTEL_TRACES_SAMPLER=parentbased_traceidratio, ARG=0.5: each process runs all
of them in one loop (each job its own trace); the set of traces that arrive is exactly the set the spec's
TraceIdRatioBased rule picks from the trace ids (the low 8 bytes below round(0.5 * 2^64)), each whole in all
four languages, the others absent everywhere, and every process's stats count the left-out spans as
sampled_out, never as drops.

Where the runtimes are: POLYTEL_BUILD_DIR (tests/chain_producer), POLYTEL_PY, POLYTEL_RUBY_GEM_HOME,
POLYTEL_WASM_DIR, as for test_smoke.py (tests/CMakeLists.txt sets them; make targets build them).
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

from otlp_receiver import Receiver  # noqa: E402

BUILD = os.environ.get("POLYTEL_BUILD_DIR") or os.path.join(ROOT, "build")
PY = os.environ.get("POLYTEL_PY") or os.path.join(BUILD, "py-venv", "bin", "python")
GEM_HOME = os.environ.get("POLYTEL_RUBY_GEM_HOME") or os.path.join(BUILD, "ruby-gems")
WASM_DIR = os.environ.get("POLYTEL_WASM_DIR") or os.path.join(ROOT, "bindings", "wasm")
HANG_GUARD_S = 300  # only stops a hung chain: 200 jobs take a few seconds

KIND = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}  # OTLP SpanKind
HAS_IS_REMOTE, IS_REMOTE = 0x100, 0x200  # OTLP Span.flags: the parent-is-remote bits
SERVICE = {"c": "chain-c", "python": "chain-python", "ruby": "chain-ruby", "wasm": "chain-wasm"}
LANG_OF = {v: k for k, v in SERVICE.items()}
# (language, span name): kind, parent (language, span name) or None for the root. The spans of one job.
CHAIN = {
    ("c", "enqueue job"): ("producer", None),
    ("python", "consume job"): ("consumer", ("c", "enqueue job")),
    ("python", "enqueue ruby"): ("producer", ("python", "consume job")),
    ("ruby", "consume job"): ("consumer", ("python", "enqueue ruby")),
    ("ruby", "validate job"): ("internal", ("ruby", "consume job")),
    ("ruby", "call wasm"): ("producer", ("ruby", "consume job")),
    ("wasm", "consume job"): ("consumer", ("ruby", "call wasm")),
}
SPANS_PER_JOB = {lang: sum(1 for (l, _) in CHAIN if l == lang) for lang in SERVICE}
# The stats field names of each binding (wasm's are camelCase).
STAT = {"spans_recorded": {"wasm": "spansRecorded"}, "sampled_out": {"wasm": "sampledOut"},
        "dropped": {"wasm": "dropped"}}


def tenant(job: int) -> str:
    return f"acme corp/job {job}"


def runtimes() -> dict:
    """The chain's programs; fails naming the make target that builds a missing one (nothing is skipped)."""
    exe = os.path.join(BUILD, "tests", "chain_producer")
    if not os.access(exe, os.X_OK):
        pytest.fail(f"{exe} is not built: run `make build` (or set POLYTEL_BUILD_DIR)", pytrace=False)
    if not os.access(PY, os.X_OK):
        pytest.fail(f"{PY} does not exist: run `make py-venv` (or set POLYTEL_PY)", pytrace=False)
    if not glob.glob(os.path.join(GEM_HOME, "specifications", "polytel-*.gemspec")):
        pytest.fail(f"the polytel gem is not installed in {GEM_HOME}: run `make ruby-gem`", pytrace=False)
    if not os.path.exists(os.path.join(WASM_DIR, "dist", "polytel_wasm.mjs")):
        pytest.fail(f"{WASM_DIR}/dist/polytel_wasm.mjs is not built: run `make wasm-build`", pytrace=False)
    ruby, node = shutil.which("ruby"), shutil.which("node")
    if not ruby or not node:
        pytest.fail("`ruby` and `node` must be on PATH: run `make deps`", pytrace=False)
    return {"producer": exe, "ruby": ruby, "node": node}


def clean_env() -> dict:
    drop = ("OTEL_", "TELEMETRY_", "POLYTEL_", "CHAIN_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    for k in ("GEM_HOME", "GEM_PATH", "NODE_OPTIONS", "FORCE_COLOR"):
        env.pop(k, None)
    return env


def run_chain(jobs: int, extra: dict) -> dict:
    """Runs the chain over `jobs` jobs; returns what the receiver got, the queue files and each hop's report."""
    rt = runtimes()
    with tempfile.TemporaryDirectory() as tmp, Receiver() as rcv:
        report = os.path.join(tmp, "report.jsonl")
        env = clean_env()
        env.update({
            "TELEMETRY_ENABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": rcv.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BLRP_SCHEDULE_DELAY": "100", "POLYTEL_LOG_LEVEL": "warn",
            "NO_COLOR": "1", "PYTHONUNBUFFERED": "1", "GEM_HOME": GEM_HOME, "POLYTEL_WASM_DIR": WASM_DIR,
            "CHAIN_REPORT": report, "CHAIN_RUBY": rt["ruby"], "CHAIN_NODE": rt["node"],
        })  # fmt: skip
        env.update(extra)
        queue = os.path.join(tmp, "c.jsonl")
        c = subprocess.run([rt["producer"], str(jobs), queue], env={**env, "OTEL_SERVICE_NAME": SERVICE["c"]},
                           capture_output=True, text=True, timeout=HANG_GUARD_S)
        assert c.returncode == 0, f"chain_producer exited {c.returncode}\n{c.stderr}"
        # Python runs Ruby, which runs Node: each waits for the next, and each exit hook returns only once
        # its delivery is done, so when Python is back nothing more can arrive.
        py = subprocess.run([PY, os.path.join(HERE, "workers", "chain.py"), queue, tmp],
                            env={**env, "OTEL_SERVICE_NAME": SERVICE["python"]}, capture_output=True, text=True,
                            timeout=HANG_GUARD_S)
        assert py.returncode == 0, f"the Python hop (or Ruby, or Node under it) failed\n{py.stdout}\n{py.stderr}"
        got = rcv.received()
        queues = {}
        for name in ("c", "ruby", "wasm"):
            with open(os.path.join(tmp, f"{name}.jsonl")) as f:
                queues[name] = [json.loads(ln) for ln in f]
        reports = {"c": json.loads(c.stdout.strip().splitlines()[-1])}
        with open(report) as f:
            for ln in f:
                r = json.loads(ln)
                reports[r["lang"]] = r
    assert not got["errors"], f"the receiver refused requests: {got['errors']}"
    assert sorted(reports) == sorted(SERVICE), f"a hop did not report: {sorted(reports)}"
    return {"spans": got["spans"], "queues": queues, "reports": reports, "stderr": c.stderr + py.stderr}


def stat(reports: dict, lang: str, field: str) -> int:
    return reports[lang]["stats"][STAT[field].get(lang, field)]


def by_job(spans: list[dict]) -> dict:
    """{job: {(lang, name): span}}; fails on a span that arrived twice or does not belong to the chain."""
    out: dict = defaultdict(dict)
    for s in spans:
        if s["name"] == "batch":
            continue
        key = (LANG_OF.get(s["service"]), s["name"])
        assert key in CHAIN, f"unexpected span {key} ({s['service']})"
        job = s["attributes"].get("chain.job")
        assert isinstance(job, int), f"{key} has no chain.job attribute: {s['attributes']}"
        assert key not in out[job], f"{key} of job {job} arrived twice"
        out[job][key] = s
    return out


def check_job(job: int, spans: dict, traceparent: str) -> None:
    """One job's spans: all seven, one trace, each parent the previous hop's span, kinds and flags right."""
    where = f"job {job}"
    assert sorted(spans) == sorted(CHAIN), f"{where}: spans {sorted(spans)}, want {sorted(CHAIN)}"
    _, trace_id, c_span_id, flags = traceparent.split("-")
    assert flags == "01", f"{where}: the producer's traceparent says not sampled: {traceparent}"
    for key, (kind, parent) in CHAIN.items():
        s = spans[key]
        assert s["trace_id"] == trace_id, f"{where}: {key} is in trace {s['trace_id']}, not {trace_id}"
        assert s["kind"] == KIND[kind], f"{where}: {key} has kind {s['kind']}, want {kind} ({KIND[kind]})"
        if parent is None:
            assert s["parent_span_id"] == "", f"{where}: {key} should be a root, parent {s['parent_span_id']}"
            assert s["span_id"] == c_span_id, f"{where}: the traceparent sent is not the producer span's"
            continue
        want = spans[parent]["span_id"]
        assert s["parent_span_id"] == want, f"{where}: {key}'s parent is {s['parent_span_id']}, want {parent} {want}"
        # Across a process boundary the parent is remote (OTLP flags bits 8 and 9), within one it is not.
        remote = parent[0] != key[0]
        assert s["flags"] & (HAS_IS_REMOTE | IS_REMOTE) == (HAS_IS_REMOTE | (IS_REMOTE if remote else 0)), (
            f"{where}: {key} flags {s['flags']:#x}: the parent-is-remote bit should be {int(remote)}")
        assert s["flags"] & 0xFF & 1, f"{where}: {key} flags {s['flags']:#x} lack the sampled bit"


def test_chain():
    run = run_chain(2, {"CHAIN_BATCH": "1"})
    spans, queues, reports = run["spans"], run["queues"], run["reports"]
    jobs = by_job(spans)
    assert sorted(jobs) == [0, 1], f"jobs that arrived: {sorted(jobs)}"
    for j in (0, 1):
        tp = queues["c"][j]["headers"]["traceparent"]
        check_job(j, jobs[j], tp)
        # The baggage entry set in C (polytel_baggage_format) crossed Python and Ruby and is read in wasm.
        assert queues["c"][j]["headers"]["baggage"] == f"tenant=acme%20corp/job%20{j}"
        for lang in ("python", "ruby", "wasm"):
            assert reports[lang]["baggage"][str(j)] == tenant(j), f"{lang} saw baggage {reports[lang]['baggage']}"
        assert jobs[j][("wasm", "consume job")]["attributes"]["chain.tenant"] == tenant(j)
        for q in ("ruby", "wasm"):
            assert queues[q][j]["headers"]["baggage"] == f"tenant=acme%20corp/job%20{j}", queues[q][j]

        # The Ruby step that raised: status ERROR, one exception event with Ruby's own stack trace.
        v = jobs[j][("ruby", "validate job")]
        assert v["status_code"] == 2, f"validate job status {v['status_code']} {v['status_message']!r}"
        assert v["status_message"] == f"job {j} has no invoice number"
        assert [e["name"] for e in v["events"]] == ["exception"], v["events"]
        ev = v["events"][0]["attributes"]
        assert ev["exception.type"] == "Chain::InvalidJob"
        assert ev["exception.message"] == f"job {j} has no invoice number"
        trace = ev["exception.stacktrace"]
        first = trace.splitlines()[0]
        assert "chain.rb:" in first and "validate" in first and "(Chain::InvalidJob)" in first, trace
        assert any(ln.startswith("\tfrom ") and "chain.rb:" in ln for ln in trace.splitlines()[1:]), trace
        # The consumer around it is not failed by a step it rescued.
        assert jobs[j][("ruby", "consume job")]["status_code"] == 0

    # The batch step links the two jobs' upstream spans (Ruby's "call wasm"), in their own traces.
    (batch,) = [s for s in spans if s["name"] == "batch"]
    assert batch["service"] == SERVICE["wasm"] and batch["kind"] == KIND["consumer"]
    want = [(jobs[j][("ruby", "call wasm")]["trace_id"], jobs[j][("ruby", "call wasm")]["span_id"]) for j in (0, 1)]
    assert [(ln["trace_id"], ln["span_id"]) for ln in batch["links"]] == want, batch["links"]
    assert batch["parent_span_id"] == "" and batch["trace_id"] not in {t for t, _ in want}

    assert len(spans) == 2 * len(CHAIN) + 1, f"{len(spans)} spans arrived"
    for lang in SERVICE:
        want_n = 2 * SPANS_PER_JOB[lang] + (lang == "wasm")
        assert (stat(reports, lang, "spans_recorded"), stat(reports, lang, "sampled_out"),
                stat(reports, lang, "dropped")) == (want_n, 0, 0), f"{lang}: {reports[lang]['stats']}"


def traceidratio_sampled(trace_id: str, ratio: float) -> bool:
    """The spec's TraceIdRatioBased decision (as the OpenTelemetry SDKs and the core make it): the trace id's
    low 8 bytes, big-endian, below round(ratio * 2^64)."""
    return int(trace_id[16:], 16) < round(ratio * 2**64)


def test_chain_sampled():
    n = 200
    run = run_chain(n, {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"})
    spans, queues, reports = run["spans"], run["queues"], run["reports"]
    assert len(queues["c"]) == n and len(queues["ruby"]) == n and len(queues["wasm"]) == n
    trace_of = {q["job"]: q["headers"]["traceparent"].split("-")[1] for q in queues["c"]}
    assert len(set(trace_of.values())) == n, "every job is its own trace"
    want = {j for j, t in trace_of.items() if traceidratio_sampled(t, 0.5)}
    # 200 random trace ids: both outcomes occur (all or none picked has probability 2^-199).
    assert 0 < len(want) < n, f"{len(want)} of {n} sampled"
    for q in queues["c"]:
        flag = q["headers"]["traceparent"][-2:]
        assert flag == ("01" if q["job"] in want else "00"), f"job {q['job']}: C decided {flag} for {q}"
    # The decision travels: every hop sent on the same flag it received.
    for name in ("ruby", "wasm"):
        for q in queues[name]:
            flag = q["headers"]["traceparent"][-2:]
            assert flag == ("01" if q["job"] in want else "00"), f"{name} queue, job {q['job']}: flag {flag}"

    jobs = by_job(spans)
    got = set(jobs)
    assert got == want, (f"traces that arrived differ from the traceidratio decision: missing "
                         f"{sorted(want - got)[:10]}, unexpected {sorted(got - want)[:10]}")
    for j in sorted(want):  # whole: all four languages' spans, one trace, the right parents
        check_job(j, jobs[j], queues["c"][j]["headers"]["traceparent"])
        assert jobs[j][("wasm", "consume job")]["attributes"]["chain.tenant"] == tenant(j)
    assert len(spans) == len(want) * len(CHAIN)
    # Unsampled jobs still carried their baggage through every hop (only recording is left out).
    for lang in ("python", "ruby", "wasm"):
        assert reports[lang]["baggage"] == {str(j): tenant(j) for j in range(n)}, f"{lang} baggage"
    # Accounting: a span the sampler left out is sampled_out, never recorded or dropped.
    for lang in SERVICE:
        per = SPANS_PER_JOB[lang]
        got_stats = tuple(stat(reports, lang, f) for f in ("spans_recorded", "sampled_out", "dropped"))
        assert got_stats == (per * len(want), per * (n - len(want)), 0), f"{lang}: {reports[lang]['stats']}"

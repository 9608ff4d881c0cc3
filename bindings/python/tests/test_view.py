"""polytel.view's reader and CLI on real files: the smoke suite's Python worker and examples/python/jobs.py write
them with the file exporter; corrupt input is made from those real files. The page itself is checked in a real
browser by tests/view (make test-view)."""
import json
import os
import re
import subprocess
import sys

import pytest
from conftest import REPO, worker_env

from polytel import view

SMOKE_WORKER = REPO / "tests" / "smoke" / "workers" / "worker.py"
SCENARIO = REPO / "tests" / "smoke" / "scenario.json"
JOBS = REPO / "examples" / "python" / "jobs.py"


def export_env(out, service, **extra):
    return worker_env(None, service, TELEMETRY_ENABLED="true", POLYTEL_EXPORTER="file", POLYTEL_EXPORT_DIR=str(out),
                      POLYTEL_CONSOLE="off", **extra)  # fmt: skip


def run(cmd, env, cwd):
    p = subprocess.run(cmd, env=env, cwd=str(cwd), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory):
    """The smoke scenario run by the Python worker (a fork child included), exported to OTLP/JSON lines."""
    out = tmp_path_factory.mktemp("smoke")
    run([sys.executable, str(SMOKE_WORKER), str(SCENARIO)], export_env(out, "view-smoke"), out)
    return out


@pytest.fixture(scope="module")
def jobs_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("jobs")
    run([sys.executable, str(JOBS), "--jobs", "3", "--fail", "1"],
        export_env(out, "view-jobs", OTEL_METRIC_EXPORT_INTERVAL="100", POLYTEL_JOB_STEP=None), out)  # fmt: skip
    return out


def raw(folder):
    """What the files say, read with nothing but json: (spans, logs, points), each item with its resource."""
    spans, logs, points = [], [], []
    for name in ("traces.jsonl", "logs.jsonl", "metrics.jsonl"):
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            continue
        for line in open(path, encoding="utf-8"):
            obj = json.loads(line)
            for key, sub, items, out in (("resourceSpans", "scopeSpans", "spans", spans),
                                         ("resourceLogs", "scopeLogs", "logRecords", logs),
                                         ("resourceMetrics", "scopeMetrics", "metrics", points)):  # fmt: skip
                for rb in obj.get(key, []):
                    res = {kv["key"]: next(iter(kv["value"].values())) for kv in rb["resource"].get("attributes", [])}
                    for sb in rb[sub]:
                        for it in sb[items]:
                            it = dict(it, _res=res, _attrs={a["key"]: next(iter(a["value"].values()))
                                                             for a in it.get("attributes", [])})  # fmt: skip
                            if key == "resourceMetrics":
                                kind = next(k for k in ("sum", "gauge", "histogram") if k in it)
                                for dp in it[kind]["dataPoints"]:
                                    out.append(dict(dp, _name=it["name"], _kind=kind, _res=res))
                            else:
                                out.append(it)
    return spans, logs, points


def strs(model, i):
    return model["strings"][i]


def test_smoke_files_read_whole(smoke_dir):
    spans, logs, points = raw(smoke_dir)
    assert spans and logs and points
    m = view.read([str(smoke_dir)])
    assert m["input"]["badLines"] == m["input"]["badRecords"] == 0
    assert len(m["spans"]["start"]) == len(spans)
    assert len(m["logs"]["time"]) == len(logs)
    assert sum(len(s["points"]) for s in m["series"]) == len(points)
    # Processes: the worker and its fork child, one per pid.
    pids = sorted({str(x["_res"]["process.pid"]) for x in spans + logs + points})
    assert len(pids) == 2
    assert sorted(str(p["pid"]) for p in m["processes"]) == pids
    # Spans: names, parents (by name) and times exactly as exported; t0 is the earliest time.
    t0 = int(m["t0"])
    by_id = {s["spanId"]: s for s in spans}
    got = {}
    for i, sid in enumerate(m["spans"]["id"]):
        p = m["spans"]["parent"][i]
        got[sid] = (strs(m, m["spans"]["name"][i]), m["spans"]["start"][i] + t0, m["spans"]["end"][i] + t0,
                    m["spans"]["id"][p] if p >= 0 else "")  # fmt: skip
    want = {s["spanId"]: (s["name"], int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"]), s.get("parentSpanId", ""))
            for s in spans}  # fmt: skip
    assert got == want
    assert {v[0] for v in got.values()} == {"request", "db.query"}
    assert got[next(k for k, v in got.items() if v[0] == "db.query")][3] == next(k for k, v in got.items() if v[0] == "request")
    # Logs: each one on the span whose id it carries; lanes are (process, thread.id) as on the wire.
    for j, si in enumerate(m["logs"]["span"]):
        body = m["logs"]["body"][j]
        src = next(lg for lg in logs if lg["body"]["stringValue"] == body)
        assert (m["spans"]["id"][si] if si >= 0 else "") == src.get("spanId", "")
    lanes = {(str(m["processes"][p]["pid"]), tid) for p, tid, _ in m["lanes"]}
    assert lanes == {(str(x["_res"]["process.pid"]), int(x["_attrs"]["thread.id"])) for x in spans + logs}
    names = {(str(m["processes"][p]["pid"]), tid): name for p, tid, name in m["lanes"]}
    assert set(names.values()) == {"MainThread"}  # the Python binding passes threading's name
    assert min(m["spans"]["start"] + m["logs"]["time"]) == 0


def test_accounting_is_the_newest_self_metric(smoke_dir):
    _, _, points = raw(smoke_dir)
    m = view.read([str(smoke_dir)])
    for p in m["processes"]:
        mine = [x for x in points if str(x["_res"]["process.pid"]) == str(p["pid"]) and x["_name"].startswith("polytel.")]
        newest = {}
        for x in sorted(mine, key=lambda x: int(x["timeUnixNano"])):
            reason = next((a["value"]["stringValue"] for a in x.get("attributes", []) if a["key"] == "reason"), None)
            field = x["_name"][len("polytel."):] + ("." + reason if reason else "")
            newest[field] = int(x["asInt"]) if "asInt" in x else x["asDouble"]
        assert p["acct"] == newest
        assert {"recorded", "exported", "unconfirmed", "pending", "dropped.buffer_full", "dropped.export",
                "dropped.invalid"} <= set(newest)
        assert p["counts"]["spans"] + p["counts"]["logs"] == sum(
            1 for x in raw(smoke_dir)[0] + raw(smoke_dir)[1] if str(x["_res"]["process.pid"]) == str(p["pid"]))


def test_jobs_threads_async_and_exceptions(jobs_dir):
    spans, logs, _ = raw(jobs_dir)
    m = view.read([str(jobs_dir)])
    assert len(m["spans"]["start"]) == len(spans) and len(m["logs"]["time"]) == len(logs)
    name = lambda i: strs(m, m["spans"]["name"][i])  # noqa: E731
    lane_name = lambda i: m["lanes"][m["spans"]["lane"][i]][2]  # noqa: E731
    n = len(m["spans"]["start"])
    # The thread pool's spans are on their own threads, children of "job" on the main thread.
    transforms = [i for i in range(n) if name(i) == "transform"]
    assert len(transforms) == 2 * 2  # jobs 0 and 2 (job 1 fails validation)
    assert {lane_name(i) for i in transforms} <= {"transform_0", "transform_1"}
    for i in transforms:
        p = m["spans"]["parent"][i]
        assert name(p) == "job" and lane_name(p) == "MainThread"
    # asyncio: three downloads per fetch, overlapping in time on one thread.
    fetches = [i for i in range(n) if name(i) == "fetch"]
    for f in fetches:
        dl = [i for i in range(n) if m["spans"]["parent"][i] == f]
        assert len(dl) == 3 and {name(i) for i in dl} == {"download"}
        assert len({m["spans"]["lane"][i] for i in dl}) == 1
        assert max(m["spans"]["start"][i] for i in dl) < min(m["spans"]["end"][i] for i in dl)
    # The failed job: validate has the error status and the exception event; the log carries it as attributes.
    bad = [i for i in range(n) if name(i) == "validate" and m["spans"]["status"][i] == 2]
    assert len(bad) == 1
    ((_, ev_name, ev_attrs),) = m["spans"]["events"][str(bad[0])]
    attrs = {strs(m, k): v for k, v in m["attrsets"][ev_attrs]}
    assert ev_name == "exception" and attrs["exception.type"] == "ValueError"
    rejected = [j for j, b in enumerate(m["logs"]["body"]) if b == "job 1 rejected"]
    assert len(rejected) == 1 and m["logs"]["sev"][rejected[0]] == 17
    assert "exception.stacktrace" in {strs(m, k) for k, _ in m["attrsets"][m["logs"]["attrs"][rejected[0]]]}
    # Metrics: a counter by outcome, a gauge, histograms with their buckets.
    series = {(s["name"], s["kind"]) for s in m["series"]}
    assert {("jobs.done", "sum"), ("queue.depth", "gauge"), ("job.duration", "histogram")} <= series
    hist = next(s for s in m["series"] if s["name"] == "job.duration")
    assert hist["last"]["count"] == 2 and len(hist["last"]["buckets"]) == len(hist["last"]["bounds"]) + 1


def corrupt_copy(src, dst):
    """Real files with damage a crash or a disk error leaves: a torn last line, garbage, a non-OTLP object,
    a span whose id is not hex. Returns what was done."""
    dst.mkdir()
    for name in ("traces.jsonl", "logs.jsonl", "metrics.jsonl"):
        (dst / name).write_bytes((src / name).read_bytes())
    tl = (dst / "traces.jsonl").read_text().splitlines(keepends=True)
    first = json.loads(tl[0])
    first["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "not-hex-at-all!!"
    tl[0] = json.dumps(first) + "\n"
    torn = tl[-1][: len(tl[-1]) // 2]  # a torn last line: half of a real one, no newline
    (dst / "traces.jsonl").write_text("".join(tl) + torn)
    ll = (dst / "logs.jsonl").read_text().splitlines(keepends=True)
    ll.insert(1, "{\"resourceLogs\": [{\"resource\"\n")
    ll.insert(2, "[1, 2, 3]\n")
    (dst / "logs.jsonl").write_text("".join(ll))
    return {"torn_spans": len(json.loads(tl[-1])["resourceSpans"][0]["scopeSpans"][0]["spans"])}


def test_corrupt_lines_skipped_and_counted(smoke_dir, tmp_path):
    spans, logs, points = raw(smoke_dir)
    bad_dir = tmp_path / "bad"
    corrupt_copy(smoke_dir, bad_dir)
    m = view.read([str(bad_dir)])
    inp = m["input"]
    assert inp["badLines"] == 3 and inp["badRecords"] == 1
    assert len(m["spans"]["start"]) == len(spans) - 1  # the bad id; the torn line was a copy of a whole one
    assert len(m["logs"]["time"]) == len(logs)
    assert sum(len(s["points"]) for s in m["series"]) == len(points)
    text = "\n".join(inp["examples"])
    assert re.search(r"traces\.jsonl:\d+: truncated line", text)
    assert re.search(r"logs\.jsonl:2: not JSON", text)
    assert "logs.jsonl:3: a JSON list, not an Export*ServiceRequest object" in text
    assert "record skipped: span spanId is not hex" in text
    # The CLI still writes the page, says so on stderr, and the page carries the counts.
    out = tmp_path / "bad.html"
    p = subprocess.run([sys.executable, "-m", "polytel.view", str(bad_dir), "-o", str(out)], capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "skipped 3 corrupt line(s) and 1 malformed record(s)" in p.stderr
    data = page_data(out.read_text())
    assert (data["input"]["badLines"], data["input"]["badRecords"]) == (3, 1)


def test_empty_and_missing_folders(smoke_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not telemetry\n")
    out = tmp_path / "x.html"
    cli = [sys.executable, "-m", "polytel.view", "-o", str(out)]
    p = subprocess.run(cli + [str(empty)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        "polytel.view: %s has no traces.jsonl, logs.jsonl or metrics.jsonl" % empty,
        "polytel.view: nothing to show: no span, log or metric could be read from %s; no page written" % empty]
    assert not out.exists()
    p = subprocess.run(cli + [str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "nope does not exist" in p.stderr
    # Only empty lines, or only garbage: nothing could be read either.
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "traces.jsonl").write_text("\n\n")
    (junk / "logs.jsonl").write_text("garbage\n")
    p = subprocess.run(cli + [str(junk)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "skipped 1 corrupt line(s)" in p.stderr and "nothing to show" in p.stderr
    # An empty folder beside a real one: a page, one line about the empty one, and the page says it too.
    p = subprocess.run(cli + [str(empty), str(smoke_dir)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stderr.splitlines() == ["polytel.view: %s has no traces.jsonl, logs.jsonl or metrics.jsonl" % empty]
    assert re.match(r"polytel\.view: \d+ spans, \d+ logs, \d+ metric points from 3 files \(2 processes\) -> ", p.stdout)
    assert page_data(out.read_text())["input"]["empty"] == [str(empty)]
    p = subprocess.run([sys.executable, "-m", "polytel.view"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "usage:" in p.stderr


def test_a_file_reached_twice_is_read_once(smoke_dir):
    m = view.read([str(smoke_dir), str(smoke_dir / "traces.jsonl")])
    assert len(m["input"]["files"]) == 3 and m["input"]["duplicates"] == 0
    assert len(m["spans"]["start"]) == len(raw(smoke_dir)[0])


def page_data(html):
    m = re.search(r'<script type="application/json" id="polytel-data">(.*?)</script>', html, re.S)
    assert m, "no data block"
    return json.loads(m.group(1))


def test_page_is_self_contained(jobs_dir, tmp_path):
    out = tmp_path / "page.html"
    model = view.write([str(jobs_dir)], str(out))
    html = out.read_text(encoding="utf-8")
    assert page_data(html) == json.loads(json.dumps(model))
    # Everything but the data (which holds whatever the telemetry said) makes no reference outside the page.
    shell = re.sub(r'(<script type="application/json" id="polytel-data">).*?(</script>)', r"\1\2", html, flags=re.S)
    bad = re.search(r'https?://|<link\b(?! rel="icon" href="data:,">)|<script[^>]*\bsrc=|@import|url\(|<iframe|<img', shell)
    assert bad is None, shell[max(0, bad.start() - 60):bad.end() + 60]
    # A value that could close the script element is escaped, and read back intact.
    evil = tmp_path / "evil"
    evil.mkdir()
    lines = (jobs_dir / "logs.jsonl").read_text().splitlines()
    obj = json.loads(lines[0])
    obj["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["body"] = {"stringValue": "</script><script>alert(1)</script>"}
    (evil / "logs.jsonl").write_text(json.dumps(obj) + "\n")
    view.write([str(evil)], str(out))
    html = out.read_text(encoding="utf-8")
    assert "</script><script>alert(1)" not in html
    assert "</script><script>alert(1)</script>" in page_data(html)["logs"]["body"]

"""test_collector — the C library against the real OpenTelemetry Collector (tests/collector, otelcol v0.165.0): an
outage (the Collector killed mid-run and restarted on the same port) with the accounting identity and cumulative
snapshots arriving in time order, the Collector's request-size limit (its 400 and message in polytel's warning), and
the span model read back from the Collector's output."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter

import pytest

from worker_harness import BUILD, ROOT, check_spans, expected_log_bodies, run_worker, worker_env

sys.path.insert(0, os.path.join(ROOT, "tests", "collector"))
from otelcol import record_figures  # noqa: E402
from otelcol_fixtures import collector_factory  # noqa: E402,F401
from test_span_model import LIMITS, check_model, run as run_span_model  # noqa: E402

OUTAGE = os.path.join(BUILD, "tests", "outage")
SEQ = re.compile(r"seq (\d+)$")


def received_records(got: dict) -> tuple[int, int, Counter]:
    """(distinct spans + logs received, duplicates, log bodies)."""
    span_ids = Counter(s["span_id"] for s in got["spans"])
    bodies = Counter(lg["body"] for lg in got["logs"])
    dup = sum(n - 1 for n in span_ids.values()) + sum(n - 1 for n in bodies.values())
    return len(span_ids) + len(bodies), dup, bodies


def check_identity(s: dict) -> None:
    assert s["recorded"] == s["exported"] + s["dropped"] + s["unconfirmed"] + s["pending"], s
    assert s["dropped"] == (s["dropped_buffer_full"] + s["dropped_invalid"] + s["dropped_depth"] +
                            s["dropped_export"] + s["dropped_rejected"]), s


def check_snapshots(points: list[dict], name: str) -> list[tuple[int, int]]:
    """Cumulative snapshots of `name` in arrival order: time and value never go backwards; start <= time."""
    series = [(p["time_ns"], p["value"]) for p in points if p["name"] == name]
    assert series, f"no {name} snapshot arrived"
    for p in points:
        assert p["start_ns"] <= p["time_ns"], f"startTimeUnixNano after timeUnixNano: {p}"
    backwards = [(a, b) for a, b in zip(series, series[1:]) if b[0] < a[0] or b[1] < a[1]]
    assert not backwards, f"{name}: a snapshot arrived after a newer one (time_ns, value): {backwards[:3]} " \
                          f"of {len(series)} in arrival order"
    return series


# ------------------------------------------------------------------ outage


RATE, SECONDS, DOWN_AT, DOWN_FOR = 20_000, 6.0, 1.5, 3.0
SHUTDOWN_MS = 30_000


def test_outage_kill_and_restart(collector_factory):
    """20k logs/s for 6 s; 1.5 s in, the Collector is SIGKILLed (in-flight requests die unanswered), 3 s later a new
    one listens on the same port. Every record is exported, dropped or unconfirmed; what arrived lies within
    [exported, exported + unconfirmed]; the counter's cumulative snapshots arrive in time order."""
    assert os.access(OUTAGE, os.X_OK), f"{OUTAGE} not built: run `make build`"
    col = collector_factory()
    env = worker_env({"OTEL_EXPORTER_OTLP_ENDPOINT": col.endpoint, "OTEL_SERVICE_NAME": "outage",
                      "OTEL_METRIC_EXPORT_INTERVAL": "200", "POLYTEL_LOG_LEVEL": "warn"})
    p = subprocess.Popen([OUTAGE, "--rate", str(RATE), "--seconds", str(SECONDS), "--shutdown-ms", str(SHUTDOWN_MS),
                          "--counter", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().startswith("STARTED")
        time.sleep(DOWN_AT)
        col.kill()
        killed_at = col.mark()
        time.sleep(DOWN_FOR)
        col.start()  # same port
        out, err = p.communicate(timeout=SECONDS + SHUTDOWN_MS / 1000 + 60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, f"outage exited {p.returncode}\n{err}"
    res = [json.loads(ln[7:]) for ln in out.splitlines() if ln.startswith("RESULT ")][0]
    got = col.received()
    seqs = [int(SEQ.match(lg["body"]).group(1)) for lg in got["logs"]]
    distinct = set(seqs)
    assert distinct <= set(range(res["emitted"]))
    assert res["recorded"] == res["emitted"] and res["pending"] == 0, res
    assert res["exported"] <= len(distinct) <= res["exported"] + res["unconfirmed"], \
        f"received {len(distinct)} distinct outside [exported, exported + unconfirmed]: {res}"
    check_identity(res)
    after = col.received(since=killed_at)
    assert after["logs"], "nothing delivered to the restarted Collector"
    series = check_snapshots(got["metrics"], "outage.events")
    assert series[-1][1] == res["counter_total"], f"last snapshot {series[-1]} != total {res['counter_total']}"
    assert "outage.events" in {m["name"] for m in after["metrics"]}
    record_figures("collector_outage", {
        "rate": RATE, "seconds": SECONDS, "down_for_s": DOWN_FOR, "recorded": res["recorded"],
        "received_distinct": len(distinct), "duplicates": len(seqs) - len(distinct), "exported": res["exported"],
        "unconfirmed": res["unconfirmed"], "dropped": res["dropped"], "dropped_buffer_full": res["dropped_buffer_full"],
        "dropped_export": res["dropped_export"], "export_retries": res["export_retries"],
        "snapshots_in_arrival_order": len(series), "snapshots_backwards": 0, "shutdown_s": res["shutdown_s"]})


def test_frozen_collector_leaves_records_unconfirmed(collector_factory):
    """The Collector is frozen (SIGSTOP) before the worker exports: connections complete and the bodies go into the
    socket buffers, but no answer comes before shutdown's deadline. Those records are unconfirmed, not dropped
    and not exported. Thawed, the Collector may still take them in: what it received lies within
    [exported, exported + unconfirmed]."""
    col = collector_factory()
    col.freeze()
    try:
        out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": col.endpoint, "POLYTEL_LOG_LEVEL": "warn"},
                         "--threads", 2, "--events", 200, "--shutdown-ms", 2000, timeout=60)
    finally:
        col.thaw()
    assert out["shutdown_rc"] != 0 and out["exported"] == 0 and out["pending"] == 0, out
    assert out["unconfirmed"] > 0, out
    check_identity(out)
    assert "unconfirmed (sent, no answer before the deadline)" in out["stderr"], out["stderr"]
    # What the thawed Collector still reads from its socket buffers arrives now; wait until nothing more comes.
    last, got = None, col.received()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(got["requests"]) != last:
        last = len(got["requests"])
        time.sleep(1.0)
        got = col.received()
    received, dup, bodies = received_records(got)
    assert not (bodies - expected_log_bodies(2, out["emitted"]))
    assert out["exported"] <= received - dup <= out["exported"] + out["unconfirmed"], (received, dup, out)
    record_figures("collector_frozen", {"recorded": out["recorded"], "exported": out["exported"],
                                        "unconfirmed": out["unconfirmed"], "dropped": out["dropped"],
                                        "received_after_thaw": received, "duplicates": dup})


# ------------------------------------------------------------------ request-size limit

TOO_LARGE = {
    "spans": re.compile(r'export of spans rejected by the collector \(HTTP 400: "([^"]*request body too large[^"]*)"\);'
                        r" (\d+) spans dropped"),
    "logs": re.compile(r'export of logs rejected by the collector \(HTTP 400: "([^"]*request body too large[^"]*)"\);'
                       r" (\d+) log records dropped"),
}


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_request_size_limit_is_reported_with_its_message(collector_factory, protocol):
    """max_request_body_size 4 KiB: the Collector answers 400 "http: request body too large" to every batch of
    spans and logs. Each signal gets its warning line with the Collector's message; the batches are counted."""
    col = collector_factory(max_request_body_size=4096)
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": col.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                      "POLYTEL_LOG_LEVEL": "warn"}, "--threads", 2, "--events", 300, "--shutdown-ms", 30000)
    err = out["stderr"]
    for signal, rx in TOO_LARGE.items():
        m = rx.search(err)
        assert m, f"no warning for {signal} carrying the Collector's 400 message:\n{err}"
        assert int(m.group(2)) > 0
    got = col.received()
    received, dup, bodies = received_records(got)
    assert dup == 0 and not (bodies - expected_log_bodies(2, out["emitted"]))
    check_spans([s for s in got["spans"] if s["name"] == "outer"])
    assert out["exported"] <= received <= out["exported"] + out["unconfirmed"], out
    check_identity(out)
    assert out["dropped_export"] > 0 and out["pending"] == 0, out
    record_figures(f"collector_size_limit_{protocol.split('/')[1]}", {
        "recorded": out["recorded"], "received": received, "exported": out["exported"],
        "dropped_export": out["dropped_export"], "unconfirmed": out["unconfirmed"],
        "warnings": [ln for ln in err.splitlines() if "request body too large" in ln][:4]})


# ------------------------------------------------------------------ the span model


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_span_model_through_the_real_collector(collector_factory, protocol):
    """test_span_model's spans (kinds, events, links, arrays, scopes, flags, dropped counts) read back from the
    Collector's own JSON output: the real Collector accepts and keeps every field as polytel sent it."""
    col = collector_factory()
    printed, st = run_span_model({"OTEL_EXPORTER_OTLP_ENDPOINT": col.endpoint,
                                  "OTEL_EXPORTER_OTLP_PROTOCOL": protocol, **LIMITS})
    got = col.wait_for(lambda g: len(g["spans"]) >= 5 and len(g["logs"]) >= 3)
    check_model(got, printed, st)

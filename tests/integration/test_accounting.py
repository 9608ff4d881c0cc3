"""test_accounting — the honest outcomes against the test receiver: partial_success, unconfirmed records, the retry
floor under Retry-After: 0, metric snapshots in time order, self-metrics that agree with the stats, warning lines."""
from __future__ import annotations

import pytest

from worker_harness import ROOT, check_spans, run_worker  # noqa: F401 (ROOT puts tests/receiver on sys.path)
from pytest_fixtures import receiver, receiver_factory  # noqa: F401

POLYTEL_ETIMEDOUT = -5
POLYTEL_EDROPPED = -9

# The pipeline's schedule (core/src/export/pipeline.c): step n = min(500 << n, 5000) ms, jittered into [step/2, step].
BACKOFF_INITIAL_MS, BACKOFF_MAX_MS = 500, 5000


def step_min(n: int) -> int:
    return min(BACKOFF_INITIAL_MS << n, BACKOFF_MAX_MS) // 2


def attempts_allowed(export_timeout_ms: int) -> int:
    """The most attempts one batch can make within its export timeout if every retry waits the shortest step."""
    t, n, a = 0, 1, 0
    while t + step_min(a) <= export_timeout_ms:
        t += step_min(a)
        n += 1
        a += 1
    return n


def identity(out: dict) -> None:
    assert out["recorded"] == out["exported"] + out["dropped"] + out["unconfirmed"] + out["pending"], out
    assert out["dropped"] == (out["dropped_buffer_full"] + out["dropped_invalid"] + out["dropped_depth"]
                              + out["dropped_export"] + out["dropped_rejected"]), out


def unique_items(got: dict) -> int:
    """Spans and logs received, each once however many times a retry sent it."""
    return len({s["span_id"] for s in got["spans"]}) + len({lg["body"] for lg in got["logs"]})


def lines(out: dict, *needles: str) -> list[str]:
    return [ln for ln in out["stderr"].splitlines() if all(n in ln for n in needles)]


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_partial_success_moves_records_to_dropped(receiver, protocol):
    receiver.set_faults([
        {"partial": {"rejected": 7, "message": "7 log records had no body"}, "path": "/v1/logs"},
        {"partial": {"rejected": 5, "message": "span name too long"}, "path": "/v1/traces"},
    ])
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol},
                     "--threads", 2, "--events", 50)
    got = receiver.received()
    identity(out)
    received = len(got["spans"]) + len(got["logs"])
    assert out["recorded"] == 300 and out["pending"] == 0 and out["unconfirmed"] == 0
    # What the collector refused is counted as dropped_rejected, the rest as exported, and nothing else.
    assert out["exported"] == received
    assert 0 < out["dropped_rejected"] <= 12 and out["dropped"] == out["dropped_rejected"], out
    assert out["exported"] + out["dropped_rejected"] == out["recorded"]
    assert out["shutdown_rc"] == POLYTEL_EDROPPED
    assert lines(out, "export of logs partially rejected by the collector (partial_success: \"7 log records had "
                      "no body\")", "(counted as dropped_rejected)")
    assert lines(out, "export of spans partially rejected by the collector (partial_success: \"span name too "
                      "long\")", "(counted as dropped_rejected)")
    assert lines(out, f"shutdown: {out['dropped_rejected']} records dropped (dropped_rejected "
                      f"{out['dropped_rejected']}), 0 unconfirmed")
    receiver.assert_no_errors()


def test_rejection_carries_the_collectors_message(receiver):
    receiver.set_faults([{"status": 400, "message": "http: request body too large", "count": 3,
                          "path": "/v1/logs"},
                         {"status": 400, "message": "http: request body too large", "count": 3,
                          "path": "/v1/traces"}])
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}, "--threads", 2, "--events", 50)
    identity(out)
    got = receiver.received()
    assert out["exported"] == len(got["spans"]) + len(got["logs"])
    assert out["dropped"] == out["dropped_export"] == out["recorded"] - out["exported"] > 0
    # One line per signal (and cause) in the interval, each with the collector's words and the counts.
    for sig in ("logs", "spans"):
        mine = lines(out, f"export of {sig} rejected by the collector (HTTP 400: \"http: request body too large\")")
        assert len(mine) == 1 and "(counted as dropped_export)" in mine[0], out["stderr"]


@pytest.mark.parametrize("retry_after", ["0", "Thu, 01 Jan 1970 00:00:00 GMT"])
def test_retry_after_zero_is_bounded_by_the_schedule(receiver_factory, retry_after):
    """503 + Retry-After: 0 (or a date long past) for the whole export timeout: each retry waits at least the
    backoff step, so a batch makes at most what the schedule allows (plus the one shutdown's flush may send)."""
    r = receiver_factory(capture_bodies=True)
    r.set_faults([{"status": 503, "retry_after": retry_after, "count": 100000}])
    export_timeout_ms = 4000
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": r.endpoint, "OTEL_METRICS_EXPORTER": "none",
                      "OTEL_BLRP_EXPORT_TIMEOUT": str(export_timeout_ms),
                      "OTEL_BSP_EXPORT_TIMEOUT": str(export_timeout_ms)},
                     "--threads", 1, "--events", 20, "--shutdown-ms", 60000, timeout=120)
    identity(out)
    assert out["exported"] == 0 and out["unconfirmed"] == 0 and out["pending"] == 0
    assert out["dropped"] == out["dropped_export"] == out["recorded"] == 60
    bound = attempts_allowed(export_timeout_ms) + 1
    for path in ("/v1/logs", "/v1/traces"):
        batches = len({b["body"] for b in r.bodies() if b["path"] == path})  # a retry resends the same bytes
        assert batches >= 1
        assert batches <= r.request_count(path) <= batches * bound, (path, batches, r.request_count(path), bound)
    assert out["export_retries"] >= 1
    assert lines(out, "export of logs failed: the collector is unavailable (HTTP 503", "retries exhausted")


@pytest.mark.parametrize("case", ["shutdown deadline", "final attempt timed out"])
def test_records_that_may_have_arrived_are_unconfirmed(receiver, case):
    """The collector keeps what it got but never answers: those records are unconfirmed, never dropped, and
    exported <= received <= exported + unconfirmed."""
    receiver.set_faults([{"mode": "hold", "count": 100000}])
    if case == "shutdown deadline":
        env, shutdown_ms = {"OTEL_EXPORTER_OTLP_TIMEOUT": "120000"}, 1500
    else:
        env, shutdown_ms = {"OTEL_EXPORTER_OTLP_TIMEOUT": "300", "OTEL_BLRP_EXPORT_TIMEOUT": "1500",
                            "OTEL_BSP_EXPORT_TIMEOUT": "1500", "OTEL_METRIC_EXPORT_TIMEOUT": "1500"}, 30000
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, **env},
                     "--threads", 2, "--events", 50, "--shutdown-ms", shutdown_ms, timeout=90)
    identity(out)
    got = receiver.received()
    received = unique_items(got)
    assert out["pending"] == 0 and out["exported"] == 0
    assert out["exported"] <= received <= out["exported"] + out["unconfirmed"], (received, out)
    assert received > 0 and out["unconfirmed"] > 0
    assert out["dropped"] == out["dropped_export"] and out["dropped"] + out["unconfirmed"] == out["recorded"]
    assert out["shutdown_rc"] == POLYTEL_ETIMEDOUT
    assert lines(out, f"{out['unconfirmed']} unconfirmed (sent, no answer before the deadline)")
    if case == "final attempt timed out":
        assert lines(out, "failed: no answer in time (timeout: ", "(counted as unconfirmed)")


def test_metric_snapshots_arrive_in_time_order(receiver):
    """An outage on /v1/metrics while the counter grows: older snapshots are superseded, never sent after newer
    ones, so a reader in arrival order never sees the cumulative counter go down; start <= time always."""
    receiver.set_faults([{"status": 503, "retry_after": "0", "count": 6, "path": "/v1/metrics"}])
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_METRIC_EXPORT_INTERVAL": "20"},
                     "--threads", 2, "--events", 4000, timeout=90)
    identity(out)
    got = receiver.received()
    points = [m for m in got["metrics"] if m["name"] == "worker.events"]
    assert points, receiver.summary()
    values = [p["value"] for p in points]
    times = [p["time_ns"] for p in points]
    assert values == sorted(values), values
    assert times == sorted(times)
    assert values[-1] == 8000
    assert all(m["start_ns"] <= m["time_ns"] for m in got["metrics"])
    assert len({p["start_ns"] for p in points}) == 1  # one series, one start


def test_self_metrics_agree_with_stats(receiver):
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}, "--threads", 3, "--events", 100)
    identity(out)
    got = receiver.received()
    last = {}
    for m in got["metrics"]:
        if m["name"].startswith("polytel."):
            last[(m["name"], m["attributes"].get("reason"))] = m["value"]
    # The last snapshot went after the flush's records were settled: it says what polytel_stats() says.
    assert last[("polytel.recorded", None)] == out["recorded"] == 900
    assert last[("polytel.exported", None)] == out["exported"] == 900
    assert last[("polytel.unconfirmed", None)] == out["unconfirmed"] == 0
    assert last[("polytel.pending", None)] == 0
    for reason in ("buffer_full", "invalid", "depth", "export", "rejected"):
        assert last[("polytel.dropped", reason)] == out[f"dropped_{reason}"] == 0
    check_spans(got["spans"])

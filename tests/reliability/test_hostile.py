"""test_hostile — hostile collectors beyond tests/integration/test_faults.py: slow, 429/503 storms with Retry-After, resets mid-body, stalls that end, every non-retried status; shutdown stays bounded (hang guard = 3x the shutdown timeout) and retries follow DESIGN.md."""
from __future__ import annotations

import os
import sys
from collections import Counter

import pytest

from conftest import ROOT, BUILD

sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("POLYTEL_BUILD_DIR", BUILD)
from worker_harness import check_exact, counter_total, expected_log_bodies, run_worker  # noqa: E402

POLYTEL_ETIMEDOUT = -5
POLYTEL_EDROPPED = -9
THREADS, EVENTS = 2, 100  # 400 spans + 200 logs
ITEMS = 3 * THREADS * EVENTS


def bounded(env: dict, shutdown_ms: int, *args) -> dict:
    """Runs worker_c; returning within 3x its shutdown timeout is the hang check (never a timing assertion)."""
    return run_worker(env, "--threads", THREADS, "--events", EVENTS, "--shutdown-ms", shutdown_ms, *args,
                      timeout=3 * shutdown_ms / 1000)


def statuses(got: dict, path: str | None = None) -> Counter:
    return Counter(r["status_returned"] if r["fault"] in (None, "respond") else r["fault"]
                   for r in got["requests"] if path is None or r["path"] == path)


def test_slow_collector_delivers_everything(receiver):
    # Every answer takes 300 ms (below the request timeout): slower, nothing lost, nothing retried.
    receiver.set_faults([{"delay_ms": 300, "count": 10**6}])
    out = bounded({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}, 10000)
    got = receiver.received()
    check_exact(got, out, THREADS, EVENTS)
    assert out["export_retries"] == 0


def test_slower_than_the_request_timeout_is_retried_then_delivered(receiver):
    # Three answers arrive after the 500 ms request timeout (network errors for the client), then prompt answers.
    receiver.set_faults([{"delay_ms": 1500, "count": 2, "path": "/v1/traces"},
                         {"delay_ms": 1500, "count": 1, "path": "/v1/logs"}])
    out = bounded({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_TIMEOUT": "500"}, 15000)
    got = receiver.received()
    # A delayed answer may still be a 200 the client gave up on (its items then arrive twice, as OTLP allows):
    # compare the distinct items with the accounting.
    spans = {s["span_id"] for s in got["spans"]}
    logs = Counter(lg["body"] for lg in got["logs"])
    assert set(logs) == set(expected_log_bodies(THREADS, EVENTS))
    assert len(spans) == 2 * THREADS * EVENTS
    assert out["shutdown_rc"] == 0 and out["exported"] == out["recorded"] == 3 * THREADS * EVENTS, out
    assert out["export_retries"] >= 3


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_storm_then_recovery(receiver, status):
    # Spans: 3 consecutive refusals with Retry-After: 0, then 2 with Retry-After: 1; logs: 3 refusals, no
    # Retry-After (backoff with jitter). All retried, all delivered once. (Metrics: test_metrics_retried_at_shutdown.)
    # Retry-After: 0 waits the backoff step (never a hot loop), so a batch fits about 15 attempts in the 30 s
    # export timeout: these 5 refusals take at most 12.5 s of it. (The bound itself: tests/integration/
    # test_accounting.py::test_retry_after_zero_is_bounded_by_the_schedule.)
    receiver.set_faults([{"status": status, "count": 3, "retry_after": "0", "path": "/v1/traces"},
                         {"status": status, "count": 2, "retry_after": "1", "path": "/v1/traces"},
                         {"status": status, "count": 3, "path": "/v1/logs"}])
    out = bounded({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}, 30000)
    got = receiver.received()
    assert statuses(got, "/v1/traces")[status] == 5 and statuses(got, "/v1/logs")[status] == 3
    check_exact(got, out, THREADS, EVENTS)
    assert out["export_retries"] >= 8 and out["export_failures"] == 0


def test_metrics_retried_at_shutdown(receiver):
    # Regression (found here, fixed in 468d014): shutdown waited for logs and spans only, and a metrics request
    # refused once at shutdown was abandoned in backoff: the final counter value was lost while shutdown returned 0.
    receiver.set_faults([{"status": 503, "count": 1, "retry_after": "1", "path": "/v1/metrics"}])
    out = bounded({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}, 10000)
    got = receiver.received()
    assert statuses(got, "/v1/metrics")[503] == 1
    assert out["shutdown_rc"] == 0
    assert counter_total(got["metrics"]) == THREADS * EVENTS, "the final counter value never arrived"


@pytest.mark.parametrize("retry_after", ["1", "3600"])
def test_endless_503_storm_shutdown_is_bounded(receiver, retry_after):
    # The collector never recovers (and may ask for an hour): shutdown returns in time, everything counted as dropped.
    receiver.set_faults([{"status": 503, "count": 10**6, "retry_after": retry_after}])
    out = bounded({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}, 2000)
    # ETIMEDOUT: still retrying at the deadline; EDROPPED: a Retry-After beyond the export timeout drops at once.
    assert out["shutdown_rc"] in (POLYTEL_ETIMEDOUT, POLYTEL_EDROPPED), out
    assert out["exported"] == 0 and out["pending"] == 0
    assert out["dropped"] == out["dropped_export"] == out["recorded"] == ITEMS, out
    assert statuses(receiver.received())[503] >= 1


def test_resets_mid_body_then_recovery(receiver):
    # The collector reads half of each body and resets the connection, 10 times in a row; then it recovers.
    receiver.set_faults([{"mode": "reset", "count": 5, "path": "/v1/traces"},
                         {"mode": "reset", "count": 5, "path": "/v1/logs"}])
    out = bounded({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}, 30000)
    got = receiver.received()
    assert statuses(got)["reset"] == 10
    check_exact(got, out, THREADS, EVENTS)
    # Each reset is retried either by the pipeline or, when it hit a reused keep-alive connection before
    # any response, transparently by libcurl itself (not counted by polytel): 10 resets, <= 10 retries.
    assert 1 <= out["export_retries"] <= 10, out


def test_endless_resets_shutdown_is_bounded(receiver):
    receiver.set_faults([{"mode": "reset", "count": 10**6}])
    out = bounded({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}, 2000)
    assert out["shutdown_rc"] == POLYTEL_ETIMEDOUT
    # Reset after the body went out: the collector may have read it (this one read half), so unconfirmed.
    assert out["exported"] == 0 and out["pending"] == 0, out
    assert out["dropped"] + out["unconfirmed"] == out["recorded"] == ITEMS, out
    assert out["dropped"] == out["dropped_export"], out


def test_stall_that_ends_is_retried_after_the_request_timeout(receiver):
    # Two requests stall (never answered); the 1 s request timeout turns them into retries; then it answers.
    receiver.set_faults([{"mode": "stall", "count": 1, "path": "/v1/traces"},
                         {"mode": "stall", "count": 1, "path": "/v1/logs"}])
    out = bounded({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_TIMEOUT": "1000"}, 15000)
    got = receiver.received()
    assert statuses(got)["stall"] == 2
    check_exact(got, out, THREADS, EVENTS)
    assert out["export_retries"] >= 2


@pytest.mark.parametrize("status", [401, 403, 404, 408, 413, 500, 501])
def test_non_retryable_status_dropped_counted_not_retried(receiver, status):
    # DESIGN.md: only 429, 502, 503, 504 and network errors are retried; anything else is dropped and counted.
    receiver.set_faults([{"status": status, "count": 1, "path": "/v1/logs"}])
    # Logs in batches of 50: the refused batch is one of four.
    out = bounded({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "50"}, 10000)
    got = receiver.received()
    logs_requests = statuses(got, "/v1/logs")
    assert logs_requests[status] == 1
    assert set(logs_requests) == {status, 200}, logs_requests
    delivered_logs = len(got["logs"])
    assert 0 < delivered_logs < THREADS * EVENTS
    assert len(got["spans"]) == 2 * THREADS * EVENTS
    # Not retried: a retry of the refused batch would be another /v1/logs request (checked above) and its logs would
    # arrive. (export_retries is not asserted: after a 501 the receiver closes the connection without a
    # "Connection: close", and a request racing onto that connection is a network error, legitimately retried.)
    assert out["dropped"] == out["dropped_export"] == THREADS * EVENTS - delivered_logs, out
    assert out["recorded"] == out["exported"] + out["dropped"] and out["pending"] == 0
    assert out["export_failures"] == 1
    warned = [ln for ln in out["stderr"].splitlines() if f"export of logs rejected by the collector (HTTP {status}" in ln]
    assert len(warned) == 1 and f"{out['dropped']} log records dropped (counted as dropped_export)" in warned[0], \
        "one warning line naming the status and the count"

"""test_faults — hostile collectors against the C library: retried statuses with Retry-After, 400 not retried, resets, dead and stalled collectors with bounded shutdown, TLS verification."""
from __future__ import annotations

import socket
import time
from collections import Counter
from email.utils import formatdate

from worker_harness import ROOT, check_exact, check_spans, expected_log_bodies, run_worker  # noqa: F401
from pytest_fixtures import receiver, receiver_factory  # noqa: F401

POLYTEL_ETIMEDOUT = -5
POLYTEL_EDROPPED = -9
# A request timeout far beyond each run's hang guard: returning at all proves shutdown honoured its own timeout.
LONG_REQUEST_TIMEOUT = "120000"


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_retryable_statuses_with_retry_after_are_retried(receiver):
    receiver.set_faults([
        {"status": 503, "count": 2, "retry_after": "1"},
        {"status": 429, "count": 1, "retry_after": formatdate(time.time() + 1, usegmt=True)},
        {"status": 502, "count": 1},
        {"status": 504, "count": 1},
    ])
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
                     "--threads", 4, "--events", 100, "--shutdown-ms", 20000)
    got = receiver.received()
    statuses = Counter(r["status_returned"] for r in got["requests"])
    assert (statuses[503], statuses[429], statuses[502], statuses[504]) == (2, 1, 1, 1)
    check_exact(got, out, 4, 100)
    # Every refused logs/spans batch was retried; a refused metrics snapshot may instead be superseded by a
    # newer one already waiting (cumulative: only the latest matters), which is not a retry.
    refused = sum(1 for r in got["requests"] if r["status_returned"] in (429, 502, 503, 504))
    refused_records = sum(1 for r in got["requests"]
                          if r["status_returned"] in (429, 502, 503, 504) and r["path"] != "/v1/metrics")
    assert refused_records <= out["export_retries"] <= refused, out


def test_connection_reset_and_close_are_retried(receiver):
    receiver.set_faults([{"mode": "reset", "count": 2}, {"mode": "close", "count": 1}])
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
                     "--threads", 4, "--events", 100, "--shutdown-ms", 20000)
    got = receiver.received()
    assert Counter(r["fault"] for r in got["requests"])["reset"] == 2
    check_exact(got, out, 4, 100)


def test_400_is_dropped_and_not_retried(receiver_factory):
    r = receiver_factory(capture_bodies=True)
    r.set_faults([{"status": 400, "count": 1, "path": "/v1/traces"}])
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": r.endpoint}, "--threads", 4, "--events", 100)
    got = r.received()
    rejected = [q for q in got["requests"] if q["status_returned"] == 400]
    assert [q["path"] for q in rejected] == ["/v1/traces"]
    # Not retried: a retry would send the same bytes again.
    traces = [b["body"] for b in r.bodies() if b["path"] == "/v1/traces"]
    assert len(traces) == len(set(traces))
    spans = got["spans"]
    check_spans(spans)
    assert 0 < len(spans) < 800
    assert Counter(lg["body"] for lg in got["logs"]) == expected_log_bodies(4, 100)
    n = len(spans) + len(got["logs"])
    assert out["exported"] == n
    assert out["dropped"] == out["dropped_export"] == 800 - len(spans)
    assert out["recorded"] == out["exported"] + out["dropped"] and out["pending"] == 0


def test_dead_collector_shutdown_is_bounded():
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
                      "OTEL_EXPORTER_OTLP_TIMEOUT": LONG_REQUEST_TIMEOUT},
                     "--threads", 4, "--events", 100, "--shutdown-ms", 1000, timeout=60)
    assert out["shutdown_rc"] == POLYTEL_ETIMEDOUT
    assert out["exported"] == 0 and out["pending"] == 0
    # Connection refused: nothing was ever sent, so nothing is unconfirmed.
    assert out["dropped"] == out["dropped_export"] == out["recorded"] == 1200 and out["unconfirmed"] == 0
    # Repeated failures are reported once per signal and cause per 10 s, not per request.
    lines = [ln for ln in out["stderr"].splitlines() if "collector unreachable" in ln]
    for sig in ("spans", "logs"):
        mine = [ln for ln in lines if f"export of {sig} failed: collector unreachable (connect: " in ln]
        assert len(mine) == 1 and "retrying (" in mine[0], lines
    assert "shutdown: 1200 records dropped (dropped_export 1200), 0 unconfirmed" in out["stderr"]


def test_outage_fills_the_pool_drops_and_counts():
    """A dead collector while one thread records 1.2 M events: the 16 MiB pool fills, the excess is dropped and
    counted at record time, nothing crashes, and every event is accounted for."""
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port()}"},
                     "--threads", 1, "--events", 400000, "--shutdown-ms", 500, timeout=120)
    assert out["recorded"] == 1200000
    assert out["dropped_buffer_full"] > 0
    assert out["exported"] == 0 and out["pending"] == 0
    assert out["dropped"] == out["recorded"]


def test_stalled_collector_shutdown_is_bounded(receiver):
    receiver.set_faults([{"mode": "stall", "count": 1000}])
    for loop in ("owned", "host"):
        out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                          "OTEL_EXPORTER_OTLP_TIMEOUT": LONG_REQUEST_TIMEOUT},
                         "--threads", 4, "--events", 100, "--shutdown-ms", 1000, "--loop", loop, timeout=60)
        assert out["shutdown_rc"] == POLYTEL_ETIMEDOUT
        assert out["exported"] == 0 and out["pending"] == 0
        # Requests whose body went out are unconfirmed (the receiver holds them unread); the rest was
        # never sent and is dropped.
        assert out["dropped"] + out["unconfirmed"] == out["recorded"] == 1200, out
        assert out["dropped"] == out["dropped_export"], out
        assert out["unconfirmed"] > 0, out
        assert f"unconfirmed (sent, no answer before the deadline)" in out["stderr"]
        if loop == "host":
            assert out["loop_close"] == 0
    got = receiver.received()
    assert got["requests"] and all(q["fault"] == "stall" for q in got["requests"])
    assert got["spans"] == [] and got["logs"] == []


def test_tls_with_custom_ca(receiver_factory):
    r = receiver_factory(tls=True)
    assert r.endpoint.startswith("https://")
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": r.endpoint, "OTEL_EXPORTER_OTLP_CERTIFICATE": r.ca_path},
                     "--threads", 4, "--events", 50)
    check_exact(r.received(), out, 4, 50)


def test_tls_self_signed_fails_closed(receiver_factory):
    """A certificate that does not verify will not start verifying: dropped at once, not retried, said so."""
    r = receiver_factory(tls=True)
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": r.endpoint, "OTEL_EXPORTER_OTLP_TIMEOUT": "2000"},
                     "--threads", 2, "--events", 20, "--shutdown-ms", 10000, timeout=60)
    assert out["shutdown_rc"] == POLYTEL_EDROPPED
    assert out["exported"] == 0 and out["dropped"] == out["dropped_export"] == out["recorded"] == 120
    assert out["unconfirmed"] == 0 and out["export_retries"] == 0, out
    tls = [ln for ln in out["stderr"].splitlines() if "TLS verification" in ln]
    assert tls and all("will not heal" in ln and "not retried" in ln for ln in tls), out["stderr"]
    got = r.received()
    assert got["requests"] == [] and got["spans"] == []

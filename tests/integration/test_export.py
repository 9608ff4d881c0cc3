"""test_export — the C library end to end against the test OTLP receiver: exact accounting across threads, owned and host loops, deferred events, wire formats, headers, file exporter."""
from __future__ import annotations

import pytest

from worker_harness import ROOT, check_exact, run_worker  # noqa: F401 (ROOT puts tests/support on sys.path)
from pytest_fixtures import receiver, receiver_factory  # noqa: F401


@pytest.mark.parametrize("loop", ["owned", "host", "host-after"])
def test_exact_accounting_across_threads(receiver, loop):
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
                     "--threads", 6, "--events", 300, "--loop", loop)
    assert (out["init2"], out["phase2"]) == (0, "full")
    check_exact(receiver.received(), out, 6, 300)
    if loop != "owned":
        assert out["loop_close"] == 0, "polytel left a handle open on the host's loop"


def test_deferred_events_exported_exactly_once(receiver):
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
                     "--pre", 50, "--threads", 4, "--events", 50)
    assert (out["phase1"], out["phase2"]) == ("deferred", "full")
    check_exact(receiver.received(), out, 4, 50, pre=50)


def test_flush_delivers_everything_before_shutdown(receiver):
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
                     "--threads", 4, "--events", 200, "--flush-ms", 10000)
    assert out["flush_rc"] == 0
    check_exact(receiver.received(), out, 4, 200)


def test_flush_completes_under_continuous_load(receiver):
    """Flush waits for what was recorded before it, not for the threads to go quiet."""
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
                     "--threads", 4, "--events", 100, "--flush-under-load", 1)
    assert out["load_flush_rc"] == 0
    got = receiver.received()
    if out["shutdown_rc"] == 0:
        check_exact(got, out, 4, 100)
        return
    # The threads emit until the flush returns: on a busy machine the 5 s shutdown may not deliver all of
    # that. Then the accounting must still be exact, and honest about what may have arrived.
    assert out["recorded"] == out["exported"] + out["dropped"] + out["unconfirmed"] + out["pending"], out
    assert out["pending"] == 0 and out["dropped_invalid"] == 0, out
    received = len({s["span_id"] for s in got["spans"]}) + len({lg["body"] for lg in got["logs"]})
    assert out["exported"] <= received <= out["exported"] + out["unconfirmed"], (received, out)


@pytest.mark.parametrize("protocol,compression", [("http/protobuf", "none"), ("http/json", "none"),
                                                  ("http/protobuf", "gzip"), ("http/json", "gzip"),
                                                  ("http/protobuf", "zstd"), ("http/json", "zstd")])
def test_wire_formats(receiver, protocol, compression):
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                      "OTEL_EXPORTER_OTLP_COMPRESSION": compression},
                     "--threads", 4, "--events", 100)
    got = receiver.received()
    check_exact(got, out, 4, 100)
    reqs = got["requests"]
    assert {r["path"] for r in reqs} == {"/v1/traces", "/v1/logs", "/v1/metrics"}
    ctype = "application/json" if protocol == "http/json" else "application/x-protobuf"
    assert {r["content_type"] for r in reqs} == {ctype}
    assert {r["content_encoding"] for r in reqs} == {None if compression == "none" else compression}
    assert f"({protocol}{'' if compression == 'none' else ', ' + compression})" in out["stderr"]
    assert {r["status_returned"] for r in reqs} == {200}


def test_headers_sent_and_never_printed(receiver):
    secret = "s3cr3t-token-value"
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                      "OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={secret},x-tenant=t1"},
                     "--threads", 2, "--events", 20)
    got = receiver.received()
    check_exact(got, out, 2, 20)
    for r in got["requests"]:
        assert r["headers"].get("x-api-key") == secret
        assert r["headers"].get("x-tenant") == "t1"
        assert r["headers"].get("user-agent", "").startswith("polytel/")
    assert receiver.endpoint in out["stderr"], "the full-init line names the endpoint"
    assert secret not in out["stderr"]


def test_file_exporter(tmp_path):
    from jsonl import load_dir

    out_dir = tmp_path / "nested" / "out"
    out = run_worker({"POLYTEL_EXPORTER": "file", "POLYTEL_EXPORT_DIR": str(out_dir)},
                     "--pre", 10, "--threads", 4, "--events", 100)
    assert sorted(p.name for p in out_dir.iterdir()) == ["logs.jsonl", "metrics.jsonl", "traces.jsonl"]
    for p in out_dir.iterdir():
        assert p.read_bytes().endswith(b"\n")
    check_exact(load_dir(str(out_dir)), out, 4, 100, pre=10)


@pytest.mark.parametrize("status", [415, 400])
def test_collector_refusing_zstd_gets_gzip_and_loses_nothing(receiver_factory, status):
    """A collector without zstd (answering 415, or 400, about the content encoding, as the Collector's
    confighttp does) gets the same records in gzip: one warning, nothing dropped, nothing sent twice."""
    rx = receiver_factory(refuse_encodings={"zstd": status})
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint, "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"},
                     "--threads", 4, "--events", 100)
    got = rx.received()
    check_exact(got, out, 4, 100)
    reqs = got["requests"]
    refused = [r for r in reqs if r["content_encoding"] == "zstd"]
    assert refused and all(r["status_returned"] == status for r in refused)
    assert {r["status_returned"] for r in reqs if r["content_encoding"] == "gzip"} == {200}
    # After the first refusal nothing new goes out in zstd: only requests already in flight then (at most
    # one per signal and connection) can still arrive in it.
    first_gzip = next(i for i, r in enumerate(reqs) if r["content_encoding"] == "gzip")
    assert len([r for r in reqs[first_gzip:] if r["content_encoding"] == "zstd"]) <= 4
    lines = [l for l in out["stderr"].splitlines() if "zstd" in l]
    assert len(lines) == 2, out["stderr"]  # the full-init line names zstd; then exactly one warning
    assert "refused zstd" in lines[1] and f"HTTP {status}" in lines[1] and "gzip" in lines[1]

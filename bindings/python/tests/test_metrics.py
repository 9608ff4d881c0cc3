"""Metrics: exact counter totals per series, gauges, histograms, argument checks."""
import pytest
from conftest import last_points, of_service, run_worker, worker_env

WORKER = """
import json, polytel
polytel.bootstrap_worker()
for i in range(1000):
    polytel.counter_add("jobs.done")
for i in range(250):
    polytel.counter_add("bytes.sent", 4, "By", route="/a")
    polytel.counter_add("bytes.sent", value=1, unit="By", route="/b")
polytel.counter_add("big", 2**40)
polytel.gauge_set("queue.depth", 3, "{item}")
polytel.gauge_set("queue.depth", 7.5, "{item}")
for v in (1, 4, 6, 30, 2000):
    polytel.histogram_record("latency", v, "ms", op="get")
errors = []
for call in (lambda: polytel.counter_add("x", 1.5), lambda: polytel.counter_add("x", -1),
             lambda: polytel.counter_add(3), lambda: polytel.gauge_set("g"), lambda: polytel.gauge_set("g", "high")):
    try:
        call()
        errors.append(None)
    except (TypeError, ValueError) as e:
        errors.append(type(e).__name__)
print("RESULT " + json.dumps({"errors": errors, "rc": polytel.shutdown(timeout_ms=5000)}))
"""


@pytest.fixture(scope="module")
def metrics():
    from otlp_receiver import Receiver

    receiver, service = Receiver().start(), "py-metrics"
    try:
        r = run_worker(WORKER, worker_env(receiver, service, TELEMETRY_ENABLED="true")).check().result()
        assert r["rc"] == 0
        yield r, of_service(receiver.received()["metrics"], service)
    finally:
        receiver.stop()


def test_counters_exact(metrics):
    _, got = metrics
    jobs = last_points(got, "jobs.done")
    assert [(p["value"], p["type"], p["is_monotonic"]) for p in jobs.values()] == [(1000, "sum", True)]
    sent = {dict(k)["route"]: p for k, p in last_points(got, "bytes.sent").items()}
    assert sent["/a"]["value"] == 1000
    assert sent["/b"]["value"] == 250
    assert sent["/a"]["unit"] == "By"
    assert [p["value"] for p in last_points(got, "big").values()] == [2**40]


def test_gauge_last_value(metrics):
    _, got = metrics
    pts = list(last_points(got, "queue.depth").values())
    assert [(p["type"], p["value"]) for p in pts] == [("gauge", 7.5)]


def test_histogram(metrics):
    _, got = metrics
    (p,) = last_points(got, "latency").values()
    assert p["type"] == "histogram"
    assert p["attributes"] == {"op": "get"}
    assert p["count"] == 5
    assert p["sum"] == 2041.0
    assert p["explicit_bounds"] == [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000]
    assert sum(p["bucket_counts"]) == 5
    assert p["bucket_counts"][1] == 2  # (0, 5]: 1 and 4


def test_argument_errors(metrics):
    r, _ = metrics
    assert r["errors"] == ["TypeError", "ValueError", "TypeError", "TypeError", "TypeError"]

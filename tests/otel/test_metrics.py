"""Metrics: the OTel API's instruments on polytel's series; observable callbacks run each export interval."""
from conftest import last_points, of_service, run_worker, worker_env

METRICS = r"""
import json, threading, time
import polytel, polytel.otel
polytel.bootstrap_worker()
polytel.otel.install()
from opentelemetry import metrics
from opentelemetry.metrics import Observation
m = metrics.get_meter("lib.metrics", "2.0")
c = m.create_counter("jobs.done", unit="1", description="jobs finished")
c.add(2, {"queue": "a"}); c.add(3, {"queue": "a"}); c.add(1, {"queue": "b"})
c.add(-5, {"queue": "a"})                       # refused with a warning: a counter only goes up
c.add(1, {"unit": "x"})                         # a key polytel's metric calls cannot take: a warning, no raise
f = m.create_counter("bytes.sent", unit="By")
for _ in range(10):
    f.add(0.25)                                 # 2.5 in total: 2 whole units reach polytel's int64 counter
ud = m.create_up_down_counter("queue.depth")
ud.add(5, {"q": "x"}); ud.add(-2, {"q": "x"})
h = m.create_histogram("latency", unit="ms", explicit_bucket_boundaries_advisory=[1.0, 10.0, 100.0])
for v in (0.5, 7, 7, 300):
    h.record(v, {"route": "/"})
h.record(10, {"route": "/b"})                     # another series of the instrument: the same advice
# Advice set first stays (another meter asking for other bounds gets a warning); bad advice keeps the defaults.
metrics.get_meter("lib.other").create_histogram("latency", unit="ms",
                                                explicit_bucket_boundaries_advisory=[2.0, 3.0]).record(2.5)
plain = m.create_histogram("plain.hist")
bad = m.create_histogram("bad.hist", explicit_bucket_boundaries_advisory=[10.0, 5.0])
odd = m.create_histogram("odd.hist", explicit_bucket_boundaries_advisory=["ten"])
one = m.create_histogram("one.bucket", explicit_bucket_boundaries_advisory=[])
for x in (plain, bad, odd, one):
    x.record(6)
g = m.create_gauge("temperature", unit="Cel")
g.set(20.5); g.set(21.5)

calls = {"n": 0}
done = threading.Event()
def cumulative(options):
    calls["n"] += 1
    if calls["n"] >= 3:
        done.set()
    return [Observation(10 * calls["n"], {"cpu": "0"})]
def gauge_cb(options):
    return [Observation(0.75, {"disk": "/"})]
def updown_gen():
    while True:
        options = yield [Observation(-4, {})]
m.create_observable_counter("cpu.time", callbacks=[cumulative], unit="s")
m.create_observable_gauge("disk.used", callbacks=[gauge_cb])
gen = updown_gen(); next(gen)
m.create_observable_up_down_counter("threads.delta", callbacks=[gen])
def broken(options):
    raise ValueError("sensor gone")
m.create_observable_gauge("broken.gauge", callbacks=[broken])
assert done.wait(60), "the callbacks did not run three times"   # hang guard
metrics.get_meter_provider().shutdown()   # a last collection, then no callback runs again
calls_at_end = calls["n"]
polytel.shutdown()
print("RESULT " + json.dumps({"calls": calls_at_end}))
"""


def test_instruments_and_callbacks(receiver, service):
    w = run_worker(METRICS, worker_env(receiver, service)).check()
    calls = w.result()["calls"]
    assert calls >= 3
    assert "Counter 'jobs.done': add(-5) ignored" in w.stderr
    assert "metric 'jobs.done': points with an attribute named 'value' or 'unit' are dropped" in w.stderr
    assert "observable 'broken.gauge': callback" in w.stderr and "ValueError: sensor gone" in w.stderr
    assert w.stderr.count("sensor gone") == 1  # once, not once per interval

    def have(s):
        pts = of_service(s["metrics"], service)
        cpu = last_points(pts, "cpu.time")
        return cpu and list(cpu.values())[0]["value"] >= 30
    snap = receiver.wait_for(have, timeout=30)
    pts = of_service(snap["metrics"], service)

    jobs = last_points(pts, "jobs.done")
    assert {k: p["value"] for k, p in jobs.items()} == {(("queue", "a"),): 5, (("queue", "b"),): 1}
    p = jobs[(("queue", "a"),)]
    assert (p["type"], p["is_monotonic"], p["unit"]) == ("sum", True, "1")
    assert [p["value"] for p in last_points(pts, "bytes.sent").values()] == [2]
    depth = last_points(pts, "queue.depth")[(("q", "x"),)]
    assert (depth["type"], depth["value"]) == ("gauge", 3.0)
    lat = last_points(pts, "latency")[(("route", "/"),)]
    assert (lat["type"], lat["count"], lat["sum"], lat["min"], lat["max"]) == ("histogram", 4, 314.5, 0.5, 300)
    assert (lat["explicit_bounds"], lat["bucket_counts"]) == ([1.0, 10.0, 100.0], [1, 2, 0, 1])
    lat_b = last_points(pts, "latency")[(("route", "/b"),)]
    assert (lat_b["explicit_bounds"], lat_b["bucket_counts"]) == ([1.0, 10.0, 100.0], [0, 1, 0, 0])
    lat_other = last_points(pts, "latency")[()]
    assert (lat_other["explicit_bounds"], lat_other["bucket_counts"]) == ([1.0, 10.0, 100.0], [0, 1, 0, 0])
    assert 'histogram "latency": other bucket bounds were set for it first; those stay' in w.stderr
    default = [0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
               10000.0]
    for name in ("plain.hist", "bad.hist", "odd.hist"):
        (p,) = last_points(pts, name).values()
        assert (p["explicit_bounds"], p["bucket_counts"][:3], p["count"]) == (default, [0, 0, 1], 1), name
    assert ('histogram "bad.hist": bucket bounds refused (bound 1 is not above the one before); they must be '
            'finite and strictly increasing; it keeps its bounds') in w.stderr
    assert "histogram 'odd.hist': explicit_bucket_boundaries_advisory ['ten'] ignored" in w.stderr
    (p,) = last_points(pts, "one.bucket").values()
    assert (p["explicit_bounds"], p["bucket_counts"], p["sum"]) == ([], [1], 6.0)
    assert [p["value"] for p in last_points(pts, "temperature").values()] == [21.5]
    # The cumulative callback value (10 * calls) arrives as a cumulative sum: its latest is the last observation.
    cpu = last_points(pts, "cpu.time")[(("cpu", "0"),)]
    assert cpu["type"] == "sum" and cpu["value"] == 10 * calls and cpu["unit"] == "s"
    assert [p["value"] for p in last_points(pts, "disk.used").values()] == [0.75]
    assert [p["value"] for p in last_points(pts, "threads.delta").values()] == [-4.0]
    assert last_points(pts, "broken.gauge") == {}

"""Several Python threads recording at once: exact totals, nothing lost or doubled."""
from conftest import last_points, of_service, run_worker, worker_env

WORKER = """
import json, logging, threading, polytel
polytel.bootstrap_worker()
log = logging.getLogger("threads")
log.addHandler(polytel.LoggingHandler())
log.propagate = False
log.setLevel(logging.INFO)
N_THREADS, N = 8, 400
start = threading.Barrier(N_THREADS)

def work(t):
    start.wait()
    for i in range(N):
        polytel.info("thread log", t=t, i=i)
        with polytel.span("thread-span", t=t, i=i):
            polytel.counter_add("thread.count", 1, parity=t % 2)
        log.info("bridge %d", i, extra={"t": t})
        if i % 100 == 0:
            polytel.flush(timeout_ms=5000)  # flushes (GIL released) while other threads record

threads = [threading.Thread(target=work, args=(t,), name="worker-%d" % t) for t in range(N_THREADS)]
for th in threads:
    th.start()
for th in threads:
    th.join()
stats = polytel.stats()
rc = polytel.shutdown(timeout_ms=10000)
print("RESULT " + json.dumps({"rc": rc, "stats": stats}))
"""


def test_threads_exact_totals(receiver, service):
    env = worker_env(receiver, service, TELEMETRY_ENABLED="true", POLYTEL_CONSOLE="off")
    r = run_worker(WORKER, env, timeout=120).check().result()
    assert r["rc"] == 0
    n_threads, n = 8, 400
    expected = sorted((t, i) for t in range(n_threads) for i in range(n))
    got = receiver.received()
    receiver.assert_no_errors()
    logs = of_service(got["logs"], service)
    direct = sorted((lg["attributes"]["t"], lg["attributes"]["i"]) for lg in logs if lg["body"] == "thread log")
    assert direct == expected
    bridged = [lg for lg in logs if lg["scope"] == "threads"]
    assert len(bridged) == n_threads * n
    assert sorted((lg["attributes"]["t"], int(lg["body"].split()[1])) for lg in bridged) == expected
    spans = of_service(got["spans"], service)
    assert sorted((s["attributes"]["t"], s["attributes"]["i"]) for s in spans) == expected
    assert all(s["parent_span_id"] == "" for s in spans)  # each thread starts with an empty context
    assert len({s["span_id"] for s in spans}) == len(spans)
    totals = {dict(k)["parity"]: p["value"] for k, p in last_points(of_service(got["metrics"], service),
                                                                     "thread.count").items()}  # fmt: skip
    assert totals == {0: n_threads * n // 2, 1: n_threads * n // 2}
    # thread.id / thread.name on every span and log: one id per thread, its Python name.
    by_t = {}
    for x in logs + spans:
        by_t.setdefault(x["attributes"]["t"], set()).add((x["thread_id"], x["thread_name"]))
    assert sorted(by_t) == list(range(n_threads))
    assert all(len(v) == 1 for v in by_t.values()), by_t
    assert {t: next(iter(v))[1] for t, v in by_t.items()} == {t: "worker-%d" % t for t in range(n_threads)}
    assert len({next(iter(v))[0] for v in by_t.values()}) == n_threads
    s = r["stats"]
    assert s["logs_recorded"] == 2 * n_threads * n
    assert s["spans_recorded"] == n_threads * n


LIVE_WORKER = """
import json, threading, polytel
polytel.bootstrap_worker()
recorded, stop = threading.Event(), threading.Event()

def background():
    for i in range(300):
        polytel.info("from a live thread", i=i)
        polytel.counter_add("live.count")
    recorded.set()
    stop.wait()  # still alive, its block not handed off by a thread exit

t = threading.Thread(target=background, daemon=True)
t.start()
recorded.wait()
print("RESULT " + json.dumps({"rc": polytel.shutdown(timeout_ms=5000)}))
"""


def test_shutdown_drains_threads_that_are_still_running(receiver, service):
    env = worker_env(receiver, service, TELEMETRY_ENABLED="true", POLYTEL_CONSOLE="off",
                     OTEL_BLRP_SCHEDULE_DELAY="60000", OTEL_METRIC_EXPORT_INTERVAL="60000")  # fmt: skip
    assert run_worker(LIVE_WORKER, env).check().result()["rc"] == 0
    got = receiver.received()
    logs = of_service(got["logs"], service)
    assert sorted(lg["attributes"]["i"] for lg in logs) == list(range(300))
    assert [p["value"] for p in last_points(of_service(got["metrics"], service), "live.count").values()] == [300]

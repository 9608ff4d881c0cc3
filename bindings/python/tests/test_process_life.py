"""Process life: a fork child exports its own telemetry once; exit without shutdown; bounded shutdown."""
import socket

from conftest import last_points, of_service, run_worker, worker_env

FORK_WORKER = """
import json, multiprocessing as mp, os, polytel
polytel.bootstrap_worker()
out = {"parent_pid": os.getpid()}

def child(q):
    before = polytel.phase()
    res = polytel.bootstrap_worker()
    polytel.info("child log", pid=os.getpid())
    with polytel.span("child-span"):
        polytel.counter_add("child.count", 3)
    q.put({"pid": os.getpid(), "before": before, "status": res["status"], "phase": res["phase"]})
    # No shutdown(): multiprocessing leaves through os._exit(); polytel's finalizer flushes.

with polytel.span("parent-span"):
    polytel.counter_add("parent.count", 5)
    polytel.info("parent before fork")  # still buffered in the parent when the child is forked
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    out["child"] = q.get(timeout=30)
    p.join(30)
    out["exitcode"] = p.exitcode

# A raw fork inside a span: the child leaves the `with` too, but the span is the parent's to record.
with polytel.span("forked-inside"):
    polytel.info("parent before raw fork")
    pid = os.fork()
if pid == 0:
    polytel.bootstrap_worker()
    polytel.info("raw child log")
    rc = polytel.shutdown(timeout_ms=5000)
    os._exit(0 if rc == 0 else 3)
_, status = os.waitpid(pid, 0)
out["raw_child"] = {"pid": pid, "status": status}
polytel.info("parent after fork")
out["rc"] = polytel.shutdown(timeout_ms=5000)
print("RESULT " + json.dumps(out))
"""


def test_fork_child_exports_its_own_telemetry_once(receiver, service):
    r = run_worker(FORK_WORKER, worker_env(receiver, service, TELEMETRY_ENABLED="true")).check().result()
    assert r["rc"] == 0
    assert r["exitcode"] == 0
    assert r["raw_child"]["status"] == 0
    parent, child, raw = r["parent_pid"], r["child"]["pid"], r["raw_child"]["pid"]
    assert len({parent, child, raw}) == 3
    assert r["child"]["before"] == "deferred"  # the core reset the child to its phase-1 state
    assert (r["child"]["status"], r["child"]["phase"]) == ("started", "full")

    got = receiver.received()
    receiver.assert_no_errors()
    logs = of_service(got["logs"], service)
    pid_of = lambda item: item["resource"]["process.pid"]  # noqa: E731
    by_body = {}
    for lg in logs:
        by_body.setdefault(lg["body"], []).append(pid_of(lg))
    assert by_body == {
        "parent before fork": [parent],
        "child log": [child],
        "parent before raw fork": [parent],
        "raw child log": [raw],
        "parent after fork": [parent],
    }
    spans = {}
    for s in of_service(got["spans"], service):
        spans.setdefault(s["name"], []).append(pid_of(s))
    assert spans == {"parent-span": [parent], "child-span": [child], "forked-inside": [parent]}

    metrics = of_service(got["metrics"], service)
    child_count = [m for m in metrics if m["name"] == "child.count"]
    assert child_count and {pid_of(m) for m in child_count} == {child}
    assert [p["value"] for p in last_points(child_count, "child.count").values()] == [3]
    parent_count = [m for m in metrics if m["name"] == "parent.count"]
    assert parent_count and {pid_of(m) for m in parent_count} == {parent}
    assert [p["value"] for p in last_points(parent_count, "parent.count").values()] == [5]


EXIT_WORKER = """
import polytel
polytel.bootstrap_worker()
for i in range(500):
    polytel.info("exit log", i=i)
for i in range(200):
    with polytel.span("exit-span", i=i):
        pass
polytel.counter_add("exit.count", 77)
# no flush(), no shutdown(): the atexit handler delivers
"""


def test_exit_without_shutdown_loses_nothing(receiver, service):
    # Schedule delays far beyond the process's life: only the exit flush can deliver.
    env = worker_env(receiver, service, TELEMETRY_ENABLED="true", OTEL_BSP_SCHEDULE_DELAY="60000",
                     OTEL_BLRP_SCHEDULE_DELAY="60000", OTEL_METRIC_EXPORT_INTERVAL="60000")  # fmt: skip
    run_worker(EXIT_WORKER, env).check()
    got = receiver.received()
    receiver.assert_no_errors()
    logs = of_service(got["logs"], service)
    assert sorted(lg["attributes"]["i"] for lg in logs) == list(range(500))
    spans = of_service(got["spans"], service)
    assert sorted(s["attributes"]["i"] for s in spans) == list(range(200))
    assert [p["value"] for p in last_points(of_service(got["metrics"], service), "exit.count").values()] == [77]


_held = []


def unused_port():
    """Refuses connections until the test process exits: bound, never listening, so no random-port server of a
    suite running beside this one can be handed it (as it could a port closed right after it was picked)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _held.append(s)
    return s.getsockname()[1]


SHUTDOWN_WORKER = """
import json, time, polytel
polytel.bootstrap_worker()
for i in range(100):
    polytel.info("undeliverable", i=i)
with polytel.span("undeliverable"):
    pass
t0 = time.monotonic()
rc = polytel.shutdown(timeout_ms=1000)
elapsed = time.monotonic() - t0
print("RESULT " + json.dumps({"rc": rc, "name": polytel.err_name(rc), "elapsed": elapsed, "phase": polytel.phase()}))
"""


def check_bounded(w):
    r = w.check().result()
    assert r["rc"] < 0, r
    assert r["name"] in ("POLYTEL_ETIMEDOUT", "POLYTEL_EDROPPED", "POLYTEL_EIO"), r
    assert r["phase"] == "none"
    # A hang check, not a performance assertion: a bounded shutdown is nowhere near 3x its timeout.
    assert r["elapsed"] < 3.0, r


def test_shutdown_with_no_receiver_is_bounded(service):
    env = worker_env(None, service, TELEMETRY_ENABLED="true",
                     OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:%d" % unused_port())  # fmt: skip
    check_bounded(run_worker(SHUTDOWN_WORKER, env, timeout=30))


def test_shutdown_with_stalled_receiver_is_bounded(receiver, service):
    receiver.set_faults([{"mode": "stall", "count": 1000}])
    check_bounded(run_worker(SHUTDOWN_WORKER, worker_env(receiver, service, TELEMETRY_ENABLED="true"), timeout=30))


def test_exit_with_no_receiver_is_bounded(service):
    """No shutdown() and nowhere to deliver: the exit flush gives up after POLYTEL_EXIT_TIMEOUT_MS."""
    env = worker_env(None, service, TELEMETRY_ENABLED="true", POLYTEL_EXIT_TIMEOUT_MS="500",
                     OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:%d" % unused_port())  # fmt: skip
    code = "import polytel\npolytel.bootstrap_worker()\nfor i in range(50):\n    polytel.info('lost', i=i)\n"
    w = run_worker(code, env, timeout=30)  # the timeout is the hang guard
    assert w.returncode == 0, w.stderr


GIL_WORKER = """
import json, threading, time, polytel
polytel.bootstrap_worker()
out = {}
for call in ("flush", "shutdown"):
    polytel.info("pending for %s" % call)
    entering = threading.Event()
    def blocking():
        entering.set()
        out[call + "_rc"] = getattr(polytel, call)(timeout_ms=1500)
    t = threading.Thread(target=blocking)
    t.start()
    entering.wait()
    time.sleep(0.2)  # the thread is now inside the blocking call
    total = sum(range(10000))  # needs the GIL
    out[call + "_main_ran_meanwhile"] = t.is_alive() and total == 49995000
    t.join()
print("RESULT " + json.dumps(out))
"""


def test_blocking_calls_release_the_gil(receiver, service):
    """While flush()/shutdown() wait on a stalled collector, other Python threads keep running."""
    receiver.set_faults([{"mode": "stall", "count": 1000}])
    r = run_worker(GIL_WORKER, worker_env(receiver, service, TELEMETRY_ENABLED="true"), timeout=60).check().result()
    assert r["flush_main_ran_meanwhile"] is True
    assert r["shutdown_main_ran_meanwhile"] is True
    assert r["flush_rc"] < 0 and r["shutdown_rc"] < 0  # the collector never answered: both timed out

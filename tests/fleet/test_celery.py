"""Celery: a real prefork worker (concurrency 2, worker_max_tasks_per_child=5) on a real redis-server."""
import signal
import time

from conftest import (GUARD_S, PY, SPAN_KIND, by_name, counter_total, dupes, exception_of, fleet_env,  # noqa: F401
                      needs_context, run_producer, wait_received, HAS_CONTEXT)

N = 50
SYSTEM = "celery"


def start_worker(procs, receiver, redis_server, tmp_path, name="celery-worker", **extra):
    env = fleet_env(receiver, "celery-worker", redis_server, **extra)
    return procs(name, [PY, "-m", "celery", "-A", "celery_app", "worker", "--pool", "prefork", "--concurrency", "2",
                        "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
                        "-n", "fleet@%h"], env)


@needs_context
def test_celery_50_tasks_recycled_children_deliver_everything_once(procs, receiver, redis_server, tmp_path):
    started = tmp_path / "started"  # "n pid ppid" per task, written by the task in the process that ran it
    worker = start_worker(procs, receiver, redis_server, tmp_path, FLEET_MAX_TASKS_PER_CHILD=5,
                          FLEET_STARTED_FILE=started)
    prod = run_producer(SYSTEM, N, fleet_env(receiver, "celery-producer", redis_server))
    ids = prod["ids"]
    assert len(set(ids)) == N, f"celery: the producer enqueued {len(set(ids))} distinct tasks, not {N}"

    wait_received(receiver, lambda g: len(by_name(g["spans"], "process fleet.record")) >= N
                  and len([lg for lg in g["logs"] if lg["body"] == "celery task ran"]) >= N,
                  SYSTEM, f"{N} consumer spans and {N} task logs")
    # Warm shutdown: every child leaves through worker_process_shutdown (and delivers what it still holds).
    worker.signal(signal.SIGTERM)
    assert worker.wait("SIGTERM") == 0, f"celery: worker exit status after warm shutdown:\n{worker.output()}"
    got = receiver.received()
    receiver.assert_no_errors()

    consumers = by_name(got["spans"], "process fleet.record", "celery-worker")
    cids = [s["attributes"].get("messaging.message.id") for s in consumers]
    assert len(consumers) == N, f"celery: {len(consumers)} consumer spans arrived, expected {N} " \
                                f"(duplicated: {dupes(cids)[:5]}, missing: {sorted(set(ids) - set(cids))[:5]})"
    assert sorted(cids) == sorted(ids), f"celery: consumer spans for {len(set(cids) & set(ids))} of the {N} tasks"
    for s in consumers:
        a = s["attributes"]
        assert a.get("celery.task.name") == "fleet.record" and a.get("celery.task.outcome") == "SUCCESS" \
            and a.get("celery.task.retries") == 0 and a.get("messaging.system") == "celery", \
            f"celery: consumer span attributes {a}"

    # Each task ran in a prefork child, never in the worker's parent; a child runs at most 5 tasks, so 50 tasks
    # took at least 10 children (recycling happened, and recycled children delivered).
    per_pid = {}
    for s in consumers:
        per_pid.setdefault(s["resource"].get("process.pid"), []).append(s)
    assert worker.pid not in per_pid, f"celery: {len(per_pid.get(worker.pid, []))} tasks ran in the parent"
    over = {p: len(v) for p, v in per_pid.items() if len(v) > 5}
    assert not over, f"celery: children ran more than worker_max_tasks_per_child=5 tasks: {over}"
    assert len(per_pid) >= N // 5, f"celery: {len(per_pid)} child pids for {N} tasks, expected at least {N // 5}"
    lines = [ln.split() for ln in started.read_text().splitlines()]
    ran = {int(n): (int(pid), int(ppid)) for n, pid, ppid in lines}
    not_child = sorted(n for n, (pid, ppid) in ran.items() if ppid != worker.pid)
    assert len(lines) == N and len(ran) == N and not not_child, \
        f"celery: {len(lines)} task runs for {len(ran)} of {N} tasks; {len(not_child)} ran outside a child of the " \
        f"worker (pid {worker.pid}): n={not_child[:5]}"
    span_pids = {s["attributes"].get("messaging.message.id"): s["resource"].get("process.pid") for s in consumers}
    moved = [i for i in range(N) if span_pids.get(ids[i]) != ran[i][0]]
    assert not moved, f"celery: {len(moved)} of {N} consumer spans carry another pid than the child that ran them"

    # Each consumer span is the child (kind consumer) of its `send` producer span, itself the child of the
    # producer's span, all in the producer's trace.
    send = {s["attributes"].get("messaging.message.id"): s for s in by_name(got["spans"], "send fleet.record")}
    wrong = []
    for c in consumers:
        p = send.get(c["attributes"].get("messaging.message.id"))
        if p is None or c["parent_span_id"] != p["span_id"] or c["trace_id"] != prod["trace_id"] \
                or p["parent_span_id"] != prod["span_id"] or c["kind"] != SPAN_KIND["consumer"] \
                or p["kind"] != SPAN_KIND["producer"]:
            wrong.append(c["attributes"].get("messaging.message.id"))
    assert not wrong, f"celery: {len(wrong)} of {N} consumer spans are not the child (kind consumer) of their " \
                      f"producer span in the producer's trace: {wrong[:3]}"

    logs = [lg for lg in got["logs"] if lg["body"] == "celery task ran"]
    ns = [lg["attributes"].get("n") for lg in logs]
    assert len(logs) == N, f"celery: {len(logs)} task log records arrived, expected {N} (duplicated n: {dupes(ns)})"
    assert sorted(ns) == list(range(N)), f"celery: task logs for n={sorted(set(range(N)) - set(ns))} missing"
    span_of = {s["span_id"]: s for s in consumers}
    orphans = [lg["attributes"].get("n") for lg in logs if lg["span_id"] not in span_of]
    assert not orphans, f"celery: {len(orphans)} task logs not inside their task's consumer span: n={orphans[:5]}"

    total, series = counter_total(got["metrics"], "fleet.tasks", "celery-worker")
    assert total == N, f"celery: fleet.tasks counters over {len(series)} children sum to {total}, expected {N}"

    producers = by_name(got["spans"], "send fleet.record", "celery-producer")
    assert len(producers) == N, f"celery: {len(producers)} producer spans arrived, expected {N}"


def test_celery_sigterm_during_work_delivers_what_started(procs, receiver, redis_server, tmp_path):
    started = tmp_path / "started"
    worker = start_worker(procs, receiver, redis_server, tmp_path, FLEET_MAX_TASKS_PER_CHILD=100,
                          FLEET_STARTED_FILE=started)
    n = 12
    prod = run_producer(SYSTEM, n, fleet_env(receiver, "celery-producer", redis_server), "--sleep", "0.5",
                        "--boom", "1")
    ids = prod["ids"] + prod["boom_ids"]  # ids[i] is task n=i; ids[n] is the raising task (n=n), enqueued first

    # SIGTERM once at least two tasks are running or done: a warm shutdown finishes what started, then leaves.
    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline and (not started.exists() or len(started.read_text().splitlines()) < 2):
        time.sleep(0.05)
    assert started.exists(), f"celery: no task started within the hang guard:\n{worker.output()}"
    worker.signal(signal.SIGTERM)
    assert worker.wait("SIGTERM") == 0, f"celery: worker exit status after SIGTERM:\n{worker.output()}"

    began = {int(line.split()[0]) for line in started.read_text().splitlines()}
    want = {ids[i] for i in began}
    got = wait_received(receiver, lambda g: {s["attributes"].get("messaging.message.id") for s in g["spans"]
                                             if s["name"].startswith("process ")} >= want,
                        SYSTEM, f"consumer spans of the {len(want)} tasks that started before SIGTERM")
    consumers = [s for s in got["spans"] if s["name"].startswith("process ")]
    cids = [s["attributes"].get("messaging.message.id") for s in consumers]
    assert not dupes(cids), f"celery: consumer spans delivered twice after SIGTERM: {dupes(cids)}"
    assert set(cids) == want, f"celery: {len(want)} tasks started, {len(set(cids))} consumer spans delivered " \
                              f"(extra: {sorted(set(cids) - want)[:3]})"
    logs = [lg["attributes"].get("n") for lg in got["logs"] if lg["body"] == "celery task ran"]
    assert sorted(logs) == sorted(i for i in began if i < n), \
        f"celery: {len(logs)} task logs after SIGTERM for {len([i for i in began if i < n])} started tasks"
    # The raising task was first in the FIFO queue, so it ran: its exception is on its span.
    assert n in began, f"celery: the raising task (first in the queue) did not start: started n={sorted(began)}"
    (boom,) = [s for s in consumers if s["attributes"].get("messaging.message.id") == ids[n]]
    assert boom["status_code"] == 2 and boom["attributes"].get("celery.task.outcome") == "FAILURE", \
        f"celery: the raising task's span: status {boom['status_code']}, {boom['attributes']}"
    assert exception_of(boom) == ("ValueError", f"boom {n}"), f"celery: exception recorded {exception_of(boom)}"

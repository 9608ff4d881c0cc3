"""RQ: a real `rq worker -w polytel.integrations.rq.Worker --burst`, one forked work horse per job (os._exit)."""
from conftest import (BIN, SPAN_KIND, by_name, counter_total, dupes, exception_of, fleet_env, needs_context,
                      run_producer)

SYSTEM = "rq"
N = 20


def run_burst_worker(procs, receiver, redis_server, *extra):
    env = fleet_env(receiver, "rq-worker", redis_server)
    w = procs("rq-worker", [f"{BIN}/rq", "worker", "--burst", "-w", "polytel.integrations.rq.Worker",
                            "--url", redis_server.url, "--logging_level", "WARNING", *extra, "fleet"], env)
    rc = w.wait("the burst run")  # burst: leaves once the queue is empty; every horse has delivered by then
    assert rc == 0, f"rq: burst worker exit status {rc}:\n{w.output()}"
    return w


def test_rq_20_jobs_each_in_its_own_horse_delivered_once(procs, receiver, redis_server):
    prod = run_producer(SYSTEM, N, fleet_env(receiver, "rq-producer", redis_server), "--boom", "1")
    worker = run_burst_worker(procs, receiver, redis_server)
    # Nothing to wait for: each horse delivered (or gave up, counted) before os._exit, and the burst worker
    # waited for every horse. What the receiver holds now is what arrived.
    got = receiver.received()
    receiver.assert_no_errors()

    spans = [s for s in got["spans"] if s["service"] == "rq-worker" and s["name"] == "process rq_app.record"]
    jids = [s["attributes"].get("messaging.message.id") for s in spans]
    assert len(spans) == N, f"rq: {len(spans)} job spans arrived, expected {N} (twice: {dupes(jids)[:3]}, " \
                            f"missing: {sorted(set(prod['ids']) - set(jids))[:3]})\n{worker.output()}"
    assert sorted(jids) == sorted(prod["ids"]), "rq: job spans are not those of the enqueued jobs"
    pids = {s["resource"].get("process.pid") for s in spans}
    assert len(pids) == N and worker.pid not in pids, \
        f"rq: {N} jobs ran in {len(pids)} processes (worker pid among them: {worker.pid in pids}), expected {N} horses"
    for s in spans:
        assert s["attributes"].get("rq.job.outcome") == "finished" and s["status_code"] != 2, \
            f"rq: job span {s['attributes']}"

    logs = [lg for lg in got["logs"] if lg["body"] == "rq job ran" and lg["service"] == "rq-worker"]
    ns = [lg["attributes"].get("n") for lg in logs]
    assert len(logs) == N + 1, f"rq: {len(logs)} job logs arrived, expected {N + 1} (twice: {dupes(ns)})"
    assert sorted(ns) == list(range(N + 1)), f"rq: job logs missing for n={sorted(set(range(N + 1)) - set(ns))}"
    span_ids = {s["span_id"] for s in got["spans"] if s["service"] == "rq-worker"}
    assert all(lg["span_id"] in span_ids for lg in logs), "rq: job logs outside their job span"

    total, series = counter_total(got["metrics"], "fleet.jobs", "rq-worker")
    assert total == N, f"rq: fleet.jobs over {len(series)} horses sums to {total}, expected {N}"

    (boom,) = by_name(got["spans"], "process rq_app.boom", "rq-worker") or [None]
    assert boom is not None, "rq: the raising job's span did not arrive"
    assert boom["status_code"] == 2 and boom["attributes"].get("rq.job.outcome") == "failed", \
        f"rq: raising job span status {boom['status_code']}, {boom['attributes']}"
    assert exception_of(boom) == ("ValueError", f"boom {N}"), f"rq: exception recorded {exception_of(boom)}"

    sends = [s for s in got["spans"] if s["service"] == "rq-producer" and s["name"].startswith("send ")]
    assert len(sends) == N + 1, f"rq: {len(sends)} producer spans, expected one per enqueue ({N + 1})"


@needs_context
def test_rq_job_spans_are_children_of_their_enqueue(procs, receiver, redis_server):
    n = 5
    prod = run_producer(SYSTEM, n, fleet_env(receiver, "rq-producer", redis_server))
    run_burst_worker(procs, receiver, redis_server)
    got = receiver.received()
    send = {s["attributes"].get("messaging.message.id"): s for s in got["spans"] if s["name"].startswith("send ")}
    jobs = [s for s in got["spans"] if s["name"] == "process rq_app.record"]
    assert len(send) == n and len(jobs) == n, f"rq: {len(send)} producer / {len(jobs)} job spans, expected {n}"
    wrong = [j["attributes"].get("messaging.message.id") for j in jobs
             if j["trace_id"] != prod["trace_id"] or j["kind"] != SPAN_KIND["consumer"]
             or j["parent_span_id"] != send[j["attributes"].get("messaging.message.id")]["span_id"]
             or send[j["attributes"].get("messaging.message.id")]["parent_span_id"] != prod["span_id"]
             or send[j["attributes"].get("messaging.message.id")]["kind"] != SPAN_KIND["producer"]]
    assert not wrong, f"rq: {len(wrong)} of {n} job spans are not children of their enqueue's producer span"


def test_rq_simple_worker_runs_jobs_in_the_worker_process(procs, receiver, redis_server):
    n = 3
    prod = run_producer(SYSTEM, n, fleet_env(receiver, "rq-producer", redis_server))
    env = fleet_env(receiver, "rq-worker", redis_server)
    w = procs("rq-simple", [f"{BIN}/rq", "worker", "--burst", "-w", "polytel.integrations.rq.SimpleWorker",
                            "--url", redis_server.url, "fleet"], env)
    assert w.wait("the burst run") == 0, f"rq: SimpleWorker burst exit status:\n{w.output()}"
    got = receiver.received()  # the worker left through sys.exit: polytel's atexit delivered
    spans = [s for s in got["spans"] if s["name"] == "process rq_app.record"]
    assert sorted(s["attributes"].get("messaging.message.id") for s in spans) == sorted(prod["ids"]), \
        f"rq: SimpleWorker delivered {len(spans)} job spans, expected {n}"
    assert {s["resource"].get("process.pid") for s in spans} == {w.pid}, "rq: SimpleWorker jobs ran elsewhere"

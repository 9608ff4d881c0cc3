"""test_sidekiq — Sidekiq (Debian ruby-sidekiq 6.x) with require "polytel/sidekiq", a real redis-server and the project's receiver.

A Python producer writes 20 Sidekiq-format jobs straight into Redis, each with its own `traceparent`; a Ruby
process pushes 20 more through Sidekiq::Client (the client middleware opens a `producer` span and injects the
traceparent); one Sidekiq server (concurrency 2) runs all 40. The receiver must hold exactly 40 `consumer`
spans, each the child of the span its job names, with the job's class, jid and queue; the job that raises
has status ERROR and an exception event with its Ruby stack trace; every job's log line carries its span.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "receiver"))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))

from pytest_fixtures import receiver  # noqa: E402,F401
from redis_server import redis_server  # noqa: E402,F401

GEM_HOME = os.environ.get("POLYTEL_GEM_HOME", os.path.join(REPO, "build", "ruby-gems"))
JOB_CLASS = "PolytelTest::EchoJob"
N = 20
FAILING = 7  # the Python job that raises
# Hang guards only (a loaded machine is slow; nothing here is a timing assertion).
HANG_S = float(os.environ.get("POLYTEL_TEST_HANG_LIMIT_S", "180"))
KIND_PRODUCER, KIND_CONSUMER = 4, 5


def resp(port: int, *cmd: str) -> object:
    """One Redis command over RESP (the real protocol; the test needs no client library)."""
    payload = f"*{len(cmd)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in cmd)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        f = s.makefile("rb")
        line = f.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest.decode()
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else f.read(n + 2)[:-2].decode()
        raise AssertionError(f"redis {cmd[0]}: {line!r}")


def push_python_jobs(port: int) -> list[dict]:
    """Sidekiq's job format, as Sidekiq::Client writes it (LPUSH queue:default, SADD queues), plus traceparent."""
    jobs = []
    for i in range(N):
        trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
        now = time.time()
        job = {"class": JOB_CLASS, "args": [i, "python", i == FAILING], "queue": "default", "retry": False,
               "jid": secrets.token_hex(12), "created_at": now, "enqueued_at": now,
               "traceparent": f"00-{trace_id}-{span_id}-01"}
        resp(port, "SADD", "queues", "default")
        resp(port, "LPUSH", "queue:default", json.dumps(job))
        jobs.append({"jid": job["jid"], "trace_id": trace_id, "span_id": span_id, "n": i})
    return jobs


def env_for(receiver, redis_url: str, service: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "POLYTEL_", "RUBYOPT", "RUBYLIB")) and k != "TELEMETRY_ENABLED"}
    env.update({"GEM_HOME": GEM_HOME, "REDIS_URL": redis_url, "TELEMETRY_ENABLED": "true",
                "OTEL_SERVICE_NAME": service, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BLRP_SCHEDULE_DELAY": "100",
                "OTEL_METRIC_EXPORT_INTERVAL": "500"})
    return env


def of(snap: dict, signal_name: str, service: str) -> list[dict]:
    return [x for x in snap[signal_name] if x["service"] == service]


def test_sidekiq_40_jobs_from_python_and_ruby_land_in_their_traces(receiver, redis_server):  # noqa: F811
    tag = secrets.token_hex(3)
    worker_svc, client_svc = f"sidekiq-worker-{tag}", f"sidekiq-client-{tag}"
    sidekiq = subprocess.Popen(
        ["sidekiq", "-r", os.path.join(HERE, "app.rb"), "-c", "2", "-q", "default", "-t", "10"],
        env=env_for(receiver, redis_server.url, worker_svc), cwd=HERE, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    out = b""
    try:
        py_jobs = push_python_jobs(redis_server.port)
        client = subprocess.run(["ruby", os.path.join(HERE, "client.rb"), str(N)],
                                env=env_for(receiver, redis_server.url, client_svc), capture_output=True,
                                timeout=HANG_S)
        assert client.returncode == 0, f"sidekiq: the Ruby client failed:\n{client.stderr.decode()}"
        pushed = json.loads(client.stdout.decode().strip().splitlines()[-1])
        assert len(pushed["jids"]) == N and all(pushed["jids"]), f"sidekiq: Ruby client pushed {pushed['jids']}"

        def consumers(snap):
            return [s for s in of(snap, "spans", worker_svc) if s["kind"] == KIND_CONSUMER]
        try:
            receiver.wait_for(lambda snap: len(consumers(snap)) >= 2 * N, timeout=HANG_S, interval=0.2)
        except Exception:
            pass  # the assertions below say what is missing
    finally:
        if sidekiq.poll() is None:
            sidekiq.send_signal(signal.SIGTERM)  # Sidekiq's own shutdown; polytel's at_exit delivers the rest
        try:
            out, _ = sidekiq.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(sidekiq.pid, signal.SIGKILL)
            out, _ = sidekiq.communicate()
    log = out.decode(errors="replace")
    assert sidekiq.returncode == 0, f"sidekiq exited with {sidekiq.returncode}:\n{log[-4000:]}"

    snap = receiver.received()
    assert not snap["errors"], f"sidekiq: the receiver refused requests: {snap['errors']}"
    spans = of(snap, "spans", worker_svc)
    cons = [s for s in spans if s["kind"] == KIND_CONSUMER]
    by_jid = {}
    for s in cons:
        by_jid.setdefault(s["attributes"].get("messaging.message.id"), []).append(s)
    assert len(cons) == 2 * N, f"sidekiq: {len(cons)} consumer spans, expected {2 * N}\n{log[-3000:]}"
    assert all(len(v) == 1 for v in by_jid.values()), f"sidekiq: a job's span arrived twice: {by_jid.keys()}"

    # Python-pushed jobs: each consumer span is the child of the traceparent the producer wrote.
    for j in py_jobs:
        (s,) = by_jid.get(j["jid"], [None]) or [None]
        assert s is not None, f"sidekiq: no consumer span for Python job {j['n']} (jid {j['jid']})"
        assert (s["trace_id"], s["parent_span_id"]) == (j["trace_id"], j["span_id"]), \
            f"sidekiq: Python job {j['n']} is not in its producer's trace"
        assert s["name"] == f"{JOB_CLASS} process"
        assert s["attributes"] == {"messaging.system": "sidekiq", "messaging.operation": "process",
                                   "messaging.destination.name": "default",
                                   "messaging.sidekiq.job_class": JOB_CLASS, "messaging.message.id": j["jid"]}
        assert s["status_code"] == (2 if j["n"] == FAILING else 0), f"sidekiq: Python job {j['n']} status"

    failing = by_jid[py_jobs[FAILING]["jid"]][0]
    assert failing["status_message"] == f"job {FAILING} from python asked to fail"
    assert [e["name"] for e in failing["events"]] == ["exception"]
    exc = failing["events"][0]["attributes"]
    assert exc["exception.type"] == "ArgumentError"
    assert exc["exception.message"] == f"job {FAILING} from python asked to fail"
    first = exc["exception.stacktrace"].splitlines()[0]
    assert "app.rb:" in first and "in `perform'" in first and first.endswith("(ArgumentError)"), first
    assert "\tfrom " in exc["exception.stacktrace"] and "sidekiq" in exc["exception.stacktrace"]

    # Ruby-pushed jobs: a producer span per push (kind PRODUCER, child of the client's span), and each
    # consumer span its child.
    cspans = of(snap, "spans", client_svc)
    producers = {s["attributes"].get("messaging.message.id"): s for s in cspans if s["kind"] == KIND_PRODUCER}
    assert sorted(producers) == sorted(pushed["jids"]), \
        f"sidekiq: {len(producers)} producer spans from the Ruby client, expected {N}"
    for jid in pushed["jids"]:
        p = producers[jid]
        assert (p["trace_id"], p["parent_span_id"]) == (pushed["root"]["trace_id"], pushed["root"]["span_id"])
        assert p["name"] == f"{JOB_CLASS} publish"
        assert p["attributes"]["messaging.operation"] == "publish"
        assert p["attributes"]["messaging.destination.name"] == "default"
        s = by_jid.get(jid, [None])[0]
        assert s is not None, f"sidekiq: no consumer span for Ruby job {jid}"
        assert (s["trace_id"], s["parent_span_id"]) == (p["trace_id"], p["span_id"]), \
            f"sidekiq: Ruby job {jid} is not the child of its producer span"
        assert s["status_code"] == 0

    # Every job's log line once, inside its consumer span.
    logs = [lg for lg in of(snap, "logs", worker_svc) if lg["body"] == "echo job"]
    assert len(logs) == 2 * N, f"sidekiq: {len(logs)} job log lines, expected {2 * N}"
    for lg in logs:
        (s,) = by_jid[lg["attributes"]["jid"]]
        assert (lg["trace_id"], lg["span_id"]) == (s["trace_id"], s["span_id"])
    # The counter the jobs add to: 39 successes (the failing job raises before it counts).
    points = [m for m in of(snap, "metrics", worker_svc) if m.get("name") == "echo.jobs"]
    totals = {}
    for m in points:
        key = m["attributes"]["producer"]
        totals[key] = max(totals.get(key, 0), m["value"])
    assert totals == {"python": N - 1, "ruby": N}, f"sidekiq: echo.jobs counter {totals}"
    assert int(resp(redis_server.port, "LLEN", "queue:default")) == 0

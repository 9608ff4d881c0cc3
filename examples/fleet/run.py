"""The fleet scene of `make demo`: a Python producer, a Celery worker and a Sidekiq worker sharing one Redis.

    python examples/fleet/run.py OUT_DIR [--gem-home DIR] [--reports N]

Starts a real redis-server on 127.0.0.1 (random port; tests/support/redis_server.py), a Celery prefork worker
(tasks.py) and a Sidekiq worker (report_job.rb, Ruby), then runs the producer (producer.py): its span enqueues N
Celery tasks, each task pushes a Sidekiq job, so one trace crosses three processes and two languages. Every process
exports with the embedded file exporter into OUT_DIR/<process>/; the workers are stopped the way their docs say
(SIGTERM: Celery's warm shutdown, Sidekiq's shutdown) and deliver at exit. Then it prints the trace as the file
exporter wrote it: each span with its process, language, kind and parent. Exit 1 when the trace is not whole.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

from jsonl import load_dir, span_tree  # noqa: E402  (strict: a malformed line fails the demo)
from redis_server import RedisServer  # noqa: E402

GUARD_S = 120.0  # hang guard only
KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
PROCS = ("producer", "celery", "sidekiq")


def env_for(out, name, redis_url, gem_home):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "POLYTEL_", "RUBYOPT", "RUBYLIB")) and k != "TELEMETRY_ENABLED"}
    env.update({"TELEMETRY_ENABLED": "true", "OTEL_SERVICE_NAME": f"demo-fleet-{name}", "POLYTEL_EXPORTER": "file",
                "POLYTEL_EXPORT_DIR": os.path.join(out, name), "OTEL_BSP_SCHEDULE_DELAY": "100",
                "OTEL_BLRP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "500",
                "DEMO_REDIS_URL": redis_url, "REDIS_URL": redis_url,
                "PYTHONPATH": HERE + os.pathsep + os.environ.get("PYTHONPATH", "")})
    if gem_home:
        env["GEM_HOME"] = gem_home
    os.makedirs(os.path.join(out, name), exist_ok=True)
    return env


def consumer_spans_so_far(path):
    """Consumer spans in a traces.jsonl being written (complete lines only; the strict read comes after)."""
    try:
        with open(os.path.join(path, "traces.jsonl"), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return 0
    n = 0
    for line in data.split(b"\n")[:-1]:
        for rs in json.loads(line).get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                n += sum(1 for s in ss.get("spans", []) if s.get("kind") in (5, "SPAN_KIND_CONSUMER"))
    return n


def stop(p, what):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout=GUARD_S)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise SystemExit(f"demo fleet: {what} did not stop on SIGTERM (hang guard {GUARD_S:.0f}s)")


def run(out, gem_home, reports):
    logs = {}
    started = []

    def start(name, argv, env):
        logs[name] = os.path.join(out, f"{name}.console.log")
        p = subprocess.Popen(argv, env=env, cwd=HERE, stdin=subprocess.DEVNULL, stdout=open(logs[name], "wb"),
                             stderr=subprocess.STDOUT, start_new_session=True)
        started.append(p)
        return p

    def tail(name):
        with open(logs[name], errors="replace") as f:
            return "".join(f.readlines()[-30:])

    with RedisServer() as redis:
        try:
            celery = start("celery", [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", "prefork",
                                      "--concurrency", "1", "--loglevel", "warning", "--without-heartbeat",
                                      "--without-gossip", "--without-mingle"],
                           env_for(out, "celery", redis.url, gem_home))
            sidekiq = start("sidekiq", ["sidekiq", "-r", os.path.join(HERE, "report_job.rb"), "-c", "1",
                                        "-q", "default", "-t", "10"],
                            env_for(out, "sidekiq", redis.url, gem_home))
            prod = subprocess.run([sys.executable, os.path.join(HERE, "producer.py"), str(reports)], cwd=HERE,
                                  env=env_for(out, "producer", redis.url, gem_home), capture_output=True, text=True,
                                  timeout=GUARD_S)
            if prod.returncode != 0:
                raise SystemExit(f"demo fleet: the producer failed ({prod.returncode}):\n{prod.stdout}{prod.stderr}")
            trace_id = prod.stdout.split()[-1]
            deadline = time.monotonic() + GUARD_S
            while consumer_spans_so_far(os.path.join(out, "sidekiq")) < reports:
                for p, name in ((celery, "celery"), (sidekiq, "sidekiq")):
                    if p.poll() is not None:
                        raise SystemExit(f"demo fleet: the {name} worker exited ({p.returncode}):\n{tail(name)}")
                if time.monotonic() > deadline:
                    raise SystemExit(f"demo fleet: the Sidekiq worker's spans never arrived (hang guard):\n"
                                     f"{tail('celery')}\n{tail('sidekiq')}")
                time.sleep(0.1)
            for p, name in ((celery, "celery"), (sidekiq, "sidekiq")):
                rc = stop(p, name)
                if rc != 0:
                    raise SystemExit(f"demo fleet: the {name} worker exited with {rc}:\n{tail(name)}")
        finally:
            for p in started:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        redis_port = redis.port
    return trace_id, redis_port


def fmt(attrs):
    return ("  {" + ", ".join(f"{k}={v}" for k, v in attrs.items()) + "}") if attrs else ""


def summarize(out, trace_id, reports, redis_port):
    spans, logs = [], []
    for name in PROCS:
        got = load_dir(os.path.join(out, name))
        spans += got["spans"]
        logs += got["logs"]
    mine = [s for s in spans if s["trace_id"] == trace_id]
    in_trace = [lg for lg in logs if lg["trace_id"] == trace_id]
    by_id = {s["span_id"]: s for s in mine}
    roots = [s for s in mine if s["parent_span_id"] not in by_id]
    procs = sorted({(s["service"], s["resource"].get("telemetry.sdk.language"), s["resource"].get("process.pid"))
                    for s in mine}, key=str)
    langs = sorted({p[1] for p in procs})
    print(f"fleet: one Redis (127.0.0.1:{redis_port}), a Python producer, a Celery worker, a Sidekiq worker")
    print(f"fleet: trace {trace_id}: {len(mine)} spans from {len(procs)} processes in {len(langs)} languages "
          f"({', '.join(langs)}), as the file exporter wrote them")
    for svc, lang, pid in procs:
        n = sum(1 for s in mine if s["resource"].get("process.pid") == pid)
        print(f"    {svc:<20} {lang:<7} pid {pid:<8} {n} spans")

    for depth, what, x in span_tree(mine, in_trace):
        if what == "log":
            print(f"    {'  ' * depth}- log {x['severity_text']} {x['body']}{fmt(x['attributes'])}")
            continue
        who = f"{x['service']}/{x['resource'].get('telemetry.sdk.language')} pid {x['resource'].get('process.pid')}"
        print(f"    {'  ' * depth}{KINDS.get(x['kind'], x['kind']):<9} {x['name']:<24} span {x['span_id']} "
              f"parent {x['parent_span_id'] or '-':<16}  [{who}]")

    # The shape the scene must have: one root; N Celery consumers under the producer's send spans; under each, a
    # publish span whose child is the Ruby worker's consumer span.
    def count(service, kind):
        return sum(1 for s in mine if s["service"] == f"demo-fleet-{service}" and s["kind"] == kind)

    ruby = [s for s in mine if s["service"] == "demo-fleet-sidekiq" and s["kind"] == 5]
    wrong = []
    if len(roots) != 1:
        wrong.append(f"{len(roots)} root spans (expected 1)")
    for what, got in (("producer send spans", count("producer", 4)), ("Celery consumer spans", count("celery", 5)),
                      ("Celery publish spans", count("celery", 4)), ("Sidekiq consumer spans", len(ruby))):
        if got != reports:
            wrong.append(f"{got} {what} (expected {reports})")
    for s in ruby:
        parent = by_id.get(s["parent_span_id"])
        if parent is None or parent["service"] != "demo-fleet-celery" or parent["kind"] != 4:
            wrong.append(f"Sidekiq span {s['span_id']} is not the child of a Celery publish span")
    in_spans = sum(1 for lg in in_trace if lg["span_id"] in by_id)
    if in_spans != 1 + 2 * reports:  # the producer's, and one per Celery task and per Sidekiq job
        wrong.append(f"{in_spans} log lines inside the trace's spans (expected {1 + 2 * reports})")
    if "ruby" not in langs or "python" not in langs:
        wrong.append(f"languages {langs}")
    if wrong:
        print("demo fleet: FAILED: the trace is not whole: " + "; ".join(wrong), file=sys.stderr)
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--gem-home", default=os.environ.get("GEM_HOME"))
    ap.add_argument("--reports", type=int, default=2)
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    trace_id, redis_port = run(out, a.gem_home and os.path.abspath(a.gem_home), a.reports)
    return summarize(out, trace_id, a.reports, redis_port)


if __name__ == "__main__":
    sys.exit(main())

"""worker_harness — runs tests/support/programs/worker_c against a receiver and checks exact accounting (shared by the integration suites)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

BUILD = os.environ.get("POLYTEL_BUILD_DIR", os.path.join(ROOT, "build"))
WORKER = os.path.join(BUILD, "tests", "worker_c")

# Short batching delays keep the suites fast; everything else is the library's default.
BASE_ENV = {
    "TELEMETRY_ENABLED": "true",
    "OTEL_SERVICE_NAME": "worker-c",
    "OTEL_BSP_SCHEDULE_DELAY": "100",
    "OTEL_BLRP_SCHEDULE_DELAY": "100",
    "OTEL_METRIC_EXPORT_INTERVAL": "500",
}


def worker_env(extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TELEMETRY_", "POLYTEL_"))}
    env.update(BASE_ENV)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_worker(env: dict, *args, timeout: float = 60) -> dict:
    """Runs the worker; returns its stats line as a dict (plus "stderr"). `timeout` is a hang guard only."""
    if not os.access(WORKER, os.X_OK):
        raise AssertionError(f"{WORKER} not built: run `make build` (or set POLYTEL_BUILD_DIR)")
    p = subprocess.run([WORKER, *map(str, args)], env=worker_env(env), capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, f"worker_c exited {p.returncode}\nstderr:\n{p.stderr}"
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no stats line on stdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    out = json.loads(lines[-1])
    out["stderr"] = p.stderr
    return out


def explain(out: dict, tail: int = 4000) -> str:
    """A failure message with every stats field and the stderr tail (pytest -q shortens a dict to its first keys)."""
    stats = json.dumps({k: v for k, v in out.items() if k != "stderr"}, sort_keys=True)
    return f"stats: {stats}\nstderr (last {tail} chars):\n{out.get('stderr', '')[-tail:]}"


def expected_log_bodies(threads: int, events, pre: int = 0) -> Counter:
    """events: per thread, an int or a list (one count per thread)."""
    per = events if isinstance(events, list) else [events] * threads
    c = Counter(f"event {i} from thread {t}" for t in range(threads) for i in range(per[t]))
    c.update(f"pre {i}" for i in range(pre))
    return c


def check_spans(spans: list[dict]) -> None:
    """Each inner span's parent is an outer span of the same trace; outer spans are roots; start <= end."""
    ids = [s["span_id"] for s in spans]
    assert len(set(ids)) == len(ids), "a span arrived twice"
    outer = {s["span_id"]: s for s in spans if s["name"] == "outer"}
    for s in spans:
        assert s["start_ns"] <= s["end_ns"]
        if s["name"] == "outer":
            assert s["parent_span_id"] == ""
        else:
            assert s["name"] == "inner"
            parent = outer.get(s["parent_span_id"])
            assert parent is not None, f"inner span without its outer parent: {s}"
            assert parent["trace_id"] == s["trace_id"]


def counter_total(metrics: list[dict], name: str = "worker.events"):
    pts = [m for m in metrics if m["name"] == name]
    if not pts:
        return None
    assert all(p["type"] == "sum" and p["is_monotonic"] for p in pts)
    return max(p["value"] for p in pts)  # cumulative: the last collection holds the total


def check_exact(got: dict, out: dict, threads: int, events: int, pre: int = 0) -> None:
    """Everything recorded arrived exactly once, and the stats say so."""
    spans, logs = got["spans"], got["logs"]
    per = out.get("emitted") or [events] * threads  # more than `events` when emitting through a flush
    assert len(per) == threads and all(n >= events for n in per)
    # Whose records arrived first: another process's would show as a second service (or an odd resource).
    services = Counter((s["service"], s.get("resource", {}).get("process.pid")) for s in spans + logs)
    seen = f"{len(spans)} spans, {len(logs)} logs from {dict(services)}; stats {out}"
    assert all(s["service"] == "worker-c" for s in spans + logs), seen
    assert len(spans) == 2 * sum(per), f"want {2 * sum(per)} spans: {seen}"
    check_spans(spans)
    assert Counter(lg["body"] for lg in logs) == expected_log_bodies(threads, per, pre), seen
    n = len(spans) + len(logs)
    assert out["shutdown_rc"] == 0, out
    assert (out["recorded"], out["exported"], out["dropped"], out["pending"]) == (n, n, 0, 0), out
    assert counter_total(got["metrics"]) == sum(per)

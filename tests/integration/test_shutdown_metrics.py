"""Shutdown exports the final metrics only after every thread's blocks are drained (no lost increments)."""
import json
import os
import subprocess

from worker_harness import ROOT  # noqa: F401 (puts tests/support on sys.path)
from pytest_fixtures import receiver  # noqa: F401

BUILD = os.environ.get("POLYTEL_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))


def test_counter_total_exact_at_shutdown(receiver):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TELEMETRY_", "POLYTEL_"))}
    env.update(TELEMETRY_ENABLED="true", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
               OTEL_SERVICE_NAME="counter-shutdown", POLYTEL_CONSOLE="off",
               # a small queue makes the bounded drain stop early, where the bug lived
               OTEL_BLRP_MAX_QUEUE_SIZE="256", OTEL_BLRP_MAX_EXPORT_BATCH_SIZE="128")
    out = subprocess.run([os.path.join(BUILD, "tests", "counter_shutdown")], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res == {"rc": 0, "recorded": 4000, "exported": 4000}, res
    got = receiver.received()
    points = [m for m in got["metrics"] if m["name"] == "shutdown.counter"]
    assert points, "no counter exported"
    assert points[-1]["value"] == 4000, [p["value"] for p in points]
    assert points[-1]["attributes"] == {"kind": "job"}
    assert len(got["logs"]) == 4000
    assert got["errors"] == []

"""`make demo`'s fleet scene (examples/fleet/run.py), run as the demo runs it: a Python producer, a Celery worker and
a Sidekiq (Ruby) worker on one redis-server; it must print their one trace and exit 0 (run.py checks the trace's
shape itself: one root, N Celery consumers under the producer's send spans, each Sidekiq span under a publish span)."""
import os
import re
import subprocess

from conftest import GUARD_S, PY, ROOT

GEM_HOME = os.environ.get("POLYTEL_GEM_HOME", os.path.join(ROOT, "build", "ruby-gems"))
REPORTS = 3


def test_demo_fleet_scene_prints_one_cross_language_trace(tmp_path):
    assert os.path.isdir(GEM_HOME), f"demo fleet: no polytel gem in {GEM_HOME} (make ruby-gem)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "POLYTEL_")) and k != "TELEMETRY_ENABLED"}
    r = subprocess.run([PY, os.path.join(ROOT, "examples", "fleet", "run.py"), str(tmp_path / "fleet"),
                        "--gem-home", GEM_HOME, "--reports", str(REPORTS)], env=env, capture_output=True, text=True,
                       timeout=3 * GUARD_S)
    assert r.returncode == 0, f"demo fleet: exit {r.returncode}:\n{r.stdout}\n{r.stderr}"
    m = re.search(r"trace ([0-9a-f]{32}): (\d+) spans from 3 processes in 2 languages \(python, ruby\)", r.stdout)
    # root + per report: send, Celery consumer, publish, Sidekiq consumer
    assert m and int(m.group(2)) == 1 + 4 * REPORTS, \
        f"demo fleet: summary is not one trace of {1 + 4 * REPORTS} spans over 3 processes:\n{r.stdout}"
    lines = r.stdout.splitlines()
    ruby = [ln for ln in lines if "consumer  ReportJob process" in ln and "demo-fleet-sidekiq/ruby" in ln]
    assert len(ruby) == REPORTS, f"demo fleet: {len(ruby)} Sidekiq consumer spans printed, expected {REPORTS}"

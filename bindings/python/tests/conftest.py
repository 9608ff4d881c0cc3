"""conftest — worker subprocesses with a controlled environment, and the real test receiver (tests/support/otlp_receiver.py)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "support"))

from pytest_fixtures import receiver, receiver_factory  # noqa: E402,F401

# Phase 1 runs at import, so each scenario is its own process, with only the variables it sets.
_SCRUB_PREFIXES = ("OTEL_", "POLYTEL_")
_SCRUB = {"TELEMETRY_ENABLED", "NO_COLOR", "FORCE_COLOR", "PYTHONWARNINGS"}


def worker_env(receiver=None, service=None, **extra):
    """The parent environment minus every polytel/OTel variable, plus the receiver and `extra` (None removes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES) and k not in _SCRUB}
    env["NO_COLOR"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    # Batches go out quickly, so a test never waits on a 5 s schedule delay.
    env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
    env["OTEL_BLRP_SCHEDULE_DELAY"] = "100"
    env["OTEL_METRIC_EXPORT_INTERVAL"] = "200"
    if receiver is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
    if service is not None:
        env["OTEL_SERVICE_NAME"] = service
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


class Worker:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    @property
    def polytel_lines(self):
        """polytel's own console lines (target "polytel"), in order."""
        return [ln for ln in self.stderr.splitlines() if " polytel: " in ln]

    def check(self):
        assert self.returncode == 0, "worker failed (%d)\n--- stdout\n%s\n--- stderr\n%s" % (
            self.returncode, self.stdout, self.stderr)
        return self

    def result(self, prefix="RESULT "):
        import json

        for line in self.stdout.splitlines():
            if line.startswith(prefix):
                return json.loads(line[len(prefix):])
        raise AssertionError("no %r line in stdout:\n%s\n--- stderr\n%s" % (prefix, self.stdout, self.stderr))


def run_worker(code, env, timeout=60, cwd=None):
    """Run `code` in a fresh interpreter (the one with polytel installed). The timeout is a hang guard."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env, cwd=cwd or str(REPO), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    return Worker(proc)


def of_service(items, service):
    return [x for x in items if x.get("service") == service]


@pytest.fixture
def service(request):
    """A service.name unique to the test, so nothing from another worker can be counted."""
    return "py-" + request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:60]


def last_points(metrics, name):
    """The latest point of each series (attributes) of metric `name`: cumulative sums are re-sent each interval."""
    latest = {}
    for m in metrics:
        if m["name"] != name:
            continue
        key = tuple(sorted(m["attributes"].items()))
        if key not in latest or m["time_ns"] >= latest[key]["time_ns"]:
            latest[key] = m
    return latest

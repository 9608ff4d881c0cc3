"""conftest — tests/otel: workers with the OpenTelemetry API and instrumentation packages, the real receiver."""
import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "receiver"))
sys.path.insert(0, str(REPO / "tests" / "support"))

from pytest_fixtures import receiver, receiver_factory  # noqa: E402,F401
from redis_server import redis_server  # noqa: E402,F401

# The binding suite's worker helpers (a scrubbed environment, a fresh interpreter per scenario), loaded by path:
# both directories name their file conftest.py.
_spec = importlib.util.spec_from_file_location("polytel_py_conftest", REPO / "bindings/python/tests/conftest.py")
_py = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_py)
run_worker, of_service, last_points = _py.run_worker, _py.of_service, _py.last_points


def worker_env(receiver=None, service=None, **extra):
    """The binding suite's scrubbed worker environment, exporting (TELEMETRY_ENABLED=true) unless told otherwise."""
    extra.setdefault("TELEMETRY_ENABLED", "true")
    return _py.worker_env(receiver, service, **extra)


@pytest.fixture
def service(request):
    """A service.name unique to the test."""
    return "otel-" + request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:60]


def spans_of(receiver, service, n, timeout=20):
    """The service's spans once at least n arrived (the wait is a hang guard), by name."""
    snap = receiver.wait_for(lambda s: len(of_service(s["spans"], service)) >= n, timeout=timeout)
    return of_service(snap["spans"], service)


def by_name(spans):
    out = {}
    for s in spans:
        out.setdefault(s["name"], []).append(s)
    return out

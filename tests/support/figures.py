"""figures — measured figures the suites record for docs/reliability.md: a locked JSON merge, and the `figures`
pytest fixture with its session hooks (a conftest re-exports `figures`, `pytest_sessionfinish` and
`pytest_terminal_summary` to use them).

Several suites run at once under ctest (-j2) and each merges into the same file: the merge holds an flock on
FILE.lock, so one suite's figures never overwrite another's.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from typing import Callable

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("POLYTEL_BUILD_DIR", os.path.join(ROOT, "build"))
FIGURES_PATH = os.environ.get("POLYTEL_RELIABILITY_FIGURES", os.path.join(BUILD, "reliability-figures.json"))
SOAK = os.environ.get("POLYTEL_SOAK", "") not in ("", "0")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def merge_json(path: str, update: Callable[[dict], None]) -> None:
    """Reads `path` (missing or unreadable: {}), applies update(dict) and writes it back atomically, under a lock."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        out: dict = {}
        try:
            with open(path) as f:
                out = json.load(f)
        except (OSError, ValueError):
            pass
        update(out)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=2, sort_keys=True)
        os.replace(tmp, path)


_FIGURES: dict = {}


@pytest.fixture(scope="session")
def figures():
    """A dict the suites fill with measured figures; written to FIGURES_PATH and printed at the end."""
    return _FIGURES


def pytest_sessionfinish(session, exitstatus):
    if not _FIGURES:
        return
    # Merged into the previous file: a partial run (-k, one file) updates its own figures, keeps the rest.
    stamp = now()

    def update(out: dict) -> None:
        out.update({"date": stamp, "machine": machine(), "soak": SOAK})
        out.update({k: {**v, "measured_at": stamp} for k, v in _FIGURES.items()})

    merge_json(FIGURES_PATH, update)


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    tr = terminalreporter
    tr.section("reliability figures")
    for k in sorted(_FIGURES):
        tr.write_line(f"{k}: {json.dumps(_FIGURES[k], sort_keys=True)}")
    tr.write_line(f"(written to {FIGURES_PATH})")


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    cpu = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.uname().sysname} {os.uname().release} {os.uname().machine}, {os.cpu_count()} cpus, {cpu}"

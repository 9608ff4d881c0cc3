"""procs — runs the C test programs and the interpreters with a clean polytel environment (shared by the
reliability and integration suites): program paths, clean_env, run / run_python / run_ruby and their Run result."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("POLYTEL_BUILD_DIR", os.path.join(ROOT, "build"))
PROGRAMS = os.path.join(BUILD, "tests")
PY = os.environ.get("POLYTEL_PY", os.path.join(BUILD, "py-venv", "bin", "python"))
GEM_HOME = os.environ.get("POLYTEL_GEM_HOME", os.path.join(BUILD, "ruby-gems"))

# Short batching delays keep runs short; everything else is the library default.
BASE_ENV = {
    "TELEMETRY_ENABLED": "true",
    "OTEL_BSP_SCHEDULE_DELAY": "100",
    "OTEL_BLRP_SCHEDULE_DELAY": "100",
    "OTEL_METRIC_EXPORT_INTERVAL": "500",
    "POLYTEL_LOG_LEVEL": "warn",
    "NO_COLOR": "1",
    "PYTHONUNBUFFERED": "1",
}
_SCRUB = ("OTEL_", "TELEMETRY_", "POLYTEL_")


_HELD: list = []


def closed_port() -> int:
    """A port nothing listens on, for a dead collector: bound and never listening, and held so for the rest of
    this process. Connecting is refused all the same; closing the probe instead let the kernel hand the port to
    another suite's receiver running beside this one, which then got this test's records (and it ours)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _HELD.append(s)
    return s.getsockname()[1]


def clean_env(extra: dict | None = None, base: dict | None = None) -> dict:
    """The caller's environment minus every polytel/OTel variable, plus BASE_ENV and `extra` (None removes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB) and k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update(BASE_ENV if base is None else base)
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    env["GEM_HOME"] = GEM_HOME
    return env


def program(name: str) -> str:
    path = os.path.join(PROGRAMS, name)
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{path} not built: run `make build` (or set POLYTEL_BUILD_DIR)")
    return path


class Run:
    def __init__(self, p: subprocess.CompletedProcess, elapsed: float):
        self.returncode, self.stdout, self.stderr, self.elapsed = p.returncode, p.stdout, p.stderr, elapsed

    def lines(self, prefix: str) -> list:
        return [json.loads(ln[len(prefix) + 1:]) for ln in self.stdout.splitlines() if ln.startswith(prefix + " ")]

    def one(self, prefix: str) -> dict:
        got = self.lines(prefix)
        assert len(got) == 1, f"want one {prefix} line, got {len(got)}\n{self.describe()}"
        return got[0]

    def describe(self) -> str:
        return f"rc={self.returncode}\n--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"

    def ok(self) -> "Run":
        assert self.returncode == 0, self.describe()
        return self


def run(argv: list, env: dict, timeout: float, stdin: str | None = None) -> Run:
    """Runs argv; `timeout` is a hang guard only (subprocess.TimeoutExpired fails the test)."""
    t0 = time.monotonic()
    p = subprocess.run([str(a) for a in argv], env=env, capture_output=True, text=True, timeout=timeout, input=stdin,
                       errors="replace")
    return Run(p, time.monotonic() - t0)


def run_python(code: str, env: dict, timeout: float, args: tuple = ()) -> Run:
    if not os.access(PY, os.X_OK):
        raise AssertionError(f"{PY} missing: run `make py-venv`")
    return run([PY, "-c", textwrap.dedent(code), *map(str, args)], env, timeout)


def run_ruby(code: str, env: dict, timeout: float, args: tuple = ()) -> Run:
    if not os.path.isdir(GEM_HOME):
        raise AssertionError(f"{GEM_HOME} missing: run `make ruby-gem`")
    return run(["ruby", "-e", textwrap.dedent(code), *map(str, args)], env, timeout)


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


def hold_port(port: int = 0) -> socket.socket:
    """A socket bound to 127.0.0.1:port (0: a fresh port) and never listening, until it is closed: connecting is
    refused, and the kernel hands the port to no one else (bind(0) never picks a bound port).

    With a port: SO_REUSEADDR + SO_REUSEPORT, so it binds beside a server that is still listening there with
    SO_REUSEPORT (Receiver(reuse_port=True)), and a server with SO_REUSEADDR (the test receiver, Go's listeners:
    the Collector) can bind and listen on the port while it is held. That is an outage that keeps its port: hold,
    stop the server, later start the new one on the same port, then close the hold. Freeing the port for the
    outage let another suite's server take it (the restart then failed, or worse, the worker's records went to
    that server)."""
    s = socket.socket()
    if port:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError as e:
        s.close()
        raise AssertionError(f"cannot hold 127.0.0.1:{port}: {e} (another process has it)") from None
    return s


def closed_port() -> int:
    """A port nothing listens on, for a dead collector: bound and never listening, and held so for the rest of
    this process. Connecting is refused all the same; closing the probe instead let the kernel hand the port to
    another suite's receiver running beside this one, which then got this test's records (and it ours)."""
    s = hold_port()
    _HELD.append(s)
    return s.getsockname()[1]


def listening_ports(pid: int) -> set:
    """The TCP ports process pid listens on (IPv4 and IPv6), from /proc: whose a port is, where a server cannot
    report it (a port someone else took answers connections too)."""
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return set()
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def start_on_free_port(start, what: str, attempts: int = 5):
    """For a server that cannot bind port 0 and say which port it got: start(port) on a fresh port, again on
    another when it could not bind (start returns None, or raises PortTaken), at most `attempts` times. Another
    suite can take a probed port before the server binds it; then the error names every port tried."""
    tried = []
    for _ in range(attempts):
        probe = hold_port()
        port = probe.getsockname()[1]
        probe.close()  # the window a neighbour may take it in: the retry is for that
        tried.append(port)
        try:
            got = start(port)
        except PortTaken as e:
            tried[-1] = f"{port} ({e})"
            continue
        if got is not None:
            return got
    raise AssertionError(f"{what}: could not bind a port after {attempts} attempts (tried {', '.join(map(str, tried))})")


class PortTaken(Exception):
    """Raised by a start(port) of start_on_free_port when the server failed to bind that port."""


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


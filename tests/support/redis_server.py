"""redis_server — a real Debian `redis-server` on 127.0.0.1 with a random port, started and stopped by the harness.

Use (pytest):

    sys.path.insert(0, "<repo>/tests/support")
    from redis_server import redis_server          # fixture: one server per test
    def test_x(redis_server):
        url = redis_server.url                     # redis://127.0.0.1:PORT/0

or as a plain context manager (any script, any language's harness):

    with RedisServer() as r:
        subprocess.run([...], env={**os.environ, "REDIS_URL": r.url})

or from a shell / another language: `python tests/support/redis_server.py --port-file FILE` writes the port to FILE
(atomically, once the server answers PING) and serves until SIGTERM/SIGINT.

The server keeps no state on disk (no RDB, no AOF) and lives in its own temporary directory; `stop()` sends
SHUTDOWN NOSAVE and, if that does not end it within the guard, SIGKILL. A missing `redis-server` binary raises a
one-line error naming the package to install.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from procs import PortTaken, listening_ports, start_on_free_port  # noqa: E402

__all__ = ["RedisServer", "redis_server", "RedisServerError"]

# Hang guard only: a healthy server answers in milliseconds; a loaded machine may take seconds.
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class RedisServerError(RuntimeError):
    pass


def _command(port: int, cmd: list[str], timeout: float = 2.0) -> bytes:
    """Sends one RESP command and returns the first reply line (enough for PING, DBSIZE, SHUTDOWN)."""
    payload = f"*{len(cmd)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in cmd)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        buf = b""
        while not buf.endswith(b"\r\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf.strip()


class RedisServer:
    """One redis-server process. `start()` returns self once it answers PING; `stop()` is idempotent."""

    def __init__(self, binary: str | None = None, extra_args: list[str] | None = None):
        self.binary = binary or os.environ.get("REDIS_SERVER") or shutil.which("redis-server") \
            or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)
        self.extra_args = list(extra_args or [])
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.dir: str | None = None
        self.log_path: str | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        """redis://127.0.0.1:PORT/0 — for Celery broker/backend, RQ, redis-py, Sidekiq's REDIS_URL."""
        return self.db_url(0)

    def db_url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def log(self) -> str:
        try:
            with open(self.log_path or "", encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def start(self) -> "RedisServer":
        if not self.binary:
            raise RedisServerError("redis-server not found: install the Debian package `redis-server` "
                                   "(scripts/deps.sh does) or set REDIS_SERVER=/path/to/redis-server")
        self.dir = tempfile.mkdtemp(prefix="polytel-redis-")
        self.log_path = os.path.join(self.dir, "redis.log")
        # redis-server has no "any port" (--port 0 turns TCP off): a fresh port each attempt, another when a
        # neighbour took it first (procs.start_on_free_port); the server is ours once its own pid listens there.
        return start_on_free_port(self._start_on, "redis-server")

    def _start_on(self, port: int):
        self.port = port
        args = [self.binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", self.dir,
                "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
                "--logfile", self.log_path, "--databases", "16", *self.extra_args]
        log_from = len(self.log())  # one log file for every attempt: read only this one's part
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            # PING alone could be answered by whoever took the port: the listener must be this process's.
            if port in listening_ports(self.proc.pid):
                try:
                    if _command(port, ["PING"]) == b"+PONG":
                        return self
                except OSError:
                    pass
            time.sleep(0.02)
        err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
        log = self.log()[log_from:]
        self._kill()
        if "Address already in use" in log or "Address already in use" in err:
            raise PortTaken("Address already in use")  # the log's last line is only "Failed listening on port"
        last = (err.strip() or (log.strip().splitlines() or ["no answer to PING"])[-1])
        raise RedisServerError(f"redis-server did not start on 127.0.0.1:{port}: {last}")

    def ping(self) -> bool:
        try:
            return _command(self.port, ["PING"]) == b"+PONG"
        except OSError:
            return False

    def flushall(self) -> None:
        _command(self.port, ["FLUSHALL"])

    def _kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                _command(self.port, ["SHUTDOWN", "NOSAVE"])
            except OSError:
                pass
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        self._kill()
        self.proc = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


try:
    import pytest

    @pytest.fixture
    def redis_server():
        """A started RedisServer (127.0.0.1, random port, no persistence), stopped after the test."""
        r = RedisServer().start()
        try:
            yield r
        finally:
            r.stop()
except ImportError:  # plain scripts (demo, other languages' harnesses) need no pytest
    pass


def main(argv: list[str]) -> int:
    import argparse
    ap = argparse.ArgumentParser(description="Run a throw-away redis-server on 127.0.0.1 until SIGTERM/SIGINT.")
    ap.add_argument("--port-file", help="write the port here (atomically) once the server answers PING")
    opts = ap.parse_args(argv)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    with RedisServer() as r:
        if opts.port_file:
            tmp = opts.port_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(f"{r.port}\n")
            os.replace(tmp, opts.port_file)
        else:
            print(r.url, flush=True)
        while not stop and r.proc.poll() is None:
            time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

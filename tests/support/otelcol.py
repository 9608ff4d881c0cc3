"""otelcol — runs the real OpenTelemetry Collector (build/otelcol-polytel, from tests/support/collector) for a test: a temp
config, 127.0.0.1 on a port the kernel picks (read back from its log), readiness, what it wrote (normalized like the test receiver's
received()), stop, kill and restart on the same port (an outage).

    with Collector() as col:                       # or the fixtures in otelcol_fixtures.py
        ... OTEL_EXPORTER_OTLP_ENDPOINT=col.endpoint ...
        got = col.received()                       # {"spans","logs","metrics","requests","errors"}

The Collector writes each batch it accepted as one OTLP/JSON line per signal (traces/logs/metrics.jsonl) before it
answers 200, so after a worker exited, everything the Collector accepted is on disk. Lines are parsed with the test
receiver's strict OTLP/JSON rules (tests/support/jsonl.py). `mark()` + `received(since=mark)` separate the runs of
one shared collector.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from figures import merge_json, now  # noqa: E402
from procs import hold_port  # noqa: E402
from jsonl import parse_line  # noqa: E402
from otlp_receiver import ITEM_KEYS, empty_received  # noqa: E402

BUILD = os.environ.get("POLYTEL_BUILD_DIR") or os.path.join(ROOT, "build")
BINARY = os.environ.get("POLYTEL_OTELCOL") or os.path.join(BUILD, "otelcol-polytel")
FILES = {"traces": "traces.jsonl", "logs": "logs.jsonl", "metrics": "metrics.jsonl"}
READY_LINE = "Everything is ready"
# The OTLP receiver's line with the address it listens on (the real port when the config said :0).
LISTEN_RE = re.compile(r'Starting HTTP server.*?"endpoint": "127\.0\.0\.1:(\d+)"')
START_GUARD_S = 90  # hang guard for start-up on a loaded machine (normally well under a second)


class CollectorError(AssertionError):
    pass


class Collector:
    """One collector process (restartable). Options map to the OTLP receiver's HTTP settings:
    cors_origins      -> protocols.http.cors.allowed_origins (None: no cors block at all)
    max_request_body_size -> protocols.http.max_request_body_size (bytes; None: the receiver's default, 20 MiB)
    """

    def __init__(self, port: int = 0, cors_origins: Optional[list] = None,
                 max_request_body_size: Optional[int] = None, debug: bool = True):
        if not os.access(BINARY, os.X_OK):
            raise CollectorError(f"{BINARY} is not built: run `make collector` (Go; tests/support/collector)")
        self.port = port
        self.cors_origins = cors_origins
        self.max_request_body_size = max_request_body_size
        self.debug = debug
        self.dir = tempfile.mkdtemp(prefix="polytel-otelcol-")
        self.out_dir = os.path.join(self.dir, "out")
        self.config_path = os.path.join(self.dir, "config.yaml")
        self.log_path = os.path.join(self.dir, "collector.log")
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0
        self._hold = None  # the port, held between kill() and the restart (procs.hold_port)

    # ------------------------------------------------------------ lifecycle

    def config(self) -> dict:
        http: dict = {"endpoint": f"127.0.0.1:{self.port}"}
        if self.cors_origins is not None:
            http["cors"] = {"allowed_origins": list(self.cors_origins)}
        if self.max_request_body_size is not None:
            http["max_request_body_size"] = int(self.max_request_body_size)
        exporters = ["jsonlines"] + (["debug"] if self.debug else [])
        return {
            "receivers": {"otlp": {"protocols": {"http": http}}},
            "exporters": {"jsonlines": {"directory": self.out_dir}, "debug": {"verbosity": "basic"}},
            "service": {
                # Unsampled logs (the debug exporter's lines are otherwise sampled away); no internal metrics
                # server (it would listen on a fixed port, :8888).
                "telemetry": {"logs": {"level": "info", "sampling": {"enabled": False}},
                              "metrics": {"level": "none"}},
                "pipelines": {sig: {"receivers": ["otlp"], "exporters": exporters}
                              for sig in ("traces", "logs", "metrics")},
            },
        }

    def start(self) -> "Collector":
        """Starts, and returns once it accepts connections. The first start listens on port 0 (the kernel picks,
        the Collector logs the port it got: no probe another suite could take first); a restart uses the same
        port, held since kill() so that nothing else took it meanwhile."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        for attempt in range(5):
            with open(self.config_path, "w") as f:
                json.dump(self.config(), f, indent=1)  # YAML is a superset of JSON
            log = open(self.log_path, "a")
            log.write(f"--- start {self.starts + 1} on port {self.port or 'any'}\n")
            log.flush()
            start_at = log.tell()
            self.proc = subprocess.Popen([BINARY, "--config", f"file:{self.config_path}"], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
            log.close()
            if self._wait_ready(start_at):
                self.starts += 1
                if self._hold is not None:
                    self._hold.close()  # the Collector listens beside it now
                    self._hold = None
                return self
            text = self.log_text()[start_at:]
            self._reap()
            if "address already in use" in text and attempt < 4 and self._hold is None:
                time.sleep(0.2 * (attempt + 1))  # a port the caller fixed, or our own instance's, not released yet
                continue
            raise CollectorError(f"collector did not start (port {self.port or 'any'}):\n{text[-4000:]}")
        raise CollectorError(f"collector could not bind 127.0.0.1:{self.port} (another process has it):\n"
                             f"{self.log_text()[-4000:]}")

    def _wait_ready(self, start_at: int) -> bool:
        deadline = time.monotonic() + START_GUARD_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            text = self.log_text()[start_at:]
            if READY_LINE in text:
                if not self.port:
                    m = LISTEN_RE.search(text)
                    if not m:
                        raise CollectorError(f"collector ready, but its log names no listening port:\n{text[-4000:]}")
                    self.port = int(m.group(1))
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
                    return True
                except OSError:
                    pass
            time.sleep(0.02)
        raise CollectorError(f"collector not ready after {START_GUARD_S}s:\n{self.log_text()[-4000:]}")

    def _reap(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def kill(self) -> None:
        """SIGKILL: the outage starts now (open connections are reset, the port refuses). The port stays held
        (bound, never listening) until start() brings the Collector back on it: freed, another suite could take
        it in the outage. (Go's listener has no SO_REUSEPORT, so the hold begins right after the exit.)"""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
            if self.port and self._hold is None:
                self._hold = hold_port(self.port)

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections (the kernel completes them) and takes request bodies into
        its socket buffers, but nothing is read or answered until thaw(): sent, never confirmed."""
        if self.running:
            self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.running:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Graceful stop (SIGTERM), SIGKILL after 10 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.thaw()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def close(self) -> None:
        self.stop()
        if self._hold is not None:
            self._hold.close()
            self._hold = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Collector":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # ------------------------------------------------------------ what it wrote

    def mark(self) -> dict:
        """Where each file ends now: pass to received(since=...) to see only what came after."""
        out = {}
        for sig, name in FILES.items():
            try:
                out[sig] = os.path.getsize(os.path.join(self.out_dir, name))
            except OSError:
                out[sig] = 0
        return out

    def received(self, since: Optional[dict] = None) -> dict:
        """{"spans","logs","metrics","requests","errors"}: the test receiver's normalized shapes, in arrival order.
        "requests" has one entry per batch the Collector accepted ({signal, items, path, line}); "errors" is
        always empty (a request the Collector refused wrote nothing; its answer is what the client saw)."""
        got = empty_received()
        for sig, name in FILES.items():
            path = os.path.join(self.out_dir, name)
            try:
                with open(path, "rb") as f:
                    f.seek((since or {}).get(sig, 0))
                    data = f.read()
            except FileNotFoundError:
                continue
            end = data.rfind(b"\n")
            for n, line in enumerate(data[:end + 1].splitlines(), 1):
                if not line.strip():
                    continue
                signal_, items = parse_line(line, f"{path}:+{n}")
                assert signal_ == sig, f"{path}: a {signal_} batch in the {sig} file"
                got[ITEM_KEYS[sig]].extend(items)
                got["requests"].append({"path": f"/v1/{sig}", "signal": sig, "items": len(items), "line": n,
                                        "bytes": len(line)})
        return got

    def wait_for(self, pred: Callable[[dict], object], since: Optional[dict] = None, timeout: float = 30.0) -> dict:
        """Polls received() until pred(got) is true (hang guard `timeout`); returns the last snapshot."""
        deadline = time.monotonic() + timeout
        got = self.received(since)
        while not pred(got) and time.monotonic() < deadline:
            time.sleep(0.05)
            got = self.received(since)
        return got


FIGURES_PATH = os.environ.get("POLYTEL_COLLECTOR_FIGURES") or os.path.join(BUILD, "collector-figures.json")


def record_figures(name: str, fig: dict) -> None:
    """Merges {name: fig} into $BUILD/collector-figures.json (the figures docs/reliability.md quotes), under a lock
    (the collector suites of tests/integration and tests/smoke may run at once)."""
    stamp = now()
    merge_json(FIGURES_PATH, lambda out: out.update({name: {**fig, "measured_at": stamp}}))

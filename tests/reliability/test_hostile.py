"""test_hostile — answers no collector should give: a 100 MB body, an endless chunked body, a redirect, 2 MB of
headers, garbage, a byte every 200 ms. No crash, memory within its cap, shutdown bounded (hang guard = 3x the
shutdown timeout), every record accounted for, a redirect never followed.

Collectors that refuse, reset, stall, answer slowly or not at all (the statuses DESIGN.md retries and those it
does not) are the one fault suite, tests/integration/test_faults.py."""
from __future__ import annotations

import json
import socket
import threading

import pytest

from conftest import clean_env, program, run

THREADS, EVENTS = 2, 100  # 400 spans + 200 logs
ITEMS = 3 * THREADS * EVENTS


# ------------------------------------------------- answers no collector should give

RSS_CAP_MIB = 40  # the block pool (16 MiB) + the 24 MiB allowance of docs/reliability.md ("Collector outage")


class ProbeServer:
    """A raw HTTP/1.1 server on 127.0.0.1 that reads each request whole, then answers the way `mode` says:
    a 100 MB body, an endless chunked body, a redirect to `trap`, 2 MB of headers, garbage, or one byte every
    200 ms. Counts requests and the bytes it sent; stopped by the test."""

    def __init__(self, mode: str, trap_port: int = 0):
        self.mode, self.trap_port = mode, trap_port
        self.requests, self.sent, self.connections = 0, 0, 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            with self._lock:
                self.connections += 1
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()
            self._threads.append(t)

    def _send(self, c, data: bytes) -> None:
        c.sendall(data)
        with self._lock:
            self.sent += len(data)

    def _read_request(self, c, buf: bytes):
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return None
            buf += d
        head, rest = buf.split(b"\r\n\r\n", 1)
        length = 0
        for ln in head.split(b"\r\n")[1:]:
            k, _, v = ln.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        while len(rest) < length:
            d = c.recv(65536)
            if not d:
                return None
            rest += d
        with self._lock:
            self.requests += 1
        return rest[length:]

    def _serve(self, c):
        c.settimeout(30)
        buf = b""
        try:
            while not self._stop.is_set():
                buf = self._read_request(c, buf)
                if buf is None:
                    return
                m = self.mode
                if m == "huge_body":
                    self._send(c, b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
                                  b"Content-Length: 104857600\r\n\r\n")
                    chunk = b"\0" * 65536
                    for _ in range(1600):
                        self._send(c, chunk)
                elif m == "endless":
                    self._send(c, b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n")
                    chunk = b"10000\r\n" + b"\0" * 65536 + b"\r\n"
                    while not self._stop.wait(0.002):  # ~30 MB/s: endless, without eating a shared CPU
                        self._send(c, chunk)
                elif m == "redirect":
                    self._send(c, (f"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{self.trap_port}"
                                   f"/v1/stolen\r\nContent-Length: 0\r\n\r\n").encode())
                elif m == "huge_headers":
                    self._send(c, b"HTTP/1.1 200 OK\r\n")
                    for i in range(2000):
                        self._send(c, b"X-Junk-%d: " % i + b"j" * 1000 + b"\r\n")
                    self._send(c, b"Content-Length: 0\r\n\r\n")
                elif m == "garbage":
                    self._send(c, b"\x00\xff\xfeNOT HTTP AT ALL\r\n\r\n" * 64)
                    return
                elif m == "drip":
                    for ch in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                        if self._stop.wait(0.2):
                            return
                        self._send(c, bytes([ch]))
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self._stop.set()
        self.sock.close()
        for t in self._threads:
            t.join(5)


HOSTILE_ANSWERS = ["huge_body", "endless", "redirect", "huge_headers", "garbage", "drip"]


@pytest.mark.parametrize("mode", HOSTILE_ANSWERS)
def test_hostile_answers_are_bounded(mode, figures):
    # Whatever the collector answers: no crash, memory within the cap, shutdown within its timeout (the hang guard
    # is 3x), every record accounted for; a redirect is never followed (the trap server sees nothing).
    trap = ProbeServer("garbage")
    srv = ProbeServer(mode, trap_port=trap.port)
    try:
        env = clean_env({"OTEL_EXPORTER_OTLP_ENDPOINT": srv.endpoint, "OTEL_EXPORTER_OTLP_TIMEOUT": "1000",
                         "OTEL_BSP_EXPORT_TIMEOUT": "3000", "OTEL_BLRP_EXPORT_TIMEOUT": "3000",
                         "OTEL_METRIC_EXPORT_TIMEOUT": "3000"})
        r = run([program("worker_c"), "--threads", 2, "--events", 100, "--shutdown-ms", 5000], env, timeout=3 * 5 + 15)
    finally:
        srv.stop()
        trap.stop()
    assert r.returncode == 0, r.describe()
    out = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("{")][-1])
    rss = int([ln for ln in r.stdout.splitlines() if ln.startswith("VMHWM ")][-1].split()[1]) / 1024
    unconfirmed = out.get("unconfirmed", 0)
    assert out["recorded"] == ITEMS and out["pending"] == 0, out
    assert out["recorded"] == out["exported"] + out["dropped"] + unconfirmed, out
    assert rss < RSS_CAP_MIB, f"peak RSS {rss:.1f} MiB"
    assert srv.requests >= 1
    if mode == "redirect":
        assert trap.connections == 0, "a redirect was followed"
        assert out["exported"] == 0, out
    if mode in ("endless", "huge_headers", "garbage", "drip"):
        assert out["exported"] == 0, out  # never a success
    figures.setdefault("hostile_collector", {})[mode] = {
        "requests": srv.requests, "server_sent_mib": round(srv.sent / 2**20, 1), "peak_rss_mib": round(rss, 1),
        "recorded": out["recorded"], "exported": out["exported"], "dropped": out["dropped"],
        "unconfirmed": unconfirmed, "shutdown_rc": out["shutdown_rc"], "wall_s": round(r.elapsed, 2)}

"""test_ports — the harness's servers get their ports without a probe-then-bind race (tests/support/procs.py): a held
port refuses and is handed to no one else; a receiver and the real Collector come back on the same port after an
outage that held it; the Collector, gunicorn and uWSGI bind port 0 and say which port they got; redis-server (which
cannot) retries on a fresh port when its port was taken, and is only taken for ours once its own pid listens."""
from __future__ import annotations

import errno
import os
import socket
import tempfile

import pytest

from otlp_receiver import Receiver
from procs import PortTaken, hold_port, listening_ports, start_on_free_port


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return False
    except ConnectionRefusedError:
        return True


def foreign_bind(port: int) -> int:
    """What a neighbour's explicit bind of the port gets: 0, or the errno."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return 0
        except OSError as e:
            return e.errno


def test_a_held_port_refuses_and_is_handed_out_to_no_one():
    h = hold_port()
    port = h.getsockname()[1]
    try:
        assert refused(port)
        assert foreign_bind(port) == errno.EADDRINUSE
        picked = set()
        for _ in range(300):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                picked.add(s.getsockname()[1])
        assert port not in picked
    finally:
        h.close()


def test_listening_ports_are_the_process_own():
    with socket.socket() as ls, socket.socket() as bound:
        ls.bind(("127.0.0.1", 0))
        ls.listen()
        bound.bind(("127.0.0.1", 0))  # bound, not listening: not a listener
        mine = listening_ports(os.getpid())
        assert ls.getsockname()[1] in mine
        assert bound.getsockname()[1] not in mine
    assert listening_ports(2**22 + 12345) == set()  # no such process


def test_receiver_outage_keeps_its_port():
    first = Receiver(reuse_port=True).start()
    port = first.port
    hold = hold_port(port)  # beside the listening receiver (SO_REUSEPORT on both)
    second = None
    try:
        assert not refused(port)
        first.stop()
        assert refused(port)
        assert foreign_bind(port) == errno.EADDRINUSE
        second = Receiver(port=port).start()  # binds and listens beside the hold
        hold.close()
        assert second.port == port and not refused(port)
    finally:
        hold.close()
        first.stop()
        if second is not None:
            second.stop()


def test_start_on_free_port_retries_a_taken_port_and_names_every_port_it_tried():
    tried = []

    def flaky(port):
        tried.append(port)
        if len(tried) < 3:
            raise PortTaken("Address already in use")
        return ("started", port)

    assert start_on_free_port(flaky, "flaky server") == ("started", tried[-1])
    assert len(tried) == 3 and all(p > 0 for p in tried)

    def never(port):
        tried.append(port)
        raise PortTaken("Address already in use")

    del tried[:]
    with pytest.raises(AssertionError) as e:
        start_on_free_port(never, "never server", attempts=4)
    assert len(tried) == 4
    assert "never server: could not bind a port after 4 attempts" in str(e.value)
    for p in tried:
        assert f"{p} (Address already in use)" in str(e.value)


def test_redis_on_a_taken_port_is_retried_and_ours_once_its_pid_listens():
    from redis_server import RedisServer

    r = RedisServer()
    if not r.binary:
        pytest.fail("redis-server is not installed (scripts/deps.sh installs it)")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()  # another suite's server on the port the probe picked
    try:
        r.dir = tempfile.mkdtemp(prefix="polytel-redis-")
        r.log_path = os.path.join(r.dir, "redis.log")
        with pytest.raises(PortTaken):
            r._start_on(taken.getsockname()[1])  # PING would have been answered by `taken`'s backlog: not ours
        r.stop()
    finally:
        taken.close()
    with RedisServer() as r2:
        assert r2.port in listening_ports(r2.proc.pid)
        assert r2.ping()


def test_collector_binds_port_0_and_comes_back_on_it():
    from otelcol import Collector

    with Collector() as col:
        port = col.port
        assert port > 0 and listening_ports(col.proc.pid) == {port}
        col.kill()
        assert refused(port) and foreign_bind(port) == errno.EADDRINUSE  # held through the outage
        col.start()
        assert col.port == port and listening_ports(col.proc.pid) == {port}
        assert col._hold is None  # released once the Collector listened again
